"""The token lifecycle against a live ``sshmint serve --max-token-lifetime 1h`` on SQLite
and PostgreSQL (docs/lifecycle.md, R174–R179), with the real ``ssh`` and ``curl``.

The differential table: one broken token per row (one breakage each), presented to the
real path (``POST /exec`` or a VM's proxy) and explained by ``token explain`` on the same
database. Explain's first failing check must be the row's, and the answer explain names
must be the one the real path gave.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sshmint.server.auth import Authenticator, LifetimePolicy
from sshmint.server.commands import CommandContext, CommandSettings, run_words
from sshmint.server.store import Store
from sshmint.token import b64url_encode
from tests.support.exec_support import assert_error, assert_ok, post_exec, ssh_ok
from tests.support.harness import SSHMintServer
from tests.support.http_support import Reply, db_execute, via_proxy
from tests.support.keys import Account, AccountFactory, new_key, public_line
from tests.support.metrics import scrape, value
from tests.support.postgres import PostgresServer
from tests.support.server_fixtures import ServerFactory, served

MAX = 3600  # --max-token-lifetime 1h
LIFETIME = "invalid token: token lifetime exceeds this server's maximum of 1h"
UNAUTHENTICATED = "401 invalid or missing authentication"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SSHMintServer]:
    """One server per backend with a lifetime policy, for this module's tests."""
    db_url = None  # SQLite in the fixture's directory
    if request.param == "postgresql":
        postgres: PostgresServer = request.getfixturevalue("postgres")
        db_url = postgres.new_database()
    yield from served(
        tmp_path_factory.mktemp(f"lifecycle-{request.param}"),
        db_url,
        extra_args=["--max-token-lifetime", "1h", "--metrics-listen", "127.0.0.1:0"],
    )


@pytest.fixture(scope="module")
def owner(server: SSHMintServer, new_account: AccountFactory) -> Account:
    return new_account(server, comment="owner")


def soon(seconds: int = 1800) -> int:
    return int(time.time()) + seconds


def token(holder: Account, payload: dict[str, Any] | None = None, **kw: str) -> str:
    """An exe0 token by the shell recipe; within the policy unless ``payload`` says not."""
    body = {"exp": soon()} if payload is None else payload
    return holder.token(json.dumps(body, separators=(",", ":")), **kw)


def add_key(server: SSHMintServer, holder: Account, key: Path, *flags: str) -> Account:
    """Register ``key`` for ``holder``'s user through ``POST /exec ssh-key add`` (with a
    token the policy accepts); the same user, signing with ``key``."""
    request = token(holder, {"exp": soon(), "cmds": ["ssh-key add"]})
    line = " ".join(["ssh-key add", *flags, public_line(key)])
    assert_ok(post_exec(server, line.encode(), token=request))
    return Account(holder.email, key, holder.user_id)


@pytest.fixture
def account(server: SSHMintServer, owner: Account, tmp_path: Path) -> Account:
    """A fresh key of the owner, so no test's revocations or buckets touch another's."""
    return add_key(server, owner, new_key(tmp_path / f"k{uuid.uuid4().hex[:8]}"))


def explainer_token(holder: Account) -> str:
    return token(holder, {"exp": soon(), "cmds": ["token explain"]})


# --- R174-R176: revoking one token ------------------------------------------------------


def test_r174_revoke_over_ssh_ends_the_exe0_and_its_exe1_and_nothing_else(
    server: SSHMintServer, account: Account
) -> None:
    exe0, other = token(account), token(account, {"exp": soon(), "cmds": ["whoami"]})
    exe1 = ssh_ok(server, account.key, "exe0-to-exe1", exe0)
    for bearer in (exe0, exe1, other):
        assert_ok(post_exec(server, b"whoami", token=bearer))
    out = ssh_ok(server, account.key, "token", "revoke", exe0)
    assert out.startswith("revoked token signed by ") and f"(SHA256:{account.fingerprint})" in out
    for bearer in (exe0, exe1):
        assert_error(post_exec(server, b"whoami", token=bearer), 401, "invalid token")
    assert assert_ok(post_exec(server, b"whoami", token=other))["email"] == account.email


