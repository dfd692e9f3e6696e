"""docs/security.md#slow-and-idle-clients on the HTTP listener: head deadline (R159), ``/exec`` body deadline (R160),
idle keep-alive connections, the connection limit, and a flood of slow clients.

Most tests run against a server started with small deadlines (1–2 s) so they take
seconds; one runs at the defaults (10 s head deadline) with 2,000 slow connections.
"""

from __future__ import annotations

import os
import resource
import selectors
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sshmint.server.app import raise_open_file_limit
from sshmint.server.config import load_config
from tests.support.harness import SSHMintServer
from tests.support.keys import new_key, recipe_token
from tests.support.polling import wait_until
from tests.support.raw_http import closed_within, exchange, open_files_at_least, read_response
from tests.support.server_fixtures import served

pytestmark = pytest.mark.slow

HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n"
HALF_A_HEAD = b"GET /healthz HTTP/1.1\r\nHost: local"
FAILED_BODY = b'{"error":"failed to read request body"}\n'


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SSHMintServer]:
    """A server with short deadlines: 1 s for a head or a body, 3 s idle."""
    yield from served(
        tmp_path_factory.mktemp("quick"),
        extra_args=[
            "--header-timeout", "1s", "--idle-timeout", "3s",
            "--body-timeout", "1s",
        ],
    )  # fmt: skip


@pytest.fixture(scope="module")
def quick_token(quick: SSHMintServer, tmp_path_factory: pytest.TempPathFactory) -> str:
    key = new_key(tmp_path_factory.mktemp("quick-key") / "key")
    quick.add_user("quick@example.com", key.with_name("key.pub"))
    return recipe_token(key)


def connect(server: SSHMintServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.http_port), timeout=10)


def healthz_seconds(server: SSHMintServer) -> float:
    """Time for a well-behaved client on a new connection to get ``/healthz``'s 200."""
    started = time.monotonic()
    reply = exchange(server.http_port, HEALTHZ, timeout=10)
    assert reply.status == 200
    return time.monotonic() - started


# --- the head deadline -------------------------------------------------------------------


def test_r159_half_a_head_is_closed_at_the_header_timeout(quick: SSHMintServer) -> None:
    with connect(quick) as sock:
        sock.sendall(HALF_A_HEAD)
        waited = closed_within(sock, 6)
    assert waited is not None and 0.8 <= waited <= 3, waited


def test_r159_a_connection_that_sends_nothing_is_closed_too(quick: SSHMintServer) -> None:
    with connect(quick) as sock:
        waited = closed_within(sock, 6)
    assert waited is not None and 0.8 <= waited <= 3, waited


def test_r159_trickling_bytes_does_not_move_the_deadline(quick: SSHMintServer) -> None:
    """The clock runs from the connection, not from the last byte (slowloris)."""
    started = time.monotonic()
    with connect(quick) as sock:
        try:
            for byte in HEALTHZ[:-2]:  # never the final CRLF
                sock.sendall(bytes([byte]))
                time.sleep(0.1)
        except OSError:  # closed by the server while we were still trickling
            pass
        assert closed_within(sock, 6) is not None
    assert time.monotonic() - started <= 3


def test_r159_a_head_in_pieces_within_the_deadline_is_served(quick: SSHMintServer) -> None:
    with connect(quick) as sock:
        for piece in (HEALTHZ[:10], HEALTHZ[10:25], HEALTHZ[25:]):
            sock.sendall(piece)
            time.sleep(0.2)
        assert read_response(sock).status == 200


def test_r159_idle_keep_alive_is_closed_at_the_idle_timeout_not_the_head_deadline(
    quick: SSHMintServer,
) -> None:
    """After a response, a connection with no new byte is idle: closed at
    ``--idle-timeout`` (3 s), not at ``--header-timeout`` (1 s)."""
    with connect(quick) as sock:
        sock.sendall(HEALTHZ)
        assert read_response(sock).status == 200
        waited = closed_within(sock, 10)
    assert waited is not None and 2.6 <= waited <= 5.5, waited


def test_r159_the_next_head_on_a_kept_alive_connection_has_its_own_deadline(
    quick: SSHMintServer,
) -> None:
    """The clock restarts with the first byte of the next request: half a head sent
    after 0.5 s idle is closed about 1 s later (the idle close would come 2.5 s later)."""
    with connect(quick) as sock:
        sock.sendall(HEALTHZ)
        assert read_response(sock).status == 200
        time.sleep(0.5)
        sock.sendall(HALF_A_HEAD)
        waited = closed_within(sock, 6)
    assert waited is not None and 0.8 <= waited <= 2.2, waited


# --- the /exec body deadline -------------------------------------------------------------


