"""The starting material of the fuzzer: keys of every docs/tokens.md#key-and-signature-types type and valid tokens.

Everything is derived from one integer seed, so a run can be replayed exactly: Ed25519
and ECDSA keys from seeded scalars, RSA primes from a seeded Miller–Rabin search, ECDSA
signatures with deterministic nonces (RFC 6979), security-key ("sk") signatures made in
software as OpenSSH PROTOCOL.u2f lays them out. Signatures are built here rather than by
:mod:`sshmint.keys` because the corpus needs what sshmint never emits: ``rsa-sha2-256``,
the ``sha256`` SSHSIG hash, sk signatures, and an RSA key whose public exponent breaks
docs/security.md#key-limits (a key an older version could have stored).

:attr:`Corpus.acceptable` records what was really signed by a usable key — ``(key blob,
namespace, hash algorithm, payload)`` — which is the fuzzer's oracle: a token may verify
only if its signed bytes are one of these (never for the key outside the limits).
"""

from __future__ import annotations

import base64
import hashlib
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from sshmint.keys import PublicKey, embedded_public_key, limit_violation
from sshmint.sshsig import SSHSig, encode_sshsig, signed_data
from sshmint.token import EXE0_PREFIX, b64url_encode
from sshmint.wire import write_mpint, write_string, write_uint32

__all__ = [
    "EXPECTED_NAMESPACE",
    "NOW",
    "PAYLOADS",
    "Corpus",
    "CorpusKey",
    "SeedToken",
    "build_corpus",
    "curve_order",
    "make_token",
    "rsa_key_from_primes",
    "rsa_private_key",
    "rsa_public_blob",
    "rsa_test_key",
    "with_huge_exponent",
]

EXPECTED_NAMESPACE = "v0@localhost"  # what the fuzzed verifiers expect (docs/tokens.md#namespaces)
OTHER_NAMESPACES = ("v0@myvm.localhost", "v0@localhost.", "V0@localhost")
NOW = 2_000_000_000  # the fuzzer's fixed clock (2033-05-18)

#: Payloads of the seed tokens: valid ones, and valid JSON that fails a claim (3).
PAYLOADS: tuple[bytes, ...] = (
    b"{}",
    b'{"exp":4102444800}',
    b'{"exp":2100000000,"nbf":1000000000,"cmds":["whoami","ls"]}',
    b'{"cmds":[],"ctx":{"nested":[1,2,{"a":null}]}}',
    b'{"ctx":"hello","exp":null,"nbf":null,"cmds":null}',
    b'{"exp": 2100000000 ,"ctx":[true,false,1.5e3,"\\u00e9\\ud83d\\ude00"]}',
    b'{"ctx":{"\xc3\xa9":"\xe2\x80\xa8"}}',
    b'{"exp":1999999999}',  # expired at NOW (step 16)
    b'{"nbf":2000000001}',  # not yet valid at NOW (step 17)
    b'{"exp":2000000000,"nbf":2000000000}',  # both boundaries are valid
)


@dataclass(frozen=True)
class CorpusKey:
    """A key pair of the corpus: its public key and a function making SSH signatures."""

    name: str  # e.g. "ed25519", "rsa-sha2-256", "rsa-exponent-outside-limits"
    public_key: PublicKey
    sign: Callable[[bytes], bytes]  # signed data -> SSH signature (RFC 4253 §6.6 envelope)


@dataclass(frozen=True)
class SeedToken:
    key: str  # CorpusKey.name
    token: str
    payload: bytes
    namespace: str
    hash_algorithm: str


@dataclass
class Corpus:
    keys: list[CorpusKey]
    tokens: list[SeedToken]
    acceptable: set[tuple[bytes, bytes, str, bytes]] = field(default_factory=set)

    @property
    def registered(self) -> dict[str, PublicKey]:
        """Every corpus key by fingerprint (the legacy RSA key included): the key store."""
        return {k.public_key.fingerprint: k.public_key for k in self.keys}


# --- deterministic key material -------------------------------------------------------

_SMALL_PRIMES = tuple(p for p in range(3, 2000, 2) if all(p % d for d in range(3, p, 2)))
_SMALL_PRODUCT = math.prod(_SMALL_PRIMES)
RSA_BITS = 1024  # the smallest size docs/tokens.md#key-and-signature-types allows: the fastest to generate and check


