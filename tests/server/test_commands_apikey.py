"""docs/ssh.md#ssh-key-generate-api-key ``ssh-key generate-api-key`` (R68, R80–R85) and docs/storage.md#nothing-usable-at-rest (no usable
credential at rest)."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from sshmint.errors import TokenVerificationError
from sshmint.keys import PublicKey, parse_public_key_line
from sshmint.server.auth.exe1 import DEFAULT_EXE1_EXPIRY, exe1_hash, unseal
from sshmint.token import DEFAULT_CMDS, ParsedToken, verify_exe0
from tests.support.command_helpers import BACKENDS, NOW, Caller, Env, backend_env
from tests.support.store_audit import dump_tables

EXE1 = re.compile(r"exe1\.[A-Z2-7]{26}")
DAY = 86400


@pytest.fixture(params=BACKENDS)
async def env(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Env]:
    async with backend_env(request.param, request, tmp_path) as e:
        yield e


async def resolve(env: Env, exe1: str, namespace: str) -> ParsedToken:
    """Resolve a handle (docs/tokens.md#exe1-resolution) and verify its exe0 against the registered keys."""
    sealed = await env.store.exe1_lookup(exe1_hash(exe1), env.now)
    assert sealed is not None, "no live handle"
    exe0 = unseal(exe1, sealed)
    assert exe0 is not None and exe0.startswith("exe0.")
    keys: dict[str, PublicKey] = {}
    for user in await env.store.list_users():
        for row in await env.store.keys_of_user(user[0].user_id):
            keys[row.fingerprint] = parse_public_key_line(row.public_key)
    return verify_exe0(exe0, namespace, keys.get, env.now)


async def handle_expiry(env: Env, exe1: str) -> int:
    """The handle's ``expires_at``: it resolves at that second and not one later."""
    digest = exe1_hash(exe1)
    for candidate in (DEFAULT_EXE1_EXPIRY, NOW + DAY, NOW + 90 * DAY):
        live = await env.store.exe1_lookup(digest, candidate)
        if live is not None and await env.store.exe1_lookup(digest, candidate + 1) is None:
            return candidate
    raise AssertionError("unexpected handle expiry")


async def test_r80_r68_generate_api_key_json_and_listing(env: Env) -> None:
    a = await env.caller()
    body = await a.ok("ssh-key generate-api-key --json --label=ci")
    assert set(body) == {"label", "token", "namespace", "fingerprint"}  # no expires_at
    assert body["label"] == "ci"
    assert EXE1.fullmatch(body["token"])  # R13
    assert body["namespace"] == "v0@sshmint.test"
    listed = {k["name"]: k for k in (await a.ok("ssh-key list"))["ssh_keys"]}
    assert listed["ci"]["fingerprint"] == body["fingerprint"]
    assert listed["ci"]["api_key_hint"] == body["token"][5:9]  # R68
    assert "permissions" not in listed["ci"]
    assert listed["ci"]["current"] is False
    parsed = await resolve(env, body["token"], "v0@sshmint.test")
    assert parsed.payload == b"{}"
    assert "SHA256:" + parsed.fingerprint == body["fingerprint"]
    assert await handle_expiry(env, body["token"]) == DEFAULT_EXE1_EXPIRY
    text = await a.run("ssh-key generate-api-key --label=other")
    token_lines = [line for line in text.stdout.splitlines() if line.startswith("exe1.")]
    assert len(token_lines) == 1 and EXE1.fullmatch(token_lines[0])


async def test_r81_default_labels_and_vm_namespace(env: Env) -> None:
    a = await env.caller()
    await a.ok("new --name=myapp --upstream=http://127.0.0.1:1")
    assert (await a.ok("ssh-key generate-api-key"))["label"] == "api-key"
    body = await a.ok("ssh-key generate-api-key --vm=myapp.vm.test")
    assert body["label"] == "api-key-myapp"
    assert body["namespace"] == "v0@myapp.vm.test"
    await resolve(env, body["token"], "v0@myapp.vm.test")
    with pytest.raises(TokenVerificationError):  # R124: not an API token
        await resolve(env, body["token"], "v0@sshmint.test")
    assert await a.fail("ssh-key generate-api-key --vm=nosuch") == (
        'VM "nosuch" not found or access denied'
    )
    assert await a.fail("ssh-key generate-api-key --vm=myapp --tag=x") == (
        "--vm and --tag are mutually exclusive"
    )


async def test_r82_label_must_be_unused_and_non_empty(env: Env) -> None:
    a = await env.caller()
    await a.ok("ssh-key generate-api-key --label=ci")
    message = await a.fail("ssh-key generate-api-key --label=ci")
    assert message == 'a key named "ci" already exists; use a different --label'
    assert await a.fail("ssh-key generate-api-key --label=login") == (
        'a key named "login" already exists; use a different --label'
    )
    assert await a.fail("ssh-key generate-api-key --label='$$$'") == (
        "--label is empty after removing special characters"
    )
    assert (await a.ok("ssh-key generate-api-key --label='my key'"))["label"] == "my-key"
    assert len((await dump_tables(env.store))["exe1_tokens"]) == 2


async def test_r83_r84_cmds_are_signed_and_stored(env: Env) -> None:
    a = await env.caller()
    body = await a.ok("ssh-key generate-api-key --label=w --cmds=' whoami,, ls'")
    parsed = await resolve(env, body["token"], "v0@sshmint.test")
    assert parsed.payload == b'{"cmds":["whoami","ls"]}'
    assert parsed.permissions.allows("whoami") and not parsed.permissions.allows("new")
    row = await env.store.key_by_fingerprint(parsed.fingerprint)
    assert row is not None and json.loads(row.permissions) == {"cmds": ["whoami", "ls"]}
    # R84: a default token may not run generate-api-key.
    default = await a.ok("ssh-key generate-api-key --label=d")
    parsed = await resolve(env, default["token"], "v0@sshmint.test")
    assert parsed.permissions.cmds is None
    assert "ssh-key generate-api-key" not in DEFAULT_CMDS
    assert not parsed.permissions.allows("ssh-key generate-api-key")


async def test_r85_expiry_durations(env: Env) -> None:
    a = await env.caller()
    body = await a.ok("ssh-key generate-api-key --label=a --exp=90d")
    assert body["expires_at"] == "2030-06-15T17:46:40Z"  # now + 90 days
    parsed = await resolve(env, body["token"], "v0@sshmint.test")
    assert parsed.payload == f'{{"exp":{NOW + 90 * DAY}}}'.encode()
    assert await handle_expiry(env, body["token"]) == NOW + 90 * DAY
    assert "expires_at" not in await a.ok("ssh-key generate-api-key --label=b --exp=never")
    two_months = await a.ok("ssh-key generate-api-key --label=c --exp=2mo")
    assert (await resolve(env, two_months["token"], "v0@sshmint.test")).permissions.exp == (
        NOW + 60 * DAY
    )
    minutes = await a.ok("ssh-key generate-api-key --label=d --exp=90min --cmds=whoami")
    parsed = await resolve(env, minutes["token"], "v0@sshmint.test")
    assert parsed.payload == f'{{"cmds":["whoami"],"exp":{NOW + 5400}}}'.encode()
    assert await a.fail("ssh-key generate-api-key --exp=2m") == (
        'ambiguous duration unit "m": use "min" for minutes or "mo" for months'
    )
    assert await a.fail("ssh-key generate-api-key --exp=30x") == (
        'invalid duration unit "x" (use s, min, h, d, w, mo, or y)'
    )
    assert await a.fail("ssh-key generate-api-key --exp=0d") == 'invalid duration "0d"'
    # A signed exp must stay inside the claim range (docs/tokens.md#validation step 10).
    assert await a.fail("ssh-key generate-api-key --exp=100y") == "--exp is too far in the future"


async def test_r93_expired_generated_handle_no_longer_resolves(env: Env) -> None:
    a = await env.caller()
    body = await a.ok("ssh-key generate-api-key --exp=1h")
    env.now = NOW + 3600
    await resolve(env, body["token"], "v0@sshmint.test")
    env.now = NOW + 3601
    assert await env.store.exe1_lookup(exe1_hash(body["token"]), env.now) is None


async def test_s4_5_generated_key_inherits_the_callers_restrictions(env: Env) -> None:
    a = await env.caller()
    caller_perms = json.dumps({"cmds": ["ssh-key", "whoami"], "exp": NOW + DAY, "tag": "ci"})
    row, signer = await env.add_key(a, permissions=caller_perms, name="limited")
    limited: Caller = replace(a, key=row, signer=signer)
    body = await limited.ok("ssh-key generate-api-key --label=child --exp=30d")
    assert body["expires_at"] == "2030-03-18T17:46:40Z"  # the caller's earlier exp
    parsed = await resolve(env, body["token"], "v0@sshmint.test")
    # cmds and exp are signed; tag is stored but never signed.
    assert parsed.payload == f'{{"cmds":["ssh-key","whoami"],"exp":{NOW + DAY}}}'.encode()
    stored = await env.store.key_by_fingerprint(parsed.fingerprint)
    assert stored is not None
    assert json.loads(stored.permissions) == {
        "cmds": ["ssh-key", "whoami"],
        "tag": "ci",
        "exp": NOW + DAY,
    }
    assert await handle_expiry(env, body["token"]) == NOW + DAY
    assert await limited.fail("ssh-key generate-api-key --cmds=ls") == (
        'calling key does not allow command "ls"; cannot grant it to new key'
    )
    assert await limited.fail("ssh-key generate-api-key --tag=prod") == (
        'calling key is scoped to tag "ci"; cannot create key with tag "prod"'
    )


async def test_s9_3_no_usable_credential_at_rest(env: Env) -> None:
    a = await env.caller()
    generated = await a.ok("ssh-key generate-api-key --label=ci")
    exe0 = a.token()
    traded = await a.ok(["exe0-to-exe1", exe0])
    dump = repr(await dump_tables(env.store))
    for secret in (generated["token"], traded["token"], exe0):
        assert secret not in dump
        assert secret.split(".", 1)[1] not in dump
    assert "exe0." not in dump and "exe1." not in dump


async def test_r86_removing_the_label_revokes_the_generated_token(env: Env) -> None:
    a = await env.caller()
    body = await a.ok("ssh-key generate-api-key --label=ci")
    await resolve(env, body["token"], "v0@sshmint.test")
    removed = await a.ok("ssh-key remove ci")
    assert removed["fingerprint"] == body["fingerprint"]
    # The handle row may remain (docs/accounts.md#key-removal-and-revocation); the token no longer verifies.
    with pytest.raises(TokenVerificationError):
        await resolve(env, body["token"], "v0@sshmint.test")