def test_s14_1_a_revocation_through_one_node_is_honoured_by_another_at_once(
    server: SSHMintServer, account: Account, server_factory: ServerFactory
) -> None:
    """Two nodes on one database (docs/operations.md#several-nodes): node B has just
    accepted the token (and may remember the read), node A revokes it, B's next request
    is refused."""
    node_b = server_factory(server.db_url, extra_args=["--max-token-lifetime", "1h"])
    exe0 = token(account)
    exe1 = ssh_ok(server, account.key, "exe0-to-exe1", exe0)
    for bearer in (exe0, exe1):
        assert_ok(post_exec(node_b, b"whoami", token=bearer))
    ssh_ok(server, account.key, "token", "revoke", exe1)
    for bearer in (exe0, exe1):
        assert_error(post_exec(node_b, b"whoami", token=bearer), 401, "invalid token")


def test_r175_revoking_another_users_token_fails_and_the_token_keeps_working(
    server: SSHMintServer, account: Account, new_account: AccountFactory
) -> None:
    stranger = new_account(server)
    theirs = token(account)
    result = server.ssh(stranger.key, "token", "revoke", theirs)
    assert (result.returncode, result.stderr) == (1, "token not found\n")
    # The same answer over /exec: 422 with the message.
    request = token(stranger, {"exp": soon(), "cmds": ["token revoke"]})
    reply = post_exec(server, f"token revoke {theirs}".encode(), token=request)
    assert_error(reply, 422, "token not found")
    assert assert_ok(post_exec(server, b"whoami", token=theirs))["email"] == account.email


def test_r176_revocations_lists_the_revocation_with_the_keys_fingerprint(
    server: SSHMintServer, account: Account
) -> None:
    revoked = token(account)
    ssh_ok(server, account.key, "token", "revoke", revoked)
    listed = json.loads(ssh_ok(server, account.key, "token", "revocations", "--json"))
    mine = [r for r in listed["revocations"] if r["fingerprint"] == f"SHA256:{account.fingerprint}"]
    assert len(mine) == 1
    assert set(mine[0]) == {"fingerprint", "key_name", "revoked_at", "exp", "id"}
    assert len(mine[0]["id"]) == 12 and mine[0]["exp"] is not None


# --- R177, R178: explaining a token -----------------------------------------------------


def test_r177_explain_over_ssh_expired_namespace_and_valid(
    server: SSHMintServer, account: Account
) -> None:
    def explain(bearer: str) -> dict[str, Any]:
        report: dict[str, Any] = json.loads(
            ssh_ok(server, account.key, "token", "explain", bearer, "--json")
        )
        return report

    expired = explain(token(account, {"exp": soon(-3 * 3600)}))
    assert expired["valid"] is False
    assert expired["checks"][-1]["check"] == "claims" and not expired["checks"][-1]["ok"]
    assert "expired" in expired["checks"][-1]["detail"]
    other = explain(token(account, namespace="v0@api.example.com"))
    assert other["checks"][-1]["check"] == "namespace" and not other["checks"][-1]["ok"]
    assert "v0@api.example.com" in other["reason"] and "v0@localhost" in other["reason"]
    assert explain(token(account))["valid"] is True
    # Text: one line per check, the failing one marked.
    text = ssh_ok(server, account.key, "token", "explain", token(account, {"exp": 946684800}))
    assert "FAIL  claims" in text and text.splitlines()[-1] == (
        "/exec answers: 401 invalid token: token has expired"
    )


def test_r178_explain_over_exec_of_another_users_token_says_only_not_yours(
    server: SSHMintServer, account: Account, new_account: AccountFactory
) -> None:
    stranger = new_account(server)
    theirs = token(stranger, {"exp": soon(600)}, namespace="v0@elsewhere.example")
    reply = post_exec(server, f"token explain {theirs}".encode(), token=explainer_token(account))
    report = assert_ok(reply)
    checks = report["checks"]
    assert isinstance(checks, list)
    assert [(c["check"], c["ok"]) for c in checks] == [
        ("format", True),
        ("claims", True),
        ("key", False),
    ]
    assert report["reason"] == "key is not registered to your account"
    assert (report["namespace"], report["exp"], report["nbf"]) == (None, None, None)
    assert b"elsewhere" not in reply.body


# --- R179: the lifetime policy ----------------------------------------------------------


