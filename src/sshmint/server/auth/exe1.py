"""exe1 handles: derivation, hashing and sealing of the exe0 they stand for (docs/tokens.md#exe1-tokens, docs/storage.md#nothing-usable-at-rest).

- ``derive_exe1``: ``exe1.`` + the first 26 characters of the RFC 4648 base32 encoding of
  HMAC-SHA256(secret, exe0) — stable for one exe0, unpredictable without the secret.
- ``exe1_hash``: what the database stores instead of the handle (lower-case hex SHA-256).
- ``seal`` / ``unseal``: AES-256-GCM under HKDF-SHA256(exe1, info="sshmint exe1 seal v1"),
  so only a holder of the exe1 string can recover the exe0 from a copy of the database.

Sealed layout: ``version (1 byte, 0x01) || nonce (12 random bytes) || ciphertext+tag``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from sshmint.token import EXE1_PREFIX

__all__ = [
    "DEFAULT_EXE1_EXPIRY",
    "EXE1_BODY_LENGTH",
    "SEAL_INFO",
    "derive_exe1",
    "exe1_hash",
    "seal",
    "unseal",
]

EXE1_BODY_LENGTH = 26  # docs/tokens.md#exe1-tokens: 130 bits.
# docs/ssh.md#ssh-key-generate-api-key/docs/ssh.md#exe0-to-exe1: 3333-03-03T00:00:00Z when the token has no exp.
DEFAULT_EXE1_EXPIRY = 43017436800
SEAL_INFO = b"sshmint exe1 seal v1"

_SEAL_VERSION = b"\x01"
_NONCE_BYTES = 12
_TAG_BYTES = 16


def derive_exe1(secret: bytes, exe0: str) -> str:
    """docs/storage.md#nothing-usable-at-rest: the handle for ``exe0`` under the ``exe1-derivation`` secret."""
    digest = hmac.new(secret, exe0.encode("utf-8"), hashlib.sha256).digest()
    return EXE1_PREFIX + base64.b32encode(digest).decode("ascii")[:EXE1_BODY_LENGTH]


def exe1_hash(exe1: str) -> str:
    """docs/storage.md#nothing-usable-at-rest: lower-case hex SHA-256 of the whole ``exe1.`` string."""
    return hashlib.sha256(exe1.encode("utf-8")).hexdigest()


def _seal_key(exe1: str) -> AESGCM:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=SEAL_INFO)
    return AESGCM(hkdf.derive(exe1.encode("utf-8")))


def seal(exe1: str, exe0: str) -> bytes:
    """Encrypt ``exe0`` so that only a holder of ``exe1`` can recover it (docs/storage.md#nothing-usable-at-rest)."""
    nonce = os.urandom(_NONCE_BYTES)
    ciphertext = _seal_key(exe1).encrypt(nonce, exe0.encode("utf-8"), _SEAL_VERSION)
    return _SEAL_VERSION + nonce + ciphertext


def unseal(exe1: str, sealed: bytes) -> str | None:
    """The exe0 sealed under ``exe1``; ``None`` for a wrong handle or a damaged blob."""
    header = len(_SEAL_VERSION) + _NONCE_BYTES
    if len(sealed) < header + _TAG_BYTES or sealed[:1] != _SEAL_VERSION:
        return None
    nonce, ciphertext = sealed[1:header], sealed[header:]
    try:
        plaintext = _seal_key(exe1).decrypt(nonce, ciphertext, _SEAL_VERSION)
        return plaintext.decode("utf-8")
    except (InvalidTag, UnicodeError):
        return None