def _probable_prime(n: int, rng: random.Random) -> bool:
    if math.gcd(n, _SMALL_PRODUCT) != 1:  # one operation sieves out most candidates
        return n in _SMALL_PRIMES
    d, s = n - 1, 0
    while d % 2 == 0:
        d, s = d // 2, s + 1
    for _ in range(16):  # Miller–Rabin rounds: plenty for test keys
        x = pow(rng.randrange(2, n - 1), d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = pow(x, 2, n)
            if x == n - 1:
                break
        else:
            return False
    return True


def _prime(bits: int, rng: random.Random) -> int:
    while True:
        candidate = rng.getrandbits(bits) | (3 << (bits - 2)) | 1  # top two bits: n = p*q
        if _probable_prime(candidate, rng):
            return candidate


def rsa_private_key(rng: random.Random, bits: int = RSA_BITS, e: int = 65537) -> rsa.RSAPrivateKey:
    """An RSA key from ``rng`` with public exponent ``e``; with ``e=0`` a random odd
    exponent of ``bits - 1`` bits (far outside docs/security.md#key-limits, yet a valid RSA key)."""
    while True:
        p, q = _prime(bits // 2, rng), _prime(bits // 2, rng)
        try:
            return rsa_key_from_primes(p, q, e or _huge_exponent(p, q, rng))
        except ValueError:  # e shares a factor with (p-1)(q-1): other primes
            continue


def _huge_exponent(p: int, q: int, rng: random.Random) -> int:
    lam, bits = math.lcm(p - 1, q - 1), (p * q).bit_length()
    while True:
        e = rng.getrandbits(bits - 1) | (1 << (bits - 2)) | 1
        if math.gcd(e, lam) == 1:
            return e


def rsa_key_from_primes(p: int, q: int, e: int) -> rsa.RSAPrivateKey:
    """The RSA private key over the primes ``p``, ``q`` with public exponent ``e``.

    Any ``e`` coprime to lcm(p-1, q-1) works, however large (raises ValueError if not).
    """
    lam = math.lcm(p - 1, q - 1)
    if p == q or math.gcd(e, lam) != 1:
        raise ValueError("e is not invertible modulo lcm(p-1, q-1)")
    d = pow(e, -1, lam)
    public = rsa.RSAPublicNumbers(e, p * q)
    return rsa.RSAPrivateNumbers(
        p, q, d, d % (p - 1), d % (q - 1), pow(q, -1, p), public
    ).private_key()


def with_huge_exponent(key: rsa.RSAPrivateKey, seed: int = 0) -> rsa.RSAPrivateKey:
    """The same primes as ``key`` with a public exponent one bit shorter than the modulus."""
    numbers = key.private_numbers()
    rng = random.Random(f"exponent:{seed}")
    return rsa_key_from_primes(numbers.p, numbers.q, _huge_exponent(numbers.p, numbers.q, rng))


def rsa_public_blob(e: int, n: int) -> bytes:
    """RFC 4253 §6.6 ``ssh-rsa`` blob for any ``e`` and ``n`` (no validation)."""
    return write_string(b"ssh-rsa") + write_mpint(e) + write_mpint(n)


def _openssh_blob(public: ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey) -> bytes:
    line = public.public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH)
    return base64.b64decode(line.split()[1])


def _ed25519_key(rng: random.Random) -> CorpusKey:
    private = ed25519.Ed25519PrivateKey.from_private_bytes(rng.randbytes(32))

    def sign(data: bytes) -> bytes:
        return write_string(b"ssh-ed25519") + write_string(private.sign(data))

    return CorpusKey("ed25519", embedded_public_key(_openssh_blob(private.public_key())), sign)


_CURVES = {
    "nistp256": (ec.SECP256R1(), hashes.SHA256()),
    "nistp384": (ec.SECP384R1(), hashes.SHA384()),
    "nistp521": (ec.SECP521R1(), hashes.SHA512()),
}
_ORDERS = {
    "nistp256": 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
    "nistp384": int("F" * 48 + "C7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973", 16),
    "nistp521": int(
        "1" + "F" * 65 + "A51868783BF2F966B7FCC0148F709A5D03BB5C9B8899C47AEBB6FB71E91386409", 16
    ),
}


def curve_order(curve: str) -> int:
    """The group order of ``nistp256|384|521`` (SEC 2), for ECDSA ``s`` malleation."""
    return _ORDERS[curve]


def _ecdsa_key(rng: random.Random, curve: str) -> CorpusKey:
    ec_curve, digest = _CURVES[curve]
    private = ec.derive_private_key(rng.randrange(1, _ORDERS[curve]), ec_curve)
    fmt = f"ecdsa-sha2-{curve}".encode()
    algorithm = ec.ECDSA(digest, deterministic_signing=True)

    def sign(data: bytes) -> bytes:
        r, s = decode_dss_signature(private.sign(data, algorithm))
        return write_string(fmt) + write_string(write_mpint(r) + write_mpint(s))

    return CorpusKey(fmt.decode(), embedded_public_key(_openssh_blob(private.public_key())), sign)


def rsa_test_key(private: rsa.RSAPrivateKey, fmt: bytes, name: str) -> CorpusKey:
    digest: hashes.HashAlgorithm = hashes.SHA256() if fmt == b"rsa-sha2-256" else hashes.SHA512()
    numbers = private.public_key().public_numbers()

    def sign(data: bytes) -> bytes:
        return write_string(fmt) + write_string(private.sign(data, padding.PKCS1v15(), digest))

    return CorpusKey(name, embedded_public_key(rsa_public_blob(numbers.e, numbers.n)), sign)


def _sk_key(rng: random.Random, kind: str) -> CorpusKey:
    """PROTOCOL.u2f: the authenticator signs SHA256(application) || flags || counter ||
    SHA256(data); the SSH signature appends flags and counter after the sigblob."""
    application = b"ssh:"
    app_hash = hashlib.sha256(application).digest()
    if kind == "ed25519":
        key_type = b"sk-ssh-ed25519@openssh.com"
        ed = ed25519.Ed25519PrivateKey.from_private_bytes(rng.randbytes(32))
        raw = ed.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        blob = write_string(key_type) + write_string(raw) + write_string(application)

        def sign_message(message: bytes) -> bytes:
            return ed.sign(message)

    else:
        key_type = b"sk-ecdsa-sha2-nistp256@openssh.com"
        private = ec.derive_private_key(rng.randrange(1, _ORDERS["nistp256"]), ec.SECP256R1())
        point = private.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
        blob = write_string(key_type) + write_string(b"nistp256") + write_string(point)
        blob += write_string(application)
        algorithm = ec.ECDSA(hashes.SHA256(), deterministic_signing=True)

        def sign_message(message: bytes) -> bytes:
            r, s = decode_dss_signature(private.sign(message, algorithm))
            return write_mpint(r) + write_mpint(s)

    flags, counter = rng.choice((0, 1, 5)), rng.randrange(1 << 32)

    def sign(data: bytes) -> bytes:
        head = bytes((flags,)) + write_uint32(counter)
        sigblob = sign_message(app_hash + head + hashlib.sha256(data).digest())
        return write_string(key_type) + write_string(sigblob) + head

    return CorpusKey(key_type.decode(), embedded_public_key(blob), sign)


def make_token(
    key: CorpusKey, payload: bytes, namespace: str, hash_algorithm: str, reserved: bytes = b""
) -> str:
    """An exe0 token as ``ssh-keygen -Y sign`` makes it (docs/tokens.md#exe0-layout, docs/tokens.md#signed-data)."""
    ns = namespace.encode()
    signature = key.sign(signed_data(ns, hash_algorithm, payload))
    blob = encode_sshsig(SSHSig(key.public_key.blob, ns, reserved, hash_algorithm, signature))
    return f"{EXE0_PREFIX}{b64url_encode(payload)}.{b64url_encode(blob)}"


def build_keys(seed: int) -> list[CorpusKey]:
    rng = random.Random(f"keys:{seed}")
    rsa_key = rsa_private_key(rng)
    return [
        _ed25519_key(rng),
        *(_ecdsa_key(rng, curve) for curve in _CURVES),
        rsa_test_key(rsa_key, b"rsa-sha2-256", "rsa-sha2-256"),
        rsa_test_key(rsa_key, b"rsa-sha2-512", "rsa-sha2-512"),
        _sk_key(rng, "ed25519"),
        _sk_key(rng, "ecdsa"),
        # Stored by an older version: its tokens are well formed and must never verify.
        rsa_test_key(rsa_private_key(rng, e=0), b"rsa-sha2-512", "rsa-exponent-outside-limits"),
    ]


def build_corpus(seed: int) -> Corpus:
    """Every key signing every payload; mostly for the expected namespace."""
    rng = random.Random(f"corpus:{seed}")
    corpus = Corpus(build_keys(seed), [])
    for key in corpus.keys:
        for payload in PAYLOADS:
            namespace = EXPECTED_NAMESPACE if rng.random() < 0.85 else rng.choice(OTHER_NAMESPACES)
            hash_algorithm = rng.choice(("sha256", "sha512"))
            reserved = b"" if rng.random() < 0.9 else rng.randbytes(rng.randrange(1, 9))
            token = make_token(key, payload, namespace, hash_algorithm, reserved)
            corpus.tokens.append(SeedToken(key.name, token, payload, namespace, hash_algorithm))
            if namespace == EXPECTED_NAMESPACE and limit_violation(key.public_key.blob) is None:
                signed = (key.public_key.blob, namespace.encode(), hash_algorithm, payload)
                corpus.acceptable.add(signed)
    return corpus
