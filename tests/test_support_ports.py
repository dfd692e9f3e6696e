"""The suite's port helper: a port chosen for a server that binds it a moment later must not
be one the kernel can hand to another test in between (see tests/support/polling.py)."""

from __future__ import annotations

import socket
from pathlib import Path

from tests.support.polling import free_port


def _ephemeral_low() -> int:
    return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])


def test_free_port_is_below_the_ephemeral_range_so_no_bind_0_or_connect_can_take_it() -> None:
    low = _ephemeral_low()
    ports = {free_port() for _ in range(20)}
    assert all(1024 <= port < low for port in ports), (sorted(ports), low)
    assert len(ports) > 1  # drawn at random: workers running in parallel rarely meet


def test_free_port_is_bindable_at_once() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
        sock.listen()
        assert sock.getsockname()[1] == port


def test_free_port_skips_a_port_in_use() -> None:
    taken = []
    try:
        for _ in range(50):  # hold many quiet ports; none of them may come back
            sock = socket.socket()
            sock.bind(("127.0.0.1", free_port()))
            sock.listen()
            taken.append(sock)
        held = {sock.getsockname()[1] for sock in taken}
        assert all(free_port() not in held for _ in range(50))
    finally:
        for sock in taken:
            sock.close()
