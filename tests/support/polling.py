"""Waiting without fixed sleeps, and loopback ports chosen by the kernel.

- :func:`wait_until` polls a predicate until it holds or a timeout passes;
- :func:`free_port` is a port that was free a moment ago on 127.0.0.1 (for options that
  need a number before the process binds: prefer ``127.0.0.1:0`` where a server prints
  the port it bound). It is drawn at random from below the kernel's ephemeral range, where
  no ``bind(0)`` or outgoing connection of a test running in parallel can take it between
  the check and the server's own bind;
- :func:`port_accepts` tells whether something listens on a loopback port.
"""

from __future__ import annotations

import random
import socket
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["free_port", "port_accepts", "wait_until"]


def wait_until(
    predicate: Callable[[], bool], timeout: float = 10.0, interval: float = 0.05
) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` seconds pass; the result of a
    last call after the deadline is returned (no fixed sleeps in tests)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_SPAN = 10_000  # how many ports below the ephemeral range free_port draws from
_DRAW = random.SystemRandom()  # not the global generator, which tests may seed


def _quiet_ports() -> range | None:
    """Ports the kernel never hands out by itself (below its ephemeral range), if any."""
    try:
        low = int(_EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    start = max(1024, low - _SPAN)
    return range(start, low) if low - start >= 1000 else None


def free_port() -> int:
    """A port that was free a moment ago on 127.0.0.1 (see the module's docstring)."""
    candidates = [_DRAW.choice(quiet) for _ in range(100)] if (quiet := _quiet_ports()) else []
    for port in [*candidates, 0]:  # 0: the kernel's choice, if no quiet port was free
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise OSError("no free port on 127.0.0.1")


def port_accepts(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a TCP connection to ``host:port`` is accepted now."""
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False
