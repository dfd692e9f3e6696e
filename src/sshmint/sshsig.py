"""SSHSIG blobs (OpenSSH PROTOCOL.sshsig): parse, emit, armor, sign and verify.

The blob layout and the rules that make one malformed are docs/tokens.md#sshsig-blob; the data that the
SSH signature covers is docs/tokens.md#signed-data. Parsing is strict: every length is checked against
the bytes present, every structure must be used up exactly, and any failure is a
:class:`~sshmint.errors.MalformedSignatureError` (never another exception type).
"""

from __future__ import annotations

import binascii
import functools
import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from sshmint.ed25519 import ED25519_SIGNATURE_BYTES
from sshmint.errors import MalformedSignatureError, PublicKeyError
from sshmint.keys import PublicKey, embedded_public_key
from sshmint.keytypes import ED25519, ED25519_SIGNATURE_HEAD, RSA, SK_KEY_TYPES
from sshmint.signing import Signer
from sshmint.valuetypes import value_type
from sshmint.wire import (
    WireError,
    expect_end,
    read_byte,
    read_string,
    read_uint32,
    write_string,
    write_uint32,
)

__all__ = [
    "ARMOR_BEGIN",
    "ARMOR_END",
    "HASH_ALGORITHMS",
    "MAGIC",
    "MAX_SSHSIG_BYTES",
    "VERSION",
    "SSHSig",
    "armor",
    "dearmor",
    "encode_sshsig",
    "parse_sshsig",
    "sign",
    "signed_data",
    "verify",
]

MAGIC = b"SSHSIG"
VERSION = 1
#: docs/tokens.md#hash-algorithms. Anything else is malformed (docs/tokens.md#sshsig-blob).
HASH_ALGORITHMS: dict[str, Callable[[bytes], hashlib._Hash]] = {
    "sha256": hashlib.sha256,
    "sha512": hashlib.sha512,
}
# Far above any real blob (a 16384-bit RSA key and signature need about 4.2 KiB).
MAX_SSHSIG_BYTES = 64 * 1024

ARMOR_BEGIN = "-----BEGIN SSH SIGNATURE-----"
ARMOR_END = "-----END SSH SIGNATURE-----"
_ARMOR_LINE = 70  # ssh-keygen's sshsig_armor() wraps at 70 columns
_MAX_ARMOR_CHARS = 2 * MAX_SSHSIG_BYTES

_RSA_SIGNATURE_FORMATS = (b"rsa-sha2-256", b"rsa-sha2-512")  # docs/tokens.md#sshsig-blob, RFC 8332
_SK_SIGNATURE_FORMATS = tuple(t.encode() for t in SK_KEY_TYPES)
_HASH_NAMES = {name.encode("ascii"): name for name in HASH_ALGORITHMS}
_VERSION_BYTES = VERSION.to_bytes(4, "big")
_ED25519_SIGNATURE_LENGTH = len(ED25519_SIGNATURE_HEAD) + ED25519_SIGNATURE_BYTES


@value_type
@dataclass(frozen=True, slots=True)
class SSHSig:
    """The fields of an SSHSIG blob (PROTOCOL.sshsig §2).

    ``signature`` is the whole SSH signature: ``string format, string sigblob`` and, for
    security keys, ``byte flags, uint32 counter``.
    """

    public_key: bytes
    namespace: bytes
    reserved: bytes
    hash_algorithm: str
    signature: bytes

    @property
    def key(self) -> PublicKey:
        """The embedded public key, parsed for structure (cached per blob; see
        :func:`sshmint.keys.embedded_public_key` for the docs/security.md#key-limits limits).

        Never raises for a blob from :func:`parse_sshsig`, which has validated the key;
        for a hand-built one it raises :class:`~sshmint.errors.PublicKeyError`.
        """
        return embedded_public_key(self.public_key)

    @property
    def signature_format(self) -> str:
        """The signature algorithm name, e.g. ``ssh-ed25519`` or ``rsa-sha2-512``."""
        try:
            return read_string(self.signature)[0].decode("ascii")
        except (WireError, UnicodeDecodeError):
            return ""


