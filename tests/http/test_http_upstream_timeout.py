"""docs/security.md#slow-and-idle-clients (R180): the deadline for an upstream's response head (``--upstream-timeout``).

- The client module directly (``UpstreamPool(head_timeout=...)``), against loopback
  upstreams that write hand-made bytes: no head in time → ``UpstreamTimeout`` and the
  connection closed; an interim ``100`` is not the head; a head in time ends the deadline
  (a slow body flows, and a pooled connection's next exchange has a deadline of its own);
  while a request body is streamed the deadline is held and restarted as bytes go out.
- A live ``sshmint serve --upstream-timeout 2s`` driven by curl: an upstream that accepts
  and never answers → ``504 upstream timed out`` within 4 s, its connection closed; the
  same for a WebSocket upgrade waiting for its 101; a slow body after a fast head, and a
  client uploading slowly, both outlast the deadline untouched.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from sshmint.server.proxy import (
    HeadDeadlines,
    UpstreamConnection,
    UpstreamPool,
    UpstreamTimeout,
    encode_request_head,
)
from tests.support.exec_support import assert_ok, post_exec
from tests.support.harness import SSHMintServer
from tests.support.http_support import assert_proxy_error, via_proxy
from tests.support.keys import Account, AccountFactory
from tests.support.polling import wait_until
from tests.support.server_fixtures import served
from tests.support.upstream_client_support import RawPeer, ThreadedRawUpstream, response, serving

pytestmark = pytest.mark.timeout(120)

LOOPBACK = "127.0.0.1"
HEAD_TIMEOUT = 0.3  # the direct tests' deadline
WAIT = 10.0  # every other wait is bounded by this


# --- the client module directly ------------------------------------------------------------


@pytest.fixture
async def pool() -> AsyncIterator[UpstreamPool]:
    upstream_pool = UpstreamPool(connect_timeout=WAIT, head_timeout=HEAD_TIMEOUT)
    yield upstream_pool
    upstream_pool.close()


def request_head(target: str = "/", *headers: tuple[str, str]) -> bytes:
    return encode_request_head("GET", target, [("Host", "upstream.test"), *headers])


async def timed_read_head(conn: UpstreamConnection) -> float:
    """Seconds until ``read_head`` raised ``UpstreamTimeout`` (fails the test otherwise)."""
    started = time.monotonic()
    with pytest.raises(UpstreamTimeout):
        async with asyncio.timeout(WAIT):
            await conn.read_head()
    return time.monotonic() - started


async def test_r180_no_head_in_time_is_a_timeout_and_the_connection_is_closed(
    pool: UpstreamPool,
) -> None:
    closed = asyncio.Event()

    async def script(peer: RawPeer) -> None:
        await peer.read_request()
        await peer.wait_closed_by_client()  # never answers; returns when the client closes
        closed.set()

    async with serving(script) as upstream:
        conn = await pool.acquire(LOOPBACK, upstream.port)
        conn.send(request_head(), head_request=False)
        assert await timed_read_head(conn) >= HEAD_TIMEOUT
        async with asyncio.timeout(WAIT):
            await closed.wait()  # the upstream saw its connection end
        assert not conn.reusable
        pool.release(conn, LOOPBACK, upstream.port)
        assert await pool.acquire(LOOPBACK, upstream.port) is not conn  # never pooled


async def test_s114_an_interim_100_is_not_the_response_head(pool: UpstreamPool) -> None:
    async def script(peer: RawPeer) -> None:
        await peer.read_request()
        await peer.send(b"HTTP/1.1 100 Continue\r\n\r\n")
        await peer.wait_closed_by_client()

    async with serving(script) as upstream:
        conn = await pool.acquire(LOOPBACK, upstream.port)
        conn.send(request_head(), head_request=False)
        assert await timed_read_head(conn) >= HEAD_TIMEOUT
        assert conn.got_response_bytes


async def test_s114_a_head_trickling_in_byte_by_byte_still_times_out(pool: UpstreamPool) -> None:
    """Only a complete head counts: bytes of one arriving slowly keep nothing alive."""
    stop = asyncio.Event()

    async def script(peer: RawPeer) -> None:
        await peer.read_request()
        await peer.send(b"HTTP/1.1 200 OK\r\n")
        for byte in b"X-Slow: " + b"a" * 1000:
            if stop.is_set():
                return
            await peer.send(bytes([byte]))
            await asyncio.sleep(HEAD_TIMEOUT / 10)

    async with serving(script) as upstream:
        conn = await pool.acquire(LOOPBACK, upstream.port)
        conn.send(request_head(), head_request=False)
        assert await timed_read_head(conn) >= HEAD_TIMEOUT
        assert conn.got_response_bytes
        stop.set()


async def test_s114_a_head_in_time_ends_the_deadline_and_the_next_exchange_has_its_own(
    pool: UpstreamPool,
) -> None:
    """A slow body after a fast head is read whole long after the deadline; the pooled
    connection's next request, never answered, times out on its own deadline."""

    async def script(peer: RawPeer) -> None:
        await peer.read_request()
        await peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\nfirst ")
        await asyncio.sleep(3 * HEAD_TIMEOUT)  # the slow part of the body
        await peer.send(b"second")
        await peer.read_request()
        await peer.wait_closed_by_client()

    async with serving(script) as upstream:
        conn = await pool.acquire(LOOPBACK, upstream.port)
        conn.send(request_head(), head_request=False)
        head = await conn.read_head()
        assert head.status == 200
        body = b""
        async with asyncio.timeout(WAIT):
            while chunk := await conn.read_body():
                body += chunk
        assert body == b"first second" and conn.error is None
        pool.release(conn, LOOPBACK, upstream.port)
        again = await pool.acquire(LOOPBACK, upstream.port)
        assert again is conn  # the same keep-alive connection
        again.send(request_head("/never"), head_request=False)
        assert await timed_read_head(again) >= HEAD_TIMEOUT


