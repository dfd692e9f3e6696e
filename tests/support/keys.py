"""Keys made by the real ``ssh-keygen``, the accounts that log in with them, and exe0
tokens made from them by the documented shell recipe.

- :func:`new_key` is the one place that runs ``ssh-keygen -t``; the fixtures build on it:
  ``ssh_keygen_key(kind, bits=, name=, passphrase=, comment=)`` (a :data:`KeyFactory`,
  cached per session: the same arguments give the same key) and ``fresh_key(kind,
  comment=, bits=)`` (a new key on every call).
- :class:`Account`: a registered user and the key it signs with.
- :func:`recipe_token`: an exe0 token made with bash, base64, tr, sed and ``ssh-keygen -Y
  sign``, as the README's offline walkthrough makes one.
- :func:`make_keys` / :class:`StoreKey`: public keys in the shape ``Store`` takes.
- :func:`key_fingerprint` (``ssh-keygen -l``) and :func:`fingerprint_of` /
  :func:`line_fingerprint` (computed here); :func:`fresh_public_key`, a public key line
  made in-process.
"""

from __future__ import annotations

import base64
import hashlib
import subprocess
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from sshmint.signing import generate_ed25519

__all__ = [
    "RECIPE",
    "SIGNABLE",
    "SIGNABLE_IDS",
    "Account",
    "AccountFactory",
    "KeyFactory",
    "StoreKey",
    "fingerprint_of",
    "fresh_key",
    "fresh_public_key",
    "key_fingerprint",
    "line_fingerprint",
    "make_keys",
    "new_key",
    "public_line",
    "read_pub_file",
    "recipe_token",
    "ssh_keygen_key",
]

KeyFactory = Callable[..., Path]

# (ssh-keygen -t, -b) for every type sshmint signs with (docs/tokens.md#key-and-signature-types)
SIGNABLE = [("ed25519", None), ("ecdsa", 256), ("ecdsa", 384), ("ecdsa", 521), ("rsa", 2048)]
SIGNABLE_IDS = ["ed25519", "ecdsa256", "ecdsa384", "ecdsa521", "rsa2048"]


def new_key(
    path: Path,
    kind: str = "ed25519",
    comment: str = "test",
    *,
    bits: int | None = None,
    passphrase: str = "",
) -> Path:
    """A private key file made by the real ``ssh-keygen`` (public key at ``<path>.pub``)."""
    cmd = ["ssh-keygen", "-q", "-t", kind, "-N", passphrase, "-C", comment, "-f", str(path)]
    if bits:
        cmd += ["-b", str(bits)]
    subprocess.run(cmd, check=True, capture_output=True)
    return path


def public_line(key: Path) -> str:
    """The ``.pub`` line beside private key file ``key``."""
    return key.with_name(key.name + ".pub").read_text().strip()


