"""SSHMintAuth's minting core: payload, namespace, 80 % refresh, thread/async safety, key sources.

Tokens are checked with the real verifier (``sshmint.token.verify_exe0``) against keys made
by the real ``ssh-keygen``; time comes from an injected clock, never from sleeping.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests

from sshmint.client import SSHMintAuth
from sshmint.client.minting import load_signer
from sshmint.errors import KeyEncryptedError, PrivateKeyError, TokenVerificationError
from sshmint.keys import PublicKey, load_public_key_file
from sshmint.signing import load_private_key
from sshmint.token import b64url_decode, verify_exe0
from tests.support.client_support import CountingSigner, FakeClock, LoopbackServer
from tests.support.keys import KeyFactory, new_key


def verify(token: str, namespace: str, key: PublicKey, now: float) -> bytes:
    """The payload of ``token`` after full docs/tokens.md#validation validation under ``namespace``."""
    parsed = verify_exe0(
        token, namespace, lambda fp: key if fp == key.fingerprint else None, int(now)
    )
    return parsed.payload


def payload_of(token: str) -> bytes:
    return b64url_decode(token.split(".")[1])


@pytest.fixture
def key(ssh_keygen_key: KeyFactory) -> Path:
    return ssh_keygen_key("ed25519")


@pytest.fixture
def pub(key: Path) -> PublicKey:
    return load_public_key_file(f"{key}.pub")


def test_a4_token_is_exe0_for_v0_at_web_host_with_exp_now_plus_ttl(
    key: Path, pub: PublicKey, clock: FakeClock
) -> None:
    auth = SSHMintAuth(key=key, clock=clock)
    token = auth.token()
    assert token.startswith("exe0.")
    payload = verify(token, "v0@localhost", pub, clock.now)
    assert payload == b'{"exp":%d}' % (int(clock.now) + 300)


def test_s1_8_vm_namespace_is_v0_at_vm_dot_vm_host_and_nothing_else(
    key: Path, pub: PublicKey, clock: FakeClock
) -> None:
    token = SSHMintAuth(key=key, vm="myapp", vm_host="example.com", clock=clock).token()
    verify(token, "v0@myapp.example.com", pub, clock.now)
    for other in ("v0@localhost", "v0@other.example.com", "v0@myapp.localhost"):
        with pytest.raises(TokenVerificationError):
            verify(token, other, pub, clock.now)


def test_s1_8_explicit_namespace_and_web_host(key: Path, pub: PublicKey, clock: FakeClock) -> None:
    assert SSHMintAuth(key=key, web_host="api.example.com", clock=clock).namespace == (
        "v0@api.example.com"
    )
    token = SSHMintAuth(key=key, namespace="v0@x.test", clock=clock).token()
    verify(token, "v0@x.test", pub, clock.now)


def test_a4_cmds_and_ctx_are_signed_in_member_order(
    key: Path, pub: PublicKey, clock: FakeClock
) -> None:
    auth = SSHMintAuth(
        key=key, ttl=60, cmds=["whoami", "ssh-key list"], ctx={"job": 7}, clock=clock
    )
    payload = verify(auth.token(), "v0@localhost", pub, clock.now)
    exp = int(clock.now) + 60
    assert payload == b'{"exp":%d,"cmds":["whoami","ssh-key list"],"ctx":{"job":7}}' % exp


def test_token_is_reused_until_80_percent_of_its_lifetime_then_replaced(
    key: Path, pub: PublicKey, clock: FakeClock
) -> None:
    signer = CountingSigner(load_private_key(key))
    auth = SSHMintAuth(signer=signer, ttl=300, clock=clock)
    start = clock.now
    first = auth.token()
    clock.advance(239.9)  # 80 % of 300 s is 240 s
    assert auth.token() == first
    assert signer.count == 1
    clock.advance(0.1)
    second = auth.token()
    assert second != first and signer.count == 2
    assert payload_of(second) == b'{"exp":%d}' % (int(start + 240) + 300)
    verify(second, "v0@localhost", pub, clock.now)
    assert auth.token() == second


