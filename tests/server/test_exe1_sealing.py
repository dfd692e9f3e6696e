"""exe1 handles at rest (docs/tokens.md#exe1-tokens, docs/storage.md#nothing-usable-at-rest): derivation, hashing, sealing, and no credential in
any stored row, on both backends."""

from __future__ import annotations

import base64
import datetime
import os
import re
import subprocess
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from sshmint.server.auth.exe1 import DEFAULT_EXE1_EXPIRY, derive_exe1, exe1_hash, seal, unseal
from sshmint.server.store import Store
from tests.support.keys import StoreKey
from tests.support.store_audit import dump_tables

EXE1_RE = re.compile(r"exe1\.[A-Z2-7]{26}")
NOW = 1_700_000_000


def fake_exe0(payload: bytes = b'{"cmds":["whoami"]}') -> str:
    """An exe0-shaped string (docs/tokens.md#exe0-layout); the store and the sealing treat it as opaque."""

    def b64url(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).decode().rstrip("=")

    return f"exe0.{b64url(payload)}.{b64url(os.urandom(300))}"


def openssl_hmac_sha256(secret: bytes, message: str) -> bytes:
    return subprocess.run(
        [
            "openssl",
            "dgst",
            "-sha256",
            "-mac",
            "HMAC",
            "-macopt",
            f"hexkey:{secret.hex()}",
            "-binary",
        ],
        input=message.encode(),
        capture_output=True,
        check=True,
    ).stdout


# -- derivation (docs/tokens.md#exe1-tokens, docs/storage.md#nothing-usable-at-rest) --------------------------------------------------------------


def test_s9_3_derived_body_is_openssl_hmac_sha256_in_base32_cut_to_26() -> None:
    secret, exe0 = os.urandom(32), fake_exe0()
    encoded = subprocess.run(
        ["base32", "-w", "0"],
        input=openssl_hmac_sha256(secret, exe0),
        capture_output=True,
        check=True,
    ).stdout.decode()
    assert derive_exe1(secret, exe0) == "exe1." + encoded[:26]


def test_s9_3_derivation_known_answer() -> None:
    # Computed with: printf 'exe0.e30.AAAA' | openssl dgst -sha256 -mac HMAC
    #   -macopt hexkey:000102...1f -binary | base32
    assert derive_exe1(bytes(range(32)), "exe0.e30.AAAA") == "exe1.3GUB4RLH55BMZ24DAP7WMYUQP4"


def test_s1_9_derived_handle_is_well_formed_stable_and_keyed() -> None:
    secret, exe0 = os.urandom(32), fake_exe0()
    handle = derive_exe1(secret, exe0)
    assert EXE1_RE.fullmatch(handle)
    assert derive_exe1(secret, exe0) == handle
    assert derive_exe1(os.urandom(32), exe0) != handle
    assert derive_exe1(secret, fake_exe0()) != handle


def test_s9_3_exe1_hash_is_lower_hex_sha256_of_the_whole_string() -> None:
    handle = derive_exe1(os.urandom(32), fake_exe0())
    by_tool = subprocess.run(
        ["sha256sum"], input=handle.encode(), capture_output=True, check=True
    ).stdout.split()[0]
    assert exe1_hash(handle) == by_tool.decode()
    assert re.fullmatch(r"[0-9a-f]{64}", exe1_hash(handle))


def test_s6_6_16_default_expiry_is_3333_03_03_utc() -> None:
    expected = datetime.datetime(3333, 3, 3, tzinfo=datetime.UTC).timestamp()
    assert DEFAULT_EXE1_EXPIRY == int(expected) == 43017436800


# -- sealing (docs/storage.md#nothing-usable-at-rest) ------------------------------------------------------------------------


def test_s9_3_seal_round_trips_with_a_fresh_nonce_each_time() -> None:
    exe0 = fake_exe0()
    handle = derive_exe1(os.urandom(32), exe0)
    first, second = seal(handle, exe0), seal(handle, exe0)
    assert first != second
    assert unseal(handle, first) == unseal(handle, second) == exe0


