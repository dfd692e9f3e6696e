"""``token revoke`` and ``token revocations`` (docs/lifecycle.md#revoking-one-token, R175,
R176) and the lifetime policy (docs/lifecycle.md#lifetime-policy, R179), in-process on
both databases; the refusal causes that metrics count (docs/operations.md#metrics).

Over SSH and ``/exec`` with the real clients: ``tests/http/test_http_lifecycle.py``;
``token explain``: ``test_commands_explain.py``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from sshmint.errors import TokenError, TokenPolicyError
from sshmint.server.auth import LifetimePolicy
from sshmint.server.auth.exe1 import exe1_hash
from sshmint.token import b64url_encode
from tests.support.command_helpers import BACKENDS, NOW, Caller, Env, backend_env
from tests.support.store_audit import dump_tables

API = "v0@sshmint.test"
DAY = 86400


@pytest.fixture(params=BACKENDS)
async def env(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Env]:
    async with backend_env(request.param, request, tmp_path) as e:
        yield e


async def refusal(env: Env, token: str, namespace: str = API) -> TokenError:
    """The token path's refusal of ``token`` (it must refuse)."""
    with pytest.raises(TokenError) as info:
        await env.authenticator().authenticate(token, namespace)
    return info.value


async def revocation_rows(env: Env) -> list[tuple[object, ...]]:
    return (await dump_tables(env.store))["token_revocations"]


# --- token revoke -----------------------------------------------------------------------


async def test_r175_revoking_another_users_token_says_token_not_found(env: Env) -> None:
    """R175: the same message for a stranger's token as for no token at all; the stranger's
    token keeps working."""
    a, b = await env.caller(), await env.caller()
    theirs = b.token()
    unknown = await env.caller()  # a key no account has any more
    await env.store.delete_key(unknown.key.id)
    for token in (
        theirs,
        unknown.token(),
        "exe0.not-a-token",
        "exe1.AAAAAAAAAAAAAAAAAAAAAAAAAA",
        "exe1.bad",
        "",
    ):
        assert await a.fail(["token", "revoke", token]) == "token not found", token
    assert await revocation_rows(env) == []
    principal = await env.authenticator().authenticate(theirs, API)
    assert principal.user.user_id == b.user.user_id


async def test_s14_1_revoke_output_and_idempotence(env: Env) -> None:
    a = await env.caller()
    token = a.token(f'{{"exp":{NOW + DAY}}}'.encode())
    text = await a.run(["token", "revoke", token])
    fingerprint = f"SHA256:{a.key.fingerprint}"
    assert (text.exit_status, text.stderr) == (0, "")
    assert text.stdout == (
        f"revoked token signed by login ({fingerprint}), expires 2030-03-18T17:46:40Z\n"
    )
    # Revoking twice succeeds and keeps the first revocation.
    env.now = NOW + 5
    assert await a.ok(["token", "revoke", token]) == {
        "revoked": True,
        "fingerprint": fingerprint,
        "key_name": "login",
        "exp": "2030-03-18T17:46:40Z",
    }
    rows = await revocation_rows(env)
    digest = hashlib.sha256(token.encode()).hexdigest()
    assert rows == [(digest, a.user.user_id, a.key.fingerprint, NOW, NOW + DAY)]
    # Nothing usable at rest (docs/storage.md#nothing-usable-at-rest).
    assert "exe0." not in repr(await dump_tables(env.store))
    never = await a.ok(["token", "revoke", a.token()])
    assert never["exp"] is None
    assert (await a.run(["token", "revoke", a.token(b'{"cmds":[]}')])).stdout.endswith(
        "expires never\n"
    )


async def test_s14_1_a_revoked_token_fails_at_step_18_and_its_key_keeps_working(env: Env) -> None:
    a = await env.caller()
    revoked, other = a.token(b'{"cmds":["whoami"]}'), a.token()
    exe1 = (await a.ok(["exe0-to-exe1", revoked]))["token"]
    await a.ok(["token", "revoke", revoked])
    for token in (revoked, exe1):
        error = await refusal(env, token)
        assert (error.message, error.step, error.cause) == ("invalid token", 18, "revoked")
    assert (await env.authenticator().authenticate(other, API)).key.id == a.key.id
    # A revoked token is not traded again either.
    assert await a.fail(["exe0-to-exe1", revoked]) == "invalid token"


