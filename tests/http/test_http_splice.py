"""Zero-copy relay of large response bodies (src/sshmint/server/proxy/splice.py, docs/proxy.md#responses):
``splice_exactly`` on real loopback sockets, and large bodies through a live proxy with
curl, byte-exact, on keep-alive connections at both ends.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from sshmint.server.proxy import splice
from sshmint.server.proxy.splice import SpliceError, splice_available, splice_exactly, transport_fd
from tests.support.exec_support import assert_ok, post_exec
from tests.support.harness import SSHMintServer
from tests.support.keys import Account
from tests.support.polling import wait_until
from tests.support.upstream_client_support import RawPeer, ThreadedRawUpstream, response

WAIT = 20.0
MiB = 1 << 20


# --- splice_exactly on loopback sockets -------------------------------------------------------


async def _socket_pair() -> tuple[socket.socket, socket.socket]:
    """A connected, non-blocking pair of TCP sockets on 127.0.0.1."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        left = socket.create_connection(listener.getsockname())
        right, _ = listener.accept()
    for sock in (left, right):
        sock.setblocking(False)
    return left, right


@pytest.fixture
async def pairs() -> AsyncIterator[
    tuple[socket.socket, socket.socket, socket.socket, socket.socket]
]:
    """(upstream writer, relay source, relay destination, client reader)."""
    up_w, src = await _socket_pair()
    dst, cl_r = await _socket_pair()
    yield up_w, src, dst, cl_r
    for sock in (up_w, src, dst, cl_r):
        sock.close()


async def _send_all(sock: socket.socket, data: bytes) -> None:
    await asyncio.get_running_loop().sock_sendall(sock, data)


async def _receive(sock: socket.socket, count: int) -> bytes:
    loop = asyncio.get_running_loop()
    received = bytearray()
    while len(received) < count:
        chunk = await loop.sock_recv(sock, min(1 << 18, count - len(received)))
        if not chunk:
            break
        received += chunk
    return bytes(received)


