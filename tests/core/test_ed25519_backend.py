"""Ed25519 verification backends (docs/tokens.md#signed-data, docs/tokens.md#key-and-signature-types) against the real OpenSSH.

sshmint checks Ed25519 signatures with libsodium (PyNaCl) and falls back to
``cryptography`` (OpenSSL) when PyNaCl is missing (``sshmint.keys``). Both are compared
here with ``ssh-keygen -Y verify`` and ``-Y check-novalidate`` on adversarial SSHSIG
blobs built by hand, and on honest signatures from real signers.

The rule proved: sshmint never accepts an Ed25519 signature that OpenSSH refuses (fail
closed), and every signature a real signer makes verifies identically under both
backends. Where OpenSSH is more lenient, libsodium's refusal is deliberate (see the
``sshmint.keys`` docstring). Recorded on OpenSSH 9.2p1, cryptography 50 (OpenSSL 3),
PyNaCl 1.6 (libsodium 1.0.20):

=======================================================  =======  ============  =========
case (S = scalar half, R = point half, A = public key)   OpenSSH  cryptography  libsodium
=======================================================  =======  ============  =========
honest signature (control)                               accept   accept        accept
S + L (non-canonical S, below 2^253)                     accept   refuse        refuse
S + 2L (at or above 2^253)                               refuse   refuse        refuse
S with bit 255 set                                       refuse   refuse        refuse
all-zero signature                                       refuse   refuse        refuse
R = identity point (S = h·a)                             accept   accept        refuse
R = identity, non-canonical encoding (y = p + 1)         refuse   refuse        refuse
R of order 8                                             refuse   refuse        refuse
A = identity                                             accept   accept        refuse
A = identity, R = identity, S = 0 (any message)          accept   accept        refuse
A = identity encoded as "negative zero" (sign bit set)   accept   accept        refuse
A = identity, non-canonical encoding (y = p + 1)         accept   accept        refuse
A of order 2                                             accept   accept        refuse
A of order 4 = all-zero key, all-zero signature          accept   accept        refuse
A of order 4, non-canonical encoding (y = p)             accept   accept        refuse
A of order 8                                             accept   accept        refuse
A of mixed order (a·B + T8)                              accept   accept        accept
sigblob of 63, 65 or 0 bytes                             refuse   refuse        refuse
sk-ssh-ed25519: honest / S + L / A = identity            a/a/a    a/r/a         a/r/r
sk-ssh-ed25519: 63-byte sigblob + message's first byte   refuse   refuse        refuse
=======================================================  =======  ============  =========

The signatures are made with a small RFC 8032 implementation in this file, independent of
both backends (checked against ``cryptography`` by the first test). The small-order cases
need a message whose hash ``h`` satisfies a congruence; payloads are tried in a fixed
order, so every case is deterministic.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given, settings
from hypothesis import strategies as st

from sshmint import ed25519 as ed25519_backend
from sshmint.ed25519 import Ed25519Verifier, cryptography_ed25519_verifier, sodium_ed25519_verifier
from sshmint.errors import MalformedSignatureError, TokenVerificationError
from sshmint.keys import PublicKey, public_key_from_blob
from sshmint.keytypes import ED25519, ED25519_SIGNATURE_HEAD, SK_ED25519
from sshmint.signing import PrivateKeySigner, generate_ed25519, load_private_key
from sshmint.sshsig import (
    SSHSig,
    armor,
    dearmor,
    encode_sshsig,
    parse_sshsig,
    signed_data,
    verify,
)
from sshmint.token import b64url_encode, verify_exe0
from sshmint.wire import read_string, write_string, write_uint32
from tests.support.keys import KeyFactory
from tests.support.sk_helpers import (
    SoftwareSecurityKey,
    keygen_check_novalidate,
    keygen_sign,
    keygen_verify,
)

NS = "v0@localhost"
NOW = 1_700_000_000

# --- RFC 8032 §5.1 Ed25519, in plain Python (for building test vectors only) -------------

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493  # the prime order of the base point
_D = -121665 * pow(121666, -1, P) % P
_SQRT_M1 = pow(2, (P - 1) // 4, P)
Point = tuple[int, int, int, int]  # extended coordinates (X, Y, Z, T), RFC 8032 §5.1.4
IDENTITY: Point = (0, 1, 1, 0)


def point_add(p: Point, q: Point) -> Point:
    # RFC 8032 §5.1.4; complete for edwards25519, small-order points included.
    x1, y1, z1, t1 = p
    x2, y2, z2, t2 = q
    a = (y1 - x1) * (y2 - x2) % P
    b = (y1 + x1) * (y2 + x2) % P
    c = 2 * t1 * t2 * _D % P
    d = 2 * z1 * z2 % P
    e, f, g, h = b - a, d - c, d + c, b + a
    return e * f % P, g * h % P, f * g % P, e * h % P


def scalar_mult(k: int, p: Point) -> Point:
    result = IDENTITY
    while k:
        if k & 1:
            result = point_add(result, p)
        p = point_add(p, p)
        k >>= 1
    return result


def encode_point(p: Point) -> bytes:
    x, y, z, _t = p
    zi = pow(z, -1, P)
    x, y = x * zi % P, y * zi % P
    return (y | (x & 1) << 255).to_bytes(32, "little")


def decode_point(s: bytes) -> Point:
    """RFC 8032 §5.1.3 (canonical encodings only)."""
    n = int.from_bytes(s, "little")
    y, sign = n & (2**255 - 1), n >> 255
    assert y < P
    x2 = (y * y - 1) * pow(_D * y * y + 1, -1, P) % P
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P:
        x = x * _SQRT_M1 % P
    assert (x * x - x2) % P == 0 and not (x == 0 and sign)
    if x & 1 != sign:
        x = P - x
    return x, y, 1, x * y % P


BASE = decode_point((4 * pow(5, -1, P) % P).to_bytes(32, "little"))


def challenge(r_bytes: bytes, a_bytes: bytes, message: bytes) -> int:
    """h = SHA-512(R || A || M) mod L, over the encodings as given (RFC 8032 §5.1.7)."""
    return int.from_bytes(hashlib.sha512(r_bytes + a_bytes + message).digest(), "little") % L


def expand_seed(seed: bytes) -> tuple[int, bytes]:
    """RFC 8032 §5.1.5: the clamped secret scalar and the nonce prefix."""
    digest = hashlib.sha512(seed).digest()
    a = int.from_bytes(digest[:32], "little") & (2**254 - 8) | 2**254
    return a, digest[32:]


def rfc8032_sign(seed: bytes, message: bytes) -> tuple[bytes, bytes]:
    """(public key, signature) exactly as any RFC 8032 signer makes them."""
    a, prefix = expand_seed(seed)
    public = encode_point(scalar_mult(a, BASE))
    r = int.from_bytes(hashlib.sha512(prefix + message).digest(), "little") % L
    r_bytes = encode_point(scalar_mult(r, BASE))
    s = (r + challenge(r_bytes, public, message) * a) % L
    return public, r_bytes + s.to_bytes(32, "little")


def le32(n: int) -> bytes:
    return n.to_bytes(32, "little")


# Small-order points (the torsion subgroup of order 8) used as keys and as R.
IDENTITY_ENC = encode_point(IDENTITY)  # 01 00..00
ORDER2 = le32(P - 1)  # y = -1
ORDER4_ZERO = bytes(32)  # y = 0
ORDER8 = bytes.fromhex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a")
# Non-canonical encodings of small-order points (RFC 8032 §5.1.3 refuses them).
IDENTITY_NEGATIVE_ZERO = IDENTITY_ENC[:31] + b"\x80"  # x = 0 with the sign bit set
IDENTITY_NONCANONICAL = le32(P + 1)  # y = p + 1 = 1 (mod p)
ORDER4_NONCANONICAL = le32(P)  # y = p = 0 (mod p)
#: All eight torsion points (multiples of ORDER8) and the non-canonical encodings above.
SMALL_ORDER_ENCODINGS = frozenset(
    {encode_point(scalar_mult(k, decode_point(ORDER8))) for k in range(8)}
    | {IDENTITY_NEGATIVE_ZERO, IDENTITY_NONCANONICAL, ORDER4_NONCANONICAL}
)


# --- the adversarial cases ----------------------------------------------------------------

SEED = bytes(range(32))  # a fixed key, so the table is deterministic
SK_APPLICATION = b"ssh:"


@dataclass(frozen=True)
class EdgeCase:
    """An Ed25519 signature inside a complete SSHSIG blob, and what each verifier says."""

    public: bytes  # the 32-byte key A
    sigblob: bytes  # R || S, or any other length
    payload: bytes  # a valid exe0 payload, so the case also runs as a token
    openssh: bool
    cryptography: bool
    libsodium: bool
    key_type: str = ED25519
    application: bytes = SK_APPLICATION  # sk only, as the next two
    counter: int = 1

    @property
    def key_blob(self) -> bytes:
        blob = write_string(self.key_type.encode()) + write_string(self.public)
        return blob + write_string(self.application) if self.key_type == SK_ED25519 else blob

    @property
    def signed_data(self) -> bytes:
        """docs/tokens.md#signed-data: what the SSH signature covers."""
        return signed_data(NS.encode(), "sha512", self.payload)

    @property
    def ed25519_message(self) -> bytes:
        """What the Ed25519 signature itself covers: the signed data, or for sk the
        authenticator message (PROTOCOL.u2f, user-present flag set)."""
        if self.key_type == ED25519:
            return self.signed_data
        return sk_message(self.signed_data, self.application, self.counter)

    @property
    def sshsig_blob(self) -> bytes:
        signature = write_string(self.key_type.encode()) + write_string(self.sigblob)
        if self.key_type == SK_ED25519:
            signature += b"\x01" + write_uint32(self.counter)
        return encode_sshsig(SSHSig(self.key_blob, NS.encode(), b"", "sha512", signature))

    @property
    def openssh_line(self) -> str:
        return f"{self.key_type} {base64.b64encode(self.key_blob).decode()}"

    @property
    def token(self) -> str:
        return f"exe0.{b64url_encode(self.payload)}.{b64url_encode(self.sshsig_blob)}"


