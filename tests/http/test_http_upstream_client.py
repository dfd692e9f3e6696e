"""The proxy's HTTP/1.1 client for VM upstreams (docs/proxy.md#what-the-upstream-receives, RFC 9112 framing).

Two levels:

- ``UpstreamPool``/``UpstreamConnection``/``encode_request_head`` directly, against
  loopback upstreams that write hand-made bytes (``upstream_client_support.RawUpstream``),
  so every framing case (interim responses, chunk boundaries, early closes, bytes after a
  101, oversized heads) is exact;
- the same client inside a live ``sshmint serve`` (SQLite only: nothing here depends on
  the backend), driven by the real curl: request bodies, request targets, header values
  that cannot travel, and upstreams that close keep-alive connections.
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from sshmint.server.proxy import (
    BODY_HIGH_WATER,
    MAX_HEAD_BYTES,
    ResponseHead,
    UpstreamBodyError,
    UpstreamConnection,
    UpstreamPool,
    UpstreamUnavailable,
    encode_request_head,
)
from tests.support.exec_support import assert_ok, post_exec
from tests.support.harness import SSHMintServer
from tests.support.http_support import Reply, curl
from tests.support.keys import Account
from tests.support.upstream_client_support import (
    RawPeer,
    RawUpstream,
    Script,
    ThreadedRawUpstream,
    response,
    serving,
)

pytestmark = pytest.mark.timeout(120)

WAIT = 10.0  # every wait on the network is bounded by this
LOOPBACK = "127.0.0.1"
# asyncio's selector transports read at most this much per data_received call.
READ_SIZE = 256 * 1024


# --- helpers for the direct tests -----------------------------------------------------------


@pytest.fixture
async def pool() -> AsyncIterator[UpstreamPool]:
    upstream_pool = UpstreamPool(connect_timeout=WAIT)
    yield upstream_pool
    upstream_pool.close()


def request_head(method: str = "GET", target: str = "/") -> bytes:
    return encode_request_head(method, target, [("Host", "upstream.test")])


async def start_exchange(
    pool: UpstreamPool, upstream: RawUpstream, method: str = "GET", target: str = "/"
) -> UpstreamConnection:
    conn = await pool.acquire(LOOPBACK, upstream.port)
    conn.send(request_head(method, target), head_request=method == "HEAD")
    return conn


async def read_head(conn: UpstreamConnection) -> ResponseHead:
    async with asyncio.timeout(WAIT):
        return await conn.read_head()


async def read_all(conn: UpstreamConnection) -> bytes:
    parts = []
    async with asyncio.timeout(WAIT):
        while chunk := await conn.read_body():
            parts.append(chunk)
    return b"".join(parts)


async def exchange(
    pool: UpstreamPool, upstream: RawUpstream, method: str = "GET", target: str = "/"
) -> tuple[UpstreamConnection, ResponseHead, bytes]:
    """One whole exchange, the connection handed back to the pool as the proxy does."""
    conn = await start_exchange(pool, upstream, method, target)
    head = await read_head(conn)
    body = await read_all(conn)
    pool.release(conn, LOOPBACK, upstream.port)
    return conn, head, body


async def eventually(predicate: Callable[[], bool]) -> None:
    async with asyncio.timeout(WAIT):
        while not predicate():
            await asyncio.sleep(0.005)


def answering(*responses: bytes) -> Script:
    """A keep-alive upstream: request number ``i`` (over all connections) gets
    ``responses[i]``; a connection ends when the client closes it."""
    pending = list(responses)

    async def script(peer: RawPeer) -> None:
        while pending and await peer.read_request() is not None:
            await peer.send(pending.pop(0))
        await peer.wait_closed_by_client()

    return script


# --- docs/proxy.md#responses: response framing ------------------------------------------------------------


async def test_s88_content_length_response_keeps_status_reason_headers_and_body(
    pool: UpstreamPool,
) -> None:
    raw = (
        b"HTTP/1.1 299 Custom Reason Here\r\n"
        b"Set-Cookie: a=1\r\n"
        b"X-Bytes: caf\xc3\xa9 \xff\r\n"
        b"set-cookie: b=2\r\n"
        b"Content-Length: 11\r\n\r\nhello world"
    )
    async with serving(answering(raw)) as upstream:
        _conn, head, body = await exchange(pool, upstream)
    assert (head.status, head.reason, body) == (299, "Custom Reason Here", b"hello world")
    assert head.headers == [
        ("Set-Cookie", "a=1"),
        ("X-Bytes", "caf\xe9 \udcff"),  # UTF-8 decoded, the stray byte surrogate-escaped
        ("set-cookie", "b=2"),
        ("Content-Length", "11"),
    ]
    assert head.headers[1][1].encode("utf-8", "surrogateescape") == b"caf\xc3\xa9 \xff"
    assert upstream.connections == 1


async def test_s88_chunked_response_body_is_delivered_dechunked(pool: UpstreamPool) -> None:
    parts = [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
        b"lo\r\n",
        b"6;ext=1\r\n world\r\n",
        b"1A\r\n" + b"z" * 26 + b"\r\n0\r\nX-Trailer: t\r\n\r\n",
    ]

    async def script(peer: RawPeer) -> None:
        await peer.read_request()
        for part in parts:  # chunk boundaries fall anywhere
            await peer.send(part)
            await asyncio.sleep(0.01)
        await peer.read_request()
        await peer.send(response(b"second"))
        await peer.wait_closed_by_client()

    async with serving(script) as upstream:
        first, head, body = await exchange(pool, upstream)
        assert head.headers == [("Transfer-Encoding", "chunked")]  # no trailer among them
        assert body == b"hello world" + b"z" * 26
        second, head, body = await exchange(pool, upstream)
        assert (head.status, head.headers, body) == (200, [("Content-Length", "6")], b"second")
    assert second is first and second.reused and upstream.connections == 1


@pytest.mark.parametrize(
    "head",
    [b"HTTP/1.0 200 OK\r\n\r\n", b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n"],
    ids=["http10", "http11-close"],
)
async def test_s88_close_delimited_body_ends_at_connection_close(
    pool: UpstreamPool, head: bytes
) -> None:
    async def script(peer: RawPeer) -> None:
        await peer.read_request()
        await peer.send(head + b"first part, ")
        await asyncio.sleep(0.01)
        await peer.send(b"second part")

    async with serving(script) as upstream:
        conn = await start_exchange(pool, upstream)
        assert (await read_head(conn)).status == 200
        assert await read_all(conn) == b"first part, second part"
        assert conn.body_done and not conn.reusable


async def test_rfc9112_s6_3_body_with_a_non_chunked_transfer_coding_ends_at_close(
    pool: UpstreamPool,
) -> None:
    # RFC 9112 §6.3 item 4: a response whose Transfer-Encoding does not end in chunked is
    # delimited by the close of the connection, like an HTTP/1.0 body.
    async def script(peer: RawPeer) -> None:
        await peer.read_request()
        await peer.send(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nConnection: close\r\n\r\n"
            b"\x1f\x8b coded bytes"
        )

    async with serving(script) as upstream:
        conn = await start_exchange(pool, upstream)
        assert (await read_head(conn)).status == 200
        assert await read_all(conn) == b"\x1f\x8b coded bytes"


async def test_s88_interim_100_and_103_responses_are_skipped(pool: UpstreamPool) -> None:
    async def script(peer: RawPeer) -> None:
        await peer.read_request()
        await peer.send(b"HTTP/1.1 100 Continue\r\n\r\n")
        await asyncio.sleep(0.01)
        await peer.send(b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n")
        await asyncio.sleep(0.01)
        await peer.send(response(b"final", "X-Final: yes", status="201 Made"))
        # The same again in one packet, on the same connection.
        await peer.read_request()
        await peer.send(
            b"HTTP/1.1 100 Continue\r\n\r\n"
            b"HTTP/1.1 103 Early Hints\r\nLink: </t.css>; rel=preload\r\n\r\n"
            + response(b"again", status="202 Accepted")
        )
        await peer.wait_closed_by_client()

    async with serving(script) as upstream:
        _conn, head, body = await exchange(pool, upstream)
        assert (head.status, head.reason, body) == (201, "Made", b"final")
        assert head.headers == [("X-Final", "yes"), ("Content-Length", "5")]
        _conn, head, body = await exchange(pool, upstream)
        assert (head.status, head.reason, body) == (202, "Accepted", b"again")
        assert head.headers == [("Content-Length", "5")]
    assert upstream.connections == 1


async def test_s88_head_response_with_content_length_completes_and_is_not_reused(
    pool: UpstreamPool,
) -> None:
    closed_by_client = asyncio.Event()

    async def script(peer: RawPeer) -> None:
        request = await peer.read_request()
        if request is not None and request.request_line.startswith(b"HEAD "):
            await peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")  # no body
            assert await peer.wait_closed_by_client() == b""
            closed_by_client.set()
        else:
            await peer.send(response(b"get body"))
            await peer.wait_closed_by_client()

    async with serving(script) as upstream:
        conn, head, body = await exchange(pool, upstream, "HEAD")
        assert (head.status, head.headers, body) == (200, [("Content-Length", "1000")], b"")
        assert conn.body_done and not conn.reusable
        async with asyncio.timeout(WAIT):
            await closed_by_client.wait()  # released, so closed rather than pooled
        _conn, head, body = await exchange(pool, upstream, "GET")
        assert body == b"get body"
    assert upstream.connections == 2


async def test_s88_204_and_304_have_no_body_and_keep_the_connection(
    pool: UpstreamPool,
) -> None:
    script = answering(
        b"HTTP/1.1 204 No Content\r\n\r\n",
        # A 304 may announce the length of the body it stands for: none follows.
        b'HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\nETag: "x"\r\n\r\n',
        response(b"ok"),
    )
    async with serving(script) as upstream:
        results = [await exchange(pool, upstream) for _ in range(3)]
    assert [(head.status, body) for _conn, head, body in results] == [
        (204, b""),
        (304, b""),
        (200, b"ok"),
    ]
    assert upstream.connections == 1
    assert all(conn is results[0][0] for conn, _head, _body in results)


async def test_s88_keep_alive_connections_are_reused(pool: UpstreamPool) -> None:
    script = answering(response(b"one"), response(b"two"), response(b"three"))
    async with serving(script) as upstream:
        results = [await exchange(pool, upstream, target=f"/{n}") for n in range(3)]
    assert [body for _conn, _head, body in results] == [b"one", b"two", b"three"]
    first = results[0][0]
    assert all(conn is first for conn, _head, _body in results)
    assert upstream.connections == 1
    assert [r.request_line for r in upstream.requests] == [
        b"GET /0 HTTP/1.1",
        b"GET /1 HTTP/1.1",
        b"GET /2 HTTP/1.1",
    ]


@pytest.mark.parametrize(
    "first",
    [
        response(b"bye", "Connection: close"),
        b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nbye",  # 1.0 without keep-alive
    ],
    ids=["connection-close", "http10"],
)
async def test_s88_responses_ending_the_connection_are_not_pooled(
    pool: UpstreamPool, first: bytes
) -> None:
    closed_by_client = asyncio.Event()

    async def script(peer: RawPeer) -> None:
        await peer.read_request()
        if peer.index == 0:
            await peer.send(first)  # and keeps the socket open: the client must close it
            assert await peer.wait_closed_by_client() == b""
            closed_by_client.set()
        else:
            await peer.send(response(b"new"))
            await peer.wait_closed_by_client()

    async with serving(script) as upstream:
        conn, _head, body = await exchange(pool, upstream)
        assert body == b"bye" and not conn.reusable
        async with asyncio.timeout(WAIT):
            await closed_by_client.wait()
        second, _head, body = await exchange(pool, upstream)
        assert body == b"new" and second is not conn
    assert upstream.connections == 2


async def test_s88_a_pooled_connection_closed_by_the_upstream_is_not_handed_out(
    pool: UpstreamPool,
) -> None:
    async def script(peer: RawPeer) -> None:
        await peer.read_request()
        await peer.send(response(f"conn {peer.index}".encode()))  # then closes

    async with serving(script) as upstream:
        first, _head, body = await exchange(pool, upstream)
        assert body == b"conn 0"
        await eventually(lambda: first.closed)
        second, _head, body = await exchange(pool, upstream)
    assert body == b"conn 1" and second is not first


# --- docs/proxy.md#responses: upstreams that fail -----------------------------------------------------------


@pytest.mark.parametrize("read_first", [True, False], ids=["after-request", "at-once"])
async def test_s88_upstream_closing_before_any_byte_is_unavailable(
    pool: UpstreamPool, read_first: bool
) -> None:
    async def script(peer: RawPeer) -> None:
        if read_first:
            await peer.read_request()

    async with serving(script) as upstream:
        conn = await start_exchange(pool, upstream)
        with pytest.raises(UpstreamUnavailable):
            await read_head(conn)
        assert not conn.got_response_bytes and not conn.reusable


@pytest.mark.parametrize(
    ("raw", "delivered"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabcd", b"abcd"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n5\r\nef", b"abcdef"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n", b"abcd"),
    ],
    ids=["content-length", "inside-a-chunk", "before-the-last-chunk"],
)
async def test_s88_upstream_closing_mid_body_is_a_body_error(
    pool: UpstreamPool, raw: bytes, delivered: bytes
) -> None:
    async def script(peer: RawPeer) -> None:
        await peer.read_request()
        await peer.send(raw)

    async with serving(script) as upstream:
        conn = await start_exchange(pool, upstream)
        assert (await read_head(conn)).status == 200
        received = b""
        with pytest.raises(UpstreamBodyError):
            async with asyncio.timeout(WAIT):
                while chunk := await conn.read_body():
                    received += chunk
        assert received == delivered
        assert not conn.reusable


@pytest.mark.parametrize(
    "raw",
    [
        b"garbage\r\n\r\n",
        b"HTTP/1.1 abc OK\r\n\r\n",
        b"HTTP/1.1 20 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nNo colon here\r\n\r\n",
        b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03",  # a TLS ServerHello-like answer
    ],
    ids=["garbage", "non-numeric-status", "two-digit-status", "bad-header", "tls"],
)
async def test_s88_malformed_response_head_is_unavailable(pool: UpstreamPool, raw: bytes) -> None:
    async def script(peer: RawPeer) -> None:
        await peer.read_request()
        await peer.send(raw)
        await peer.wait_closed_by_client()  # the client gives up, not the upstream

    async with serving(script) as upstream:
        conn = await start_exchange(pool, upstream)
        with pytest.raises(UpstreamUnavailable):
            await read_head(conn)
        assert conn.got_response_bytes and not conn.reusable


@pytest.mark.parametrize(
    "framing",
    [
        "Content-Length: 3\r\nTransfer-Encoding: chunked",
        "Content-Length: 3\r\nContent-Length: 4",
        "Content-Length: -1",
    ],
    ids=["length-and-chunked", "two-lengths", "negative-length"],
)
async def test_s88_ambiguous_response_framing_is_unavailable(
    pool: UpstreamPool, framing: str
) -> None:
    # RFC 9112 §6.3: such a response cannot be delimited safely; relaying it could let
    # one response smuggle the next.
    async def script(peer: RawPeer) -> None:
        await peer.read_request()
        await peer.send(f"HTTP/1.1 200 OK\r\n{framing}\r\n\r\n3\r\nabc\r\n0\r\n\r\n".encode())
        await peer.wait_closed_by_client()

    async with serving(script) as upstream:
        conn = await start_exchange(pool, upstream)
        with pytest.raises(UpstreamUnavailable):
            await read_head(conn)


def oversized_head(size: int, *, complete: bool) -> bytes:
    line = b"X-Pad: " + b"p" * 1017 + b"\r\n"  # 1 KiB a line
    head = b"HTTP/1.1 200 OK\r\n" + line * (size // len(line) + 1)
    return head + b"Content-Length: 0\r\n\r\n" if complete else head


async def test_s88_endless_response_head_is_unavailable(pool: UpstreamPool) -> None:
    async def script(peer: RawPeer) -> None:
        await peer.read_request()
        await peer.send(oversized_head(4 * MAX_HEAD_BYTES, complete=False))
        await peer.wait_closed_by_client()

    async with serving(script) as upstream:
        conn = await start_exchange(pool, upstream)
        with pytest.raises(UpstreamUnavailable, match="too large"):
            await read_head(conn)


@pytest.mark.parametrize("extra", [1024, READ_SIZE // 2], ids=["1-kib-over", "128-kib-over"])
async def test_s88_complete_response_head_over_max_head_bytes_is_unavailable(
    pool: UpstreamPool, extra: int
) -> None:
    # The cap holds for a head that ends in the same read that crosses it, too.
    raw = oversized_head(MAX_HEAD_BYTES + extra, complete=True)
    assert len(raw) > MAX_HEAD_BYTES + extra

    async def script(peer: RawPeer) -> None:
        await peer.read_request()
        await peer.send(raw)
        await peer.wait_closed_by_client()

    async with serving(script) as upstream:
        conn = await start_exchange(pool, upstream)
        with pytest.raises(UpstreamUnavailable, match="too large"):
            await read_head(conn)


async def test_s88_refused_connection_raises_oserror(pool: UpstreamPool) -> None:
    upstream = await RawUpstream(answering()).start()
    port = upstream.port
    await upstream.stop()
    with pytest.raises(OSError):
        await pool.acquire(LOOPBACK, port)


async def test_s88_unsolicited_bytes_on_an_idle_connection_never_answer_the_next_request(
    pool: UpstreamPool,
) -> None:
    # A response that arrives while a connection sits in the pool answers no request:
    # handing it to the next request would give one client another exchange's answer.
    send_stray = asyncio.Event()

    async def script(peer: RawPeer) -> None:
        if peer.index == 0:
            await peer.read_request()
            await peer.send(response(b"first"))
            async with asyncio.timeout(WAIT):
                await send_stray.wait()
            await peer.send(response(b"stale answer", "X-Stale: yes"))
        while await peer.read_request() is not None:
            await peer.send(response(b"second"))

    async with serving(script) as upstream:
        first, _head, body = await exchange(pool, upstream)
        assert body == b"first"
        send_stray.set()
        # The stray bytes are in (refused at once, or at least seen).
        await eventually(lambda: first.error is not None or first.got_response_bytes)
        _conn, head, body = await exchange(pool, upstream)
    assert ("X-Stale", "yes") not in head.headers
    assert body == b"second"


async def test_s88_closing_the_pool_closes_idle_connections() -> None:
    closed_by_client = asyncio.Event()

    async def script(peer: RawPeer) -> None:
        await peer.read_request()
        await peer.send(response(b"idle next"))
        assert await peer.wait_closed_by_client() == b""
        closed_by_client.set()

    upstream_pool = UpstreamPool(connect_timeout=WAIT)
    async with serving(script) as upstream:
        conn, _head, _body = await exchange(upstream_pool, upstream)
        assert not conn.closed  # pooled
        upstream_pool.close()
        async with asyncio.timeout(WAIT):
            await closed_by_client.wait()


# --- docs/proxy.md#what-the-upstream-receives: the request head ----------------------------------------------------------------


def test_s87_request_head_keeps_target_header_order_and_bytes() -> None:
    headers = [
        ("Host", "vm.example"),
        ("X-Dup", "1"),
        ("x-dup", "2"),
        ("X-Surrogates", "caf\udcc3\udca9 \udcff"),  # client bytes aiohttp could not decode
        ("X-Text", "café ✓"),
        ("X-Empty", ""),
        ("X-Spaces", " a  b\t"),
    ]
    head = encode_request_head("PATCH", "/a%2Fb/../c?x=%20&y", headers)
    assert head == (
        b"PATCH /a%2Fb/../c?x=%20&y HTTP/1.1\r\n"
        b"Host: vm.example\r\n"
        b"X-Dup: 1\r\n"
        b"x-dup: 2\r\n"
        b"X-Surrogates: caf\xc3\xa9 \xff\r\n"
        b"X-Text: caf\xc3\xa9 \xe2\x9c\x93\r\n"
        b"X-Empty: \r\n"
        b"X-Spaces:  a  b\t\r\n"
        b"\r\n"
    )
    assert encode_request_head("GET", "/", []) == b"GET / HTTP/1.1\r\n\r\n"


def _with_bad_char(part: str, char: str) -> tuple[str, str, list[tuple[str, str]]]:
    """A valid head's parts with ``char`` put into one of them (the others stay valid)."""
    method, target = "GET", "/path"
    headers = [("Host", "vm.example"), ("X-A", "value"), ("X-B", "other")]
    if part == "method":
        method = "GE" + char + "T"
    elif part == "target":
        target = "/pa" + char + "th"
    elif part == "name":
        headers[1] = ("X-" + char + "A", "value")
    elif part == "value-middle":
        headers[1] = ("X-A", "val" + char + "ue")
    elif part == "value-end":
        headers[2] = ("X-B", "other" + char)
    return method, target, headers