def _check_signature_field(signature: bytes, key_type: str) -> None:
    """The ``signature`` field of docs/tokens.md#sshsig-blob for a key of ``key_type``; raises on a violation.

    RFC 4253 §6.6: string format, string sigblob; PROTOCOL.u2f adds byte flags and uint32
    counter for the sk formats; nothing may follow.
    """
    fmt, pos = read_string(signature)
    _sigblob, pos = read_string(signature, pos)
    if fmt in _SK_SIGNATURE_FORMATS:
        _flags, pos = read_byte(signature, pos)
        _counter, pos = read_uint32(signature, pos)
    expect_end(signature, pos, "the signature")
    # docs/tokens.md#sshsig-blob: an RSA key signs rsa-sha2-256/512 only; SHA-1 `ssh-rsa` is refused.
    if key_type == RSA and fmt not in _RSA_SIGNATURE_FORMATS:
        raise MalformedSignatureError(
            f"RSA signature format {fmt.decode('ascii', 'replace')!r} is not allowed"
        )


def parse_sshsig(blob: bytes) -> SSHSig:
    """Parse a binary SSHSIG blob under every docs/tokens.md#sshsig-blob rule.

    Raises :class:`MalformedSignatureError` (with a ``detail``) on any failure. The
    embedded key is validated and cached, so :attr:`SSHSig.key` of the result is free.
    """
    if len(blob) > MAX_SSHSIG_BYTES:
        raise MalformedSignatureError("signature blob too large")
    if type(blob) is not bytes:
        blob = bytes(blob)  # slices must be hashable bytes (the key cache is keyed on them)
    if blob[:6] != MAGIC:  # PROTOCOL.sshsig: byte[6] MAGIC_PREAMBLE
        raise MalformedSignatureError("wrong magic")
    try:
        if blob[6:10] != _VERSION_BYTES:  # uint32 SIG_VERSION, exactly 1
            version, _pos = read_uint32(blob, 6)
            raise MalformedSignatureError(f"unsupported version {version}")
        public_key, pos = read_string(blob, 10)
        namespace, pos = read_string(blob, pos)
        reserved, pos = read_string(blob, pos)
        raw_hash, pos = read_string(blob, pos)
        signature, pos = read_string(blob, pos)
        expect_end(blob, pos, "the signature field")
        hash_algorithm = _HASH_NAMES.get(raw_hash)  # docs/tokens.md#hash-algorithms
        if hash_algorithm is None:
            raise MalformedSignatureError(
                f"unsupported hash algorithm {raw_hash.decode('ascii', 'replace')!r}"
            )
        key_type = embedded_public_key(public_key).key_type
        # The common case in one comparison: an ssh-ed25519 key with a signature field of
        # the one well-formed ssh-ed25519 shape (the full check gives the same answer).
        if not (
            key_type == ED25519
            and len(signature) == _ED25519_SIGNATURE_LENGTH
            and signature.startswith(ED25519_SIGNATURE_HEAD)
        ):
            _check_signature_field(signature, key_type)
    except WireError as exc:
        raise MalformedSignatureError(str(exc)) from None
    except PublicKeyError as exc:
        raise MalformedSignatureError(f"public key: {exc.detail}") from None
    return SSHSig(public_key, namespace, reserved, hash_algorithm, signature)


def encode_sshsig(sig: SSHSig) -> bytes:
    """The binary blob of PROTOCOL.sshsig §2 (the inverse of :func:`parse_sshsig`)."""
    return b"".join(
        (
            MAGIC,
            VERSION.to_bytes(4, "big"),
            write_string(sig.public_key),
            write_string(sig.namespace),
            write_string(sig.reserved),
            write_string(sig.hash_algorithm.encode("ascii")),
            write_string(sig.signature),
        )
    )