def sk_message(data: bytes, application: bytes = SK_APPLICATION, counter: int = 1) -> bytes:
    app_hash = hashlib.sha256(application).digest()
    return app_hash + b"\x01" + write_uint32(counter) + hashlib.sha256(data).digest()


def payload(n: int) -> bytes:
    return b'{"ctx":%d}' % n


def message_of(p: bytes, key_type: str = ED25519) -> bytes:
    data = signed_data(NS.encode(), "sha512", p)
    return data if key_type == ED25519 else sk_message(data)


def payload_where(r_bytes: bytes, public: bytes, modulus: int, residue: int = 0) -> bytes:
    """The first of a fixed sequence of payloads whose challenge h is ``residue`` modulo
    ``modulus`` (bounded: a miss after 256 tries has probability (7/8)^256 at worst)."""
    for n in range(256):
        if challenge(r_bytes, public, message_of(payload(n))) % modulus == residue:
            return payload(n)
    raise AssertionError("no payload found")


@functools.cache
def edge_cases() -> dict[str, EdgeCase]:
    a, _prefix = expand_seed(SEED)
    cases: dict[str, EdgeCase] = {}

    def add(name: str, public: bytes, sigblob: bytes, p: bytes, *verdicts: bool) -> None:
        openssh, crypto, sodium = verdicts
        cases[name] = EdgeCase(public, sigblob, p, openssh, crypto, sodium)

    # A real signature and its malleations (docs/tokens.md#key-and-signature-types ssh-ed25519).
    p0 = payload(0)
    public, honest = rfc8032_sign(SEED, message_of(p0))
    r_bytes, s = honest[:32], int.from_bytes(honest[32:], "little")
    # OpenSSH (SUPERCOP ref ed25519.c) refuses S >= 2^253 and reduces the rest mod L.
    assert s + L < 2**253 <= s + 2 * L
    add("honest", public, honest, p0, True, True, True)
    add("S+L", public, r_bytes + le32(s + L), p0, True, False, False)
    add("S+2L", public, r_bytes + le32(s + 2 * L), p0, False, False, False)
    add("S-bit255", public, r_bytes + le32(s | 2**255), p0, False, False, False)
    add("all-zero-signature", public, bytes(64), p0, False, False, False)

    # R of small order: with R = identity the equation [S]B = R + [h]A holds for S = h·a.
    h = challenge(IDENTITY_ENC, public, message_of(p0))
    add("R-identity", public, IDENTITY_ENC + le32(h * a % L), p0, True, True, False)
    h = challenge(IDENTITY_NONCANONICAL, public, message_of(p0))
    sig = IDENTITY_NONCANONICAL + le32(h * a % L)
    add("R-identity-noncanonical", public, sig, p0, False, False, False)
    h = challenge(ORDER8, public, message_of(p0))
    add("R-order8", public, ORDER8 + le32(h * a % L), p0, False, False, False)

    # A of small order: [h]A vanishes when h is a multiple of A's order, so R = [r]B,
    # S = r verifies without any secret.
    r = 0x5EED
    r_point = encode_point(scalar_mult(r, BASE))
    forged = r_point + le32(r)
    for name, key, order in (
        ("A-identity", IDENTITY_ENC, 1),
        ("A-identity-negative-zero", IDENTITY_NEGATIVE_ZERO, 1),
        ("A-identity-noncanonical", IDENTITY_NONCANONICAL, 1),
        ("A-order2", ORDER2, 2),
        ("A-order4-noncanonical", ORDER4_NONCANONICAL, 4),
        ("A-order8", ORDER8, 8),
    ):
        add(name, key, forged, payload_where(r_point, key, order), True, True, False)
    # Identity key and identity R with S = 0: valid for every message.
    add(
        "A-identity-R-identity-S-zero",
        IDENTITY_ENC,
        IDENTITY_ENC + bytes(32),
        p0,
        True,
        True,
        False,
    )
    # All-zero key (order 4) and all-zero signature: R + [h]A = [1 + h]A vanishes when
    # h = 3 (mod 4).
    p = payload_where(bytes(32), ORDER4_ZERO, 4, 3)
    add("A-order4-all-zero-key-and-signature", ORDER4_ZERO, bytes(64), p, True, True, False)

    # A of mixed order (a·B + T8) with h = 0 (mod 8): an honest-looking signature that
    # every cofactorless verifier accepts; libsodium does not check subgroup membership.
    mixed = encode_point(point_add(scalar_mult(a, BASE), decode_point(ORDER8)))
    r_mixed = encode_point(scalar_mult(r, BASE))
    p = payload_where(r_mixed, mixed, 8)
    s_mixed = (r + challenge(r_mixed, mixed, message_of(p)) * a) % L
    add("A-mixed-order", mixed, r_mixed + le32(s_mixed), p, True, True, True)

    # Wrong lengths (RFC 8709 §6: 64 bytes). See short_sk_case for the trap in fewer.
    add("sigblob-63-bytes", public, honest[:63], p0, False, False, False)
    add("sigblob-65-bytes", public, honest + b"\0", p0, False, False, False)
    add("sigblob-empty", public, b"", p0, False, False, False)

    # sk-ssh-ed25519 (PROTOCOL.u2f): the inner Ed25519 signature follows the same rules.
    sk_public, sk_honest = rfc8032_sign(SEED, message_of(p0, SK_ED25519))
    sk_s = int.from_bytes(sk_honest[32:], "little")
    assert sk_s + L < 2**253
    for name, key, sigblob, verdicts in (
        ("sk-honest", sk_public, sk_honest, (True, True, True)),
        ("sk-S+L", sk_public, sk_honest[:32] + le32(sk_s + L), (True, False, False)),
        ("sk-A-identity", IDENTITY_ENC, forged, (True, True, False)),
    ):
        cases[name] = EdgeCase(key, sigblob, p0, *verdicts, key_type=SK_ED25519)
    cases["sk-sigblob-63-bytes"] = short_sk_case(p0)
    return cases


