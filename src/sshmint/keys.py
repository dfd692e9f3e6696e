"""SSH public keys: the :class:`PublicKey` value, fingerprints, and the text and file forms.

Public keys are kept as their exact wire blob (RFC 4253 §6.6, OpenSSH PROTOCOL.u2f for
the ``sk-*`` types): the blob is the key's identity, its SHA-256 is the fingerprint
(docs/tokens.md#fingerprints), and signatures are checked against objects parsed from it
by :mod:`sshmint.keytypes` (one reader per key type). ``cryptography``'s own SSH loader is not used for public keys because it turns ``sk-*``
keys into plain ones, dropping the application string that sk signatures cover.

Two levels of validation, for the two places a key blob comes from:

- the key embedded in a signature (:func:`embedded_public_key`): structure — a docs/tokens.md#key-and-signature-types type, every field present, nothing after them, an RSA modulus of 1024..16384
  bits, an EC point on its curve; failing it makes a token malformed (step 15);
- a key being registered, or read back from the database (:func:`public_key_from_blob`,
  :func:`parse_public_key_line`, :func:`load_public_key_file`): structure and the
  docs/security.md#key-limits limit on the RSA public exponent (odd, >= 3, < 2^24). A token signed by a
  key that breaks it is well formed and refused as not registered (step 18); such a key
  never reaches OpenSSL — its ``verify`` is always false — since with a 3071-bit
  exponent one garbage signature costs ~100 times a normal check.

Ed25519 signatures are checked by :mod:`sshmint.ed25519` (libsodium, else ``cryptography``);
private keys and signing are :mod:`sshmint.signing`.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import os
import re
from dataclasses import dataclass

from sshmint.errors import PrivateKeyGivenError, PublicKeyError
from sshmint.keytypes import check_type_name, material, quote_detail, signature_valid

__all__ = [
    "MAX_KEY_FILE_BYTES",
    "MAX_KEY_LINE_CHARS",
    "PublicKey",
    "embedded_public_key",
    "fingerprint",
    "format_fingerprint",
    "limit_violation",
    "load_public_key_file",
    "parse_public_key_line",
    "public_key_from_blob",
    "read_key_file",
]

MAX_KEY_FILE_BYTES = 256 * 1024  # far above a 16384-bit RSA key in any format
MAX_KEY_LINE_CHARS = 16 * 1024  # a 16384-bit RSA public key line is ~2.8k characters


# --- fingerprints (docs/tokens.md#fingerprints) -------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def fingerprint(blob: bytes) -> str:
    """SHA-256 of the key blob, standard base64 without padding (43 characters, no prefix)."""
    return base64.b64encode(hashlib.sha256(blob).digest()).decode("ascii").rstrip("=")


def format_fingerprint(fp: str) -> str:
    """The displayed form, as ``ssh-keygen -l -E sha256`` prints it."""
    return "SHA256:" + fp


def limit_violation(blob: bytes) -> str | None:
    """The docs/security.md#key-limits limit a structurally valid key blob breaks, or None.

    None too for a blob that does not parse at all: that is another refusal, reported by
    the parsers. Never raises; cached with the parsed key.
    """
    try:
        return material(blob).limit_error
    except PublicKeyError:
        return None


# --- public keys --------------------------------------------------------------------


@dataclass(frozen=True)
class PublicKey:
    """An SSH public key of a docs/tokens.md#key-and-signature-types type, identified by its exact wire ``blob``.

    Build it with :func:`public_key_from_blob`, :func:`parse_public_key_line` or
    :func:`load_public_key_file`, which validate the blob (docs/security.md#key-limits limits included),
    or with :func:`embedded_public_key` (structure only).
    """

    key_type: str
    blob: bytes
    comment: str = ""

    @functools.cached_property
    def fingerprint(self) -> str:
        """docs/tokens.md#fingerprints: 43 characters, no ``SHA256:`` prefix (computed once: the blob is
        immutable, and a memoised token is looked up by it on every request)."""
        return fingerprint(self.blob)

    @property
    def openssh(self) -> str:
        """docs/accounts.md#ssh-keys canonical form ``<type> <base64>``."""
        return f"{self.key_type} {base64.b64encode(self.blob).decode('ascii')}"

    @property
    def bits(self) -> int:
        """RSA modulus size, or the curve size (256 for Ed25519)."""
        return material(self.blob).bits

    @property
    def application(self) -> bytes | None:
        """The FIDO application string of an ``sk-*`` key (e.g. ``b"ssh:"``), else None."""
        return material(self.blob).application

    def verify(self, signature: bytes, data: bytes) -> bool:
        """Whether ``signature`` (an SSH signature) is valid for ``data``. Never raises."""
        return signature_valid(self.blob, signature, data)


