"""SSH keys: docs/accounts.md#ssh-keys public key lines, docs/tokens.md#fingerprints fingerprints, A.4 private key files."""

from __future__ import annotations

import base64
import functools
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from sshmint.errors import (
    KeyEncryptedError,
    PrivateKeyError,
    PrivateKeyGivenError,
    PublicKeyError,
)
from sshmint.keys import (
    PublicKey,
    fingerprint,
    format_fingerprint,
    load_public_key_file,
    parse_public_key_line,
    public_key_from_blob,
)
from sshmint.keytypes import KEY_TYPES
from sshmint.signing import PrivateKeySigner, generate_ed25519, load_private_key
from sshmint.sshsig import armor, parse_sshsig, sign, verify
from sshmint.wire import write_string
from tests.support.keys import SIGNABLE, KeyFactory, key_fingerprint
from tests.support.sk_helpers import SoftwareSecurityKey, keygen_verify

NS = "v0@localhost"
PRIVATE_KEY_MESSAGE = (
    "this is a private key, please use the public key instead (typically found in a .pub file)"
)


def public_error(line: str) -> PublicKeyError:
    with pytest.raises(PublicKeyError) as info:
        parse_public_key_line(line)
    assert info.value.message.startswith("invalid SSH public key: ")
    return info.value


# --- fingerprints (docs/tokens.md#fingerprints, R2) ---------------------------------------------------


def test_s17_fingerprint_equals_ssh_keygen(key_path: Path) -> None:
    pub = Path(f"{key_path}.pub")
    key = load_public_key_file(pub)
    assert format_fingerprint(key.fingerprint) == key_fingerprint(pub)
    assert len(key.fingerprint) == 43 and "=" not in key.fingerprint
    assert key.fingerprint == fingerprint(key.blob)


@pytest.mark.parametrize("kind", ["ed25519", "ecdsa"])
def test_s17_sk_key_fingerprint_equals_ssh_keygen(kind: str, tmp_path: Path) -> None:
    sk = SoftwareSecurityKey(kind)
    pub = tmp_path / "sk.pub"
    pub.write_text(sk.openssh_line("token") + "\n")
    key = load_public_key_file(pub)
    assert key.key_type == sk.key_type and key.blob == sk.blob
    assert key.application == b"ssh:"
    assert format_fingerprint(key.fingerprint) == key_fingerprint(pub)


# --- public key lines (docs/accounts.md#ssh-keys) ---------------------------------------------------


def test_s52_line_fields_and_canonical_form(key_path: Path) -> None:
    text = Path(f"{key_path}.pub").read_text()
    key_type, b64, comment = text.split(maxsplit=2)
    key = parse_public_key_line(text)
    assert (key.key_type, key.comment) == (key_type, comment.strip())
    assert parse_public_key_line(f"{key_type} {b64} my laptop").comment == "my laptop"
    assert key.openssh == f"{key_type} {b64}"
    assert key.blob == base64.b64decode(b64)
    bits = {"ssh-ed25519": 256, "ssh-rsa": 2048, "ecdsa-sha2-nistp256": 256}
    bits |= {"ecdsa-sha2-nistp384": 384, "ecdsa-sha2-nistp521": 521}
    assert key.bits == bits[key_type]


def test_s52_whitespace_tabs_and_comment_trimming(ssh_keygen_key: KeyFactory) -> None:
    key_type, b64 = Path(f"{ssh_keygen_key('ed25519')}.pub").read_text().split()[:2]
    assert parse_public_key_line(f"{key_type} {b64}").comment == ""
    assert parse_public_key_line(f"  \t{key_type}\t{b64}\t \n").comment == ""
    spaced = parse_public_key_line(f"\n {key_type} \t {b64}   two  words\there \t\n")
    assert spaced.comment == "two  words\there"
    assert spaced.openssh == f"{key_type} {b64}"


def test_s52_type_must_match_the_embedded_type(ssh_keygen_key: KeyFactory) -> None:
    b64 = Path(f"{ssh_keygen_key('ed25519')}.pub").read_text().split()[1]
    detail = public_error(f"ecdsa-sha2-nistp256 {b64} x").detail
    assert "does not match" in detail
    public_error(f"ssh-rsa {b64}")