def key_fingerprint(pub_path: Path) -> str:
    """``SHA256:...`` of a public key file, as the real ``ssh-keygen -l`` prints it."""
    result = subprocess.run(
        ["ssh-keygen", "-l", "-E", "sha256", "-f", str(pub_path)],
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.split()[1]


def line_fingerprint(line: str) -> str:
    """docs/tokens.md#fingerprints fingerprint (no prefix) of a public key line."""
    blob = base64.b64decode(line.split()[1])
    return base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def fingerprint_of(pub: Path) -> str:
    """docs/tokens.md#fingerprints fingerprint (no prefix) of a ``.pub`` file."""
    return line_fingerprint(pub.read_text())


def fresh_public_key(comment: str = "") -> str:
    """The public key line of a new Ed25519 key that is registered nowhere (made
    in-process: for tests that need many keys and never sign with them)."""
    return f"{generate_ed25519().public_key.openssh} {comment}".strip()


# The README's offline recipe (docs/tokens.md#minting-offline), line for line but for the
# variables it reads and the strict mode of the test's shell.
RECIPE = r"""
set -euo pipefail
b64url() { tr -d '\n=' | tr '+/' '-_'; }
export PAYLOAD=$(printf '%s' "$PERMISSIONS" | base64 | b64url)
export SIG=$(printf '%s' "$PERMISSIONS" | ssh-keygen -Y sign -f "$KEY" -n "$NAMESPACE")
export SIGBLOB=$(echo "$SIG" | sed '1d;$d' | b64url)
export TOKEN="exe0.$PAYLOAD.$SIGBLOB"
printf '%s' "$TOKEN"
"""


def recipe_token(key: Path, permissions: str = "{}", namespace: str = "v0@localhost") -> str:
    """An exe0 token made with bash, base64, tr, sed and ``ssh-keygen -Y sign``."""
    result = subprocess.run(
        ["bash", "-c", RECIPE],
        env={
            "PATH": "/usr/bin:/bin",
            "PERMISSIONS": permissions,
            "KEY": str(key),
            "NAMESPACE": namespace,
        },
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return result.stdout


@dataclass(frozen=True)
class Account:
    """A registered user and the key it logs in with (the public key beside it as
    ``<key>.pub``)."""

    email: str
    key: Path
    user_id: str = ""

    @property
    def pub(self) -> Path:
        return self.key.with_name(self.key.name + ".pub")

    @property
    def public_line(self) -> str:
        return self.pub.read_text().strip()

    @property
    def fingerprint(self) -> str:
        return fingerprint_of(self.pub)

    def token(self, permissions: str = "{}", namespace: str = "v0@localhost") -> str:
        """An exe0 token made with the documented ssh-keygen recipe."""
        return recipe_token(self.key, permissions, namespace)


AccountFactory = Callable[..., Account]


@dataclass(frozen=True)
class StoreKey:
    """What ``Store`` reads from a public key (``openssh``, ``fingerprint``),
    docs/accounts.md#ssh-keys, docs/tokens.md#fingerprints."""

    openssh: str
    fingerprint: str


def read_pub_file(path: Path) -> StoreKey:
    key_type, b64 = path.read_text().split()[:2]
    return StoreKey(f"{key_type} {b64}", fingerprint_of(path))


def make_keys(directory: Path, count: int) -> list[StoreKey]:
    """``count`` distinct Ed25519 keys made by the real ``ssh-keygen``."""
    return [
        read_pub_file(Path(f"{new_key(directory / f'store_key_{n}', comment=f'k{n}')}.pub"))
        for n in range(count)
    ]


# --- fixtures: the first two for every directory (tests/conftest.py), ``key_path`` for
# tests/core ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def ssh_keygen_key(tmp_path_factory: pytest.TempPathFactory) -> KeyFactory:
    """Make (and cache per session) a private key file with the real ``ssh-keygen``.

    ``ssh_keygen_key("ed25519")``, ``("ecdsa", bits=384)``, ``("rsa", bits=3072)``,
    ``name=`` for a distinct key of the same type, ``passphrase=`` for an encrypted one.
    The public key is beside it as ``<path>.pub``.
    """
    base = tmp_path_factory.mktemp("keys")
    cache: dict[tuple[str, int | None, str, str], Path] = {}

    def make(
        kind: str = "ed25519",
        bits: int | None = None,
        name: str = "",
        passphrase: str = "",
        comment: str = "test",
    ) -> Path:
        ident = (kind, bits, name, passphrase)
        if ident not in cache:
            # Numbered: two passphrases for the same kind must not share a file.
            path = base / f"id_{kind}{bits or ''}{('_' + name) if name else ''}_{len(cache)}"
            cache[ident] = new_key(path, kind, comment, bits=bits, passphrase=passphrase)
        return cache[ident]

    return make


@pytest.fixture(scope="session")
def fresh_key(tmp_path_factory: pytest.TempPathFactory) -> KeyFactory:
    """A new key pair on every call: ``fresh_key(kind="ed25519", comment="test", bits=None)``."""
    base = tmp_path_factory.mktemp("fresh-keys")

    def make(kind: str = "ed25519", comment: str = "test", bits: int | None = None) -> Path:
        return new_key(base / f"id_{kind}_{uuid.uuid4().hex[:12]}", kind, comment, bits=bits)

    return make


@pytest.fixture(params=SIGNABLE, ids=SIGNABLE_IDS)
def key_path(request: pytest.FixtureRequest, ssh_keygen_key: KeyFactory) -> Path:
    """One key of each type sshmint signs with."""
    kind, bits = request.param
    return ssh_keygen_key(kind, bits=bits)
