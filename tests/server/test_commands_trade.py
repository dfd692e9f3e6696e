"""docs/ssh.md#exe0-to-exe1 ``exe0-to-exe1`` (R39, R40, R87–R92), message rules of docs/tokens.md#who-sees-which-message and the
trade exception of docs/tokens.md#claims."""

from __future__ import annotations

import base64
import re
import subprocess
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from sshmint.server.auth.exe1 import DEFAULT_EXE1_EXPIRY, exe1_hash, unseal
from sshmint.signing import load_private_key
from sshmint.token import b64url_decode, b64url_encode, mint_exe0
from tests.support.command_helpers import BACKENDS, NOW, Env, backend_env, json_of
from tests.support.keys import KeyFactory
from tests.support.store_audit import dump_tables

EXE1 = re.compile(r"exe1\.[A-Z2-7]{26}")
API = "v0@sshmint.test"


@pytest.fixture(params=BACKENDS)
async def env(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Env]:
    async with backend_env(request.param, request, tmp_path) as e:
        yield e


async def sealed_exe0(env: Env, exe1: str, now: int) -> str | None:
    sealed = await env.store.exe1_lookup(exe1_hash(exe1), now)
    return None if sealed is None else unseal(exe1, sealed)


async def test_r87_r88_trade_text_json_and_idempotence(env: Env) -> None:
    a = await env.caller()
    exe0 = a.token()
    text = await a.run(["exe0-to-exe1", exe0])
    assert text.exit_status == 0 and text.stderr == ""
    exe1 = text.stdout.removesuffix("\n")
    assert EXE1.fullmatch(exe1) and text.stdout.count("\n") == 1
    assert json_of(await a.run(["exe0-to-exe1", "--json", exe0])) == {"token": exe1}  # R88
    assert await a.ok(["exe0-to-exe1", exe0]) == {"token": exe1}
    assert len((await dump_tables(env.store))["exe1_tokens"]) == 1
    # The handle stands for exactly this exe0 and lives until 3333-03-03 without exp.
    assert await sealed_exe0(env, exe1, DEFAULT_EXE1_EXPIRY) == exe0
    assert await sealed_exe0(env, exe1, DEFAULT_EXE1_EXPIRY + 1) is None
    # A different exe0 gets a different handle.
    other = await a.ok(["exe0-to-exe1", a.token(b'{"cmds":["whoami"]}')])
    assert other["token"] != exe1


async def test_s6_6_17_handle_expires_with_the_tokens_exp(env: Env) -> None:
    a = await env.caller()
    exe0 = a.token(f'{{"exp":{NOW + 60}}}'.encode())
    exe1 = (await a.ok(["exe0-to-exe1", exe0]))["token"]
    assert await sealed_exe0(env, exe1, NOW + 60) == exe0
    assert await sealed_exe0(env, exe1, NOW + 61) is None
    env.now = NOW + 60  # exp == now is not expired
    assert (await a.ok(["exe0-to-exe1", exe0]))["token"] == exe1


async def test_r39_future_nbf_can_be_traded(env: Env) -> None:
    a = await env.caller()
    exe0 = a.token(f'{{"nbf":{NOW + 3600}}}'.encode())
    exe1 = (await a.ok(["exe0-to-exe1", exe0]))["token"]
    assert await sealed_exe0(env, exe1, NOW) == exe0


async def test_r40_expired_token_is_refused(env: Env) -> None:
    a = await env.caller()
    exe0 = a.token(f'{{"exp":{NOW - 1}}}'.encode())
    assert await a.fail(["exe0-to-exe1", exe0]) == "token has expired"
    # Expired with a future nbf still says expired (exp is the only claim checked).
    both = a.token(f'{{"exp":{NOW - 1},"nbf":{NOW + 1}}}'.encode())
    assert await a.fail(["exe0-to-exe1", both]) == "token has expired"
    assert (await dump_tables(env.store))["exe1_tokens"] == []


async def test_r90_s2_4_parse_failures_carry_the_parse_message(env: Env) -> None:
    a = await env.caller()
    assert await a.fail("exe0-to-exe1 totalgarbage") == (
        "invalid token: invalid token format: missing exe0. prefix"
    )
    assert await a.fail("exe0-to-exe1 exe0.onlyonedot") == (
        "invalid token: invalid token format: expected exe0.<payload>.<sigblob>"
    )
    bad_payload = mint_exe0(b'{"foo":1}', a.signer, API, validate=False)
    assert await a.fail(["exe0-to-exe1", bad_payload]) == (
        'invalid token: invalid token: unknown field "foo"'
    )
    assert await a.fail(["exe0-to-exe1", "exe0.e30."]) == (
        "invalid token: invalid token: malformed signature"
    )
    assert await a.fail(["exe0-to-exe1", "exe0." + "A" * 8200]) == (
        "invalid token: invalid token: exceeds maximum size"
    )