def short_sk_case(p: bytes) -> EdgeCase:
    """A 63-byte sk sigblob that completes to a valid signature when followed by the message.

    libsodium's crypto_sign_open (the call sshmint makes) and OpenSSH's
    crypto_sign_ed25519_open both take ``signature || message`` and split it after 64
    bytes, so a short sigblob borrows the first byte of the message (here the first byte of
    SHA-256 of the application) and covers the rest. Built with an application whose hash
    starts with a byte a canonical ``S`` can end in, and a counter for which the signature
    ends in it. OpenSSH (ssh-ed25519-sk.c) refuses it by checking the length of the
    recovered message; sshmint by requiring 64 bytes before the call (RFC 8032 §5.1.7).
    Without that check libsodium would accept it.
    """
    application = next(
        b"ssh:%d" % n for n in range(4096) if hashlib.sha256(b"ssh:%d" % n).digest()[0] < 0x10
    )
    data = signed_data(NS.encode(), "sha512", p)
    for counter in range(1, 1024):
        message = sk_message(data, application, counter)
        public, signature = rfc8032_sign(SEED, message[1:])
        if signature[63] == message[0]:
            return EdgeCase(
                public,
                signature[:63],
                p,
                False,
                False,
                False,
                key_type=SK_ED25519,
                application=application,
                counter=counter,
            )
    raise AssertionError("no counter found")


