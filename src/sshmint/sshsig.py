"""SSHSIG blobs (OpenSSH PROTOCOL.sshsig): parse, emit, armor, sign and verify.

The blob layout and the rules that make one malformed are SPEC §1.3; the data that the
SSH signature covers is SPEC §1.4. Parsing is strict: every length is checked against
the bytes present, every structure must be used up exactly, and any failure is a
:class:`~sshmint.errors.MalformedSignatureError` (never another exception type).
"""

from __future__ import annotations

import binascii
import functools
import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from sshmint.errors import MalformedSignatureError, PublicKeyError
from sshmint.keys import RSA, SK_KEY_TYPES, PublicKey, Signer, public_key_from_blob
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
#: SPEC §1.6. Anything else is malformed (§1.3).
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

_RSA_SIGNATURE_FORMATS = (b"rsa-sha2-256", b"rsa-sha2-512")  # SPEC §1.3, RFC 8332
_SK_SIGNATURE_FORMATS = tuple(t.encode() for t in SK_KEY_TYPES)
_HASH_NAMES = {name.encode("ascii"): name for name in HASH_ALGORITHMS}


@dataclass(frozen=True)  # no slots: a frozen slotted dataclass is slower to build
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
    def signature_format(self) -> str:
        """The signature algorithm name, e.g. ``ssh-ed25519`` or ``rsa-sha2-512``."""
        try:
            return read_string(self.signature)[0].decode("ascii")
        except (WireError, UnicodeDecodeError):
            return ""


def parse_sshsig(blob: bytes) -> SSHSig:
    """Parse a binary SSHSIG blob under every SPEC §1.3 rule.

    Raises :class:`MalformedSignatureError` (with a ``detail``) on any failure.
    """
    if len(blob) > MAX_SSHSIG_BYTES:
        raise MalformedSignatureError("signature blob too large")
    if type(blob) is not bytes:
        blob = bytes(blob)  # slices must be hashable bytes (the key cache is keyed on them)
    if blob[:6] != MAGIC:  # PROTOCOL.sshsig: byte[6] MAGIC_PREAMBLE
        raise MalformedSignatureError("wrong magic")
    try:
        version, pos = read_uint32(blob, 6)
        if version != VERSION:
            raise MalformedSignatureError(f"unsupported version {version}")
        public_key, pos = read_string(blob, pos)
        namespace, pos = read_string(blob, pos)
        reserved, pos = read_string(blob, pos)
        raw_hash, pos = read_string(blob, pos)
        signature, pos = read_string(blob, pos)
        expect_end(blob, pos, "the signature field")
        hash_algorithm = _HASH_NAMES.get(raw_hash)
        if hash_algorithm is None:
            raise MalformedSignatureError(
                f"unsupported hash algorithm {raw_hash.decode('ascii', 'replace')!r}"
            )
        key_type = public_key_from_blob(public_key).key_type
        # The signature field: string format, string sigblob (+ byte flags, uint32
        # counter for the sk formats, PROTOCOL.u2f), and nothing more.
        fmt, sig_pos = read_string(signature)
        _sigblob, sig_pos = read_string(signature, sig_pos)
        if fmt in _SK_SIGNATURE_FORMATS:
            _flags, sig_pos = read_byte(signature, sig_pos)
            _counter, sig_pos = read_uint32(signature, sig_pos)
        expect_end(signature, sig_pos, "the signature")
        # SPEC §1.3: an RSA key signs rsa-sha2-256/512 only; SHA-1 `ssh-rsa` is refused.
        if key_type == RSA and fmt not in _RSA_SIGNATURE_FORMATS:
            raise MalformedSignatureError(
                f"RSA signature format {fmt.decode('ascii', 'replace')!r} is not allowed"
            )
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
    """The bytes the SSH signature covers (SPEC §1.4), with an empty reserved field."""
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


def verify(sig: SSHSig, message: bytes, namespace: str, key: PublicKey) -> bool:
    """SPEC §1.4 rules 1-3: same key blob, same namespace, valid signature. Never raises."""
    if sig.public_key != key.blob:
        return False
    ns = namespace.encode("utf-8")
    if sig.namespace != ns:
        return False
    if sig.hash_algorithm not in HASH_ALGORITHMS:
        return False
    return key.verify(sig.signature, signed_data(ns, sig.hash_algorithm, message))
