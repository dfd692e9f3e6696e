"""Helpers for the client tests: a fake clock, a counting signer, what a loopback server
recorded, and a search for tokens left in files."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from sshmint.keys import PublicKey
from sshmint.signing import Signer


class FakeClock:
    """An injectable clock (unix seconds) that moves only when told to."""

    def __init__(self, now: float = 1_900_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class CountingSigner:
    """Wraps a real signer and counts signatures (one signature = one minted token)."""

    def __init__(self, inner: Signer) -> None:
        self.inner = inner
        self.count = 0
        self._lock = threading.Lock()

    @property
    def public_key(self) -> PublicKey:
        return self.inner.public_key

    def sign(self, data: bytes) -> bytes:
        with self._lock:
            self.count += 1
        return self.inner.sign(data)


@dataclass
class LoopbackServer:
    """What an aiohttp app served on 127.0.0.1 (``client_fixtures.py``) received."""

    url: str
    requests: list[dict[str, str]] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)


def find_tokens(*roots: Path) -> list[Path]:
    """Every file under ``roots`` that contains an exe0 or exe1 token prefix."""
    hits = []
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file() and not path.is_symlink():
                data = path.read_bytes()
                if b"exe0." in data or b"exe1." in data:
                    hits.append(path)
    return hits