EDGE_CASE_NAMES = list(edge_cases())


def openssh_accepts(case: EdgeCase, tmp: Path) -> bool:
    """``ssh-keygen -Y verify`` (registered key) and ``-Y check-novalidate`` must agree."""
    armored = armor(case.sshsig_blob)
    verified = keygen_verify(tmp, case.openssh_line, NS, case.payload, armored)
    checked = keygen_check_novalidate(tmp, NS, case.payload, armored)
    assert (verified.returncode == 0) == (checked.returncode == 0), (verified, checked)
    if verified.returncode:
        assert b"Signature verification failed" in verified.stderr, verified.stderr
    return verified.returncode == 0


def ssh_keygen_token(key: Path, body: bytes) -> str:
    """docs/tokens.md#minting-offline: an exe0 token whose signature comes from the real ``ssh-keygen -Y sign``."""
    blob = dearmor(keygen_sign(key, NS, body))
    return f"exe0.{b64url_encode(body)}.{b64url_encode(blob)}"


def real_signer_shape(sigblob: bytes, public: bytes) -> bool:
    """What every RFC 8032 signer produces: S < L (docs/accounts.md#users step 6 reduces it), and R and
    A of large order (they are multiples of B by a nonce and a secret scalar)."""
    return (
        int.from_bytes(sigblob[32:], "little") < L
        and sigblob[:32] not in SMALL_ORDER_ENCODINGS
        and public not in SMALL_ORDER_ENCODINGS
    )