def test_s52_trailing_bytes_in_the_blob_are_refused(ssh_keygen_key: KeyFactory) -> None:
    key_type, b64 = Path(f"{ssh_keygen_key('ed25519')}.pub").read_text().split()[:2]
    padded = base64.b64encode(base64.b64decode(b64) + b"\0").decode()
    assert "trailing" in public_error(f"{key_type} {padded}").detail


def openssl_rsa_line(bits: int, tmp_path: Path) -> str:
    pem = tmp_path / f"rsa{bits}.pem"
    subprocess.run(
        ["openssl", "genrsa", "-out", str(pem), str(bits)], check=True, capture_output=True
    )
    private = serialization.load_pem_private_key(pem.read_bytes(), None)
    assert isinstance(private, rsa.RSAPrivateKey) and private.key_size == bits
    return (
        private.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )


def test_s52_rsa_1023_bits_refused_1024_accepted(tmp_path: Path) -> None:
    assert "1023 bits is too small" in public_error(openssl_rsa_line(1023, tmp_path)).detail
    assert parse_public_key_line(openssl_rsa_line(1024, tmp_path)).bits == 1024


@pytest.mark.parametrize(
    "line",
    [
        "ssh-foo AAAAB3NzaC1mb28=",
        "ssh-ed448 AAAACXNzaC1lZDQ0OA==",
        "AAAAC3NzaC1lZDI1NTE5AAAAIA==",
        "",
        "   \t ",
        "ssh-ed25519",
        "ssh-ed25519 not!base64",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI",  # bad padding
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA==",  # truncated blob
        'command="x" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA==',  # options unsupported
    ],
)
def test_r64_garbage_is_an_invalid_public_key(line: str) -> None:
    public_error(line)


def test_s52_certificates_and_dss_are_refused(ssh_keygen_key: KeyFactory, tmp_path: Path) -> None:
    user_pub = tmp_path / "user.pub"
    user_pub.write_text(Path(f"{ssh_keygen_key('ed25519')}.pub").read_text())
    ca = ssh_keygen_key("ed25519", name="ca")
    subprocess.run(
        ["ssh-keygen", "-q", "-s", str(ca), "-I", "id", "-n", "p", str(user_pub)],
        check=True,
        capture_output=True,
    )
    cert_line = (tmp_path / "user-cert.pub").read_text()
    assert "certificates are not supported" in public_error(cert_line).detail
    dss_line = Path(f"{ssh_keygen_key('dsa')}.pub").read_text()
    assert "ssh-dss" in public_error(dss_line).detail


def test_r63_private_key_text_is_refused_first(ssh_keygen_key: KeyFactory) -> None:
    private_text = ssh_keygen_key("ed25519").read_text()
    for text in (private_text, "garbage PRIVATE KEY garbage", "ssh-ed25519 PRIVATE KEY"):
        with pytest.raises(PrivateKeyGivenError) as info:
            parse_public_key_line(text)
        assert info.value.message == PRIVATE_KEY_MESSAGE
    with pytest.raises(PrivateKeyGivenError):
        load_public_key_file(ssh_keygen_key("ed25519"))


def test_s52_all_seven_types_parse(ssh_keygen_key: KeyFactory) -> None:
    lines = [Path(f"{ssh_keygen_key(k, bits=b)}.pub").read_text() for k, b in SIGNABLE]
    lines += [SoftwareSecurityKey(kind).openssh_line() for kind in ("ed25519", "ecdsa")]
    assert tuple(parse_public_key_line(line).key_type for line in lines) == KEY_TYPES


def test_s52_public_key_from_blob_refuses_what_parsing_refuses() -> None:
    for blob in (b"", b"\0\0\0", write_string(b"ssh-dss"), write_string(b"ssh-ed25519")):
        with pytest.raises(PublicKeyError):
            public_key_from_blob(blob)


