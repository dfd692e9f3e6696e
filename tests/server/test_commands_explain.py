"""``token explain`` (docs/lifecycle.md#explaining-a-token, R177, R178), in-process on both
databases: the checks and their details, what is disclosed about whose token, the
``--vm`` and ``--command`` checks, and that explaining changes nothing.

That explain agrees with the real path on every kind of broken token is proven against a
live server: ``tests/http/test_http_lifecycle.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from sshmint.server.auth import CHECKS, LifetimePolicy
from tests.support.command_helpers import BACKENDS, NOW, Caller, Env, backend_env
from tests.support.store_audit import dump_tables

API = "v0@sshmint.test"
NOT_YOURS = "key is not registered to your account"


@pytest.fixture(params=BACKENDS)
async def env(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Env]:
    async with backend_env(request.param, request, tmp_path) as e:
        yield e


async def explain(caller: Caller, token: str, *flags: str) -> dict[str, Any]:
    body: dict[str, Any] = await caller.ok(["token", "explain", token, *flags])
    return body


def checks(report: dict[str, Any]) -> list[tuple[str, bool]]:
    return [(c["check"], c["ok"]) for c in report["checks"]]


def failing(report: dict[str, Any]) -> tuple[str, str]:
    last = report["checks"][-1]
    assert last["ok"] is False and report["valid"] is False, report
    assert report["reason"] == last["detail"]
    return last["check"], last["detail"]


async def test_r177_valid_token_passes_every_check(env: Env) -> None:
    a = await env.caller()
    report = await explain(a, a.token(f'{{"exp":{NOW + 3 * 3600},"nbf":{NOW - 60}}}'.encode()))
    assert report["valid"] is True and report["reason"] is None
    assert checks(report) == [(check, True) for check in CHECKS]
    assert report["namespace"] == report["expected_namespace"] == API
    assert report["fingerprint"] == f"SHA256:{a.key.fingerprint}"
    assert (report["exp"], report["nbf"]) == ("2030-03-17T20:46:40Z", "2030-03-17T17:45:40Z")
    details = {c["check"]: c["detail"] for c in report["checks"]}
    assert details["claims"] == (
        "expires 2030-03-17T20:46:40Z (3h from now); valid since 2030-03-17T17:45:40Z"
    )
    assert (
        details["key"] == f'key "login" (SHA256:{a.key.fingerprint}) is registered to your account'
    )


async def test_r177_expired_token_fails_claims_with_when(env: Env) -> None:
    a = await env.caller()
    report = await explain(a, a.token(f'{{"exp":{NOW - 3 * 3600}}}'.encode()))
    assert checks(report) == [("format", True), ("claims", False)]
    assert failing(report) == ("claims", "token has expired (2030-03-17T14:46:40Z, 3h ago)")
    early = await explain(a, a.token(f'{{"nbf":{NOW + 7200}}}'.encode()))
    assert failing(early) == (
        "claims",
        "token is not yet valid (2030-03-17T19:46:40Z, 2h from now)",
    )


async def test_r177_other_namespace_fails_naming_both(env: Env) -> None:
    a = await env.caller()
    report = await explain(a, a.token(namespace="v0@api.example.com"))
    assert checks(report)[-2:] == [("key", True), ("namespace", False)]
    assert failing(report) == (
        "namespace",
        "signed for v0@api.example.com, this server expects v0@sshmint.test",
    )
    assert report["namespace"] == "v0@api.example.com"


async def test_r178_another_users_token_reveals_nothing_beyond_the_key_check(env: Env) -> None:
    a, b = await env.caller(), await env.caller()
    revoked = b.token(b'{"cmds":["ls"]}')
    await b.ok(["token", "revoke", revoked])
    await env.store.set_locked(b.user.email, True)  # b's lock-out and revocation stay hidden
    for token in (
        b.token(f'{{"exp":{NOW + 600}}}'.encode(), namespace="v0@b-only.example"),
        revoked,
    ):
        report = await explain(a, token)
        assert checks(report) == [("format", True), ("claims", True), ("key", False)]
        assert failing(report) == ("key", NOT_YOURS)
        assert report["checks"][1]["detail"] == "not expired and already valid"
        assert (report["namespace"], report["exp"], report["nbf"]) == (None, None, None)
        assert report["fingerprint"] == f"SHA256:{b.key.fingerprint}"  # the token says it
        text = (await a.run(["token", "explain", token])).stdout
        for hidden in ("b-only", "2030", "lock", "revoked"):
            assert hidden not in text, hidden
    # A key nobody has, and another user's expired token: no more than /exec says.
    gone = await env.caller()
    await env.store.delete_key(gone.key.id)
    assert failing(await explain(a, gone.token())) == ("key", NOT_YOURS)
    expired = await explain(a, b.token(f'{{"exp":{NOW - 60}}}'.encode()))
    assert failing(expired) == ("claims", "token has expired")


async def test_s14_2_every_failing_check_has_its_detail(env: Env) -> None:
    a = await env.caller()
    revoked = a.token(b'{"cmds":["ls"]}')
    await a.ok(["token", "revoke", revoked])
    assert failing(await explain(a, revoked)) == ("revoked", "revoked 2030-03-17T17:46:40Z")
    assert failing(await explain(a, "exe0.e30.")) == (
        "format",
        "invalid token: malformed signature",
    )
    assert failing(await explain(a, "exe1.bad"))[0] == "format"
    unknown = await explain(a, "exe1." + "A" * 26)
    assert failing(unknown) == ("format", "exe1 handle is unknown or has expired")
    assert unknown["fingerprint"] is None
    signature = a.token(b'{"exp":2000000000}').split(".")[2]
    altered = await explain(a, f"exe0.eyJleHAiOjIwMDAwMDAwMDF9.{signature}")
    assert failing(altered)[0] == "signature"
    expiring = f'{{"exp":{NOW - 1}}}'
    row, signer = await env.add_key(a, permissions=expiring, name="old")
    old_key: Caller = replace(a, key=row, signer=signer)
    assert failing(await explain(a, old_key.token())) == (
        "key_restrictions",
        "the key expired 2030-03-17T17:46:39Z",
    )
    env.policy = LifetimePolicy(3600)
    assert failing(await explain(a, a.token())) == (
        "policy",
        "token lifetime exceeds this server's maximum of 1h: it never expires",
    )
    late = await explain(a, a.token(f'{{"exp":{NOW + 7200}}}'.encode()))
    assert failing(late)[1].endswith("maximum of 1h: it expires 2030-03-17T19:46:40Z (2h from now)")


async def test_s14_2_exe1_is_explained_through_its_exe0(env: Env) -> None:
    a = await env.caller()
    exe1 = (await a.ok(["exe0-to-exe1", a.token(b'{"cmds":["whoami"]}')]))["token"]
    report = await explain(a, exe1, "--command", "whoami")
    assert report["valid"] is True
    assert report["checks"][0]["detail"] == "exe1 handle for a well-formed exe0 token"
    assert report["checks"][-1] == {
        "check": "command",
        "ok": True,
        "detail": 'command "whoami" is allowed',
    }


async def test_s14_2_command_check_is_exec_steps_12_to_16(env: Env) -> None:
    a = await env.caller()
    token = a.token(b'{"cmds":["whoami","ls","exe0-to-exe1"]}')
    cases = {
        "rm x": 'command "rm" is not in the token\'s cmds (whoami, ls, exe0-to-exe1)',
        "nope": '"nope" is not a command',
        "'unterminated": "invalid command syntax",
        "": "missing command",
    }
    for line, detail in cases.items():
        assert failing(await explain(a, token, "--command", line)) == ("command", detail), line
    default = await explain(a, a.token(), "--command", "rm x")
    assert failing(default)[1] == (
        'command "rm" is not in the token\'s default cmds'
        " (help, ls, new, whoami, ssh-key list, share show, exe0-to-exe1)"
    )
    row, signer = await env.add_key(a, permissions='{"cmds":["whoami"]}', name="w")
    narrow: Caller = replace(a, key=row, signer=signer)
    assert failing(await explain(a, narrow.token(b'{"cmds":["ls"]}'), "--command", "ls -l")) == (
        "command",
        'command "ls" is not in the key\'s cmds (whoami)',
    )
    row, signer = await env.add_key(a, permissions='{"tag":"ci"}', name="t")
    tagged: Caller = replace(a, key=row, signer=signer)
    report = await explain(tagged, tagged.token(), "--command", "exe0-to-exe1 x")
    assert failing(report)[1] == 'the key is scoped to tag "ci", which may not run exe0-to-exe1'
    assert (await explain(a, token, "--command", "ls -l --json"))["valid"] is True


async def test_s14_2_vm_checks_follow_the_proxy(env: Env) -> None:
    a, b = await env.caller(), await env.caller()
    await a.ok("new --name=mine --upstream=http://127.0.0.1:9")
    await b.ok("new --name=theirs --upstream=http://127.0.0.1:9")
    await b.ok("new --name=open --upstream=http://127.0.0.1:9")
    await b.ok("share set-public open")
    for vm, detail in (("mine", "you own VM mine"), ("open", "VM open is public")):
        report = await explain(a, a.token(namespace=f"v0@{vm}.vm.test"), "--vm", vm)
        assert report["valid"] is True and report["expected_namespace"] == f"v0@{vm}.vm.test"
        assert [c["check"] for c in report["checks"]] == [*CHECKS, "vm_access"]
        assert report["checks"][-1]["detail"].startswith(detail)
    denied = await explain(a, a.token(namespace="v0@theirs.vm.test"), "--vm", "theirs.vm.test")
    assert failing(denied) == ("vm_access", "VM theirs is neither yours nor shared with you")
    await b.ok("share add theirs " + a.user.email)
    shared = await explain(a, a.token(namespace="v0@theirs.vm.test"), "--vm", "theirs")
    assert shared["checks"][-1]["detail"] == "shared with you: VM theirs"
    # The key's own vm restriction (docs/proxy.md#token-validation-at-the-proxy).
    row, signer = await env.add_key(a, permissions='{"vm":"theirs"}', name="v")
    pinned: Caller = replace(a, key=row, signer=signer)
    report = await explain(a, pinned.token(namespace="v0@mine.vm.test"), "--vm", "mine")
    assert failing(report) == ("key_restrictions", 'the key is restricted to VM "theirs"')
    # An API token at a VM: the namespace check.
    assert failing(await explain(a, a.token(), "--vm", "mine"))[0] == "namespace"
    assert (
        await a.fail(["token", "explain", a.token(), "--vm", "nosuch"]) == 'VM "nosuch" not found'
    )
    await env.store.set_locked(b.user.email, True)  # the proxy answers 404 for its VMs
    assert await a.fail(["token", "explain", a.token(), "--vm", "open"]) == 'VM "open" not found'


async def test_s14_2_usage_errors_are_the_only_failures(env: Env) -> None:
    a = await env.caller()
    usage = "usage: token explain TOKEN [--vm NAME] [--command 'CMD LINE']"
    assert await a.fail("token explain") == usage
    assert await a.fail(["token", "explain", "a", "b"]) == usage
    assert await a.fail(["token", "explain", "x", "--vm", "v", "--command", "ls"]) == (
        "--vm and --command cannot be combined: a VM's proxy runs no commands"
    )
    result = await a.run(["token", "explain", "garbage"])
    assert result.exit_status == 0  # a report, valid or not, is a success


async def test_s14_2_text_is_one_line_per_check_with_the_failure_marked(env: Env) -> None:
    a = await env.caller()
    result = await a.run(["token", "explain", a.token(namespace="v0@elsewhere")])
    lines = result.stdout.splitlines()
    assert lines[0] == "token at /exec (v0@sshmint.test): NOT valid"
    assert [line.split()[:2] for line in lines[1:-1]] == [
        ["ok", "format"],
        ["ok", "claims"],
        ["ok", "key"],
        ["FAIL", "namespace"],
    ]
    assert lines[-1] == "/exec answers: 401 invalid token"
    valid = (await a.run(["token", "explain", a.token()])).stdout.splitlines()
    assert valid[0].endswith(": valid") and valid[-1] == "/exec: accepted"
    assert len(valid) == 2 + len(CHECKS)


async def test_s14_2_explaining_changes_nothing(env: Env) -> None:
    """No last_used_at write, no revocation, no handle: the database is as before."""
    a = await env.caller()
    token = a.token()
    exe1 = (await a.ok(["exe0-to-exe1", token]))["token"]
    before = await dump_tables(env.store)
    for bearer in (token, exe1, a.token(b'{"exp":946684800}'), "exe0.x.y"):
        await explain(a, bearer, "--command", "whoami")
    after = await dump_tables(env.store)
    assert after == before
    assert [row[8] for row in after["ssh_keys"]] == [None]  # last_used_at never set


async def test_s14_2_a_tag_scoped_caller_cannot_explain_keys_outside_its_tag(env: Env) -> None:
    a = await env.caller()
    row, signer = await env.add_key(a, permissions='{"tag":"ci"}', name="ci")
    scoped: Caller = replace(a, key=row, signer=signer)
    assert failing(await explain(scoped, a.token())) == ("key", NOT_YOURS)
    assert (await explain(scoped, scoped.token()))["valid"] is True