def test_s9_3_seal_is_aes_256_gcm_under_hkdf_sha256_of_the_handle() -> None:
    exe0 = fake_exe0()
    handle = derive_exe1(os.urandom(32), exe0)
    sealed = seal(handle, exe0)
    key = HKDF(hashes.SHA256(), 32, salt=None, info=b"sshmint exe1 seal v1").derive(handle.encode())
    # Layout: version byte, 12-byte nonce stored alongside, ciphertext and tag.
    assert sealed[0] == 1
    opened = AESGCM(key).decrypt(sealed[1:13], sealed[13:], sealed[:1])
    assert opened.decode() == exe0


def test_s9_3_unseal_with_another_handle_is_none() -> None:
    exe0 = fake_exe0()
    handle = derive_exe1(os.urandom(32), exe0)
    other = derive_exe1(os.urandom(32), exe0)
    assert unseal(other, seal(handle, exe0)) is None


def _flip(data: bytes, index: int) -> bytes:
    mutable = bytearray(data)
    mutable[index] ^= 0x01
    return bytes(mutable)


@pytest.mark.parametrize(
    ("case", "tamper"),
    [
        ("version byte", lambda b: _flip(b, 0)),
        ("nonce", lambda b: _flip(b, 5)),
        ("ciphertext", lambda b: _flip(b, 20)),
        ("tag", lambda b: _flip(b, len(b) - 1)),
        ("truncated", lambda b: b[:-1]),
        ("extended", lambda b: b + b"\x00"),
        ("header only", lambda b: b[:13]),
        ("empty", lambda b: b""),
    ],
)
def test_s9_3_unseal_of_a_damaged_blob_is_none(case: str, tamper: Callable[[bytes], bytes]) -> None:
    exe0 = fake_exe0()
    handle = derive_exe1(os.urandom(32), exe0)
    sealed = seal(handle, exe0)
    damaged = tamper(sealed)
    assert damaged != sealed, case
    assert unseal(handle, damaged) is None


# -- nothing usable at rest (docs/storage.md#nothing-usable-at-rest, last rule) ----------------------------------------------


async def test_s9_3_dump_of_every_table_contains_no_exe0_or_exe1_string(
    store: Store, keys: list[StoreKey]
) -> None:
    secret = await store.exe1_secret()
    user, _ = await store.create_user("ann@example.test", NOW, keys[0])
    handles: dict[str, str] = {}
    # generate-api-key (docs/ssh.md#ssh-key-generate-api-key step 7): key and handle in one transaction.
    for number, key in enumerate(keys[1:3], start=1):
        exe0 = fake_exe0()
        handle = derive_exe1(secret, exe0)
        await store.add_generated_key(
            user.user_id,
            key,
            f"api-key-{number}",
            "",
            handle[5:9],
            exe1_hash(handle),
            seal(handle, exe0),
            DEFAULT_EXE1_EXPIRY,
            NOW,
        )
        handles[handle] = exe0
    # exe0-to-exe1 (docs/ssh.md#exe0-to-exe1 step 7), with and without exp.
    for expires_at in (NOW + 3600, DEFAULT_EXE1_EXPIRY):
        exe0 = fake_exe0()
        handle = derive_exe1(secret, exe0)
        assert await store.exe1_put(exe1_hash(handle), seal(handle, exe0), expires_at, NOW)
        handles[handle] = exe0

    # Every handle still resolves for its holder...
    for handle, exe0 in handles.items():
        sealed = await store.exe1_lookup(exe1_hash(handle), NOW)
        assert sealed is not None and unseal(handle, sealed) == exe0

    # ...but no stored value contains a token, its prefix, or its body.
    needles = ["exe0.", "exe1."]
    needles += [handle[5:] for handle in handles]
    needles += [exe0[5:] for exe0 in handles.values()]
    dump = await dump_tables(store)
    assert len(dump["exe1_tokens"]) == 4
    cells = [value for rows in dump.values() for row in rows for value in row]
    for value in cells:
        if isinstance(value, str):
            assert not any(needle in value for needle in needles), value
        elif isinstance(value, bytes | bytearray | memoryview):
            blob = bytes(value)
            assert not any(needle.encode() in blob for needle in needles)
    hashes_at_rest = {row[0] for row in dump["exe1_tokens"]}
    assert hashes_at_rest == {exe1_hash(handle) for handle in handles}