@pytest.mark.parametrize("char", ["\r", "\n", "\0", "\r\n"], ids=["CR", "LF", "NUL", "CRLF"])
@pytest.mark.parametrize("part", ["method", "target", "name", "value-middle", "value-end"])
def test_s87_request_head_refuses_line_breaks_and_nul_anywhere(part: str, char: str) -> None:
    method, target, headers = _with_bad_char(part, char)
    with pytest.raises(ValueError, match="line break or NUL"):
        encode_request_head(method, target, headers)


def test_s87_request_head_refuses_a_line_break_split_over_two_values() -> None:
    # A CR ending one value and an LF starting the next make one more line between them.
    with pytest.raises(ValueError, match="line break or NUL"):
        encode_request_head("GET", "/", [("X-A", "a\r"), ("X-B", "\nX-Injected: 1")])


def test_s87_request_head_refuses_text_that_is_not_bytes() -> None:
    # A lone surrogate outside the surrogate-escape range stands for no byte.
    with pytest.raises(ValueError):
        encode_request_head("GET", "/", [("X-A", "a\ud800b")])


# --- docs/proxy.md#what-the-upstream-receives: flow control ----------------------------------------------------------------


async def test_s88_reading_pauses_above_body_high_water_and_resumes_after_read_body(
    pool: UpstreamPool,
) -> None:
    # More than the kernel can buffer on loopback (tcp_rmem max + tcp_wmem max): while the
    # client holds reading, the upstream cannot finish.
    block = hashlib.sha256(b"block").digest() * 2048  # 64 KiB
    blocks = 48 * 16  # 48 MiB
    sent = 0

    async def script(peer: RawPeer) -> None:
        nonlocal sent
        await peer.read_request()
        await peer.send(
            f"HTTP/1.1 200 OK\r\nContent-Length: {len(block) * blocks}\r\n\r\n".encode()
        )
        for _ in range(blocks):
            await peer.send(block)
            sent += 1
        await peer.wait_closed_by_client()

    async with serving(script) as upstream:
        conn = await start_exchange(pool, upstream)
        await read_head(conn)
        transport = conn.transport
        assert transport is not None
        await eventually(lambda: not transport.is_reading())
        assert sent < blocks  # the upstream is held back
        queued = conn.read_body_nowait()  # everything the client holds
        assert BODY_HIGH_WATER < len(queued) <= BODY_HIGH_WATER + READ_SIZE
        assert transport.is_reading()  # taken: reading resumes
        digest = hashlib.sha256(queued)
        total = len(queued)
        async with asyncio.timeout(WAIT * 3):
            while chunk := await conn.read_body():
                assert len(chunk) <= BODY_HIGH_WATER + READ_SIZE
                digest.update(chunk)
                total += len(chunk)
        assert total == len(block) * blocks
        assert digest.digest() == hashlib.sha256(block * blocks).digest()
        assert conn.reusable