async def test_s14_1_revoking_an_exe1_revokes_the_exe0_behind_it(env: Env) -> None:
    a = await env.caller()
    exe0 = a.token()
    exe1 = (await a.ok(["exe0-to-exe1", exe0]))["token"]
    assert (await a.ok(["token", "revoke", exe1]))["revoked"] is True
    assert (await refusal(env, exe0)).cause == "revoked"
    assert (await refusal(env, exe1)).cause == "revoked"
    assert await env.store.exe1_lookup(exe1_hash(exe1), NOW) is not None  # handle untouched
    assert [row[0] for row in await revocation_rows(env)] == [
        hashlib.sha256(exe0.encode()).hexdigest()
    ]


async def test_s14_1_a_tag_scoped_caller_revokes_only_tokens_of_its_tag(env: Env) -> None:
    a = await env.caller()
    row, signer = await env.add_key(a, permissions='{"tag":"ci"}', name="ci")
    scoped: Caller = replace(a, key=row, signer=signer)
    assert await scoped.fail(["token", "revoke", a.token()]) == "token not found"
    assert (await scoped.ok(["token", "revoke", scoped.token()]))["key_name"] == "ci"
    await a.ok(["token", "revoke", a.token()])
    listed = (await scoped.ok("token revocations"))["revocations"]
    assert [entry["key_name"] for entry in listed] == ["ci"]
    assert len((await a.ok("token revocations"))["revocations"]) == 2


async def test_s14_1_usage(env: Env) -> None:
    a = await env.caller()
    assert await a.fail("token revoke") == "usage: token revoke TOKEN"
    assert await a.fail(["token", "revoke", "a", "b"]) == "usage: token revoke TOKEN"


# --- token revocations ------------------------------------------------------------------


async def test_r176_revocations_list_newest_first_with_fingerprint_and_id(env: Env) -> None:
    a = await env.caller()
    row, signer = await env.add_key(a, name="ci")
    second: Caller = replace(a, key=row, signer=signer)
    assert await a.ok("token revocations") == {"revocations": []}
    assert (await a.run("token revocations")).stdout == "No revoked tokens.\n"
    first_token = a.token(f'{{"exp":{NOW + DAY}}}'.encode())
    await a.ok(["token", "revoke", first_token])
    env.now = NOW + 60
    second_token = second.token()
    await a.ok(["token", "revoke", second_token])
    listed = (await a.ok("token revocations"))["revocations"]
    assert listed == [
        {
            "fingerprint": f"SHA256:{row.fingerprint}",
            "key_name": "ci",
            "revoked_at": "2030-03-17T17:47:40Z",
            "exp": None,
            "id": hashlib.sha256(second_token.encode()).hexdigest()[:12],
        },
        {
            "fingerprint": f"SHA256:{a.key.fingerprint}",
            "key_name": "login",
            "revoked_at": "2030-03-17T17:46:40Z",
            "exp": "2030-03-18T17:46:40Z",
            "id": hashlib.sha256(first_token.encode()).hexdigest()[:12],
        },
    ]
    text = (await a.run("token revocations")).stdout.splitlines()
    assert len(text) == 2 and text[0].startswith(listed[0]["id"]) and "expires never" in text[0]
    # Another user sees none of them.
    assert await (await env.caller()).ok("token revocations") == {"revocations": []}
    # Once the token has expired the revocation is no longer listed (and may be purged);
    # a removed key's revocation stays listed, without a key name.
    await a.ok("ssh-key remove ci")
    env.now = NOW + DAY + 1
    assert [
        (e["key_name"], e["exp"]) for e in (await a.ok("token revocations"))["revocations"]
    ] == [(None, None)]


async def test_s14_1_housekeeping_purges_revocations_of_expired_tokens(env: Env) -> None:
    from sshmint.server.store.housekeeping import Housekeeping

    a = await env.caller()
    short, forever = a.token(f'{{"exp":{NOW + 10}}}'.encode()), a.token()
    for token in (short, forever):
        await a.ok(["token", "revoke", token])
    assert await Housekeeping(env.store, lambda: NOW + 10).purge_once() == 0  # exp == now lives
    assert await Housekeeping(env.store, lambda: NOW + 11).purge_once() == 1
    assert [row[4] for row in await revocation_rows(env)] == [None]


# --- the lifetime policy ----------------------------------------------------------------


