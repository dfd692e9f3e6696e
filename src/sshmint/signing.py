"""Signing: the :class:`Signer` protocol, in-memory private keys (:class:`PrivateKeySigner`)
and private key files (OpenSSH and PEM). Agent-held keys sign through :mod:`sshmint.agent`.
"""

from __future__ import annotations

import base64
import binascii
import os
import warnings
from collections.abc import Callable
from typing import Protocol

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_private_key,
    load_ssh_private_key,
)
from cryptography.utils import CryptographyDeprecationWarning

from sshmint.errors import KeyEncryptedError, PrivateKeyError, PublicKeyError
from sshmint.keys import PublicKey, public_key_from_blob, read_key_file
from sshmint.keytypes import CURVES_BY_NAME, MAX_RSA_BITS, MIN_RSA_BITS, SK_KEY_TYPES, EcCurve
from sshmint.wire import read_string, read_uint32, write_mpint, write_string

__all__ = ["PrivateKeySigner", "Signer", "generate_ed25519", "load_private_key"]

_PKCS1V15 = padding.PKCS1v15()


class Signer(Protocol):
    """Anything that makes SSH signatures (RFC 4253 §6.6 envelope) for one key."""

    @property
    def public_key(self) -> PublicKey: ...

    def sign(self, data: bytes) -> bytes: ...


_SigningKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


class PrivateKeySigner:
    """A :class:`Signer` over an in-memory private key (Ed25519, ECDSA, RSA).

    ECDSA uses the curve's hash (RFC 5656 §6.2.1); RSA signs ``rsa-sha2-512`` (RFC 8332,
    docs/tokens.md#key-and-signature-types).
    """

    __slots__ = ("_curve", "_key", "_public_key")

    def __init__(self, private_key: _SigningKey) -> None:
        self._curve: EcCurve | None = None
        if isinstance(private_key, ec.EllipticCurvePrivateKey):
            self._curve = CURVES_BY_NAME.get(private_key.curve.name)
            if self._curve is None:
                raise ValueError(f"unsupported elliptic curve {private_key.curve.name}")
        elif isinstance(private_key, rsa.RSAPrivateKey) and not (
            MIN_RSA_BITS <= private_key.key_size <= MAX_RSA_BITS
        ):
            raise ValueError(
                f"RSA key of {private_key.key_size} bits is outside "
                f"{MIN_RSA_BITS}..{MAX_RSA_BITS} bits"
            )
        elif not isinstance(private_key, ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey):
            raise ValueError(f"unsupported key type {type(private_key).__name__}")
        self._key = private_key
        line = private_key.public_key().public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH)
        try:
            self._public_key = public_key_from_blob(base64.b64decode(line.split()[1]))
        except PublicKeyError as exc:  # e.g. an RSA exponent outside docs/security.md#key-limits
            raise ValueError(exc.detail) from None

    @property
    def public_key(self) -> PublicKey:
        return self._public_key

    @property
    def private_key(self) -> _SigningKey:
        return self._key

    def sign(self, data: bytes) -> bytes:
        key = self._key
        if isinstance(key, ed25519.Ed25519PrivateKey):
            return write_string(b"ssh-ed25519") + write_string(key.sign(data))
        if isinstance(key, ec.EllipticCurvePrivateKey):
            assert self._curve is not None
            r, s = decode_dss_signature(key.sign(data, self._curve.ecdsa))
            sigblob = write_mpint(r) + write_mpint(s)
            return write_string(self._curve.signature_format) + write_string(sigblob)
        sigblob = key.sign(data, _PKCS1V15, hashes.SHA512())
        return write_string(b"rsa-sha2-512") + write_string(sigblob)


def generate_ed25519() -> PrivateKeySigner:
    """A fresh in-memory Ed25519 key pair (docs/ssh.md#ssh-key-generate-api-key)."""
    return PrivateKeySigner(ed25519.Ed25519PrivateKey.generate())