@functools.cache
def differential_keys(factory: KeyFactory) -> tuple[PrivateKeySigner, ...]:
    from_files = tuple(load_private_key(factory("ed25519", name=n)) for n in ("", "b", "c"))
    return (*from_files, generate_ed25519(), generate_ed25519())


def raw_public(key: PublicKey) -> bytes:
    """The 32-byte Ed25519 point of an ssh-ed25519 or sk-ssh-ed25519 key blob."""
    _key_type, pos = read_string(key.blob)
    return read_string(key.blob, pos)[0]


# --- tests ------------------------------------------------------------------------------


def test_s15_reference_helper_matches_cryptography() -> None:
    """The vectors' Ed25519 code agrees with a real signer, so the cases mean something."""
    for seed in (SEED, bytes(32), hashlib.sha256(b"another").digest()):
        private = ed25519.Ed25519PrivateKey.from_private_bytes(seed)
        message = message_of(payload(7))
        public, signature = rfc8032_sign(seed, message)
        assert public == private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        assert signature == private.sign(message)


def test_s15_small_order_encodings_are_the_torsion_points() -> None:
    """The set the cases are judged by: eight distinct points, each one killed by 8."""
    noncanonical = {IDENTITY_NEGATIVE_ZERO, IDENTITY_NONCANONICAL, ORDER4_NONCANONICAL}
    torsion = SMALL_ORDER_ENCODINGS - noncanonical
    assert len(torsion) == 8 and {IDENTITY_ENC, ORDER2, ORDER4_ZERO, ORDER8} <= torsion
    for encoding in torsion:
        assert encode_point(scalar_mult(8, decode_point(encoding))) == IDENTITY_ENC


