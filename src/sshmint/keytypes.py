"""The key types of docs/tokens.md#key-and-signature-types: their names and limits, and for
each one small class that reads its blob and checks its SSH signatures, dispatched by one
table (``_KEY_FORMATS``: supporting a type is one entry).

Only these seven types exist here. Parsed key material is cached per blob
(``functools.lru_cache``): building an RSA or EC key object costs more than checking a
signature with it. A key outside the docs/security.md#key-limits limits parses (as
:class:`_OutsideLimits`, which verifies nothing), so that a token signed by it is well
formed and refused as not registered; :mod:`sshmint.keys` builds the public API on this.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from sshmint.ed25519 import ED25519_SIGNATURE_BYTES, Ed25519Verifier, ed25519_verifier
from sshmint.errors import PublicKeyError
from sshmint.wire import (
    WireError,
    expect_end,
    read_byte,
    read_mpint,
    read_string,
    read_uint32,
    write_string,
)

__all__ = [
    "CURVES_BY_NAME",
    "ECDSA_P256",
    "ECDSA_P384",
    "ECDSA_P521",
    "ED25519",
    "ED25519_SIGNATURE_HEAD",
    "KEY_TYPES",
    "MAX_RSA_BITS",
    "MAX_RSA_EXPONENT",
    "MIN_RSA_BITS",
    "MIN_RSA_EXPONENT",
    "RSA",
    "SIGNING_KEY_TYPES",
    "SK_ECDSA_P256",
    "SK_ED25519",
    "SK_KEY_TYPES",
    "EcCurve",
    "Material",
    "check_type_name",
    "material",
    "quote_detail",
    "signature_valid",
]

ED25519 = "ssh-ed25519"
ECDSA_P256 = "ecdsa-sha2-nistp256"
ECDSA_P384 = "ecdsa-sha2-nistp384"
ECDSA_P521 = "ecdsa-sha2-nistp521"
RSA = "ssh-rsa"
SK_ED25519 = "sk-ssh-ed25519@openssh.com"
SK_ECDSA_P256 = "sk-ecdsa-sha2-nistp256@openssh.com"

#: docs/tokens.md#key-and-signature-types, in table order.
KEY_TYPES: tuple[str, ...] = (
    ED25519,
    ECDSA_P256,
    ECDSA_P384,
    ECDSA_P521,
    RSA,
    SK_ED25519,
    SK_ECDSA_P256,
)
#: The types sshmint can sign with (docs/tokens.md#key-and-signature-types "sign + verify").
SIGNING_KEY_TYPES: tuple[str, ...] = KEY_TYPES[:5]
#: Security-key types: verify only.
SK_KEY_TYPES: tuple[str, ...] = (SK_ED25519, SK_ECDSA_P256)

MIN_RSA_BITS = 1024  # docs/tokens.md#key-and-signature-types / docs/accounts.md#ssh-keys
MAX_RSA_BITS = 16384  # OpenSSH SSH_RSA_MAXIMUM_MODULUS_SIZE
MIN_RSA_EXPONENT = 3  # docs/security.md#key-limits: odd, at least 3 ...
MAX_RSA_EXPONENT = 1 << 24  # ... and below 2^24

_CERT_SUFFIX = "-cert-v01@openssh.com"
_RSA_SIGNATURE_HASHES: dict[bytes, hashes.HashAlgorithm] = {
    b"rsa-sha2-256": hashes.SHA256(),
    b"rsa-sha2-512": hashes.SHA512(),
}
_PKCS1V15 = padding.PKCS1v15()
_SK_ECDSA_HASH = ec.ECDSA(hashes.SHA256())

# Exceptions that garbage can raise from the wire readers and from `cryptography`
# (corrupt RSA numbers raise OverflowError, not only ValueError).
_BAD_INPUT = (ValueError, TypeError, OverflowError, InvalidSignature, UnsupportedAlgorithm)


@dataclass(frozen=True, slots=True)
class EcCurve:
    """An ECDSA curve of docs/tokens.md#key-and-signature-types, as keys and signatures name it."""

    ssh_name: bytes  # the curve identifier inside the blob, RFC 5656 §6.1
    key_type: str
    curve: ec.EllipticCurve
    ecdsa: ec.ECDSA  # RFC 5656 §6.2.1: the hash follows the curve size
    bits: int

    @property
    def signature_format(self) -> bytes:  # RFC 5656 §3.1.2: same name as the key type
        return self.key_type.encode()