_OPENSSH_PRIVATE_HEADER = b"-----BEGIN OPENSSH PRIVATE KEY-----"
_OPENSSH_PRIVATE_FOOTER = b"-----END OPENSSH PRIVATE KEY-----"
_OPENSSH_KEY_MAGIC = b"openssh-key-v1\0"


def _openssh_key_type(data: bytes) -> str | None:
    """The type of the first public key in an OpenSSH private key file, if readable.

    OpenSSH PROTOCOL.key: magic, string cipher, string kdf, string kdf options,
    uint32 count, then the public key blobs (readable even when the keys are encrypted).
    """
    _head, _sep, rest = data.partition(_OPENSSH_PRIVATE_HEADER)
    body, _sep, _tail = rest.partition(_OPENSSH_PRIVATE_FOOTER)
    try:
        raw = binascii.a2b_base64(b"".join(body.split()))
        if not raw.startswith(_OPENSSH_KEY_MAGIC):
            return None
        pos = len(_OPENSSH_KEY_MAGIC)
        for _field in ("cipher", "kdf", "kdf options"):
            _value, pos = read_string(raw, pos)
        _count, pos = read_uint32(raw, pos)
        public_blob, pos = read_string(raw, pos)
        key_type, _pos = read_string(public_blob)
        return key_type.decode("ascii")
    except (ValueError, binascii.Error):
        return None


def load_private_key(
    path: str | os.PathLike[str], passphrase: bytes | None = None
) -> PrivateKeySigner:
    """Load an OpenSSH or PEM private key file (docs/client.md#sshmint-mint).

    ``passphrase`` is used only when the file is encrypted. Raises
    :class:`KeyEncryptedError` when it is encrypted and no passphrase was given, and
    :class:`PrivateKeyError` for everything else (unreadable, wrong passphrase,
    unsupported type).
    """
    name = os.fspath(path)
    try:
        data = read_key_file(path)
    except OSError as exc:
        raise PrivateKeyError(f"cannot read key {name}: {exc.strerror or exc}") from None
    except ValueError:
        raise PrivateKeyError(f"key {name} is too large to be a private key") from None
    loader: Callable[[bytes, bytes | None], PrivateKeyTypes]
    if _OPENSSH_PRIVATE_HEADER in data:
        if _openssh_key_type(data) in SK_KEY_TYPES:
            # The private half lives on the authenticator; sshmint never signs with
            # sk keys itself (docs/tokens.md#key-and-signature-types), but ssh-agent can.
            raise PrivateKeyError(
                f"cannot use key {name}: security keys (sk-*) sign through ssh-agent; "
                f"give the public key {name}.pub instead"
            )
        loader = load_ssh_private_key
    elif b"PRIVATE KEY-----" in data:
        loader = load_pem_private_key
    else:
        raise PrivateKeyError(f"key {name} is not an OpenSSH or PEM private key")
    try:
        try:
            with warnings.catch_warnings():
                # DSA files warn on load; they are refused below anyway.
                warnings.simplefilter("ignore", CryptographyDeprecationWarning)
                key = loader(data, None)
        except TypeError:  # cryptography: encrypted and no password given
            if passphrase is None:
                raise KeyEncryptedError(name) from None
            try:
                key = loader(data, passphrase)
            except ValueError:  # "broken checksum" / "Bad decrypt"
                raise PrivateKeyError(f"cannot decrypt key {name}: wrong passphrase") from None
    except UnsupportedAlgorithm as exc:
        raise PrivateKeyError(f"cannot load key {name}: {exc}") from None
    except (ValueError, TypeError, OverflowError):
        raise PrivateKeyError(f"cannot load key {name}: not a valid private key") from None
    if not isinstance(key, _SigningKey):
        raise PrivateKeyError(
            f"cannot use key {name}: {type(key).__name__.removeprefix('_')} keys cannot sign "
            "(use ed25519, ecdsa or rsa)"
        )
    try:
        return PrivateKeySigner(key)
    except ValueError as exc:
        raise PrivateKeyError(f"cannot use key {name}: {exc}") from None
