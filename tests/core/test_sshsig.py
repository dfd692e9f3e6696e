"""SSHSIG blobs (docs/tokens.md#sshsig-blob, PROTOCOL.sshsig) against the real ssh-keygen.

Malformed inputs are a valid blob with exactly one field overridden.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import functools
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sshmint import sshsig
from sshmint.errors import MalformedSignatureError
from sshmint.keys import PublicKey, embedded_public_key, load_public_key_file, public_key_from_blob
from sshmint.signing import PrivateKeySigner, Signer, load_private_key
from sshmint.sshsig import SSHSig, armor, dearmor, encode_sshsig, parse_sshsig, sign, verify
from sshmint.wire import read_string, write_string, write_uint32
from tests.support.keys import KeyFactory
from tests.support.sk_helpers import (
    USER_PRESENT,
    SoftwareSecurityKey,
    keygen_check_novalidate,
    keygen_sign,
    keygen_verify,
)

NS = "v0@localhost"
DATA = b'{"exp":2000000000,"cmds":["whoami"]}'


def pub_line(path: Path) -> str:
    return Path(f"{path}.pub").read_text().strip()


def build_blob(
    sig: SSHSig,
    *,
    magic: bytes = b"SSHSIG",
    version: int = 1,
    hash_name: bytes | None = None,
    trailer: bytes = b"",
) -> bytes:
    """PROTOCOL.sshsig §2 layout with any single field replaceable."""
    return (
        magic
        + write_uint32(version)
        + write_string(sig.public_key)
        + write_string(sig.namespace)
        + write_string(sig.reserved)
        + write_string(hash_name if hash_name is not None else sig.hash_algorithm.encode())
        + write_string(sig.signature)
        + trailer
    )


def with_signature_format(signature: bytes, fmt: bytes) -> bytes:
    _old, pos = read_string(signature)
    return write_string(fmt) + signature[pos:]


def raw_rsa_sshsig(
    private: rsa.RSAPrivateKey, algorithm: hashes.HashAlgorithm, fmt: bytes
) -> bytes:
    """An SSHSIG signed directly with cryptography, bypassing sshmint's own checks."""
    line = private.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    blob = base64.b64decode(line.split()[1])
    data = sshsig.signed_data(NS.encode(), "sha512", DATA)
    signature = write_string(fmt) + write_string(private.sign(data, padding.PKCS1v15(), algorithm))
    return encode_sshsig(SSHSig(blob, NS.encode(), b"", "sha512", signature))


def malformed(blob: bytes) -> MalformedSignatureError:
    with pytest.raises(MalformedSignatureError) as info:
        parse_sshsig(blob)
    assert info.value.message == "invalid token: malformed signature"
    assert info.value.step == 15
    return info.value


# --- interop with ssh-keygen (docs/tokens.md#sshsig-blob) ----------------------------------------


@pytest.mark.parametrize("hash_algorithm", ["sha512", "sha256"])
def test_s15_our_signature_verifies_with_ssh_keygen(
    key_path: Path, hash_algorithm: str, tmp_path: Path
) -> None:
    signer = load_private_key(key_path)
    armored = armor(sign(DATA, NS, signer, hash_algorithm))
    verified = keygen_verify(tmp_path, pub_line(key_path), NS, DATA, armored)
    assert verified.returncode == 0, verified.stderr
    checked = keygen_check_novalidate(tmp_path, NS, DATA, armored)
    assert checked.returncode == 0, checked.stderr
    # and ssh-keygen agrees the namespace is part of it (docs/tokens.md#signed-data rule 2)
    assert keygen_verify(tmp_path, pub_line(key_path), "v0@evil.com", DATA, armored).returncode


@pytest.mark.parametrize("hashalg", ["sha512", "sha256"])
def test_r2_r3_ssh_keygen_signature_verifies_with_ours(key_path: Path, hashalg: str) -> None:
    extra = () if hashalg == "sha512" else ("-O", "hashalg=sha256")
    sig = parse_sshsig(dearmor(keygen_sign(key_path, NS, DATA, *extra)))
    key = load_public_key_file(f"{key_path}.pub")
    assert sig.hash_algorithm == hashalg
    assert sig.public_key == key.blob
    assert sig.namespace == NS.encode()
    assert verify(sig, DATA, NS, key)
    assert not verify(sig, DATA + b" ", NS, key)
    assert not verify(sig, DATA, "v0@evil.com", key)