async def test_r91_other_users_wrong_namespace_unknown_and_tampered_tokens(env: Env) -> None:
    a = await env.caller()
    b = await env.caller()
    assert await a.fail(["exe0-to-exe1", b.token()]) == "invalid token"
    assert await a.fail(["exe0-to-exe1", a.token(namespace="v0@evil.com")]) == "invalid token"
    assert await a.fail(["exe0-to-exe1", a.token(namespace="v0@myapp.vm.test")]) == (
        "invalid token"
    )
    # A payload changed after signing (still valid base64url and JSON).
    prefix, _payload, sig = a.token(b'{"cmds":["ls"]}').split(".")
    changed = b64url_encode(b'{"cmds":["rm"]}')
    tampered = f"{prefix}.{changed}.{sig}"
    assert await a.fail(["exe0-to-exe1", tampered]) == "invalid token"
    # A removed key's tokens no longer trade.
    row, signer = await env.add_key(a, name="gone")
    exe0 = mint_exe0(b"{}", signer, API)
    assert (await a.ok(["exe0-to-exe1", exe0]))["token"]
    await env.store.delete_key(row.id)
    assert await a.fail(["exe0-to-exe1", exe0]) == "invalid token"
    # Flipping a signature bit: "invalid token" or a malformed-signature parse error.
    prefix, payload, sig = a.token().split(".")
    raw = bytearray(b64url_decode(sig))
    raw[-1] ^= 1
    flipped = f"{prefix}.{payload}.{b64url_encode(bytes(raw))}"
    assert (await a.fail(["exe0-to-exe1", flipped])).startswith("invalid token")


async def test_r92_vm_tokens(env: Env) -> None:
    a = await env.caller("a@example.com")
    b = await env.caller("b@example.com")
    await a.ok("new --name=myapp --upstream=http://127.0.0.1:1")
    await a.ok("new --name=other --upstream=http://127.0.0.1:1")
    vm_token = a.token(namespace="v0@myapp.vm.test")
    assert EXE1.fullmatch((await a.ok(["exe0-to-exe1", "--vm=myapp", vm_token]))["token"])
    assert (await a.ok(["exe0-to-exe1", "--vm", "myapp.vm.test", vm_token]))["token"]
    assert await a.fail(["exe0-to-exe1", "--vm=nosuch", vm_token]) == (
        'VM "nosuch" not found or access denied'
    )
    assert await a.fail(["exe0-to-exe1", "--vm=other", vm_token]) == "invalid token"
    assert await a.fail(["exe0-to-exe1", vm_token]) == "invalid token"  # API namespace
    # A user the VM is shared with may trade their own token for it; others may not.
    b_token = b.token(namespace="v0@myapp.vm.test")
    assert await b.fail(["exe0-to-exe1", "--vm=myapp", b_token]) == (
        'VM "myapp" not found or access denied'
    )
    await a.ok("share add myapp b@example.com")
    assert (await b.ok(["exe0-to-exe1", "--vm=myapp", b_token]))["token"]


async def test_s6_6_17_usage(env: Env) -> None:
    a = await env.caller()
    usage = "usage: exe0-to-exe1 [--vm=VMNAME] <exe0-token>"
    assert await a.fail("exe0-to-exe1") == usage
    assert await a.fail(["exe0-to-exe1", a.token(), a.token()]) == usage
    # The VM check comes first (step 1), before the token is parsed.
    assert await a.fail("exe0-to-exe1 --vm=nosuch garbage") == (
        'VM "nosuch" not found or access denied'
    )


async def test_r1_token_signed_by_ssh_keygen_is_traded(
    env: Env, ssh_keygen_key: KeyFactory, tmp_path: Path
) -> None:
    key_path = ssh_keygen_key("ed25519", name="trade")
    a = await env.caller()
    signer = load_private_key(key_path)
    real_row = await env.store.add_key(a.user.user_id, signer.public_key, "real", "", env.now)
    payload = b'{"cmds":["whoami"]}'
    signed = subprocess.run(
        ["ssh-keygen", "-Y", "sign", "-f", str(key_path), "-n", API],
        input=payload,
        capture_output=True,
        check=True,
    ).stdout.decode()
    armour = "".join(signed.strip().splitlines()[1:-1])
    sig = base64.b64decode(armour)
    exe0 = f"exe0.{b64url_encode(payload)}.{b64url_encode(sig)}"
    as_real = replace(a, key=real_row, signer=signer)
    exe1 = (await as_real.ok(["exe0-to-exe1", exe0]))["token"]
    assert await sealed_exe0(env, exe1, env.now) == exe0
