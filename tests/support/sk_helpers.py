"""Test-side helpers: a software security key and thin wrappers around ``ssh-keygen -Y``
(``keygen_verify_token`` checks an exe0 token with it).

No FIDO hardware exists on the test machines, so :class:`SoftwareSecurityKey` plays the
authenticator's part of OpenSSH PROTOCOL.u2f with an ordinary software key:

1. Key: a fresh Ed25519 or P-256 key pair. Its public blob is built by hand as
   PROTOCOL.u2f lays it out::

       sk-ssh-ed25519@openssh.com:          string type, string pk(32), string application
       sk-ecdsa-sha2-nistp256@openssh.com:  string type, string "nistp256", string Q, string application

   (``Q`` is the uncompressed SEC1 point; ``application`` defaults to ``"ssh:"``.)
2. Signature over ``data`` (for SSHSIG, ``data`` is the docs/tokens.md#signed-data signed data): the
   authenticator signs ``SHA256(application) || flags || uint32 counter || SHA256(data)``
   - Ed25519 over those bytes, ECDSA P-256 with SHA-256 over them - and the SSH
   signature is ``string format, string sigblob, byte flags, uint32 counter`` where the
   ECDSA sigblob is ``mpint r, mpint s``.

Flags default to ``0x01`` (user present); tests also clear it, since neither docs/tokens.md#key-and-signature-types
nor ``ssh-keygen -Y verify`` requires it. Because the real ``ssh-keygen`` accepts these
signatures, they are faithful vectors rather than a private reading of the protocol.
"""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from sshmint.keys import PublicKey, public_key_from_blob
from sshmint.sshsig import armor
from sshmint.token import b64url_decode
from sshmint.wire import read_string, write_mpint, write_string, write_uint32

__all__ = [
    "USER_PRESENT",
    "SoftwareSecurityKey",
    "keygen_check_novalidate",
    "keygen_sign",
    "keygen_verify",
    "keygen_verify_token",
]

USER_PRESENT = 0x01  # PROTOCOL.u2f flags: SSH_SK_USER_PRESENCE_REQD mirrors this bit
SK_ED25519 = "sk-ssh-ed25519@openssh.com"
SK_ECDSA = "sk-ecdsa-sha2-nistp256@openssh.com"


class SoftwareSecurityKey:
    """A ``keys.Signer`` that signs like a FIDO authenticator (see the module docstring)."""

    def __init__(self, kind: str = "ed25519", application: bytes = b"ssh:") -> None:
        self.kind = kind
        self.application = application
        self.flags = USER_PRESENT
        self.counter = 1
        if kind == "ed25519":
            self._ed = ed25519.Ed25519PrivateKey.generate()
            pk = self._ed.public_key().public_bytes(
                serialization.Encoding.Raw, serialization.PublicFormat.Raw
            )
            self.key_type = SK_ED25519
            self.blob = (
                write_string(SK_ED25519.encode()) + write_string(pk) + write_string(application)
            )
        elif kind == "ecdsa":
            self._ec = ec.generate_private_key(ec.SECP256R1())
            q = self._ec.public_key().public_bytes(
                serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
            )
            self.key_type = SK_ECDSA
            self.blob = (
                write_string(SK_ECDSA.encode())
                + write_string(b"nistp256")
                + write_string(q)
                + write_string(application)
            )
        else:
            raise ValueError(kind)

    @property
    def public_key(self) -> PublicKey:
        return public_key_from_blob(self.blob)

    def with_application(self, application: bytes) -> bytes:
        """The public blob of the same key pair under another application string."""
        head, _sep, _app = self.blob.rpartition(write_string(self.application))
        return head + write_string(application)

    def authenticator_message(self, data: bytes, flags: int, counter: int) -> bytes:
        return (
            hashlib.sha256(self.application).digest()
            + bytes((flags,))
            + counter.to_bytes(4, "big")
            + hashlib.sha256(data).digest()
        )

    def sign(self, data: bytes) -> bytes:
        return self.sign_with(data, self.flags, self.counter)

    def sign_with(self, data: bytes, flags: int, counter: int) -> bytes:
        message = self.authenticator_message(data, flags, counter)
        if self.kind == "ed25519":
            sigblob = self._ed.sign(message)
        else:
            r, s = decode_dss_signature(self._ec.sign(message, ec.ECDSA(hashes.SHA256())))
            sigblob = write_mpint(r) + write_mpint(s)
        return (
            write_string(self.key_type.encode())
            + write_string(sigblob)
            + bytes((flags,))
            + write_uint32(counter)
        )

    def openssh_line(self, comment: str = "sk") -> str:
        return f"{self.public_key.openssh} {comment}"

    def private_key_file(self, comment: str = "sk") -> str:
        """An unencrypted OpenSSH private key file as ``ssh-keygen -t *-sk`` writes one.

        OpenSSH PROTOCOL.key container; the private part of an sk key is only the
        authenticator's opaque key handle (random bytes here) and flags (PROTOCOL.u2f).
        """
        _type, pos = read_string(self.blob)
        public_fields = self.blob[pos : -(4 + len(self.application))]
        private = (
            b"\x5e\x5e\x5e\x5e" * 2  # the two equal check integers
            + write_string(self.key_type.encode())
            + public_fields
            + write_string(self.application)
            + bytes((USER_PRESENT,))
            + write_string(os.urandom(64))  # key handle
            + write_string(b"")  # reserved
            + write_string(comment.encode())
        )
        private += bytes(range(1, 1 + (-len(private) % 8)))  # padding to the block size
        container = (
            b"openssh-key-v1\0"
            + write_string(b"none")
            + write_string(b"none")
            + write_string(b"")
            + write_uint32(1)
            + write_string(self.blob)
            + write_string(private)
        )
        body = base64.b64encode(container).decode()
        lines = [body[i : i + 70] for i in range(0, len(body), 70)]
        return "\n".join(
            ["-----BEGIN OPENSSH PRIVATE KEY-----", *lines, "-----END OPENSSH PRIVATE KEY-----", ""]
        )