def test_ttl_none_mints_one_token_without_exp_and_keeps_it(key: Path, clock: FakeClock) -> None:
    signer = CountingSigner(load_private_key(key))
    auth = SSHMintAuth(signer=signer, ttl=None, clock=clock)
    token = auth.token()
    clock.advance(10 * 365 * 86400)
    assert auth.token() == token and signer.count == 1
    assert payload_of(token) == b"{}"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cmds": ["ls", ""]}, "invalid token: cmds elements must be non-empty strings"),
        ({"cmds": "ls"}, "cmds must be a list of command names, not a string"),
        ({"ctx": {1: "a", "1": "b"}}, "invalid token: invalid JSON"),
        ({"ctx": float("nan")}, "ctx is not JSON-serialisable"),
        ({"ttl": 0}, "ttl must be a positive number of seconds"),
        ({"namespace": "v0@a", "vm": "b"}, "namespace and vm are mutually exclusive"),
        ({"agent": True}, "key and agent are mutually exclusive"),
    ],
)
def test_bad_arguments_fail_at_construction_with_a_clear_message(
    key: Path, kwargs: dict[str, Any], message: str
) -> None:
    # Any: the cases pass ill-typed arguments on purpose (cmds="ls"); the constructor checks them.
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(")):
        SSHMintAuth(key=key, **kwargs)


def test_repr_and_str_never_show_the_token(key: Path, pub: PublicKey, clock: FakeClock) -> None:
    auth = SSHMintAuth(key=key, clock=clock)
    token = auth.token()
    for text in (repr(auth), str(auth), repr(auth.minter)):
        assert token not in text and token.split(".")[2][:20] not in text
    assert f"SHA256:{pub.fingerprint}" in repr(auth)
    assert "v0@localhost" in repr(auth)


def test_threads_sharing_one_auth_mint_once_per_lifetime_window(
    key: Path, clock: FakeClock
) -> None:
    signer = CountingSigner(load_private_key(key))
    auth = SSHMintAuth(signer=signer, ttl=100, clock=clock)
    workers = 8

    def round_of_threads() -> set[str]:
        barrier = threading.Barrier(workers)
        seen: list[str] = []

        def work() -> None:
            barrier.wait()
            for _ in range(20):
                seen.append(auth.token())

        threads = [threading.Thread(target=work) for _ in range(workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert len(seen) == workers * 20
        return set(seen)

    assert len(round_of_threads()) == 1 and signer.count == 1
    clock.advance(80)  # the end of the first window
    assert len(round_of_threads()) == 1 and signer.count == 2


async def test_coroutines_sharing_one_auth_mint_once_per_lifetime_window(
    key: Path, clock: FakeClock
) -> None:
    signer = CountingSigner(load_private_key(key))
    auth = SSHMintAuth(signer=signer, ttl=100, clock=clock)
    tokens = await asyncio.gather(*(auth.atoken() for _ in range(30)))
    assert len(set(tokens)) == 1 and signer.count == 1
    clock.advance(80)
    tokens = await asyncio.gather(*(auth.atoken() for _ in range(30)))
    assert len(set(tokens)) == 1 and signer.count == 2


def test_a4_encrypted_key_uses_passphrase_argument_or_env(
    ssh_keygen_key: KeyFactory, monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    key = ssh_keygen_key("ed25519", passphrase="s3cret")
    pub = load_public_key_file(f"{key}.pub")
    monkeypatch.delenv("SSHMINT_KEY_PASSPHRASE", raising=False)
    with pytest.raises(KeyEncryptedError, match="is encrypted; set SSHMINT_KEY_PASSPHRASE"):
        SSHMintAuth(key=key)
    verify(
        SSHMintAuth(key=key, passphrase="s3cret", clock=clock).token(),
        "v0@localhost",
        pub,
        clock.now,
    )
    monkeypatch.setenv("SSHMINT_KEY_PASSPHRASE", "s3cret")
    verify(SSHMintAuth(key=key, clock=clock).token(), "v0@localhost", pub, clock.now)
    monkeypatch.setenv("SSHMINT_KEY_PASSPHRASE", "wrong")
    with pytest.raises(PrivateKeyError, match="wrong passphrase"):
        SSHMintAuth(key=key)


def test_a4_without_key_uses_first_default_key_in_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(
        PrivateKeyError, match=r"none of ~/\.ssh/id_ed25519, ~/\.ssh/id_ecdsa, ~/\.ssh/id_rsa"
    ):
        load_signer()
    (tmp_path / ".ssh").mkdir()
    new_key(tmp_path / ".ssh" / "id_ecdsa", "ecdsa")
    pub = load_public_key_file(tmp_path / ".ssh" / "id_ecdsa.pub")
    verify(SSHMintAuth(clock=clock).token(), "v0@localhost", pub, clock.now)


def test_missing_key_file_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(
        PrivateKeyError, match=r"^cannot read key .*/nope: No such file or directory$"
    ):
        SSHMintAuth(key=tmp_path / "nope")


def test_httpx_and_requests_send_bearer_and_reuse_the_token(
    key: Path, clock: FakeClock, echo_server: LoopbackServer
) -> None:
    auth = SSHMintAuth(key=key, clock=clock)
    with httpx.Client(auth=auth) as client:
        client.get(echo_server.url + "/a")
        client.post(echo_server.url + "/b", content=b"x")
    requests.get(echo_server.url + "/c", auth=auth, timeout=10)
    sent = [r["Authorization"] for r in echo_server.requests]
    assert sent == [f"Bearer {auth.token()}"] * 3


async def test_httpx_async_client_sends_bearer(
    key: Path, clock: FakeClock, echo_server: LoopbackServer
) -> None:
    auth = SSHMintAuth(key=key, clock=clock)
    async with httpx.AsyncClient(auth=auth) as client:
        await asyncio.gather(*(client.get(echo_server.url + f"/{i}") for i in range(5)))
    assert {r["Authorization"] for r in echo_server.requests} == {f"Bearer {auth.token()}"}


def test_import_needs_neither_httpx_nor_requests(key: Path) -> None:
    """``import sshmint.client`` and the requests-style auth work with httpx and requests absent;
    ``Client`` then says which extra to install."""
    script = f"""
import sys
sys.modules["httpx"] = None  # makes `import httpx` fail
sys.modules["requests"] = None
import sshmint.client as c
auth = c.SSHMintAuth(key={str(key)!r})
class Req:
    headers = {{}}
assert auth(Req()).headers["Authorization"].startswith("Bearer exe0.")
try:
    c.Client("http://127.0.0.1:9", token="t")
except ImportError as exc:
    print(exc)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == (
        "sshmint.client.Client needs httpx: install sshmint from its checkout with the"
        " httpx extra, pip install '/path/to/sshmint[httpx]', or pip install httpx"
    )