def test_r179_policy_refuses_a_token_without_exp_and_accepts_one_within_it(
    server: SSHMintServer, account: Account
) -> None:
    reply = post_exec(server, b"whoami", token=account.token())
    assert_error(reply, 401, LIFETIME)
    assert "lifetime exceeds" in reply.json()["error"]
    assert_error(
        post_exec(server, b"whoami", token=token(account, {"exp": soon(2 * MAX)})), 401, LIFETIME
    )
    assert_ok(post_exec(server, b"whoami", token=token(account, {"exp": soon(1800)})))
    # exe0-to-exe1 says the same and makes no handle; generate-api-key needs --exp.
    result = server.ssh(account.key, "exe0-to-exe1", account.token())
    assert (result.returncode, result.stderr) == (1, LIFETIME + "\n")
    result = server.ssh(account.key, "ssh-key", "generate-api-key", "--label=x")
    assert result.returncode == 1 and "maximum of 1h" in result.stderr
    exe1 = ssh_ok(server, account.key, "ssh-key", "generate-api-key", "--label=ok", "--exp=1h")
    assert_ok(post_exec(server, b"whoami", token=exe1.splitlines()[-1]))
    # At the proxy: not authenticated (401), where a token within the policy is forwarded
    # (to an upstream that refuses the connection: 502).
    vm = "lc" + uuid.uuid4().hex[:8]
    ssh_ok(server, account.key, "new", f"--name={vm}", "--upstream=http://127.0.0.1:9")
    for payload, status in (({}, 401), ({"exp": soon()}, 502)):
        bearer = token(account, payload, namespace=f"v0@{vm}.localhost")
        reply = via_proxy(server, vm, "/", "-H", f"Authorization: Bearer {bearer}")
        assert reply.status == status, reply.body


def test_r169_revoked_and_policy_refusals_are_counted_by_cause_and_explain_counts_none(
    server: SSHMintServer, account: Account
) -> None:
    """docs/operations.md#metrics: a revoked token and one the lifetime policy refuses are
    counted as ``sshmint_auth_failures_total`` with reasons ``revoked`` and ``policy``, at
    /exec and at the proxy; ``token explain`` of the same tokens counts nothing."""
    revoked, unbounded = token(account), account.token()
    ssh_ok(server, account.key, "token", "revoke", revoked)
    vm = "mc" + uuid.uuid4().hex[:8]
    ssh_ok(server, account.key, "new", f"--name={vm}", "--upstream=http://127.0.0.1:9")
    at_vm = token(account, {}, namespace=f"v0@{vm}.localhost")
    counted = [("exec", "revoked"), ("exec", "policy"), ("proxy", "policy")]

    def counts() -> list[float]:
        text = scrape(server)
        return [
            value(text, "sshmint_auth_failures_total", transport=t, reason=r) for t, r in counted
        ]

    before = counts()
    for bearer in (revoked, unbounded):
        explained = post_exec(
            server, f"token explain {bearer}".encode(), token=explainer_token(account)
        )
        assert assert_ok(explained)["valid"] is False
    assert counts() == before
    assert_error(post_exec(server, b"whoami", token=revoked), 401, "invalid token")
    assert_error(post_exec(server, b"whoami", token=unbounded), 401, LIFETIME)
    reply = via_proxy(server, vm, "/", "-H", f"Authorization: Bearer {at_vm}")
    assert reply.status == 401, reply.body
    assert [a - b for a, b in zip(counts(), before, strict=True)] == [1, 1, 1]


# --- the differential table -------------------------------------------------------------


@dataclass
class Row:
    """One broken token: where to present it, and what explain must say."""

    bearer: str
    check: str  # explain's first failing check
    command: str = "whoami"  # the /exec body
    vm: str | None = None  # present at this VM's proxy instead
    explainer: Account | None = None  # who runs explain (default: the token's account)


def _altered(bearer: str) -> str:
    signature = bearer.split(".")[2]
    return f"exe0.{b64url_encode(json.dumps({'exp': soon(1801)}).encode())}.{signature}"