def test_s15_rsa_signs_rsa_sha2_512_like_ssh_keygen(ssh_keygen_key: KeyFactory) -> None:
    path = ssh_keygen_key("rsa", bits=2048)
    theirs = parse_sshsig(dearmor(keygen_sign(path, NS, DATA)))
    ours = parse_sshsig(sign(DATA, NS, load_private_key(path)))
    assert theirs.signature_format == ours.signature_format == "rsa-sha2-512"


@pytest.mark.parametrize("kind", ["ed25519", "rsa"])
def test_s13_armored_blob_is_byte_identical_to_ssh_keygen(
    kind: str, ssh_keygen_key: KeyFactory
) -> None:
    # Ed25519 and RSA PKCS#1 v1.5 are deterministic: same key, data, namespace -> same bytes.
    path = ssh_keygen_key(kind, bits=2048 if kind == "rsa" else None)
    theirs = keygen_sign(path, NS, DATA)
    ours = armor(sign(DATA, NS, load_private_key(path)))
    assert ours == theirs
    assert all(len(line) <= 70 for line in ours.splitlines())
    assert dearmor(theirs) == sign(DATA, NS, load_private_key(path))


def test_s13_reserved_field_is_ignored(ssh_keygen_key: KeyFactory, tmp_path: Path) -> None:
    path = ssh_keygen_key("ed25519")
    sig = parse_sshsig(sign(DATA, NS, load_private_key(path)))
    odd = dataclasses.replace(sig, reserved=b"anything")
    key = load_public_key_file(f"{path}.pub")
    assert verify(parse_sshsig(encode_sshsig(odd)), DATA, NS, key)
    assert keygen_check_novalidate(tmp_path, NS, DATA, armor(encode_sshsig(odd))).returncode == 0


# --- malformed blobs (docs/tokens.md#sshsig-blob, R4, R5) --------------------------------------------


@pytest.fixture(scope="module")
def ed_sig(ssh_keygen_key: KeyFactory) -> SSHSig:
    return parse_sshsig(dearmor(keygen_sign(ssh_keygen_key("ed25519"), NS, DATA)))


@pytest.fixture(scope="module")
def rsa_sig(ssh_keygen_key: KeyFactory) -> SSHSig:
    return parse_sshsig(dearmor(keygen_sign(ssh_keygen_key("rsa", bits=2048), NS, DATA)))


def test_s13_field_override_helper_rebuilds_the_valid_blob(ed_sig: SSHSig) -> None:
    # guards the field-override helper: unchanged fields give back the same blob
    assert parse_sshsig(build_blob(ed_sig)) == ed_sig
    assert build_blob(ed_sig) == encode_sshsig(ed_sig)


@pytest.mark.parametrize("magic", [b"SSHSIH", b"sshsig", b"SSHSIG"[:5] + b"\0"])
def test_r4_wrong_magic_is_malformed(ed_sig: SSHSig, magic: bytes) -> None:
    assert "magic" in malformed(build_blob(ed_sig, magic=magic)).detail


@pytest.mark.parametrize("version", [0, 2, 0x01000000])
def test_r4_version_other_than_1_is_malformed(ed_sig: SSHSig, version: int) -> None:
    assert "version" in malformed(build_blob(ed_sig, version=version)).detail


@pytest.mark.parametrize(
    "hash_name", [b"md5", b"sha1", b"sha384", b"SHA512", b"sha512\0", b"", b"\xff"]
)
def test_r4_s16_hash_other_than_sha256_sha512_is_malformed(
    ed_sig: SSHSig, hash_name: bytes
) -> None:
    assert "hash" in malformed(build_blob(ed_sig, hash_name=hash_name)).detail


@pytest.mark.parametrize("trailer", [b"\0", b"x", b"\0\0\0\0"])
def test_r4_trailing_bytes_are_malformed(ed_sig: SSHSig, trailer: bytes) -> None:
    assert "trailing" in malformed(build_blob(ed_sig, trailer=trailer)).detail


def test_s13_truncation_at_every_length_is_malformed(ed_sig: SSHSig, rsa_sig: SSHSig) -> None:
    for sig in (ed_sig, rsa_sig):
        blob = encode_sshsig(sig)
        for length in range(len(blob)):
            malformed(blob[:length])


