"""docs/security.md#key-limits key limits (R158) in the core: RSA modulus and public exponent, ECDSA points.

Keys that break a limit are built by overriding one number of a valid key: the public
blob is written directly (``mpint e, mpint n``), and a usable private key with a huge
exponent is rebuilt from a real key's primes (``fuzz.corpus.with_huge_exponent``).
"""

from __future__ import annotations

import base64
import functools
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from fuzz.corpus import make_token, rsa_public_blob, rsa_test_key, with_huge_exponent
from sshmint.errors import PrivateKeyError, PublicKeyError, TokenVerificationError
from sshmint.keys import (
    PublicKey,
    limit_violation,
    load_public_key_file,
    parse_public_key_line,
    public_key_from_blob,
)
from sshmint.keytypes import MAX_RSA_BITS
from sshmint.signing import load_private_key
from sshmint.sshsig import armor, parse_sshsig, signed_data
from sshmint.token import b64url_decode, parse_exe0, verify_exe0
from tests.support.keys import KeyFactory
from tests.support.sk_helpers import keygen_check_novalidate

NS = "v0@localhost"
NOW = 2_000_000_000
TOO_LARGE = "RSA public exponent of {bits} bits is too large (at most 24 bits)"


@functools.cache
def real_rsa() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(65537, 2048)


def modulus() -> int:
    return real_rsa().public_key().public_numbers().n


def rsa_line(e: int, n: int | None = None, comment: str = "k") -> str:
    blob = rsa_public_blob(e, modulus() if n is None else n)
    return f"ssh-rsa {base64.b64encode(blob).decode()} {comment}"


def refusal(line: str, tmp_path: Path) -> str:
    """The detail every parser path gives for ``line``: they must agree."""
    details = set()
    with pytest.raises(PublicKeyError) as by_line:
        parse_public_key_line(line)
    details.add(by_line.value.message)
    with pytest.raises(PublicKeyError) as by_blob:
        public_key_from_blob(base64.b64decode(line.split()[1]))
    details.add(by_blob.value.message)
    pub = tmp_path / "key.pub"
    pub.write_text(f"# a comment line first\n{line}\n")
    with pytest.raises(PublicKeyError) as by_file:
        load_public_key_file(pub)
    details.add(by_file.value.message)
    assert len(details) == 1, details
    message = details.pop()
    assert message.startswith("invalid SSH public key: ")
    return message.removeprefix("invalid SSH public key: ")


@pytest.mark.parametrize("e", [(1 << 24) + 1, (1 << 24) + 3, (1 << 32) + 15, (1 << 2046) + 1])
def test_r158_rsa_exponent_of_25_bits_or_more_is_refused_by_every_parser(
    e: int, tmp_path: Path
) -> None:
    """R158 / docs/security.md#key-limits: the exponent must be below 2^24, whichever path parses the key."""
    assert refusal(rsa_line(e), tmp_path) == TOO_LARGE.format(bits=e.bit_length())
    assert limit_violation(rsa_public_blob(e, modulus())) == TOO_LARGE.format(bits=e.bit_length())


@pytest.mark.parametrize("e", [3, 65537, (1 << 24) - 1])
def test_r158_odd_exponents_from_3_to_below_2_to_the_24_are_accepted(e: int) -> None:
    key = parse_public_key_line(rsa_line(e))
    assert (key.key_type, key.bits, key.comment) == ("ssh-rsa", 2048, "k")
    assert limit_violation(key.blob) is None


@pytest.mark.parametrize("e", [4, 65536, (1 << 24) - 2])
def test_s113_even_rsa_exponent_is_refused(e: int, tmp_path: Path) -> None:
    assert refusal(rsa_line(e), tmp_path) == f"RSA public exponent {e} is even"


@pytest.mark.parametrize("e", [0, 1, 2])
def test_s113_rsa_exponent_below_3_is_refused(e: int, tmp_path: Path) -> None:
    assert refusal(rsa_line(e), tmp_path) == f"RSA public exponent {e} is too small (at least 3)"