_CURVES: dict[bytes, EcCurve] = {
    c.ssh_name: c
    for c in (
        EcCurve(b"nistp256", ECDSA_P256, ec.SECP256R1(), ec.ECDSA(hashes.SHA256()), 256),
        EcCurve(b"nistp384", ECDSA_P384, ec.SECP384R1(), ec.ECDSA(hashes.SHA384()), 384),
        EcCurve(b"nistp521", ECDSA_P521, ec.SECP521R1(), ec.ECDSA(hashes.SHA512()), 521),
    )
}
CURVES_BY_NAME: dict[str, EcCurve] = {c.curve.name: c for c in _CURVES.values()}


def quote_detail(raw: bytes | str, limit: int = 64) -> str:
    """A short printable rendering of untrusted text for error details."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    if len(text) > limit:
        text = text[:limit] + "..."
    return '"' + text.encode("unicode_escape").decode("ascii").replace('"', '\\"') + '"'


#: RFC 8709 §6: every well-formed ``ssh-ed25519`` SSH signature is this head (string
#: "ssh-ed25519", then the length of a 64-byte sigblob) followed by the 64 bytes.
ED25519_SIGNATURE_HEAD = write_string(b"ssh-ed25519") + ED25519_SIGNATURE_BYTES.to_bytes(4, "big")
_ED25519_HEAD_LENGTH = len(ED25519_SIGNATURE_HEAD)
_ED25519_SIGNATURE_LENGTH = _ED25519_HEAD_LENGTH + ED25519_SIGNATURE_BYTES


# --- parsed key material ------------------------------------------------------------
#
# One small class per key type. `check(signature, data)` returns True for a valid SSH
# signature (RFC 4253 §6.6 envelope: string format, string sigblob [, byte flags,
# uint32 counter for sk]) and False for a format that does not match the key type
# (docs/tokens.md#key-and-signature-types); garbage raises one of _BAD_INPUT, which signature_valid turns into False.
# `limit_error` is None except for a key that breaks the docs/security.md#key-limits limits.


def _sk_message(app_hash: bytes, flags: int, counter: int, data: bytes) -> bytes:
    # OpenSSH PROTOCOL.u2f "SSH U2F signatures": what the authenticator signed.
    return app_hash + bytes((flags,)) + counter.to_bytes(4, "big") + hashlib.sha256(data).digest()


def _ecdsa_der(sigblob: bytes) -> bytes:
    # RFC 5656 §3.1.2: the sigblob is `mpint r, mpint s` with nothing after it.
    r, pos = read_mpint(sigblob)
    s, pos = read_mpint(sigblob, pos)
    expect_end(sigblob, pos, "ECDSA signature")
    return encode_dss_signature(r, s)


class _Ed25519:
    __slots__ = ("verify_signature",)
    limit_error: str | None = None
    application: bytes | None = None  # sk-* keys only
    key_type = ED25519
    bits = 256

    def __init__(self, verify_signature: Ed25519Verifier) -> None:
        self.verify_signature = verify_signature

    def check(self, signature: bytes, data: bytes) -> bool:
        # RFC 8709 §6: string "ssh-ed25519", string sigblob (64 bytes). Any valid one is
        # exactly ED25519_SIGNATURE_HEAD + 64 bytes, so one comparison reads the envelope.
        return (
            len(signature) == _ED25519_SIGNATURE_LENGTH
            and signature[:_ED25519_HEAD_LENGTH] == ED25519_SIGNATURE_HEAD
            and self.verify_signature(signature[_ED25519_HEAD_LENGTH:], data)
        )


class _Ecdsa:
    __slots__ = ("curve", "key")
    limit_error: str | None = None
    application: bytes | None = None  # sk-* keys only

    def __init__(self, key: ec.EllipticCurvePublicKey, curve: EcCurve) -> None:
        self.key = key
        self.curve = curve

    @property
    def key_type(self) -> str:
        return self.curve.key_type

    @property
    def bits(self) -> int:
        return self.curve.bits

    def check(self, signature: bytes, data: bytes) -> bool:
        fmt, pos = read_string(signature)
        sigblob, pos = read_string(signature, pos)
        if pos != len(signature) or fmt != self.curve.signature_format:
            return False
        self.key.verify(_ecdsa_der(sigblob), data, self.curve.ecdsa)
        return True


class _Rsa:
    __slots__ = ("bits", "key", "size")
    limit_error: str | None = None
    application: bytes | None = None  # sk-* keys only
    key_type = RSA

    def __init__(self, key: rsa.RSAPublicKey) -> None:
        self.key = key
        self.bits = key.key_size
        self.size = (key.key_size + 7) // 8

    def check(self, signature: bytes, data: bytes) -> bool:
        fmt, pos = read_string(signature)
        sigblob, pos = read_string(signature, pos)
        algorithm = _RSA_SIGNATURE_HASHES.get(fmt)  # RFC 8332; SHA-1 `ssh-rsa` refused
        if pos != len(signature) or algorithm is None or len(sigblob) > self.size:
            return False
        # OpenSSH (ssh-rsa.c) accepts a signature shorter than the modulus by
        # left-padding it with zeros; OpenSSL wants the full length.
        sigblob = sigblob.rjust(self.size, b"\0")
        self.key.verify(sigblob, data, _PKCS1V15, algorithm)
        return True


def _read_sk_signature(signature: bytes, expected_format: bytes) -> tuple[bytes, int, int] | None:
    """PROTOCOL.u2f: string format, string sigblob, byte flags, uint32 counter."""
    fmt, pos = read_string(signature)
    sigblob, pos = read_string(signature, pos)
    flags, pos = read_byte(signature, pos)
    counter, pos = read_uint32(signature, pos)
    if pos != len(signature) or fmt != expected_format:
        return None
    return sigblob, flags, counter


class _SkEd25519:
    __slots__ = ("app_hash", "application", "verify_signature")
    limit_error: str | None = None
    key_type = SK_ED25519
    bits = 256

    def __init__(self, verify_signature: Ed25519Verifier, application: bytes) -> None:
        self.verify_signature = verify_signature
        self.application = application
        self.app_hash = hashlib.sha256(application).digest()

    def check(self, signature: bytes, data: bytes) -> bool:
        parts = _read_sk_signature(signature, b"sk-ssh-ed25519@openssh.com")
        if parts is None:
            return False
        sigblob, flags, counter = parts
        # The user-presence flag is not required (docs/tokens.md#key-and-signature-types).
        return self.verify_signature(sigblob, _sk_message(self.app_hash, flags, counter, data))


class _SkEcdsa:
    __slots__ = ("app_hash", "application", "key")
    limit_error: str | None = None
    key_type = SK_ECDSA_P256
    bits = 256

    def __init__(self, key: ec.EllipticCurvePublicKey, application: bytes) -> None:
        self.key = key
        self.application = application
        self.app_hash = hashlib.sha256(application).digest()

    def check(self, signature: bytes, data: bytes) -> bool:
        parts = _read_sk_signature(signature, b"sk-ecdsa-sha2-nistp256@openssh.com")
        if parts is None:
            return False
        sigblob, flags, counter = parts
        message = _sk_message(self.app_hash, flags, counter, data)
        self.key.verify(_ecdsa_der(sigblob), message, _SK_ECDSA_HASH)
        return True


class _OutsideLimits:
    """A key that parses but breaks a docs/security.md#key-limits limit: it verifies nothing, ever.

    Kept as parsed material (not a parse error) so that a token signed by such a key is
    well formed (step 15) and refused as not registered (step 18), while every parser
    that registers keys refuses it with ``limit_error`` as the detail.
    """

    __slots__ = ("bits", "key_type", "limit_error")
    application: bytes | None = None

    def __init__(self, key_type: str, bits: int, limit_error: str) -> None:
        self.key_type = key_type
        self.bits = bits
        self.limit_error: str | None = limit_error

    def check(self, signature: bytes, data: bytes) -> bool:
        return False


Material = _Ed25519 | _Ecdsa | _Rsa | _SkEd25519 | _SkEcdsa | _OutsideLimits


def _ec_point(curve_name: bytes, point: bytes, expected: EcCurve) -> ec.EllipticCurvePublicKey:
    if curve_name != expected.ssh_name:
        raise PublicKeyError(f"curve {quote_detail(curve_name)} does not match the key type")
    # OpenSSH (sshbuf_get_ec) only takes uncompressed points (SEC1 0x04 prefix).
    if point[:1] != b"\x04":
        raise PublicKeyError("EC point is not in uncompressed form")
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(expected.curve, point)
    except _BAD_INPUT:
        raise PublicKeyError("invalid EC point") from None


def _ed25519_verifier_for(point: bytes) -> Ed25519Verifier:
    if len(point) != 32:  # RFC 8709 §4
        raise PublicKeyError("Ed25519 key is not 32 bytes")
    try:
        # Validation stays cryptography's whatever the backend, so the set of keys that
        # parse does not depend on it.
        ed25519.Ed25519PublicKey.from_public_bytes(point)
    except _BAD_INPUT:
        raise PublicKeyError("invalid Ed25519 key") from None
    return ed25519_verifier(point)


# --- reading key blobs: one reader per type (docs/tokens.md#key-and-signature-types) -------------------------------
#
# Each reader takes the blob and the offset after the type name and returns the parsed
# material and the offset after its last field; `material` then checks that the blob
# ends there. `_KEY_FORMATS` maps every supported type name to its reader, so supporting
# a type is one entry (as pyca/cryptography dispatches its SSH key formats).

_KeyReader = Callable[[bytes, int], tuple[Material, int]]


def _read_ed25519(blob: bytes, pos: int) -> tuple[Material, int]:
    point, pos = read_string(blob, pos)  # RFC 8709 §4: string key
    return _Ed25519(_ed25519_verifier_for(point)), pos


def _ecdsa_reader(curve: EcCurve) -> _KeyReader:
    def read(blob: bytes, pos: int) -> tuple[Material, int]:
        curve_name, pos = read_string(blob, pos)  # RFC 5656 §3.1: string curve, string Q
        point, pos = read_string(blob, pos)
        return _Ecdsa(_ec_point(curve_name, point, curve), curve), pos

    return read


def _read_rsa(blob: bytes, pos: int) -> tuple[Material, int]:
    e, pos = read_mpint(blob, pos)  # RFC 4253 §6.6: mpint e, mpint n
    n, pos = read_mpint(blob, pos)
    bits = n.bit_length()
    if bits < MIN_RSA_BITS:
        raise PublicKeyError(f"RSA key of {bits} bits is too small (minimum {MIN_RSA_BITS})")
    if bits > MAX_RSA_BITS:
        raise PublicKeyError(f"RSA key of {bits} bits is too large (maximum {MAX_RSA_BITS})")
    problem = _rsa_exponent_problem(e)
    if problem is not None:
        # Kept apart, never handed to OpenSSL: a huge exponent makes every check of a
        # garbage signature cost milliseconds (docs/security.md#key-limits).
        return _OutsideLimits(RSA, bits, problem), pos
    try:
        return _Rsa(rsa.RSAPublicNumbers(e, n).public_key()), pos
    except _BAD_INPUT:
        raise PublicKeyError("invalid RSA key") from None


def _read_sk_ed25519(blob: bytes, pos: int) -> tuple[Material, int]:
    point, pos = read_string(blob, pos)  # PROTOCOL.u2f: string key, string application
    application, pos = read_string(blob, pos)
    return _SkEd25519(_ed25519_verifier_for(point), application), pos


def _read_sk_ecdsa(blob: bytes, pos: int) -> tuple[Material, int]:
    # PROTOCOL.u2f: string curve, string Q, string application
    curve_name, pos = read_string(blob, pos)
    point, pos = read_string(blob, pos)
    application, pos = read_string(blob, pos)
    return _SkEcdsa(_ec_point(curve_name, point, _CURVES[b"nistp256"]), application), pos


_KEY_FORMATS: dict[str, _KeyReader] = {
    ED25519: _read_ed25519,
    ECDSA_P256: _ecdsa_reader(_CURVES[b"nistp256"]),
    ECDSA_P384: _ecdsa_reader(_CURVES[b"nistp384"]),
    ECDSA_P521: _ecdsa_reader(_CURVES[b"nistp521"]),
    RSA: _read_rsa,
    SK_ED25519: _read_sk_ed25519,
    SK_ECDSA_P256: _read_sk_ecdsa,
}
assert tuple(_KEY_FORMATS) == KEY_TYPES, (
    "one reader per docs/tokens.md#key-and-signature-types type, in table order"
)


def check_type_name(raw: bytes) -> str:
    try:
        key_type = raw.decode("ascii")
    except UnicodeDecodeError:
        raise PublicKeyError(f"unsupported key type {quote_detail(raw)}") from None
    if key_type not in _KEY_FORMATS:
        if key_type.endswith(_CERT_SUFFIX):
            raise PublicKeyError(f"certificates are not supported ({quote_detail(key_type)})")
        raise PublicKeyError(f"unsupported key type {quote_detail(key_type)}")
    return key_type


@functools.lru_cache(maxsize=4096)
def material(blob: bytes) -> Material:
    """Parse a public key blob strictly (cached per blob); raises PublicKeyError.

    Structure only: a key outside the docs/security.md#key-limits limits parses, as :class:`_OutsideLimits`.
    """
    try:
        raw_type, pos = read_string(blob)
        material, pos = _KEY_FORMATS[check_type_name(raw_type)](blob, pos)
        expect_end(blob, pos, "the key")
    except WireError as exc:
        raise PublicKeyError(f"malformed key blob: {exc}") from None
    return material


def _rsa_exponent_problem(e: int) -> str | None:
    """docs/security.md#key-limits: why ``e`` is refused as an RSA public exponent, or None when it is fine.

    The exponent must be odd, at least 3 and below 2^24 (x/crypto/ssh's limit).
    """
    if e < MIN_RSA_EXPONENT:
        return f"RSA public exponent {e} is too small (at least {MIN_RSA_EXPONENT})"
    if e >= MAX_RSA_EXPONENT:
        return (
            f"RSA public exponent of {e.bit_length()} bits is too large "
            f"(at most {MAX_RSA_EXPONENT.bit_length() - 1} bits)"
        )
    if not e & 1:
        return f"RSA public exponent {e} is even"
    return None


def signature_valid(blob: bytes, signature: bytes, data: bytes) -> bool:
    """Whether ``signature`` (an SSH signature) is valid for ``data`` under the key ``blob``.
    Never raises: garbage, and a blob that does not parse, are simply not valid."""
    try:
        return material(blob).check(signature, data)
    except (*_BAD_INPUT, PublicKeyError):
        return False