def test_s52_load_public_key_file_skips_blank_and_comment_lines(
    ssh_keygen_key: KeyFactory, tmp_path: Path
) -> None:
    line = Path(f"{ssh_keygen_key('ed25519')}.pub").read_text()
    pub = tmp_path / "k.pub"
    pub.write_text(f"\n# a note\n\n{line}")
    assert load_public_key_file(pub) == parse_public_key_line(line)
    with pytest.raises(PublicKeyError, match="cannot read"):
        load_public_key_file(tmp_path / "missing.pub")
    (tmp_path / "empty.pub").write_text("\n# nothing\n")
    with pytest.raises(PublicKeyError, match="no key"):
        load_public_key_file(tmp_path / "empty.pub")


@functools.cache
def one_key_per_type() -> tuple[PublicKey, ...]:
    signers = [
        generate_ed25519(),
        *(
            PrivateKeySigner(ec.generate_private_key(c))
            for c in (ec.SECP256R1(), ec.SECP384R1(), ec.SECP521R1())
        ),
        PrivateKeySigner(rsa.generate_private_key(65537, 2048)),
    ]
    sk_keys = [SoftwareSecurityKey(kind).public_key for kind in ("ed25519", "ecdsa")]
    return (*(signer.public_key for signer in signers), *sk_keys)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 6), st.binary(max_size=300), st.binary(max_size=6))
def test_s15_public_key_verify_never_raises(index: int, sigblob: bytes, tail: bytes) -> None:
    key = one_key_per_type()[index]
    assert key.key_type == KEY_TYPES[index]
    well_framed = write_string(key.key_type.encode()) + write_string(sigblob) + tail
    for signature in (sigblob, well_framed):
        assert key.verify(signature, b"data") is False
        assert PublicKey(key.key_type, key.blob[:-1]).verify(signature, b"data") is False


# --- private keys (docs/client.md#sshmint-mint) --------------------------------------------------------


def test_a4_openssh_private_keys_load_and_match_their_pub(key_path: Path) -> None:
    signer = load_private_key(key_path)
    pub = load_public_key_file(f"{key_path}.pub")
    assert signer.public_key.blob == pub.blob
    assert pub.verify(signer.sign(b"data"), b"data")


def rewrite_key(source: Path, dest: Path, fmt: str, passphrase: str = "") -> Path:
    """Copy a key and let ssh-keygen rewrite it in ``fmt`` (PEM, PKCS8) with a passphrase."""
    dest.write_bytes(source.read_bytes())
    dest.chmod(0o600)
    Path(f"{dest}.pub").write_bytes(Path(f"{source}.pub").read_bytes())
    subprocess.run(
        ["ssh-keygen", "-q", "-p", "-f", str(dest), "-m", fmt, "-P", "", "-N", passphrase],
        check=True,
        capture_output=True,
    )
    return dest


@pytest.mark.parametrize(
    ("kind", "bits", "fmt"),
    [("rsa", 2048, "PEM"), ("rsa", 2048, "PKCS8"), ("ecdsa", 384, "PEM"), ("ecdsa", 256, "PKCS8")],
)
def test_a4_pem_private_keys_load(
    kind: str, bits: int, fmt: str, ssh_keygen_key: KeyFactory, tmp_path: Path
) -> None:
    path = rewrite_key(ssh_keygen_key(kind, bits=bits), tmp_path / "id", fmt)
    assert "-----BEGIN OPENSSH" not in path.read_text()
    signer = load_private_key(path)
    assert signer.public_key.blob == load_public_key_file(f"{path}.pub").blob
    armored = armor(sign(b"{}", NS, signer))
    result = keygen_verify(tmp_path, Path(f"{path}.pub").read_text(), NS, b"{}", armored)
    assert result.returncode == 0, result.stderr