def odd_number_of(bits: int) -> int:
    return (1 << (bits - 1)) | int.from_bytes(b"\x5a" * (bits // 8), "big") | 1


@pytest.mark.parametrize(
    ("bits", "detail"),
    [
        (1023, "RSA key of 1023 bits is too small (minimum 1024)"),
        (1024, None),
        (MAX_RSA_BITS, None),
        (MAX_RSA_BITS + 1, f"RSA key of {MAX_RSA_BITS + 1} bits is too large (maximum 16384)"),
    ],
)
def test_s113_rsa_modulus_from_1024_to_16384_bits(
    bits: int, detail: str | None, tmp_path: Path
) -> None:
    line = rsa_line(65537, odd_number_of(bits))
    if detail is None:
        assert parse_public_key_line(line).bits == bits
    else:
        assert refusal(line, tmp_path) == detail


@functools.cache
def huge_exponent_key() -> rsa.RSAPrivateKey:
    return with_huge_exponent(real_rsa())


def test_s113_token_of_a_key_outside_the_limits_is_well_formed_but_never_verifies(
    tmp_path: Path,
) -> None:
    """docs/security.md#key-limits: such a key, stored by an older version, counts as not registered (step 18).

    The token is a genuine one (ssh-keygen accepts its signature), it parses (step 15
    passes), and its signature is never checked: ``verify`` is false even though it is
    valid, which is what keeps a garbage signature from costing milliseconds.
    """
    signer = rsa_test_key(huge_exponent_key(), b"rsa-sha2-512", "huge")
    assert signer.public_key.bits == 2048
    token = make_token(signer, b'{"exp":4102444800}', NS, "sha512")
    blob = b64url_decode(token.rpartition(".")[2])
    assert keygen_check_novalidate(tmp_path, NS, b'{"exp":4102444800}', armor(blob)).returncode == 0

    parsed = parse_exe0(token)  # well formed: the key's structure is fine
    assert parsed.public_key.blob == signer.public_key.blob
    sig = parse_sshsig(blob)
    assert not parsed.public_key.verify(
        sig.signature, signed_data(NS.encode(), "sha512", parsed.payload)
    )
    stored = PublicKey("ssh-rsa", signer.public_key.blob)  # as a row read back would be
    with pytest.raises(TokenVerificationError) as info:
        verify_exe0(token, NS, {stored.fingerprint: stored}.get, NOW)
    assert (info.value.step, info.value.message) == (18, "invalid token")
    bits = huge_exponent_key().public_key().public_numbers().e.bit_length()
    assert limit_violation(stored.blob) == TOO_LARGE.format(bits=bits)


def test_s113_private_key_outside_the_limits_cannot_sign(tmp_path: Path) -> None:
    path = tmp_path / "id_rsa_huge_e"
    path.write_bytes(
        huge_exponent_key().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(PrivateKeyError) as info:
        load_private_key(path)
    bits = huge_exponent_key().public_key().public_numbers().e.bit_length()
    assert info.value.message == f"cannot use key {path}: {TOO_LARGE.format(bits=bits)}"


def keygen_reads(line: str, tmp_path: Path) -> bool:
    pub = tmp_path / "probe.pub"
    pub.write_text(line + "\n")
    result = subprocess.run(["ssh-keygen", "-l", "-f", str(pub)], capture_output=True)
    return result.returncode == 0


@pytest.mark.parametrize("bits", [256, 384, 521])
def test_s113_ecdsa_point_must_lie_on_its_curve(
    bits: int, ssh_keygen_key: KeyFactory, tmp_path: Path
) -> None:
    """docs/security.md#key-limits: an off-curve point (one bit of y flipped), a compressed point and the point
    at infinity are refused, as ssh-keygen refuses them."""
    key_type, b64 = Path(f"{ssh_keygen_key('ecdsa', bits=bits)}.pub").read_text().split()[:2]
    blob = base64.b64decode(b64)
    size = (bits + 7) // 8
    point = blob[-(2 * size + 1) :]
    head = blob[: -(2 * size + 1) - 4]
    assert point[0] == 4 and head + len(point).to_bytes(4, "big") + point == blob
    assert keygen_reads(f"{key_type} {b64}", tmp_path)
    for bad_point in (point[:-1] + bytes([point[-1] ^ 1]), b"\x02" + point[1 : 1 + size], b"\0"):
        bad = base64.b64encode(head + len(bad_point).to_bytes(4, "big") + bad_point).decode()
        line = f"{key_type} {bad}"
        assert "EC point" in refusal(line, tmp_path)
        assert not keygen_reads(line, tmp_path)