async def test_s87_request_body_writes_wait_for_a_slow_upstream_and_fail_when_it_closes(
    pool: UpstreamPool,
) -> None:
    close_now = asyncio.Event()

    async def script(peer: RawPeer) -> None:
        async with asyncio.timeout(WAIT):
            await close_now.wait()  # reads nothing meanwhile
        peer.writer.transport.abort()

    async with serving(script) as upstream:
        conn = await pool.acquire(LOOPBACK, upstream.port)
        conn.send(
            encode_request_head("PUT", "/", [("Host", "h"), ("Content-Length", "999999999")]),
            head_request=False,
        )
        conn.write(b"x" * (16 * 1024 * 1024))  # more than loopback buffers can take
        drain = asyncio.ensure_future(conn.drain())
        for _ in range(20):
            await asyncio.sleep(0)
        assert not drain.done()  # waiting for the upstream to read
        close_now.set()
        with pytest.raises(ConnectionError):
            async with asyncio.timeout(WAIT):
                await drain
        with pytest.raises(UpstreamUnavailable):
            await read_head(conn)


# --- docs/proxy.md#responses: upgrades ------------------------------------------------------------------------


async def test_s88_bytes_after_101_in_the_same_packet_reach_take_raw_stream(
    pool: UpstreamPool,
) -> None:
    async def script(peer: RawPeer) -> None:
        await peer.read_request()
        await peer.send(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n"
            b"\x00early raw bytes\r\n\r\nHTTP/1.1 200 not a response\r\n\r\n"
        )
        data = await peer.reader.readexactly(4)
        await peer.send(b"echo:" + data)

    received = bytearray()
    ended = asyncio.Event()
    async with serving(script) as upstream:
        conn = await pool.acquire(LOOPBACK, upstream.port)
        conn.send(
            encode_request_head(
                "GET", "/ws", [("Host", "h"), ("Connection", "Upgrade"), ("Upgrade", "echo")]
            ),
            head_request=False,
        )
        head = await read_head(conn)
        assert (head.status, head.reason) == (101, "Switching Protocols")
        assert head.headers == [("Upgrade", "echo"), ("Connection", "Upgrade")]
        await eventually(lambda: conn.upgraded)
        conn.take_raw_stream(received.extend, ended.set)
        early = b"\x00early raw bytes\r\n\r\nHTTP/1.1 200 not a response\r\n\r\n"
        await eventually(lambda: len(received) >= len(early))
        assert bytes(received) == early  # delivered first, untouched by the HTTP parser
        conn.write(b"ping")
        await eventually(lambda: bytes(received).endswith(b"echo:ping"))
        assert bytes(received) == early + b"echo:ping"
        async with asyncio.timeout(WAIT):
            await ended.wait()  # the upstream closed
        assert not conn.reusable
        pool.release(conn, LOOPBACK, upstream.port)  # an upgraded connection is never pooled
        assert conn.closed