async def test_r179_policy_refuses_tokens_without_exp_or_living_too_long(env: Env) -> None:
    a = await env.caller()
    env.policy = LifetimePolicy(3600)
    for payload in (b"{}", f'{{"exp":{NOW + 3601}}}'.encode()):
        error = await refusal(env, a.token(payload))
        assert isinstance(error, TokenPolicyError)
        assert (error.message, error.cause) == (
            "invalid token: token lifetime exceeds this server's maximum of 1h",
            "policy",
        )
    half_hour = a.token(f'{{"exp":{NOW + 1800}}}'.encode())
    assert (await env.authenticator().authenticate(half_hour, API)).key.id == a.key.id
    # An exe1 handle is judged by its exe0; lowering the maximum applies at once.
    env.policy = LifetimePolicy(DAY)
    long_lived = a.token(f'{{"exp":{NOW + 7200}}}'.encode())
    exe1 = (await a.ok(["exe0-to-exe1", long_lived]))["token"]
    await env.authenticator().authenticate(exe1, API)
    env.policy = LifetimePolicy(3600)
    assert (await refusal(env, exe1)).cause == "policy"
    assert (await refusal(env, long_lived)).cause == "policy"


async def test_s14_3_exe0_to_exe1_makes_no_handle_beyond_the_policy(env: Env) -> None:
    a = await env.caller()
    env.policy = LifetimePolicy(90 * DAY)
    message = "invalid token: token lifetime exceeds this server's maximum of 90d"
    assert await a.fail(["exe0-to-exe1", a.token()]) == message
    assert await a.fail(["exe0-to-exe1", a.token(f'{{"exp":{NOW + 91 * DAY}}}'.encode())]) == (
        message
    )
    assert (await dump_tables(env.store))["exe1_tokens"] == []
    assert (await a.ok(["exe0-to-exe1", a.token(f'{{"exp":{NOW + DAY}}}'.encode())]))["token"]


async def test_s14_3_generate_api_key_makes_no_handle_beyond_the_policy(env: Env) -> None:
    a = await env.caller()
    env.policy = LifetimePolicy(30 * DAY)
    message = "token lifetime exceeds this server's maximum of 30d: pass --exp=30d or less"
    assert await a.fail("ssh-key generate-api-key --label=x") == message
    assert await a.fail("ssh-key generate-api-key --label=x --exp=31d") == message
    assert await a.fail("ssh-key generate-api-key --label=x --exp=never") == message
    tables = await dump_tables(env.store)
    assert tables["exe1_tokens"] == [] and len(tables["ssh_keys"]) == 1
    body = await a.ok("ssh-key generate-api-key --label=x --exp=30d")
    await env.authenticator().authenticate(body["token"], API)
    # A caller whose key expires sooner passes its earlier exp on (docs/permissions.md#inheritance).
    perms = json.dumps({"exp": NOW + DAY})
    row, signer = await env.add_key(a, permissions=perms, name="short")
    short: Caller = replace(a, key=row, signer=signer)
    assert (await short.ok("ssh-key generate-api-key --label=y"))["expires_at"] == (
        "2030-03-18T17:46:40Z"
    )


# --- refusal causes (docs/operations.md#metrics) ----------------------------------------


async def test_s13_3_every_refusal_names_its_cause(env: Env) -> None:
    """The one-word cause metrics and logs count, for each way a token is refused."""
    a, locked = await env.caller(), await env.caller()
    revoked = a.token(b'{"cmds":["ls"]}')
    await a.ok(["token", "revoke", revoked])
    await env.store.set_locked(locked.user.email, True)
    stranger = await env.caller()
    await env.store.delete_key(stranger.key.id)
    signature = a.token(f'{{"exp":{NOW + 60}}}'.encode()).split(".")[2]
    other_payload = b64url_encode(f'{{"exp":{NOW + 61}}}'.encode())
    altered = f"exe0.{other_payload}.{signature}"
    env.policy = LifetimePolicy(DAY)
    cases = {
        "exe0.e30.": "malformed",
        "exe1.bad": "malformed",
        a.token(f'{{"exp":{NOW - 1}}}'.encode()): "expired",
        a.token(f'{{"exp":{NOW + 60},"nbf":{NOW + 1}}}'.encode()): "not_yet_valid",
        stranger.token(f'{{"exp":{NOW + 60}}}'.encode()): "unknown_key",
        a.token(f'{{"exp":{NOW + 60}}}'.encode(), namespace="v0@elsewhere"): "bad_signature",
        locked.token(f'{{"exp":{NOW + 60}}}'.encode()): "locked",
        "exe1." + "A" * 26: "unknown_exe1",
        altered: "bad_signature",
        revoked: "revoked",
        a.token(): "policy",
    }
    env.policy = LifetimePolicy(DAY * 365)
    assert (await refusal(env, revoked)).cause == "revoked"  # revoked before the policy
    env.policy = LifetimePolicy(DAY)
    for token, cause in cases.items():
        assert (await refusal(env, token)).cause == cause, cause