def test_s15_libsodium_is_the_backend_here() -> None:
    # PyNaCl is a declared dependency: a silent fallback would be a regression.
    assert ed25519_backend.ED25519_BACKEND == "libsodium"
    assert ed25519_backend.ed25519_verifier is sodium_ed25519_verifier


@pytest.mark.parametrize("name", EDGE_CASE_NAMES)
def test_s15_edge_case_never_accepted_when_openssh_refuses(name: str, tmp_path: Path) -> None:
    case = edge_cases()[name]
    message = case.ed25519_message
    openssh = openssh_accepts(case, tmp_path)
    crypto = cryptography_ed25519_verifier(case.public)(case.sigblob, message)
    sodium = sodium_ed25519_verifier(case.public)(case.sigblob, message)
    # The recorded table (module docstring).
    assert (openssh, crypto, sodium) == (case.openssh, case.cryptography, case.libsodium)
    # sshmint end to end: SSHSIG parsing (the blob is well-formed) and verification with
    # the blob's key registered (docs/tokens.md#validation steps 15-19).
    key = public_key_from_blob(case.key_blob)
    assert key.verify(parse_sshsig(case.sshsig_blob).signature, case.signed_data) is sodium
    try:
        verify_exe0(case.token, NS, {key.fingerprint: key}.get, NOW)
        ours = True
    except TokenVerificationError as exc:
        assert exc.step == 19
        ours = False
    assert ours is sodium
    # The required property: fail closed.
    assert openssh or not ours


def test_s15_libsodium_refuses_only_what_no_real_signer_makes() -> None:
    """Every case where libsodium is stricter than OpenSSH is a malleated signature or a
    key without a secret: none can come from ssh-keygen, an agent or sshmint."""
    stricter = {n for n, c in edge_cases().items() if c.openssh and not c.libsodium}
    assert stricter == {
        "S+L",
        "R-identity",
        "A-identity",
        "A-identity-negative-zero",
        "A-identity-noncanonical",
        "A-order2",
        "A-order4-noncanonical",
        "A-order8",
        "A-identity-R-identity-S-zero",
        "A-order4-all-zero-key-and-signature",
        "sk-S+L",
        "sk-A-identity",
    }
    for name in stricter:
        case = edge_cases()[name]
        assert not real_signer_shape(case.sigblob, case.public), name


def test_s15_ssh_keygen_tokens_verify_under_both_backends(ssh_keygen_key: KeyFactory) -> None:
    bodies = [b"{}", b'{"exp":4102444800,"cmds":["whoami","ls"]}', b'{"ctx":{"a":[1,2]}}']
    for name in ("", "b"):
        path = ssh_keygen_key("ed25519", name=name)
        key = load_private_key(path).public_key
        raw = raw_public(key)
        for body in bodies:
            token = ssh_keygen_token(path, body)
            parsed = verify_exe0(token, NS, {key.fingerprint: key}.get, NOW)
            sigblob = parsed.sshsig.signature[-64:]
            data = signed_data(NS.encode(), "sha512", body)
            assert real_signer_shape(sigblob, raw)
            assert sodium_ed25519_verifier(raw)(sigblob, data)
            assert cryptography_ed25519_verifier(raw)(sigblob, data)


def test_s15_security_key_signatures_verify_under_both_backends() -> None:
    sk = SoftwareSecurityKey("ed25519")
    key = sk.public_key
    raw = raw_public(key)
    for flags in (0x00, 0x01, 0x05):
        data = signed_data(NS.encode(), "sha512", b"{}")
        signature = sk.sign_with(data, flags, 42)
        sigblob = read_string(signature, len(write_string(SK_ED25519.encode())))[0]
        message = sk.authenticator_message(data, flags, 42)
        assert sodium_ed25519_verifier(raw)(sigblob, message)
        assert cryptography_ed25519_verifier(raw)(sigblob, message)
        assert key.verify(signature, data)