@functools.lru_cache(maxsize=4096)
def public_key_from_blob(blob: bytes) -> PublicKey:
    """Validate a wire blob for use as a registered key: a type of docs/tokens.md#key-and-signature-types, no trailing
    bytes, RSA modulus 1024..16384 bits, and the docs/security.md#key-limits limits (RSA exponent).

    Raises :class:`PublicKeyError` with a precise detail.
    """
    parsed = material(blob)
    if parsed.limit_error is not None:
        raise PublicKeyError(parsed.limit_error)
    return PublicKey(parsed.key_type, blob)


@functools.lru_cache(maxsize=4096)
def embedded_public_key(blob: bytes) -> PublicKey:
    """The key inside a signature blob, checked for structure only (docs/tokens.md#sshsig-blob, step 15).

    A key outside the docs/security.md#key-limits limits is returned (see :func:`limit_violation`): it
    makes the token well formed but unverifiable, so verifiers refuse it at step 18. Its
    :meth:`PublicKey.verify` is always false. Raises :class:`PublicKeyError`.
    """
    return PublicKey(material(blob).key_type, blob)


_FIELD_SEPARATOR = re.compile(r"[ \t]+")


def parse_public_key_line(line: str) -> PublicKey:
    """Parse ``<type> <base64> [comment...]`` (docs/accounts.md#ssh-keys)."""
    if "PRIVATE KEY" in line:  # checked first, on the whole input (docs/accounts.md#ssh-keys)
        raise PrivateKeyGivenError()
    text = line.strip()
    if not text:
        raise PublicKeyError("empty key")
    if len(text) > MAX_KEY_LINE_CHARS:
        raise PublicKeyError("line too long")
    if "\n" in text or "\r" in text:
        raise PublicKeyError("expected a single line")
    fields = _FIELD_SEPARATOR.split(text, maxsplit=2)
    if len(fields) < 2:
        raise PublicKeyError("expected '<type> <base64> [comment]'")
    named_type = check_type_name(fields[0].encode("utf-8", "replace"))
    try:
        blob = binascii.a2b_base64(fields[1].encode("ascii"), strict_mode=True)
    except (ValueError, binascii.Error):
        raise PublicKeyError("key data is not valid base64") from None
    key = public_key_from_blob(blob)
    if key.key_type != named_type:
        raise PublicKeyError(
            f"key type {quote_detail(named_type)} does not match the key data ({quote_detail(key.key_type)})"
        )
    comment = fields[2].strip() if len(fields) > 2 else ""
    return PublicKey(key.key_type, key.blob, comment)


def read_key_file(path: str | os.PathLike[str]) -> bytes:
    """A key file's bytes; ``ValueError`` beyond ``MAX_KEY_FILE_BYTES`` (read no further)."""
    with open(path, "rb") as f:
        data = f.read(MAX_KEY_FILE_BYTES + 1)
    if len(data) > MAX_KEY_FILE_BYTES:
        raise ValueError("file too large")
    return data


def load_public_key_file(path: str | os.PathLike[str]) -> PublicKey:
    """The first non-empty, non-``#`` line of a ``.pub`` file (docs/accounts.md#ssh-keys parsing)."""
    try:
        data = read_key_file(path)
    except OSError as exc:
        raise PublicKeyError(f"cannot read {os.fspath(path)}: {exc.strerror or exc}") from None
    except ValueError:
        raise PublicKeyError(f"{os.fspath(path)} is too large for a public key file") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise PublicKeyError(f"{os.fspath(path)} is not a text file") from None
    if "PRIVATE KEY" in text:
        raise PrivateKeyGivenError()
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            return parse_public_key_line(stripped)
    raise PublicKeyError(f"{os.fspath(path)} contains no key")