def _rows(
    server: SSHMintServer, account: Account, new_account: AccountFactory, tmp_path: Path
) -> dict[str, Row]:
    """Every row's state, made through the product where it can be, else in the database."""
    owner_token = token(
        account, {"exp": soon(), "cmds": ["new", "ssh-key add", "share set-public"]}
    )
    vm, other_vm = "lc" + uuid.uuid4().hex[:8], "lc" + uuid.uuid4().hex[:8]
    for name in (vm, other_vm):
        assert_ok(
            post_exec(
                server,
                f"new --name={name} --upstream=http://127.0.0.1:9".encode(),
                token=owner_token,
            )
        )
    stranger = new_account(server)
    locked = new_account(server)
    server.set_locked(locked.email, True)
    revoked = token(account, {"exp": soon(1700), "cmds": ["whoami", "ls"]})
    ssh_ok(server, account.key, "token", "revoke", revoked)
    expired_key = add_key(server, account, new_key(tmp_path / "expired"), "--exp=30d")
    db_execute(
        server.db_url,
        "UPDATE ssh_keys SET permissions = ? WHERE public_key = ?",
        (json.dumps({"exp": soon(-60)}), " ".join(expired_key.public_line.split()[:2])),
    )
    pinned = add_key(server, account, new_key(tmp_path / "pinned"), f"--vm={other_vm}")
    narrow = add_key(server, account, new_key(tmp_path / "narrow"), "--cmds=whoami")
    unknown = Account(account.email, new_key(tmp_path / "unknown"), account.user_id)
    private_vm = "lc" + uuid.uuid4().hex[:8]
    stranger_token = token(stranger, {"exp": soon(), "cmds": ["new"]})
    assert_ok(
        post_exec(
            server,
            f"new --name={private_vm} --upstream=http://127.0.0.1:9".encode(),
            token=stranger_token,
        )
    )
    return {
        "malformed": Row("exe0.e30.", "format"),
        "expired": Row(token(account, {"exp": soon(-3600)}), "claims"),
        "not yet valid": Row(token(account, {"exp": soon(), "nbf": soon(600)}), "claims"),
        "unknown key": Row(token(unknown), "key"),
        "other user's key": Row(token(stranger), "key", explainer=account),
        "wrong namespace": Row(token(account, namespace="v0@api.example.com"), "namespace"),
        "bad signature": Row(_altered(token(account)), "signature"),
        "locked owner": Row(token(locked), "owner", explainer=locked),
        "revoked": Row(revoked, "revoked"),
        "key expired": Row(token(expired_key), "key_restrictions"),
        "key vm restriction at the proxy": Row(
            token(pinned, namespace=f"v0@{vm}.localhost"), "key_restrictions", vm=vm
        ),
        "vm not shared": Row(
            token(account, namespace=f"v0@{private_vm}.localhost"), "vm_access", vm=private_vm
        ),
        "token cmds": Row(token(account, {"exp": soon(), "cmds": ["whoami"]}), "command", "ls"),
        "key cmds": Row(token(narrow), "command", "ls"),
        "policy": Row(account.token(), "policy"),
    }


def _real_answer(server: SSHMintServer, row: Row) -> str:
    """What the real path answered: ``<status> <message>``, or ``accepted as <email>``."""
    if row.vm is not None:
        reply: Reply = via_proxy(server, row.vm, "/", "-H", f"Authorization: Bearer {row.bearer}")
        if reply.status in (401, 403):
            return f"{reply.status} {reply.body.decode().strip()}"
        return f"forwarded ({reply.status})"
    reply = post_exec(server, row.command.encode(), token=row.bearer)
    if reply.status == 200:
        return f"accepted as {reply.json()['email']}"
    return f"{reply.status} {reply.json()['error']}"


async def _explain(
    server: SSHMintServer, store: Store, caller: Account, row: Row
) -> dict[str, Any]:
    """``token explain`` as ``caller`` on the server's own database, in-process (the
    locked owner cannot reach it through any transport: the session or token is refused
    first), with the server's settings, clock and policy; the text output's last line
    names the answer."""
    user = await store.get_user(caller.user_id)
    key = await store.key_by_fingerprint(caller.fingerprint)
    assert user is not None and key is not None
    ctx = CommandContext(
        store=store,
        settings=CommandSettings(http_port=server.http_port),
        user=user,
        key=key,
        now=lambda: int(time.time()),
        authenticator=Authenticator(
            store, lambda: int(time.time()), logging.getLogger("test"), policy=LifetimePolicy(MAX)
        ),
    )
    words = ["token", "explain", row.bearer]
    words += ["--vm", row.vm] if row.vm else ["--command", row.command]
    report = json.loads((await run_words(ctx, [*words, "--json"], force_json=True)).stdout)
    text = (await run_words(ctx, words, force_json=False)).stdout
    report["answer"] = text.splitlines()[-1].split(": ", 1)[1]
    return dict(report)


async def test_s14_2_explain_and_the_real_path_agree_on_every_broken_token(
    server: SSHMintServer, account: Account, new_account: AccountFactory, tmp_path: Path
) -> None:
    rows = _rows(server, account, new_account, tmp_path)
    store = await Store.open(server.db_url)
    try:
        for name, row in rows.items():
            real = _real_answer(server, row)
            report = await _explain(server, store, row.explainer or account, row)
            failed = [c for c in report["checks"] if not c["ok"]]
            assert report["valid"] is False and failed == report["checks"][-1:], (name, report)
            assert failed[0]["check"] == row.check, (name, report)
            if name == "other user's key":
                assert real.startswith("accepted as ") and account.email not in real, real
            else:
                assert report["answer"] == real, (name, report, real)
    finally:
        await store.close()