@settings(max_examples=200, deadline=None)
@given(
    message=st.binary(max_size=300),
    which=st.integers(0, 4),
    flip=st.integers(0, 64 * 8 - 1),
)
def test_s15_random_messages_verify_identically_under_both_backends(
    ssh_keygen_key: KeyFactory, message: bytes, which: int, flip: int
) -> None:
    signer = differential_keys(ssh_keygen_key)[which]
    private = signer.private_key
    assert isinstance(private, ed25519.Ed25519PrivateKey)
    signature = private.sign(message)
    public = raw_public(signer.public_key)
    backends: tuple[Ed25519Verifier, ...] = (
        sodium_ed25519_verifier(public),
        cryptography_ed25519_verifier(public),
    )
    assert [check(signature, message) for check in backends] == [True, True]
    # One flipped bit anywhere in R or S is refused by both.
    tampered = bytearray(signature)
    tampered[flip // 8] ^= 1 << (flip % 8)
    assert [check(bytes(tampered), message) for check in backends] == [False, False]
    # ...and so is the signature of another message.
    other = message + b"\0"
    assert [check(signature, other) for check in backends] == [False, False]


def test_s15_ssh_keygen_signatures_of_random_messages_agree(
    ssh_keygen_key: KeyFactory, tmp_path: Path
) -> None:
    """Messages of growing length signed by the real ``ssh-keygen -Y sign`` (a bounded
    batch: one subprocess per signature)."""
    path = ssh_keygen_key("ed25519", name="c")
    key = load_private_key(path).public_key
    public = raw_public(key)
    for n in range(12):
        body = hashlib.sha512(b"%d" % n).digest()[: n * 5]
        sig = parse_sshsig(dearmor(keygen_sign(path, NS, body)))
        sigblob = sig.signature[-64:]
        data = signed_data(NS.encode(), "sha512", body)
        assert sodium_ed25519_verifier(public)(sigblob, data)
        assert cryptography_ed25519_verifier(public)(sigblob, data)


@pytest.mark.parametrize("kind", ["ssh-ed25519", "ecdsa", "rsa", "sk-ssh-ed25519"])
def test_s13_ed25519_shaped_signature_field_is_judged_as_by_the_full_parser(kind: str) -> None:
    """parse_sshsig reads a well-formed ssh-ed25519 signature field in one comparison;
    that shortcut must not skip a docs/tokens.md#sshsig-blob rule for other key types (RSA: malformed)."""
    key: PublicKey
    if kind == "ssh-ed25519":
        key = generate_ed25519().public_key
    elif kind == "ecdsa":
        key = PrivateKeySigner(ec.generate_private_key(ec.SECP256R1())).public_key
    elif kind == "rsa":
        key = PrivateKeySigner(rsa.generate_private_key(65537, 1024)).public_key
    else:
        key = SoftwareSecurityKey("ed25519").public_key
    field = ED25519_SIGNATURE_HEAD + bytes(64)
    blob = encode_sshsig(SSHSig(key.blob, NS.encode(), b"", "sha512", field))
    if kind == "rsa":
        with pytest.raises(MalformedSignatureError):
            parse_sshsig(blob)
    else:  # well-formed, and a bad signature (docs/tokens.md#key-and-signature-types: format mismatch or invalid)
        sig = parse_sshsig(blob)
        assert sig.signature == field and sig.key == key
        assert not verify(sig, b"{}", NS, key)


def test_s15_without_pynacl_verification_falls_back_to_cryptography() -> None:
    """Import-time fallback, in a fresh interpreter where ``import nacl`` fails."""
    program = (
        "import sys; sys.modules['nacl'] = None\n"
        "from sshmint import ed25519, signing, sshsig\n"
        "assert ed25519.ED25519_BACKEND == 'cryptography', ed25519.ED25519_BACKEND\n"
        "assert ed25519.ed25519_verifier is ed25519.cryptography_ed25519_verifier\n"
        "signer = signing.generate_ed25519()\n"
        "blob = sshsig.sign(b'{}', 'v0@localhost', signer)\n"
        "sig = sshsig.parse_sshsig(blob)\n"
        "assert sshsig.verify(sig, b'{}', 'v0@localhost', signer.public_key)\n"
        "assert not sshsig.verify(sig, b'{ }', 'v0@localhost', signer.public_key)\n"
        "try:\n"
        "    ed25519.sodium_ed25519_verifier(bytes(32))\n"
        "except RuntimeError:\n"
        "    print('fallback ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "fallback ok"