def test_s13_length_prefix_past_the_end_is_malformed(ed_sig: SSHSig) -> None:
    blob = encode_sshsig(ed_sig)
    # the publickey length prefix sits right after magic and version
    malformed(blob[:10] + (len(blob)).to_bytes(4, "big") + blob[14:])
    malformed(blob[:10] + b"\xff\xff\xff\xff" + blob[14:])


def test_s13_certificate_key_is_malformed(
    ssh_keygen_key: KeyFactory, ed_sig: SSHSig, tmp_path: Path
) -> None:
    ca = ssh_keygen_key("ed25519", name="ca")
    user_pub = tmp_path / "user.pub"
    user_pub.write_text(Path(f"{ssh_keygen_key('ed25519')}.pub").read_text())
    subprocess.run(
        ["ssh-keygen", "-q", "-s", str(ca), "-I", "someone", "-n", "p", str(user_pub)],
        check=True,
        capture_output=True,
    )
    cert_type, cert_b64 = (tmp_path / "user-cert.pub").read_text().split()[:2]
    assert cert_type == "ssh-ed25519-cert-v01@openssh.com"
    cert_blob = base64.b64decode(cert_b64)
    detail = malformed(build_blob(dataclasses.replace(ed_sig, public_key=cert_blob))).detail
    assert "certificate" in detail


def test_s13_ssh_dss_key_is_malformed(ssh_keygen_key: KeyFactory, ed_sig: SSHSig) -> None:
    dss_blob = load_dss_blob(ssh_keygen_key("dsa"))
    assert (
        "ssh-dss" in malformed(build_blob(dataclasses.replace(ed_sig, public_key=dss_blob))).detail
    )


def load_dss_blob(path: Path) -> bytes:
    key_type, b64 = Path(f"{path}.pub").read_text().split()[:2]
    assert key_type == "ssh-dss"
    return base64.b64decode(b64)


@pytest.mark.parametrize(
    "public_key",
    [
        write_string(b"ssh-ed448") + write_string(b"\0" * 57),
        write_string(b"ssh-ed25519") + write_string(b"\1" * 31),  # not 32 bytes
        write_string(b"ecdsa-sha2-nistp256")
        + write_string(b"nistp256")
        + write_string(b"\x04" + b"\1" * 64),  # not on the curve
        write_string(b"ecdsa-sha2-nistp256")
        + write_string(b"nistp384")
        + write_string(b"\x04" + b"\1" * 64),  # curve name does not match the type
        b"",
    ],
    ids=["unknown-type", "short-ed25519", "off-curve", "curve-mismatch", "empty"],
)
def test_s13_unparsable_public_key_is_malformed(ed_sig: SSHSig, public_key: bytes) -> None:
    malformed(build_blob(dataclasses.replace(ed_sig, public_key=public_key)))


def test_s13_public_key_with_trailing_bytes_is_malformed(ed_sig: SSHSig) -> None:
    blob = build_blob(dataclasses.replace(ed_sig, public_key=ed_sig.public_key + b"\0"))
    assert "trailing" in malformed(blob).detail


@pytest.mark.parametrize(
    "signature",
    [
        b"",
        write_string(b"ssh-ed25519"),  # no sigblob
        write_string(b"ssh-ed25519") + write_string(b"\0" * 64) + b"\0",  # trailing byte
        write_string(b"sk-ssh-ed25519@openssh.com") + write_string(b"\0" * 64),  # no flags
    ],
    ids=["empty", "no-sigblob", "trailing", "sk-without-flags"],
)
def test_s13_signature_field_structure_is_checked(ed_sig: SSHSig, signature: bytes) -> None:
    malformed(build_blob(dataclasses.replace(ed_sig, signature=signature)))


def test_r5_rsa_key_with_ssh_rsa_signature_format_is_malformed(rsa_sig: SSHSig) -> None:
    relabelled = with_signature_format(rsa_sig.signature, b"ssh-rsa")
    detail = malformed(build_blob(dataclasses.replace(rsa_sig, signature=relabelled))).detail
    assert "ssh-rsa" in detail


def test_r5_genuine_sha1_rsa_signature_is_malformed(ssh_keygen_key: KeyFactory) -> None:
    private = load_private_key(ssh_keygen_key("rsa", bits=2048)).private_key
    assert isinstance(private, rsa.RSAPrivateKey)
    malformed(raw_rsa_sshsig(private, hashes.SHA1(), b"ssh-rsa"))
    # the same key and data with rsa-sha2-512 is fine: only the format was at fault
    parse_sshsig(raw_rsa_sshsig(private, hashes.SHA512(), b"rsa-sha2-512"))