def test_a4_passphrase_protected_openssh_key(ssh_keygen_key: KeyFactory) -> None:
    path = ssh_keygen_key("ed25519", passphrase="correct horse")
    signer = load_private_key(path, b"correct horse")
    assert signer.public_key.blob == load_public_key_file(f"{path}.pub").blob
    with pytest.raises(PrivateKeyError) as wrong:
        load_private_key(path, b"wrong horse")
    assert not isinstance(wrong.value, KeyEncryptedError)
    assert wrong.value.message == f"cannot decrypt key {path}: wrong passphrase"
    with pytest.raises(KeyEncryptedError) as missing:
        load_private_key(path)
    assert missing.value.message == (
        f"key {path} is encrypted; set SSHMINT_KEY_PASSPHRASE or run in a terminal"
    )


def test_a4_passphrase_protected_pem_key(ssh_keygen_key: KeyFactory, tmp_path: Path) -> None:
    source = ssh_keygen_key("rsa", bits=2048)
    path = rewrite_key(source, tmp_path / "id_rsa_pem", "PEM", passphrase="sekrit")
    assert "ENCRYPTED" in path.read_text()
    expected = load_public_key_file(f"{source}.pub").blob
    assert load_private_key(path, b"sekrit").public_key.blob == expected
    with pytest.raises(PrivateKeyError, match="wrong passphrase"):
        load_private_key(path, b"nope!")
    with pytest.raises(KeyEncryptedError):
        load_private_key(path)


def test_a4_passphrase_is_ignored_for_unencrypted_keys(ssh_keygen_key: KeyFactory) -> None:
    path = ssh_keygen_key("ed25519")
    assert (
        load_private_key(path, b"unused").public_key.blob == load_private_key(path).public_key.blob
    )


@pytest.mark.filterwarnings("ignore::cryptography.utils.CryptographyDeprecationWarning")
def test_a4_unusable_private_key_files(ssh_keygen_key: KeyFactory, tmp_path: Path) -> None:
    with pytest.raises(PrivateKeyError, match="cannot read key"):
        load_private_key(tmp_path / "absent")
    with pytest.raises(PrivateKeyError, match="not an OpenSSH or PEM private key"):
        load_private_key(f"{ssh_keygen_key('ed25519')}.pub")
    with pytest.raises(PrivateKeyError, match="cannot"):
        load_private_key(ssh_keygen_key("dsa"))
    corrupt = tmp_path / "corrupt"
    corrupt.write_text(
        "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n"
    )
    with pytest.raises(PrivateKeyError, match="not a valid private key"):
        load_private_key(corrupt)
    pem_dsa = tmp_path / "dsa.pem"
    dsa_key = serialization.load_ssh_private_key(ssh_keygen_key("dsa").read_bytes(), None)
    assert isinstance(dsa_key, dsa.DSAPrivateKey)
    pem_dsa.write_bytes(
        dsa_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(PrivateKeyError, match="cannot sign"):
        load_private_key(pem_dsa)


@pytest.mark.parametrize("kind", ["ed25519", "ecdsa"])
def test_a4_sk_private_key_file_points_to_the_agent(kind: str, tmp_path: Path) -> None:
    sk = SoftwareSecurityKey(kind)
    path = tmp_path / f"id_{kind}_sk"
    path.write_text(sk.private_key_file())
    path.chmod(0o600)
    # the hand-made file is one ssh-keygen reads: it derives the same public key from it
    derived = subprocess.run(
        ["ssh-keygen", "-y", "-f", str(path)], capture_output=True, text=True, check=True
    ).stdout
    assert parse_public_key_line(derived).blob == sk.blob
    with pytest.raises(PrivateKeyError) as info:
        load_private_key(path)
    assert info.value.message == (
        f"cannot use key {path}: security keys (sk-*) sign through ssh-agent; "
        f"give the public key {path}.pub instead"
    )


def test_s6616_generate_ed25519_is_fresh_and_signs() -> None:
    first, second = generate_ed25519(), generate_ed25519()
    assert first.public_key.key_type == "ssh-ed25519"
    assert first.public_key.blob != second.public_key.blob
    blob = sign(b"{}", NS, first)
    assert verify(parse_sshsig(blob), b"{}", NS, first.public_key)
    assert not verify(parse_sshsig(blob), b"{}", NS, second.public_key)
