"""Ed25519 signature checks: libsodium (through PyNaCl) or, without PyNaCl, ``cryptography``.

Ed25519 signatures (``ssh-ed25519`` and the inner signature of ``sk-ssh-ed25519``) are
checked with libsodium through PyNaCl, about twice as fast as OpenSSL here
(``bench/bench_token.py``); ``cryptography`` does everything else and is the fallback
when PyNaCl cannot be imported (:data:`ED25519_BACKEND` names the one in use).

libsodium is deliberately stricter than OpenSSH's ``ssh-keygen`` (SUPERCOP "ref" code);
``tests/core/test_ed25519_backend.py`` records every case against the real tools. What
libsodium refuses and ssh-keygen accepts:

- a non-canonical ``S`` (``S + L`` while below 2^253, which ssh-keygen reduces mod ``L``;
  OpenSSL refuses it too): a malleated copy of a valid signature;
- a public key ``A`` of small order (the identity ``01 00..00``, its non-canonical and
  "negative zero" encodings, the points of order 2, 4 and 8; OpenSSL accepts them): such
  a key has no secret, anyone can make signatures for it that ssh-keygen accepts;
- ``R`` = the identity point (OpenSSL accepts it): an RFC 8032 signer produces it only
  for a nonce that is a multiple of ``L`` (probability 2^-252).

No real signer with a real key (ssh-keygen, ssh-agent, a security key, sshmint itself)
produces any of these, so refusing them only closes doors: their signatures verify
identically under both backends. All three check the cofactorless equation, so a key of
mixed order behaves the same everywhere, and libsodium accepts nothing that ssh-keygen
refuses (fail closed).
"""

from __future__ import annotations

from collections.abc import Callable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

try:
    from nacl.bindings import crypto_sign_open as _sodium_sign_open
    from nacl.exceptions import BadSignatureError as _SodiumBadSignature
except ImportError:  # pragma: no cover - tests run this in a subprocess without PyNaCl
    _HAVE_SODIUM = False
else:
    _HAVE_SODIUM = True

__all__ = [
    "ED25519_BACKEND",
    "ED25519_SIGNATURE_BYTES",
    "Ed25519Verifier",
    "cryptography_ed25519_verifier",
    "ed25519_verifier",
    "sodium_ed25519_verifier",
]

ED25519_SIGNATURE_BYTES = 64  # RFC 8032 §5.1.6: R (32 bytes) || S (32 bytes)

Ed25519Verifier = Callable[[bytes, bytes], bool]
"""``verify(sigblob, data)``: whether ``sigblob`` is a valid Ed25519 signature of ``data``
under the key the verifier was made for. Never raises on bad signatures."""


def sodium_ed25519_verifier(public: bytes) -> Ed25519Verifier:
    """A verifier for the 32-byte Ed25519 key ``public`` using libsodium (PyNaCl).

    libsodium's rules: ``S`` must be canonical (< L), neither ``A`` nor ``R`` may have
    small order, ``A`` must be canonically encoded. Raises :class:`RuntimeError` when
    PyNaCl is not installed.
    """
    if not _HAVE_SODIUM:
        raise RuntimeError("PyNaCl is not installed")
    sign_open = _sodium_sign_open  # locals: this runs once per token check
    bad_signature = _SodiumBadSignature

    def verify(sigblob: bytes, data: bytes) -> bool:
        # crypto_sign_open takes `signature || message` (PyNaCl 1.6 has no detached
        # binding), so a shorter sigblob would borrow the message's first bytes and
        # could verify; OpenSSH guards the same split by checking the recovered length.
        if len(sigblob) != ED25519_SIGNATURE_BYTES:
            return False
        try:
            sign_open(sigblob + data, public)
        except bad_signature:
            return False
        return True

    return verify


def cryptography_ed25519_verifier(public: bytes) -> Ed25519Verifier:
    """A verifier for the 32-byte Ed25519 key ``public`` using ``cryptography`` (OpenSSL).

    OpenSSL refuses a non-canonical ``S`` but accepts small-order ``A`` and ``R`` (as
    ssh-keygen does). Used when PyNaCl is not installed.
    """
    key = ed25519.Ed25519PublicKey.from_public_bytes(public)

    def verify(sigblob: bytes, data: bytes) -> bool:
        try:
            key.verify(sigblob, data)
        except InvalidSignature:
            return False
        return True

    return verify


ed25519_verifier: Callable[[bytes], Ed25519Verifier] = (
    sodium_ed25519_verifier if _HAVE_SODIUM else cryptography_ed25519_verifier
)
"""The verifier factory every Ed25519 key uses (:mod:`sshmint.keys`)."""

#: ``"libsodium"`` or ``"cryptography"``: the backend of :data:`ed25519_verifier`.
ED25519_BACKEND = "libsodium" if _HAVE_SODIUM else "cryptography"