def test_s13_rsa_key_with_a_non_rsa_signature_format_is_malformed(rsa_sig: SSHSig) -> None:
    # docs/tokens.md#sshsig-blob names every format other than rsa-sha2-256/512 for an RSA key.
    relabelled = with_signature_format(rsa_sig.signature, b"ssh-ed25519")
    malformed(build_blob(dataclasses.replace(rsa_sig, signature=relabelled)))


def openssl_rsa(bits: int, tmp_path: Path) -> rsa.RSAPrivateKey:
    """RSA keys below ssh-keygen's and cryptography's 1024-bit floor come from openssl."""
    pem = tmp_path / f"rsa{bits}.pem"
    subprocess.run(
        ["openssl", "genrsa", "-out", str(pem), str(bits)], check=True, capture_output=True
    )
    key = serialization.load_pem_private_key(pem.read_bytes(), None)
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == bits
    return key


@pytest.mark.parametrize("bits", [512, 1023])
def test_s15_rsa_key_below_1024_bits_is_malformed(bits: int, tmp_path: Path) -> None:
    # rsa-sha2-256: a 512-bit modulus is too short for a PKCS#1 SHA-512 signature
    blob = raw_rsa_sshsig(openssl_rsa(bits, tmp_path), hashes.SHA256(), b"rsa-sha2-256")
    assert "too small" in malformed(blob).detail


def test_s15_rsa_key_of_1024_bits_is_accepted() -> None:
    private = rsa.generate_private_key(65537, 1024)
    sig = parse_sshsig(raw_rsa_sshsig(private, hashes.SHA512(), b"rsa-sha2-512"))
    assert verify(sig, DATA, NS, public_key_from_blob(sig.public_key))


def test_s13_oversized_blob_is_malformed(ed_sig: SSHSig) -> None:
    huge = dataclasses.replace(ed_sig, reserved=b"\0" * sshsig.MAX_SSHSIG_BYTES)
    assert "too large" in malformed(encode_sshsig(huge)).detail


# --- verification outcomes (docs/tokens.md#signed-data, docs/tokens.md#key-and-signature-types, R7, R9) --------------------------------


def test_r7_s14_namespace_must_match(ed_sig: SSHSig, ssh_keygen_key: KeyFactory) -> None:
    key = load_public_key_file(f"{ssh_keygen_key('ed25519')}.pub")
    assert verify(ed_sig, DATA, NS, key)
    assert not verify(ed_sig, DATA, "v0@evil.com", key)
    assert not verify(ed_sig, DATA, "V0@localhost", key)  # case-sensitive
    # blob claims the expected namespace but was signed under another one
    other = parse_sshsig(dearmor(keygen_sign(ssh_keygen_key("ed25519"), "v0@evil.com", DATA)))
    relabelled = dataclasses.replace(other, namespace=NS.encode())
    assert not verify(relabelled, DATA, NS, key)


def test_s14_key_must_be_the_registered_one(ed_sig: SSHSig, ssh_keygen_key: KeyFactory) -> None:
    other = load_public_key_file(f"{ssh_keygen_key('ed25519', name='other')}.pub")
    assert not verify(ed_sig, DATA, NS, other)


def test_r9_tampered_message_fails(ed_sig: SSHSig, ssh_keygen_key: KeyFactory) -> None:
    key = load_public_key_file(f"{ssh_keygen_key('ed25519')}.pub")
    for i in range(len(DATA)):
        tampered = DATA[:i] + bytes((DATA[i] ^ 0x01,)) + DATA[i + 1 :]
        assert not verify(ed_sig, tampered, NS, key)


@pytest.mark.parametrize(
    ("key_spec", "foreign_format"),
    [
        (("ed25519", None), b"ecdsa-sha2-nistp256"),
        (("ecdsa", 256), b"ecdsa-sha2-nistp384"),
        (("ecdsa", 256), b"ssh-ed25519"),
        (("ecdsa", 384), b"rsa-sha2-512"),
        (("ed25519", None), b"rsa-sha2-512"),
    ],
)
def test_s15_signature_format_not_matching_key_type_is_a_bad_signature(
    ssh_keygen_key: KeyFactory, key_spec: tuple[str, int | None], foreign_format: bytes
) -> None:
    path = ssh_keygen_key(key_spec[0], bits=key_spec[1])
    sig = parse_sshsig(dearmor(keygen_sign(path, NS, DATA)))
    relabelled = dataclasses.replace(
        sig, signature=with_signature_format(sig.signature, foreign_format)
    )
    parsed = parse_sshsig(
        encode_sshsig(relabelled)
    )  # not malformed (docs/tokens.md#key-and-signature-types)
    assert not verify(parsed, DATA, NS, load_public_key_file(f"{path}.pub"))


