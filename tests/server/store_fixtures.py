"""Helpers for the store tests: real ssh-keygen keys in the shape the store takes."""

from __future__ import annotations

import base64
import hashlib
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

__all__ = ["PostgresControl", "StoreKey", "make_keys", "read_pub_file"]


class PostgresControl(Protocol):
    """The parts of the session's ``postgres`` fixture (tests/conftest.py) used here."""

    data_dir: str | None

    def new_database(self) -> str: ...

    def stop(self) -> None: ...

    def start(self) -> None: ...


@dataclass(frozen=True)
class StoreKey:
    """What ``Store`` reads from a public key (``openssh``, ``fingerprint``), docs/accounts.md#ssh-keys/docs/tokens.md#fingerprints."""

    openssh: str
    fingerprint: str


def read_pub_file(path: Path) -> StoreKey:
    key_type, b64 = path.read_text().split()[:2]
    digest = hashlib.sha256(base64.b64decode(b64)).digest()
    return StoreKey(f"{key_type} {b64}", base64.b64encode(digest).decode().rstrip("="))


def make_keys(directory: Path, count: int) -> list[StoreKey]:
    """``count`` distinct Ed25519 keys made by the real ``ssh-keygen``."""
    keys = []
    for number in range(count):
        path = directory / f"store_key_{number}"
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"k{number}", "-f", str(path)],
            check=True,
            capture_output=True,
        )
        keys.append(read_pub_file(path.with_suffix(".pub")))
    return keys