def _exec_head(token: str, length: int) -> bytes:
    return (
        f"POST /exec HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


def test_r160_a_body_shorter_than_its_content_length_is_400_at_the_body_timeout(
    quick: SSHMintServer, quick_token: str
) -> None:
    started = time.monotonic()
    with connect(quick) as sock:
        sock.sendall(_exec_head(quick_token, 100) + b"whoami")
        reply = read_response(sock, timeout=6)
        elapsed = time.monotonic() - started
        assert closed_within(sock, 5) is not None  # the request's framing is lost
    assert (reply.status, reply.body) == (400, FAILED_BODY)
    assert 0.8 <= elapsed <= 3, elapsed


def test_r160_a_body_arriving_in_pieces_before_the_deadline_runs(
    quick: SSHMintServer, quick_token: str
) -> None:
    with connect(quick) as sock:
        sock.sendall(_exec_head(quick_token, 6) + b"who")
        time.sleep(0.4)
        sock.sendall(b"ami")
        reply = read_response(sock)
    assert reply.status == 200 and b'"email"' in reply.body


def test_a_client_that_half_closes_is_answered_and_an_unfinished_body_fails_at_once(
    quick: SSHMintServer, quick_token: str
) -> None:
    """A client may shut down its sending side once its request is out: it is answered
    all the same; a body it left short can no longer complete, so /exec fails it at
    once (not at the body deadline) and the connection closes."""
    with connect(quick) as sock:
        sock.sendall(HEALTHZ)
        sock.shutdown(socket.SHUT_WR)
        assert read_response(sock).status == 200
        assert closed_within(sock, 3) is not None
    started = time.monotonic()
    with connect(quick) as sock:
        sock.sendall(_exec_head(quick_token, 100) + b"whoami")
        sock.shutdown(socket.SHUT_WR)
        reply = read_response(sock)
        assert closed_within(sock, 3) is not None
    assert (reply.status, reply.body) == (400, FAILED_BODY)
    assert time.monotonic() - started < 0.8


def test_r160_the_body_timeout_default_is_10_seconds() -> None:
    config = load_config({}, environ={})
    assert (config.header_timeout, config.body_timeout, config.idle_timeout) == (10, 10, 75)
    assert config.max_connections == 4096


# --- the connection limit ----------------------------------------------------------------


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SSHMintServer]:
    yield from served(
        tmp_path_factory.mktemp("limited"),
        extra_args=["--max-connections", "8", "--idle-timeout", "30s"],
    )


def test_max_connections_new_connections_wait_and_none_is_evicted(
    limited: SSHMintServer,
) -> None:
    """With 8 connections held, a 9th waits in the backlog (answered only once one of
    the 8 closes), and every one of the 8 keeps being served meanwhile."""
    held = [connect(limited) for _ in range(8)]
    try:
        for sock in held:  # each one accepted and served, then kept alive
            sock.sendall(HEALTHZ)
            assert read_response(sock).status == 200
        with connect(limited) as waiting:  # the kernel completes the handshake
            waiting.sendall(HEALTHZ)
            waiting.settimeout(0.7)
            with pytest.raises(TimeoutError):
                waiting.recv(1)
            for sock in held:  # not evicted: still served
                sock.sendall(HEALTHZ)
                assert read_response(sock).status == 200
            held.pop().close()
            started = time.monotonic()
            assert read_response(waiting, timeout=5).status == 200
            assert time.monotonic() - started < 1
    finally:
        for sock in held:
            sock.close()


def test_the_server_raises_its_open_file_limit_to_the_hard_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    lower = min(soft, 512) if hard == resource.RLIM_INFINITY else min(soft, hard, 512)
    resource.setrlimit(resource.RLIMIT_NOFILE, (lower, hard))
    try:
        now = raise_open_file_limit(64)
        expected = hard if hard != resource.RLIM_INFINITY else lower
        assert now == expected == resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


# --- defaults, under a flood -------------------------------------------------------------

FLOOD = 2000


def test_r159_2000_slow_connections_at_the_defaults(sqlite_server: SSHMintServer) -> None:
    """R159 and docs/security.md#slow-and-idle-clients at the defaults: 2,000 connections that each sent half a head
    neither delay ``/healthz`` for another client beyond one second nor outlive the
    10-second head deadline by much (all closed within 15 s of connecting)."""
    assert sqlite_server.proc is not None
    open_files_at_least(FLOOD + 256)
    flood: dict[socket.socket, float] = {}
    selector = selectors.DefaultSelector()
    try:
        for _ in range(FLOOD):
            sock = socket.create_connection(("127.0.0.1", sqlite_server.http_port), timeout=10)
            sock.sendall(HALF_A_HEAD)
            sock.setblocking(False)
            flood[sock] = time.monotonic()
            selector.register(sock, selectors.EVENT_READ)
        # The server holds them all (one descriptor each), and still answers at once.
        fds = Path(f"/proc/{sqlite_server.proc.pid}/fd")
        assert wait_until(lambda: len(os.listdir(fds)) >= FLOOD, timeout=5)
        probes = [healthz_seconds(sqlite_server) for _ in range(5)]
        assert max(probes) < 1, probes
        # Each slow connection is closed by the server, ~10 s after it connected.
        lifetimes = []
        deadline = time.monotonic() + 16
        while flood and time.monotonic() < deadline:
            for key, _ in selector.select(timeout=1):
                fileobj = key.fileobj
                assert isinstance(fileobj, socket.socket)
                sock = fileobj
                try:
                    data = sock.recv(4096)
                except OSError:
                    data = b""
                if not data:
                    lifetimes.append(time.monotonic() - flood.pop(sock))
                    selector.unregister(sock)
                    sock.close()
        assert not flood, f"{len(flood)} slow connections still open after 16 s"
        assert min(lifetimes) >= 9 and max(lifetimes) <= 15, (min(lifetimes), max(lifetimes))
    finally:
        selector.close()
        for sock in flood:
            sock.close()
