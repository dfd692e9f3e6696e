"""Relaying the upstream's response to the client (docs/proxy.md#responses): its status
line and headers as the client gets them, its body as it comes (spliced when large), and
the response object that tells aiohttp it has been written.

The proxy writes relayed responses itself instead of through aiohttp's ``StreamResponse``:

- **Exact bytes.** aiohttp serialises header values as UTF-8 and silently drops what is
  not text (an upstream's Latin-1 ``caf\\xe9`` arrived as ``caf``); here every header byte
  the upstream sent reaches the client unchanged, as request headers reach the upstream.
- **Nothing added.** aiohttp fills in ``Content-Type``, ``Date`` and ``Server``, which a
  relay must not invent; here only framing is added, exactly as HTTP/1.1 requires.
- **Cost.** Preparing a ``StreamResponse`` and then removing what it added was about 7%
  of the instructions of a small proxied request (callgrind, one request at a time).

Framing follows aiohttp's own rules for the responses it writes (so clients see no
difference except the headers no longer invented): the status line carries the request's
HTTP version; a response that must be empty (HEAD, 1xx, 204, 304, a 2xx to CONNECT)
gets no body and, except for HEAD, no ``Content-Length``; a body without
``Content-Length`` is sent chunked to HTTP/1.1 clients and ends at connection close for
HTTP/1.0; ``Connection: keep-alive`` (HTTP/1.0) or ``Connection: close`` (HTTP/1.1) is
added when the connection's fate differs from the version's default and the head has no
``Connection`` header (only a relayed ``101`` keeps one: ``Connection: Upgrade``).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Final

from aiohttp import web

from sshmint.server.proxy.answers import MSG_UNAVAILABLE, answer
from sshmint.server.proxy.connection import (
    ResponseHead,
    UpstreamBodyError,
    UpstreamConnection,
    encode_head,
)
from sshmint.server.proxy.headers import upstream_response_headers
from sshmint.server.proxy.splice import (
    SpliceError,
    splice_available,
    splice_exactly,
    transport_fd,
)
from sshmint.valuetypes import value_type

__all__ = ["LAST_CHUNK", "RelayHead", "SentResponse", "chunk", "relay_head", "relay_response"]

LAST_CHUNK: Final = b"0\r\n\r\n"
# Response bytes that may queue towards a client before the relay waits for it.
_CLIENT_WRITE_HIGH_WATER: Final = 256 * 1024
# Smaller body remainders are copied: setting up a splice costs about as much as copying
# this much.
_SPLICE_MIN_BYTES: Final = 64 * 1024

# aiohttp.helpers.EMPTY_BODY_STATUS_CODES / should_remove_content_length (RFC 9110 §8.6).
_NO_CONTENT_LENGTH: Final = frozenset((204, 304, *range(100, 200)))


@value_type
@dataclass(frozen=True, slots=True)
class RelayHead:
    """What to write before the body, and how the body is framed (built on every proxied
    request: a value type, docs/performance.md#value-types)."""

    data: bytes  # status line, header lines and the blank line
    has_body: bool  # False: nothing follows the head (HEAD, 1xx, 204, 304)
    chunked: bool  # the body goes out in chunks (ended by ``LAST_CHUNK``)
    keep_alive: bool  # the client connection stays open afterwards


def relay_head(
    head: ResponseHead,
    lines: list[tuple[str, str]],
    content_length: int | None,
    *,
    method: str,
    version: tuple[int, int],
    keep_alive: bool,
) -> RelayHead | None:
    """The head for the upstream's ``head`` with its already filtered header ``lines``,
    answering a ``method`` request of HTTP ``version`` whose connection may be kept open
    (``keep_alive``: the client allows it and nothing forbids it); ``None`` if the reason
    phrase or a header holds a line break (llhttp refuses those in what it parses; this is
    the same refusal aiohttp's serialiser makes)."""
    status = head.status
    chunked = False
    if (
        status in (204, 304)
        or status < 200
        or method == "HEAD"
        or (method == "CONNECT" and 200 <= status < 300)
    ):
        has_body = False
        if status in _NO_CONTENT_LENGTH or method == "CONNECT":
            lines = [(n, v) for n, v in lines if n.lower() != "content-length"]
    else:
        has_body = True
        if content_length is None:
            if version >= (1, 1):
                chunked = True
                lines = [*lines, ("Transfer-Encoding", "chunked")]
            else:
                keep_alive = False  # the end of the body is the end of the connection
    # The connection's fate where it differs from the version's default; a 101 that
    # carries the upstream's "Connection: Upgrade" says all there is to say (other
    # responses never keep a Connection header: it is hop-by-hop).
    if status != 101 or not any(n.lower() == "connection" for n, _ in lines):
        if keep_alive and version == (1, 0):
            lines = [*lines, ("Connection", "keep-alive")]
        elif not keep_alive and version == (1, 1):
            lines = [*lines, ("Connection", "close")]
    data = encode_head(f"HTTP/{version[0]}.{version[1]} {status} {head.reason}", lines)
    if data is None:
        return None
    return RelayHead(data, has_body, chunked, keep_alive)


def chunk(data: bytes) -> bytes:
    """One chunk of a chunked body (RFC 9112 §7.1); empty data makes no chunk."""
    return b"%x\r\n%b\r\n" % (len(data), data) if data else b""


class SentResponse(web.StreamResponse):
    """A response the proxy has already written to the client itself: aiohttp only logs
    it, then keeps or closes the connection as ``keep_alive`` says."""

    def __init__(self, status: int, size: int, *, keep_alive: bool) -> None:
        super().__init__(status=status)
        self._size = size
        self._reusable = keep_alive

    async def prepare(self, request: web.BaseRequest) -> None:
        return None

    async def write_eof(self, data: bytes = b"") -> None:
        return None

    @property
    def keep_alive(self) -> bool:
        return self._reusable

    @property
    def body_length(self) -> int:
        # As aiohttp reports for the responses it writes: every byte sent.
        return self._size


async def relay_response(
    request: web.BaseRequest,
    conn: UpstreamConnection,
    head: ResponseHead,
    *,
    close: bool,
    logger: logging.Logger,
) -> web.StreamResponse:
    """Write the response to the client ourselves: the head and whatever body arrived with
    it in one write, then the rest as it comes (spliced when large), framed as
    ``relay_head`` decided. ``close``: the client connection is not to be reused."""
    lines = upstream_response_headers(head.headers, switching=False)
    relay = relay_head(
        head,
        lines,
        conn.content_length,
        method=request.method,
        version=request.version,
        keep_alive=request.keep_alive and not close,
    )
    if relay is None:
        conn.abort()
        logger.info("proxy: upstream response head cannot be relayed")
        return answer(502, MSG_UNAVAILABLE)
    body = _BodyRelay(request, conn, relay.chunked)
    try:
        await body.run(relay)
    except (UpstreamBodyError, SpliceError, OSError) as exc:
        # The status line is gone already: all that is left is to cut the connection.
        logger.info("proxy: relay interrupted: %s", type(exc).__name__)
        conn.abort()
        if body.transport is not None:
            body.transport.close()
        return SentResponse(head.status, body.sent, keep_alive=False)
    return SentResponse(head.status, body.sent, keep_alive=relay.keep_alive)


class _BodyRelay:
    """Writes one relayed response to the client, counting the bytes written."""

    __slots__ = ("chunked", "conn", "sent", "transport", "writer")

    def __init__(self, request: web.BaseRequest, conn: UpstreamConnection, chunked: bool) -> None:
        self.writer = request.writer
        self.transport = request.transport
        self.conn = conn
        self.chunked = chunked
        self.sent = 0

    async def run(self, relay: RelayHead) -> None:
        conn, chunked = self.conn, self.chunked
        first = conn.read_body_nowait() if relay.has_body else b""
        out = relay.data + (chunk(first) if chunked else first)
        if not relay.has_body or conn.body_done:  # the whole response is here
            await self._write(out + LAST_CHUNK if chunked else out)
            return
        if self.transport is not None:
            # Let a body's worth of data queue towards the client before waiting on it.
            self.transport.set_write_buffer_limits(high=_CLIENT_WRITE_HIGH_WATER)
        await self._write(out)  # the head goes now, even if the body is slow to come
        spliceable: bool | None = None  # decided once a large remainder turns up
        while True:
            if spliceable is not False:
                spliceable, moved = await _splice_rest(self.transport, conn, spliceable)
                self.sent += moved
            data = await conn.read_body()
            if not data:
                break
            await self._write(chunk(data) if chunked else data)
        if chunked:
            await self._write(LAST_CHUNK)

    async def _write(self, data: bytes) -> None:
        await self.writer.write(data)
        self.sent += len(data)


async def _splice_rest(
    transport: asyncio.Transport | None, conn: UpstreamConnection, spliceable: bool | None
) -> tuple[bool | None, int]:
    """Move a large rest of a sized body socket to socket inside the kernel, once everything
    before it has left (splice.py). Returns whether these transports allow it (None: not
    decided yet, nothing large has turned up), and how many bytes were moved."""
    if transport is None or conn.transport is None:
        return spliceable, 0
    if transport.get_write_buffer_size():
        return spliceable, 0
    remainder = conn.spliceable_remainder()
    if remainder < _SPLICE_MIN_BYTES:
        return spliceable, 0
    if spliceable is None:
        spliceable = splice_available(asyncio.get_running_loop(), transport, conn.transport)
    if not spliceable:
        return spliceable, 0
    await splice_exactly(conn.begin_splice(), transport_fd(transport), remainder)
    conn.end_splice()
    return spliceable, remainder