async def test_s114_the_deadline_is_held_for_the_client_and_counts_from_the_last_write(
    pool: UpstreamPool,
) -> None:
    """While the caller waits for request body from its client the clock stops; after
    the last body bytes are written the upstream has the whole timeout to answer."""

    async def script(peer: RawPeer) -> None:
        await peer.read_request()
        await peer.wait_closed_by_client()

    async with serving(script) as upstream:
        conn = await pool.acquire(LOOPBACK, upstream.port)
        conn.send(
            encode_request_head("POST", "/", [("Host", "h"), ("Content-Length", "4")]),
            head_request=False,
        )
        conn.hold_head_deadline()  # waiting for the client's body...
        await asyncio.sleep(3 * HEAD_TIMEOUT)
        assert conn.error is None  # ...is not the upstream's time
        conn.write(b"body")
        conn.restart_head_deadline()
        assert await timed_read_head(conn) >= HEAD_TIMEOUT


async def test_s114_a_restarted_deadline_does_not_delay_the_ones_set_after_it(
    pool: UpstreamPool,
) -> None:
    """One queue serves every connection of a pool: moving one deadline later leaves the
    others where they were, and each connection fails at its own."""
    failed: list[str] = []

    async def script(peer: RawPeer) -> None:
        await peer.read_request()
        await peer.wait_closed_by_client()

    async def watch(name: str, conn: UpstreamConnection) -> None:
        with pytest.raises(UpstreamTimeout):
            async with asyncio.timeout(WAIT):
                await conn.read_head()
        failed.append(name)

    async with serving(script) as upstream:
        first = await pool.connect(LOOPBACK, upstream.port)
        second = await pool.connect(LOOPBACK, upstream.port)
        first.send(request_head(), head_request=False)
        await asyncio.sleep(HEAD_TIMEOUT / 3)
        second.send(request_head(), head_request=False)
        await asyncio.sleep(HEAD_TIMEOUT / 3)
        first.restart_head_deadline()  # now due after the second's
        await asyncio.gather(watch("first", first), watch("second", second))
    assert failed == ["second", "first"]


class FakeExchange:
    """What ``HeadDeadlines`` sees of a connection."""

    def __init__(self) -> None:
        self.head_deadline: float | None = None
        self.timed_out = False

    def head_timed_out(self, seconds: float) -> None:
        self.head_deadline = None
        self.timed_out = True


async def test_s114_the_deadline_queue_stays_proportional_to_the_exchanges_waiting() -> None:
    """An exchange stuck at the front does not let answered ones behind it pile up, and
    still times out; none of the answered ones does."""
    deadlines = HeadDeadlines(HEAD_TIMEOUT)
    stuck = FakeExchange()
    deadlines.start(stuck)  # type: ignore[arg-type]
    answered = [FakeExchange() for _ in range(20_000)]
    for exchange in answered:
        deadlines.start(exchange)  # type: ignore[arg-type]
        exchange.head_deadline = None  # its head arrived
    assert len(deadlines) <= 2 * 4096 + 1
    async with asyncio.timeout(WAIT):
        while not stuck.timed_out:
            await asyncio.sleep(0.01)
    assert not any(exchange.timed_out for exchange in answered)
    assert len(deadlines) == 0
    deadlines.close()


async def test_s114_without_a_head_timeout_there_is_no_deadline() -> None:
    async def script(peer: RawPeer) -> None:
        await peer.read_request()
        await asyncio.sleep(3 * HEAD_TIMEOUT)
        await peer.send(response(b"late"))
        await peer.wait_closed_by_client()

    unbounded = UpstreamPool(connect_timeout=WAIT)
    try:
        async with serving(script) as upstream:
            conn = await unbounded.acquire(LOOPBACK, upstream.port)
            conn.send(request_head(), head_request=False)
            async with asyncio.timeout(WAIT):
                assert (await conn.read_head()).status == 200
            conn.close()
    finally:
        unbounded.close()


# --- a live server with --upstream-timeout 2s ---------------------------------------------------