async def test_s88_splice_moves_exactly_count_bytes_and_leaves_the_rest(
    pairs: tuple[socket.socket, socket.socket, socket.socket, socket.socket],
) -> None:
    up_w, src, dst, cl_r = pairs
    body = hashlib.sha512(b"body").digest() * (3 * MiB // 64 + 7)  # not a round size
    after = b"NEXT RESPONSE"
    async with asyncio.timeout(WAIT):
        feeding = asyncio.ensure_future(_send_all(up_w, body + after))
        # The reader is slower than the writer: the relay must wait on both sides.
        receiving = asyncio.ensure_future(_receive(cl_r, len(body)))
        await splice_exactly(src.fileno(), dst.fileno(), len(body))
        await feeding
        assert await receiving == body
        # What followed the body is still in the source socket, in order.
        assert await _receive(src, len(after)) == after


async def test_s88_splice_through_a_small_pipe_waits_on_the_real_obstacle(
    pairs: tuple[socket.socket, socket.socket, socket.socket, socket.socket],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A pipe of one page (as a capped system might grant) fills up long before the
    # body ends: the relay must wait for the client, not spin on the readable source.
    monkeypatch.setattr(splice, "_PIPE_SIZE", 4096)
    monkeypatch.setattr(splice, "_IDLE_PIPES", [])
    up_w, src, dst, cl_r = pairs
    body = bytes(range(256)) * (2 * MiB // 256)
    async with asyncio.timeout(WAIT):
        feeding = asyncio.ensure_future(_send_all(up_w, body))
        receiving = asyncio.ensure_future(_receive(cl_r, len(body)))
        await splice.splice_exactly(src.fileno(), dst.fileno(), len(body))
        await feeding
        assert await receiving == body
    assert splice._IDLE_PIPES and splice._IDLE_PIPES[0][2] == 4096  # capacity as granted


async def test_s88_splice_of_a_body_cut_short_is_an_error(
    pairs: tuple[socket.socket, socket.socket, socket.socket, socket.socket],
) -> None:
    up_w, src, dst, _cl_r = pairs
    await _send_all(up_w, b"x" * 1000)
    up_w.shutdown(socket.SHUT_WR)
    with pytest.raises(SpliceError, match="closed before the end of the body"):
        async with asyncio.timeout(WAIT):
            await splice_exactly(src.fileno(), dst.fileno(), 5000)


async def test_s88_splice_to_a_closed_client_is_an_error(
    pairs: tuple[socket.socket, socket.socket, socket.socket, socket.socket],
) -> None:
    up_w, src, dst, cl_r = pairs
    cl_r.close()  # the client went away
    feeding = asyncio.ensure_future(_send_all(up_w, b"y" * (4 * MiB)))
    with pytest.raises(SpliceError, match="writing the body failed"):
        async with asyncio.timeout(WAIT):
            await splice_exactly(src.fileno(), dst.fileno(), 4 * MiB)
    feeding.cancel()


async def test_s88_splice_is_offered_for_plain_tcp_transports_only() -> None:
    loop = asyncio.get_running_loop()
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            assert splice_available(loop, writer.transport)
            assert transport_fd(writer.transport) == writer.get_extra_info("socket").fileno()
        finally:
            writer.close()
    finally:
        server.close()
        await server.wait_closed()


# --- large bodies through the live proxy ------------------------------------------------------


@pytest.fixture(scope="module")
def live(sqlite_server: SSHMintServer) -> SSHMintServer:
    """SQLite only (overrides the two-backend fixture of conftest.py)."""
    return sqlite_server


BIG = hashlib.sha256(b"big").digest() * (6 * MiB // 32) + b"tail-marker"


async def _big_script(peer: RawPeer) -> None:
    """Keep-alive upstream: ``/big`` is a 6 MiB sized body written in uneven pieces,
    ``/small`` a short one (to prove the connection is still in step afterwards)."""
    while (request := await peer.read_request()) is not None:
        if request.request_line.startswith(b"GET /big"):
            head = response(BIG)[: -len(BIG)]
            await peer.send(head + BIG[:1000])
            for start in range(1000, len(BIG), 300_001):
                await peer.send(BIG[start : start + 300_001])
        else:
            await peer.send(response(b"small answer"))


@pytest.fixture
def big_upstream() -> Iterator[ThreadedRawUpstream]:
    """One per test: its connection count is that test's alone."""
    upstream = ThreadedRawUpstream(_big_script).start()
    yield upstream
    upstream.stop()
    assert upstream.upstream.errors == [], upstream.upstream.errors


def _vm(live: SSHMintServer, account: Account, upstream_url: str) -> tuple[str, str]:
    name = "sp" + uuid.uuid4().hex[:10]
    assert_ok(
        post_exec(
            live, f"new --name={name} --upstream={upstream_url}".encode(), token=account.token()
        )
    )
    return name, account.token("{}", namespace=f"v0@{name}.localhost")


def test_s88_large_sized_bodies_arrive_byte_exact_on_reused_connections(
    live: SSHMintServer, account: Account, big_upstream: ThreadedRawUpstream
) -> None:
    vm, token = _vm(live, account, big_upstream.url)
    host = f"{vm}.localhost:{live.http_port}"
    urls = [
        f"http://{host}/big",
        f"http://{host}/small",
        f"http://{host}/big",
        f"http://{host}/small",
    ]
    # One curl, one client connection, four requests; each body written to stdout in turn.
    result = subprocess.run(
        [
            "curl", "-sS", "--fail", "--max-time", "60",
            "--resolve", f"{host}:{live.http_host}",
            "-H", f"Authorization: Bearer {token}", *urls,
        ],
        capture_output=True, timeout=90, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout == BIG + b"small answer" + BIG + b"small answer"
    assert b"reusing" not in result.stderr  # nothing odd reported
    # Both ends stayed in step: the upstream saw all four requests on one connection.
    assert [r.request_line for r in big_upstream.requests[-4:]] == [
        b"GET /big HTTP/1.1",
        b"GET /small HTTP/1.1",
        b"GET /big HTTP/1.1",
        b"GET /small HTTP/1.1",
    ]
    assert big_upstream.connections == 1


def test_s88_a_client_leaving_mid_body_leaves_the_proxy_serving(
    live: SSHMintServer, account: Account, big_upstream: ThreadedRawUpstream
) -> None:
    vm, token = _vm(live, account, big_upstream.url)
    request = (
        f"GET /big HTTP/1.1\r\nHost: {vm}.localhost\r\nAuthorization: Bearer {token}\r\n\r\n"
    ).encode()
    with socket.create_connection((live.http_host, live.http_port), timeout=WAIT) as sock:
        sock.sendall(request)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
    # Gone after the first piece; the next request still gets its whole answer.
    host = f"{vm}.localhost:{live.http_port}"
    result = subprocess.run(
        [
            "curl", "-sS", "--fail", "--max-time", "60", "--resolve", f"{host}:{live.http_host}",
            "-H", f"Authorization: Bearer {token}", f"http://{host}/big",
        ],
        capture_output=True, timeout=90, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert hashlib.sha256(result.stdout).digest() == hashlib.sha256(BIG).digest()


def test_s88_the_access_line_of_a_spliced_body_counts_every_byte(
    live: SSHMintServer, account: Account, big_upstream: ThreadedRawUpstream
) -> None:
    """docs/operations.md#logs: an access line's byte count is what the client was sent,
    the part moved by splice (never seen by aiohttp's writer) included."""
    vm, token = _vm(live, account, big_upstream.url)
    host = f"{vm}.localhost:{live.http_port}"
    result = subprocess.run(
        [
            "curl", "-sS", "--fail", "--max-time", "60", "--resolve", f"{host}:{live.http_host}",
            "-H", f"Authorization: Bearer {token}", "-o", "/dev/null",
            "-w", "%{size_header} %{size_download}", f"http://{host}/big",
        ],
        capture_output=True, text=True, timeout=90, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    head_size, body_size = map(int, result.stdout.split())
    assert body_size == len(BIG)
    line = re.compile(rf'"GET /big HTTP/1\.1" 200 (\d+) .* host={re.escape(host)} ')

    def logged() -> list[int]:
        return [int(m.group(1)) for m in line.finditer(live.stderr)]

    assert wait_until(lambda: bool(logged()), timeout=WAIT), live.stderr[-2000:]
    assert logged() == [head_size + body_size]
