"""Waiting without fixed sleeps, and loopback ports chosen by the kernel.

- :func:`wait_until` polls a predicate until it holds or a timeout passes;
- :func:`free_port` is a port that was free a moment ago on 127.0.0.1 (for options that
  need a number before the process binds: prefer ``127.0.0.1:0`` where a server prints
  the port it bound);
- :func:`port_accepts` tells whether something listens on a loopback port.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

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


def free_port() -> int:
    """A port that was free a moment ago on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_accepts(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a TCP connection to ``host:port`` is accepted now."""
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False
