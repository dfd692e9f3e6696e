"""Upgraded connections (docs/proxy.md#responses): after the upstream's ``101 Switching
Protocols`` the proxy relays bytes both ways, with flow control, until either side closes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import Final, Protocol

from aiohttp import web

from sshmint.server.proxy.answers import MSG_UNAVAILABLE, answer
from sshmint.server.proxy.connection import ResponseHead, UpstreamConnection, set_reading
from sshmint.server.proxy.headers import upstream_response_headers
from sshmint.server.proxy.response import SentResponse, relay_head

__all__ = ["relay_upgrade"]

# Upgraded connections: stop reading a side once this much is queued for the other.
_RELAY_HIGH_WATER: Final = 256 * 1024
_RELAY_LOW_WATER: Final = 64 * 1024


async def relay_upgrade(
    request: web.BaseRequest, conn: UpstreamConnection, head: ResponseHead, logger: logging.Logger
) -> web.StreamResponse:
    """docs/proxy.md#responses: relay the 101, then copy bytes both ways until either side closes."""
    client_protocol = request.protocol
    if client_protocol is None or conn.transport is None:
        conn.close()
        return answer(502, MSG_UNAVAILABLE)
    lines = upstream_response_headers(head.headers, switching=True)
    relay = relay_head(
        head, lines, None, method=request.method, version=request.version, keep_alive=False
    )
    if relay is None:
        conn.close()
        logger.info("proxy: upstream 101 head cannot be relayed")
        return answer(502, MSG_UNAVAILABLE)
    writer = request.writer
    try:
        await writer.write(relay.data)
    except OSError:  # the client has gone
        conn.close()
        return SentResponse(101, 0, keep_alive=False)

    from_client = _Pipe(request.transport)
    from_upstream = _Pipe(conn.transport)
    client_protocol.set_parser(from_client)  # type: ignore[arg-type]
    conn.take_raw_stream(from_upstream.feed_data, from_upstream.feed_eof)
    to_upstream = asyncio.ensure_future(_pump(from_client, _ConnectionWriter(conn)))
    to_client = asyncio.ensure_future(_pump(from_upstream, writer))
    pumps = [to_upstream, to_client]
    try:
        await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in pumps:
            task.cancel()
        for task in pumps:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        conn.close()
        if request.transport is not None:
            request.transport.close()
    relayed = 0
    if to_client.done() and not to_client.cancelled() and to_client.exception() is None:
        relayed = to_client.result()
    return SentResponse(101, len(relay.data) + relayed, keep_alive=False)


class _Pipe:
    """Receives one side's bytes (as an aiohttp payload parser) and queues them for a pump.

    Reading from the source transport pauses while too much is queued, so a slow reader on
    the other side cannot make the proxy buffer without bound.
    """

    def __init__(self, transport: asyncio.BaseTransport | None) -> None:
        self._transport = transport
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self._eof = False
        self._paused = False
        self._ready = asyncio.Event()

    # aiohttp payload-parser interface
    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        if data:
            self._chunks.append(bytes(data))
            self._size += len(data)
            self._ready.set()
            if self._size > _RELAY_HIGH_WATER and not self._paused:
                self._set_reading(False)
        return False, b""

    def feed_eof(self) -> None:
        self._eof = True
        self._ready.set()

    async def read(self) -> bytes:
        """The next queued chunk, or ``b""`` once the source has closed."""
        while not self._chunks and not self._eof:
            self._ready.clear()
            await self._ready.wait()
        if not self._chunks:
            return b""
        chunk = self._chunks.popleft()
        self._size -= len(chunk)
        if self._paused and self._size < _RELAY_LOW_WATER:
            self._set_reading(True)
        return chunk

    def _set_reading(self, reading: bool) -> None:
        if set_reading(self._transport, reading):
            self._paused = not reading


class _AsyncWriter(Protocol):
    async def write(self, data: bytes, /) -> None: ...


async def _pump(source: _Pipe, sink: _AsyncWriter) -> int:
    """Copy until the source ends; returns the number of bytes copied."""
    copied = 0
    while chunk := await source.read():
        await sink.write(chunk)
        copied += len(chunk)
    return copied


class _ConnectionWriter:
    """The upstream side of an upgraded connection, as ``_pump`` writes to it."""

    def __init__(self, conn: UpstreamConnection) -> None:
        self._conn = conn

    async def write(self, data: bytes) -> None:
        self._conn.write(data)
        await self._conn.drain()