def test_s15_plain_ed25519_signature_for_sk_key_is_a_bad_signature() -> None:
    sk = SoftwareSecurityKey("ed25519")
    sig = parse_sshsig(sign(DATA, NS, sk))
    _fmt, pos = read_string(sig.signature)
    sigblob, _ = read_string(sig.signature, pos)
    plain = write_string(b"ssh-ed25519") + write_string(sigblob)
    parsed = parse_sshsig(encode_sshsig(dataclasses.replace(sig, signature=plain)))
    assert not verify(parsed, DATA, NS, sk.public_key)


def test_s14_verify_never_raises_on_hand_built_sshsig(ed_sig: SSHSig) -> None:
    key = public_key_from_blob(ed_sig.public_key)
    assert not verify(dataclasses.replace(ed_sig, hash_algorithm="md5"), DATA, NS, key)
    assert not verify(dataclasses.replace(ed_sig, signature=b"junk"), DATA, NS, key)
    broken = PublicKey("ssh-ed25519", ed_sig.public_key[:-1])
    assert not verify(dataclasses.replace(ed_sig, public_key=broken.blob), DATA, NS, broken)


# --- armor -----------------------------------------------------------------------------


def test_s11_armor_round_trip_and_refusals(ed_sig: SSHSig) -> None:
    blob = encode_sshsig(ed_sig)
    text = armor(blob)
    assert text.startswith("-----BEGIN SSH SIGNATURE-----\n")
    assert text.endswith("\n-----END SSH SIGNATURE-----\n")
    assert dearmor(text) == blob
    assert dearmor("\n  " + text.replace("\n", "\r\n") + "\n\n") == blob
    lines = text.splitlines()
    for bad in (
        "",
        "\n".join(lines[1:]),  # no BEGIN
        "\n".join(lines[:-1]),  # no END
        text.replace(lines[1], lines[1][:-1] + "!"),  # not base64
        text.replace(lines[-2], lines[-2].rstrip("=")),  # padding removed
    ):
        with pytest.raises(MalformedSignatureError):
            dearmor(bad)


# --- security keys (docs/tokens.md#key-and-signature-types, PROTOCOL.u2f) ------------------------------------------


@pytest.mark.parametrize("kind", ["ed25519", "ecdsa"])
@pytest.mark.parametrize("flags", [USER_PRESENT, 0x00, 0x05], ids=["up", "no-up", "up-uv"])
def test_s15_sk_signatures_verify_with_ours_and_ssh_keygen(
    kind: str, flags: int, tmp_path: Path
) -> None:
    sk = SoftwareSecurityKey(kind)
    sk.flags = flags
    sk.counter = 42
    blob = sign(DATA, NS, sk)
    sig = parse_sshsig(blob)
    assert sig.signature_format == sk.key_type
    assert verify(sig, DATA, NS, sk.public_key)
    assert not verify(sig, DATA + b"x", NS, sk.public_key)
    checked = keygen_check_novalidate(tmp_path, NS, DATA, armor(blob))
    assert checked.returncode == 0, checked.stderr
    verified = keygen_verify(tmp_path, sk.openssh_line(), NS, DATA, armor(blob))
    assert verified.returncode == 0, verified.stderr


def _sk_tail_replaced(signature: bytes, flags: int | None, counter: int | None) -> bytes:
    body, old_flags, old_counter = signature[:-5], signature[-5], signature[-4:]
    return (
        body
        + bytes((old_flags if flags is None else flags,))
        + (old_counter if counter is None else write_uint32(counter))
    )