# --- live server: the client inside the proxy ---------------------------------------------------


@pytest.fixture(scope="module")
def live(sqlite_server: SSHMintServer) -> SSHMintServer:
    """SQLite only (overrides the two-backend fixture of conftest.py)."""
    return sqlite_server


async def _echo_script(peer: RawPeer) -> None:
    """Keep-alive upstream answering each request with the size and hash of its body."""
    while (request := await peer.read_request()) is not None:
        digest = hashlib.sha256(request.body).hexdigest()
        await peer.send(response(f"{len(request.body)} {digest}".encode()))


@pytest.fixture(scope="module")
def echo_upstream() -> Iterator[ThreadedRawUpstream]:
    upstream = ThreadedRawUpstream(_echo_script).start()
    yield upstream
    upstream.stop()
    assert upstream.upstream.errors == [], upstream.upstream.errors


def new_vm(live: SSHMintServer, account: Account, upstream_url: str) -> str:
    name = "uc" + uuid.uuid4().hex[:10]
    line = f"new --name={name} --upstream={upstream_url}"
    assert_ok(post_exec(live, line.encode(), token=account.token()))
    return name


def proxy_args(
    live: SSHMintServer, account: Account, vm: str, permissions: str = "{}"
) -> list[str]:
    """curl options that reach ``vm`` through the live server with a VM token."""
    host = f"{vm}.localhost"
    token = account.token(permissions, namespace=f"v0@{vm}.localhost")
    return [
        "--resolve",
        f"{host}:{live.http_port}:{live.http_host}",
        "--path-as-is",
        "-H",
        f"Authorization: Bearer {token}",
    ]