# --- ssh-keygen -Y wrappers ---------------------------------------------------------


def keygen_sign(key_path: Path, namespace: str, data: bytes, *extra: str) -> str:
    """``ssh-keygen -Y sign`` reading ``data`` on stdin; returns the armored signature."""
    out = subprocess.run(
        ["ssh-keygen", "-Y", "sign", "-n", namespace, "-f", str(key_path), *extra],
        input=data,
        capture_output=True,
        check=True,
    )
    return out.stdout.decode("ascii")


def keygen_verify(
    tmp: Path, public_line: str, namespace: str, data: bytes, armored: str
) -> subprocess.CompletedProcess[bytes]:
    """``ssh-keygen -Y verify`` against an allowed_signers file holding ``public_line``."""
    allowed = tmp / "allowed_signers"
    allowed.write_text(f"signer@test {public_line}\n")
    sigfile = tmp / "data.sig"
    sigfile.write_text(armored)
    return subprocess.run(
        [
            *("ssh-keygen", "-Y", "verify", "-f", str(allowed), "-I", "signer@test"),
            *("-n", namespace, "-s", str(sigfile)),
        ],
        input=data,
        capture_output=True,
    )


def keygen_verify_token(
    token: str, pub_path: Path, namespace: str
) -> subprocess.CompletedProcess[bytes]:
    """``ssh-keygen -Y verify`` of an exe0 token (its payload, and its signature part turned
    back into armor) against the key of ``pub_path``, allowed for ``namespace`` only."""
    _, payload_part, signature_part = token.split(".")
    key_type, blob = pub_path.read_text().split()[:2]
    with tempfile.TemporaryDirectory() as tmp:
        return keygen_verify(
            Path(tmp),
            f'namespaces="{namespace}" {key_type} {blob}',
            namespace,
            b64url_decode(payload_part),
            armor(b64url_decode(signature_part)),
        )


def keygen_check_novalidate(
    tmp: Path, namespace: str, data: bytes, armored: str
) -> subprocess.CompletedProcess[bytes]:
    """``ssh-keygen -Y check-novalidate``: the signature is valid for the key it embeds."""
    sigfile = tmp / "data.sig"
    sigfile.write_text(armored)
    return subprocess.run(
        ["ssh-keygen", "-Y", "check-novalidate", "-n", namespace, "-s", str(sigfile)],
        input=data,
        capture_output=True,
    )