def armor(blob: bytes) -> str:
    """The ``-----BEGIN SSH SIGNATURE-----`` text exactly as ``ssh-keygen -Y sign`` writes it."""
    encoded = binascii.b2a_base64(blob, newline=False).decode("ascii")
    lines = [encoded[i : i + _ARMOR_LINE] for i in range(0, len(encoded), _ARMOR_LINE)]
    return "\n".join((ARMOR_BEGIN, *lines, ARMOR_END)) + "\n"


def dearmor(text: str) -> bytes:
    """The binary blob inside an armored signature; raises MalformedSignatureError.

    Surrounding whitespace and any line length are accepted (as ssh-keygen does); the
    base64 must be canonical, padded standard base64.
    """
    if len(text) > _MAX_ARMOR_CHARS:
        raise MalformedSignatureError("armored signature too large")
    lines = text.strip().splitlines()
    if len(lines) < 2 or lines[0].strip() != ARMOR_BEGIN or lines[-1].strip() != ARMOR_END:
        raise MalformedSignatureError("missing SSH SIGNATURE armor lines")
    body = "".join(line.strip() for line in lines[1:-1])
    try:
        return binascii.a2b_base64(body.encode("ascii"), strict_mode=True)
    except (ValueError, binascii.Error):
        raise MalformedSignatureError("armored signature is not valid base64") from None


@functools.lru_cache(maxsize=1024)
def _signed_data_prefix(namespace: bytes, hash_algorithm: str) -> bytes:
    digest_size = hashlib.new(hash_algorithm).digest_size
    return b"".join(
        (
            MAGIC,
            write_string(namespace),
            write_string(b""),  # reserved
            write_string(hash_algorithm.encode("ascii")),
            write_uint32(digest_size),  # the length prefix of `string H(message)`
        )
    )


def signed_data(namespace: bytes, hash_algorithm: str, message: bytes) -> bytes:
    """The bytes the SSH signature covers (docs/tokens.md#signed-data), with an empty reserved field."""
    return (
        _signed_data_prefix(namespace, hash_algorithm)
        + HASH_ALGORITHMS[hash_algorithm](message).digest()
    )


def sign(message: bytes, namespace: str, signer: Signer, hash_algorithm: str = "sha512") -> bytes:
    """Sign ``message`` under ``namespace``; returns the binary SSHSIG blob.

    Byte-identical to ``ssh-keygen -Y sign`` for deterministic key types (Ed25519, RSA).
    """
    if hash_algorithm not in HASH_ALGORITHMS:
        raise ValueError(f"unsupported hash algorithm {hash_algorithm!r}")
    if not namespace:
        raise ValueError("namespace must not be empty")  # PROTOCOL.sshsig §2
    ns = namespace.encode("utf-8")
    signature = signer.sign(signed_data(ns, hash_algorithm, message))
    return encode_sshsig(SSHSig(signer.public_key.blob, ns, b"", hash_algorithm, signature))


@functools.lru_cache(maxsize=1024)
def _verification_context(
    namespace: str, hash_algorithm: str
) -> tuple[bytes, bytes, Callable[[bytes], hashlib._Hash]]:
    """``(namespace bytes, signed-data prefix, hash)``: what :func:`verify` needs per call."""
    ns = namespace.encode("utf-8")
    return ns, _signed_data_prefix(ns, hash_algorithm), HASH_ALGORITHMS[hash_algorithm]


def verify(sig: SSHSig, message: bytes, namespace: str, key: PublicKey) -> bool:
    """docs/tokens.md#signed-data rules 1-3: same key blob, same namespace, valid signature. Never raises."""
    if sig.public_key != key.blob:  # rule 1
        return False
    if (
        sig.hash_algorithm not in HASH_ALGORITHMS
    ):  # docs/tokens.md#hash-algorithms (a hand-built SSHSig)
        return False
    ns, prefix, hash_function = _verification_context(namespace, sig.hash_algorithm)
    if sig.namespace != ns:  # rule 2
        return False
    # Rule 3 over the signed data of docs/tokens.md#signed-data, built with the expected namespace.
    return key.verify(sig.signature, prefix + hash_function(message).digest())