def vm_url(live: SSHMintServer, vm: str, target: str = "/") -> str:
    return f"http://{vm}.localhost:{live.http_port}{target}"


@pytest.mark.parametrize("size", [5, 700 * 1024 + 3], ids=["small", "700-kib"])
def test_s87_chunked_request_body_reaches_the_upstream_whole(
    live: SSHMintServer,
    account: Account,
    echo_upstream: ThreadedRawUpstream,
    tmp_path: Path,
    size: int,
) -> None:
    vm = new_vm(live, account, echo_upstream.url)
    body = (bytes(range(256)) * (size // 256 + 1))[:size]
    (tmp_path / "body").write_bytes(body)
    reply = curl(
        vm_url(live, vm, "/upload"),
        *proxy_args(live, account, vm),
        "-H", "Transfer-Encoding: chunked",
        "--data-binary", f"@{tmp_path / 'body'}",
    )  # fmt: skip
    assert (reply.status, reply.body) == (
        200,
        f"{size} {hashlib.sha256(body).hexdigest()}".encode(),
    )
    seen = echo_upstream.requests[-1]
    assert seen.request_line == b"POST /upload HTTP/1.1"
    assert seen.body == body
    assert seen.all("Transfer-Encoding") == [b"chunked"] and seen.all("Content-Length") == []
    assert seen.wire_body.endswith(b"\r\n0\r\n\r\n")


def test_s87_content_length_request_body_arrives_byte_exact(
    live: SSHMintServer, account: Account, echo_upstream: ThreadedRawUpstream, tmp_path: Path
) -> None:
    vm = new_vm(live, account, echo_upstream.url)
    body = hashlib.sha512(b"seed").digest() * 20000 + b"\r\n0\r\n\r\n\x00tail"  # 1.2 MiB
    (tmp_path / "body").write_bytes(body)
    reply = curl(
        vm_url(live, vm, "/put"),
        *proxy_args(live, account, vm),
        "-X", "PUT",
        "-H", "Content-Type: application/octet-stream",
        "--data-binary", f"@{tmp_path / 'body'}",
    )  # fmt: skip
    assert reply.status == 200
    assert reply.body == f"{len(body)} {hashlib.sha256(body).hexdigest()}".encode()
    seen = echo_upstream.requests[-1]
    assert seen.request_line == b"PUT /put HTTP/1.1"
    assert seen.all("Content-Length") == [str(len(body)).encode()]
    assert seen.all("Transfer-Encoding") == []
    assert seen.wire_body == body


@pytest.mark.parametrize("space", ["\n", "\r", "\r\n"], ids=["LF", "CR", "CRLF"])
@pytest.mark.parametrize("public", [False, True], ids=["private", "public"])
def test_s87_r20_ctx_with_a_line_break_never_reaches_the_upstream(
    live: SSHMintServer,
    account: Account,
    echo_upstream: ThreadedRawUpstream,
    space: str,
    public: bool,
) -> None:
    # JSON allows a line break between tokens, but a payload holding one is no token
    # (docs/tokens.md#strict-json step 6, R20): the request is unauthenticated, so a private VM answers 401
    # and a public one forwards it anonymously; either way no header carries the break.
    vm = new_vm(live, account, echo_upstream.url)
    if public:
        token = account.token('{"cmds":["share set-public"]}')
        assert_ok(post_exec(live, f"share set-public {vm}".encode(), token=token))
    # The same token with a space instead goes through with its ctx.
    reply = curl(vm_url(live, vm), *proxy_args(live, account, vm, '{"ctx":{"a": 1}}'))
    assert reply.status == 200
    assert echo_upstream.requests[-1].all("X-ExeDev-Token-Ctx") == [b'{"a": 1}']
    before = len(echo_upstream.requests)
    reply = curl(
        vm_url(live, vm, "/broken"),
        *proxy_args(live, account, vm, '{"ctx":{"a":' + space + "1}}"),
    )
    if public:
        assert reply.status == 200
        [seen] = echo_upstream.requests[before:]
        assert seen.request_line == b"GET /broken HTTP/1.1"
        assert seen.all("X-ExeDev-Token-Ctx") == [] and seen.all("X-ExeDev-UserID") == []
        assert seen.all("Authorization") == []  # the exe0 token itself never travels
    else:
        assert (reply.status, reply.body) == (401, b"invalid or missing authentication\n")
        assert reply.header("WWW-Authenticate") == "Bearer, Basic"
        assert len(echo_upstream.requests) == before  # nothing was sent


def _raw_request(live: SSHMintServer, request: bytes) -> bytes:
    """Send ``request`` as is and read the answer until the server closes."""
    with socket.create_connection((live.http_host, live.http_port), timeout=WAIT) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


@pytest.mark.parametrize(
    "value",
    [b"a\rb", b"a\nb", b"a\x00b", b"a\r\n folded", b"a\x0bb"],
    ids=["CR", "LF", "NUL", "obs-fold", "VT"],
)
def test_s87_header_values_with_line_breaks_or_nul_never_reach_the_upstream(
    live: SSHMintServer, account: Account, echo_upstream: ThreadedRawUpstream, value: bytes
) -> None:
    vm = new_vm(live, account, echo_upstream.url)
    token = account.token(namespace=f"v0@{vm}.localhost")
    head = f"GET /ctl HTTP/1.1\r\nHost: {vm}.localhost\r\nAuthorization: Bearer {token}\r\n"
    before = len(echo_upstream.requests)
    answer = _raw_request(
        live, head.encode() + b"X-Probe: " + value + b"\r\nConnection: close\r\n\r\n"
    )
    assert answer.split(b"\r\n", 1)[0].split(b" ")[1] in (b"400", b"502"), answer[:200]
    assert len(echo_upstream.requests) == before


def test_s87_non_ascii_header_bytes_reach_the_upstream_exactly(
    live: SSHMintServer, account: Account, echo_upstream: ThreadedRawUpstream
) -> None:
    vm = new_vm(live, account, echo_upstream.url)
    token = account.token(namespace=f"v0@{vm}.localhost")
    head = f"GET /bytes HTTP/1.1\r\nHost: {vm}.localhost\r\nAuthorization: Bearer {token}\r\n"
    answer = _raw_request(
        live,
        head.encode()
        + b"X-Latin1: caf\xe9\r\nX-Utf8: caf\xc3\xa9 \xe2\x9c\x93\r\nX-Mixed: \xff\xfe\x80\r\n"
        + b"Connection: close\r\n\r\n",
    )
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]
    seen = echo_upstream.requests[-1]
    assert seen.request_line == b"GET /bytes HTTP/1.1"
    assert seen.all("X-Latin1") == [b"caf\xe9"]
    assert seen.all("X-Utf8") == [b"caf\xc3\xa9 \xe2\x9c\x93"]
    assert seen.all("X-Mixed") == [b"\xff\xfe\x80"]


def _closing_script(mode: str) -> Script:
    """An upstream that never says ``Connection: close`` but drops keep-alive connections:
    ``after-response`` closes right after each response; ``on-next-request`` reads the
    next request on the connection and closes without answering it (the keep-alive race
    at its worst: the proxy has already sent the request)."""

    async def script(peer: RawPeer) -> None:
        request = await peer.read_request()
        if request is None:
            return
        digest = hashlib.sha256(request.body).hexdigest()[:8]
        await peer.send(response(f"answer {len(request.body)} {digest}\n".encode()))
        if mode == "on-next-request":
            await peer.read_request()

    return script


def _answers(reply_text: str) -> list[str]:
    return [line for line in reply_text.splitlines() if line]


@pytest.mark.parametrize("mode", ["after-response", "on-next-request"])
def test_s88_keep_alive_connections_the_upstream_drops_are_retried(
    live: SSHMintServer, account: Account, mode: str
) -> None:
    upstream = ThreadedRawUpstream(_closing_script(mode)).start()
    try:
        vm = new_vm(live, account, upstream.url)
        args = [*proxy_args(live, account, vm), "-sS", "--max-time", "30", "-w", "%{http_code}\n"]
        urls = [vm_url(live, vm, f"/r{n}") for n in range(4)]
        outputs = []
        # Consecutive requests on one client connection, then from separate clients.
        outputs.append(_run_curl([*args, *urls]))
        for url in urls[:2]:
            outputs.append(_run_curl([*args, url]))
        # Small bodies that arrive with the head can be sent again, too.
        outputs.append(_run_curl([*args, "--data-binary", "ping", *urls[:3]]))
        answers = [line for output in outputs for line in _answers(output)]
        get_answer = f"answer 0 {hashlib.sha256(b'').hexdigest()[:8]}"
        post_answer = f"answer 4 {hashlib.sha256(b'ping').hexdigest()[:8]}"
        assert answers == [get_answer, "200"] * 6 + [post_answer, "200"] * 3, outputs
        answered = 9
        assert upstream.connections == answered  # one answer per connection
        if mode == "on-next-request":
            # Every pooled connection was found dead after a request went out on it.
            dropped = len(upstream.requests) - answered
            assert dropped >= 1, "the retry path was never taken"
        assert upstream.upstream.errors == []
    finally:
        upstream.stop()


def _run_curl(args: list[str]) -> str:
    result = subprocess.run(["curl", *args], capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.decode()


@pytest.mark.parametrize(
    "target",
    [
        "/a%2Fb/../c?x=%20&y",
        "//double//slash/./x?",
        "/%7euser/;p=1?a=%2F&a=b&&=",
        "/caf%C3%A9?q=%E2%9C%93",
    ],
)
def test_s87_request_target_reaches_the_upstream_exactly_as_sent(
    live: SSHMintServer, account: Account, echo_upstream: ThreadedRawUpstream, target: str
) -> None:
    vm = new_vm(live, account, echo_upstream.url)
    reply = curl(vm_url(live, vm, target), *proxy_args(live, account, vm))
    assert reply.status == 200
    seen = echo_upstream.requests[-1]
    assert seen.request_line == f"GET {target} HTTP/1.1".encode()


def test_s88_head_request_with_a_content_length_response_completes_through_the_proxy(
    live: SSHMintServer, account: Account
) -> None:
    async def script(peer: RawPeer) -> None:
        while (request := await peer.read_request()) is not None:
            if request.request_line.startswith(b"HEAD "):
                await peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nX-Head: 1\r\n\r\n")
            else:
                await peer.send(response(b"after head"))

    upstream = ThreadedRawUpstream(script).start()
    try:
        vm = new_vm(live, account, upstream.url)
        args = proxy_args(live, account, vm)
        reply: Reply = curl(vm_url(live, vm, "/h"), *args, "-I", timeout=20)
        assert (reply.status, reply.body) == (200, b"")
        assert reply.header("Content-Length") == "1000" and reply.header("X-Head") == "1"
        for _ in range(2):  # later requests to the same upstream are unaffected
            reply = curl(vm_url(live, vm, "/g"), *args, timeout=20)
            assert (reply.status, reply.body) == (200, b"after head")
        # The HEAD's connection was closed, not reused (its framing cannot be trusted).
        assert upstream.connections == 2
        assert upstream.upstream.errors == []
    finally:
        upstream.stop()


def _keep_alive_exchange(live: SSHMintServer, requests: list[bytes]) -> list[bytes]:
    """Send each request on one client connection after the previous answer, and return
    every answer exactly as received (each framed by its ``Content-Length``)."""
    answers = []
    with socket.create_connection((live.http_host, live.http_port), timeout=WAIT) as sock:
        pending = b""
        for request in requests:
            sock.sendall(request)
            while b"\r\n\r\n" not in pending:
                pending += sock.recv(65536) or pytest.fail(f"closed early: {pending[:200]!r}")
            head, _, rest = pending.partition(b"\r\n\r\n")
            lengths = [
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            ]
            assert len(lengths) == 1, head
            while len(rest) < lengths[0]:
                rest += sock.recv(65536) or pytest.fail("closed mid-body")
            answers.append(head + b"\r\n\r\n" + rest[: lengths[0]])
            pending = rest[lengths[0] :]
    return answers


@pytest.mark.parametrize("size", [11, 64 * 1024, 64 * 1024 + 1], ids=["small", "64k", "64k+1"])
def test_s88_a_response_is_relayed_byte_exact_whether_it_arrives_whole_or_in_parts(
    live: SSHMintServer, account: Account, size: int
) -> None:
    # A response that arrives whole leaves in one write; one whose body comes later is
    # sent head first, then the body as it arrives. The client must not be able to tell
    # them apart, and every header byte (Latin-1 included) must arrive unchanged.
    body = (b"hello world" * (size // 11 + 1))[:size]
    head = (
        b"HTTP/1.1 203 Odd  Reason\r\nX-B: 1\r\nset-cookie: a=1\r\nSet-Cookie: b=2\r\n"
        b"Connection: keep-alive, X-Hop\r\nX-Hop: secret\r\nKeep-Alive: timeout=5\r\n"
        b"Content-Type: text/odd\r\nX-Latin1: caf\xe9\r\n"
        + f"Content-Length: {size}\r\n\r\n".encode()
    )

    async def script(peer: RawPeer) -> None:
        while (request := await peer.read_request()) is not None:
            if request.request_line.startswith(b"GET /whole "):
                await peer.send(head + body)
            else:
                await peer.send(head)
                await asyncio.sleep(0.2)
                await peer.send(body)

    upstream = ThreadedRawUpstream(script).start()
    try:
        vm = new_vm(live, account, upstream.url)
        token = account.token(namespace=f"v0@{vm}.localhost")
        requests = [
            f"GET {target} HTTP/1.1\r\nHost: {vm}.localhost\r\n"
            f"Authorization: Bearer {token}\r\n\r\n".encode()
            for target in ("/whole", "/parts", "/whole")
        ]
        whole, parts, again = _keep_alive_exchange(live, requests)
        assert whole == parts == again
        assert whole == (
            b"HTTP/1.1 203 Odd  Reason\r\nX-B: 1\r\nset-cookie: a=1\r\nSet-Cookie: b=2\r\n"
            b"Content-Type: text/odd\r\nX-Latin1: caf\xe9\r\n"
            + f"Content-Length: {size}\r\n\r\n".encode()
            + body
        )
    finally:
        upstream.stop()
    assert upstream.upstream.errors == []


def test_s88_http_1_0_clients_get_unsized_bodies_until_close_and_sized_ones_kept_alive(
    live: SSHMintServer, account: Account
) -> None:
    async def script(peer: RawPeer) -> None:
        while (request := await peer.read_request()) is not None:
            if request.request_line.startswith(b"GET /chunked "):
                await peer.send(
                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                    b"3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n"
                )
            else:
                await peer.send(response(b"hello"))

    upstream = ThreadedRawUpstream(script).start()
    try:
        vm = new_vm(live, account, upstream.url)
        token = account.token(namespace=f"v0@{vm}.localhost")
        base = f"Host: {vm}.localhost\r\nAuthorization: Bearer {token}\r\n"
        # Sized: the HTTP/1.0 keep-alive the client asked for is confirmed, twice over.
        ask = f"GET /sized HTTP/1.0\r\n{base}Connection: keep-alive\r\n\r\n".encode()
        for answer in _keep_alive_exchange(live, [ask, ask]):
            assert answer == (
                b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\nhello"
            )
        # Unsized: no chunking for HTTP/1.0; the body ends where the connection does.
        answer = _raw_request(
            live, f"GET /chunked HTTP/1.0\r\n{base}Connection: keep-alive\r\n\r\n".encode()
        )
        assert answer == b"HTTP/1.0 200 OK\r\n\r\nhello"
        # The same through curl's own HTTP/1.0.
        args = [*proxy_args(live, account, vm), "--http1.0"]
        for target in ("/chunked", "/sized"):
            reply = curl(vm_url(live, vm, target), *args)
            assert (reply.status, reply.body) == (200, b"hello")
            assert reply.header("Transfer-Encoding") is None
    finally:
        upstream.stop()
    assert upstream.upstream.errors == []