LIVE_TIMEOUT = 2.0
SLOW_PAUSE = LIVE_TIMEOUT + 0.5  # longer than the deadline


class Scripted:
    """One threaded upstream for the live tests; what it does depends on the path:

    - ``/silent``: reads the request, never answers, notes when the proxy closes;
    - ``/slow-body``: the head and half the body at once, the rest ``SLOW_PAUSE`` later;
    - anything else: echoes the request body (after reading all of it).
    """

    def __init__(self) -> None:
        self.closed = threading.Event()
        self.upstream = ThreadedRawUpstream(self._script)

    async def _script(self, peer: RawPeer) -> None:
        while (request := await peer.read_request()) is not None:
            path = request.request_line.split(b" ")[1]
            if path.startswith(b"/silent"):
                try:
                    await peer.wait_closed_by_client()
                finally:  # a reset ends the wait with an error: closed all the same
                    self.closed.set()
                return
            if path == b"/slow-body":
                await peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nfirst\n")
                await asyncio.sleep(SLOW_PAUSE)
                await peer.send(b"second\n")
            else:
                await peer.send(response(b"echo:" + request.body))


@pytest.fixture(scope="module")
def scripted() -> Iterator[Scripted]:
    upstream = Scripted()
    upstream.upstream.start()
    yield upstream
    upstream.upstream.stop()
    assert upstream.upstream.upstream.errors == []


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SSHMintServer]:
    yield from served(
        tmp_path_factory.mktemp("upstream-timeout"),
        extra_args=["--upstream-timeout", "2s"],
    )


@pytest.fixture(scope="module")
def vm(live: SSHMintServer, new_account: AccountFactory, scripted: Scripted) -> tuple[str, str]:
    """A public VM on the scripted upstream, and its owner's token for it."""
    account: Account = new_account(live)
    name = "slow" + uuid.uuid4().hex[:10]
    token = account.token('{"cmds":["new","share set-public"]}')
    line = f"new --name={name} --upstream={scripted.upstream.url}"
    assert_ok(post_exec(live, line.encode(), token=token))
    assert_ok(post_exec(live, f"share set-public {name}".encode(), token=token))
    return name, account.token(namespace=f"v0@{name}.localhost")


@pytest.mark.parametrize(
    "upgrade", [False, True], ids=["request", "websocket-upgrade-waiting-for-101"]
)
def test_r180_an_upstream_that_never_answers_gets_504_within_4_seconds(
    live: SSHMintServer, vm: tuple[str, str], scripted: Scripted, upgrade: bool
) -> None:
    name, token = vm
    scripted.closed.clear()
    args = ["-H", f"Authorization: Bearer {token}"]
    if upgrade:
        args += [
            "-H", "Connection: Upgrade",
            "-H", "Upgrade: websocket",
            "-H", "Sec-WebSocket-Version: 13",
            "-H", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        ]  # fmt: skip
    started = time.monotonic()
    reply = via_proxy(live, name, "/silent", *args, timeout=20)
    elapsed = time.monotonic() - started
    assert_proxy_error(reply, 504, b"upstream timed out\n")
    assert LIVE_TIMEOUT <= elapsed < 4.0, elapsed
    seen = scripted.upstream.requests[-1]
    assert seen.request_line.startswith(b"GET /silent ")
    assert seen.all("Upgrade") == ([b"websocket"] if upgrade else [])
    assert wait_until(scripted.closed.is_set)  # the upstream connection was closed


def test_s114_a_slow_body_after_a_fast_head_outlasts_the_deadline(
    live: SSHMintServer, vm: tuple[str, str]
) -> None:
    name, token = vm
    started = time.monotonic()
    reply = via_proxy(live, name, "/slow-body", "-H", f"Authorization: Bearer {token}")
    assert (reply.status, reply.body) == (200, b"first\nsecond\n")
    assert time.monotonic() - started >= SLOW_PAUSE


def raw_post(live: SSHMintServer, host: str, parts: list[bytes], pause: float) -> bytes:
    """POST ``parts`` as one Content-Length body, pausing between them; the whole answer
    (the request asks the proxy to close the connection after it)."""
    body = b"".join(parts)
    head = (
        f"POST /upload HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    with socket.create_connection((live.http_host, live.http_port), timeout=20) as sock:
        sock.sendall(head + parts[0])
        for part in parts[1:]:
            time.sleep(pause)
            sock.sendall(part)
        answer = b""
        while data := sock.recv(65536):
            answer += data
    return answer


def test_s114_a_client_uploading_slowly_is_not_the_upstreams_delay(
    live: SSHMintServer, vm: tuple[str, str]
) -> None:
    """The deadline is held while the proxy waits for the client's body: a body that
    takes longer than the deadline to arrive is still answered."""
    name, _token = vm
    answer = raw_post(live, f"{name}.localhost:{live.http_port}", [b"half ", b"later"], SLOW_PAUSE)
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]
    assert answer.endswith(b"\r\n\r\necho:half later")