@pytest.mark.parametrize("kind", ["ed25519", "ecdsa"])
def test_s15_sk_flags_counter_and_application_are_signed(kind: str, tmp_path: Path) -> None:
    sk = SoftwareSecurityKey(kind)
    sig = parse_sshsig(sign(DATA, NS, sk))
    assert verify(sig, DATA, NS, sk.public_key)
    for flags, counter in ((0x00, None), (0x05, None), (None, 2), (None, 0)):
        tampered = dataclasses.replace(
            sig, signature=_sk_tail_replaced(sig.signature, flags, counter)
        )
        assert not verify(parse_sshsig(encode_sshsig(tampered)), DATA, NS, sk.public_key)
        rejected = keygen_check_novalidate(tmp_path, NS, DATA, armor(encode_sshsig(tampered)))
        assert rejected.returncode != 0
    # the same key pair under another application string is another key
    other_app = public_key_from_blob(sk.with_application(b"ssh:other"))
    moved = dataclasses.replace(sig, public_key=other_app.blob)
    assert not verify(parse_sshsig(encode_sshsig(moved)), DATA, NS, other_app)
    assert keygen_check_novalidate(tmp_path, NS, DATA, armor(encode_sshsig(moved))).returncode


# --- properties: nothing but MalformedSignatureError or False (docs/tokens.md#sshsig-blob, R10) ---------


def _ed25519_signer() -> Signer:
    return PrivateKeySigner(ed25519.Ed25519PrivateKey.generate())


@functools.cache
def valid_vectors() -> tuple[tuple[bytes, PublicKey], ...]:
    """One valid (blob, registered key) per docs/tokens.md#key-and-signature-types type, made in-process."""
    signers: list[Signer] = [
        _ed25519_signer(),
        PrivateKeySigner(ec.generate_private_key(ec.SECP256R1())),
        PrivateKeySigner(ec.generate_private_key(ec.SECP384R1())),
        PrivateKeySigner(ec.generate_private_key(ec.SECP521R1())),
        PrivateKeySigner(rsa.generate_private_key(65537, 2048)),
        SoftwareSecurityKey("ed25519"),
        SoftwareSecurityKey("ecdsa"),
    ]
    vectors = []
    for signer in signers:
        blob = sign(DATA, NS, signer)
        assert verify(parse_sshsig(blob), DATA, NS, signer.public_key)
        vectors.append((blob, signer.public_key))
    return tuple(vectors)


def parse_and_verify(blob: bytes, key: PublicKey) -> bool | None:
    """Verify ``blob`` the way a server does; None means it was refused as malformed."""
    try:
        sig = parse_sshsig(blob)
    except MalformedSignatureError as exc:
        assert exc.message == "invalid token: malformed signature"
        return None
    embedded = embedded_public_key(sig.public_key)  # structure only, as a server reads it
    return verify(sig, DATA, NS, key) or verify(sig, DATA, NS, embedded)


PROPERTY_SETTINGS = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@PROPERTY_SETTINGS
@given(st.binary(max_size=400))
def test_s13_random_bytes_only_ever_raise_malformed(data: bytes) -> None:
    for blob in (data, b"SSHSIG\0\0\0\1" + data):
        with contextlib.suppress(MalformedSignatureError):
            parse_sshsig(blob)


@PROPERTY_SETTINGS
@given(st.data())
def test_s13_single_byte_mutations_are_malformed_or_fail(data: st.DataObject) -> None:
    vectors = valid_vectors()
    blob, key = vectors[data.draw(st.integers(0, len(vectors) - 1), label="key type")]
    index = data.draw(st.integers(0, len(blob) - 1), label="index")
    xor = data.draw(st.integers(1, 255), label="xor")
    mutated = blob[:index] + bytes((blob[index] ^ xor,)) + blob[index + 1 :]
    assert parse_and_verify(mutated, key) in (None, False)


@PROPERTY_SETTINGS
@given(st.data())
def test_s13_random_signature_field_never_raises(data: st.DataObject) -> None:
    vectors = valid_vectors()
    blob, key = vectors[data.draw(st.integers(0, len(vectors) - 1), label="key type")]
    sig = parse_sshsig(blob)
    fmt, _ = read_string(sig.signature)
    junk = data.draw(st.binary(max_size=300), label="sigblob")
    tail = data.draw(st.binary(max_size=6), label="tail")
    forged = dataclasses.replace(sig, signature=write_string(fmt) + write_string(junk) + tail)
    assert parse_and_verify(encode_sshsig(forged), key) in (None, False)


def test_r10_every_single_bit_flip_of_an_ed25519_token_signature_fails() -> None:
    blob, key = valid_vectors()[0]
    assert parse_and_verify(blob, key) is True
    for bit in range(len(blob) * 8):
        flipped = bytearray(blob)
        flipped[bit // 8] ^= 1 << (bit % 8)
        assert parse_and_verify(bytes(flipped), key) in (None, False), bit
