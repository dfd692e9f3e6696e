"""Loopback upstreams that answer with hand-written bytes, for the upstream client tests.

A :class:`RawUpstream` is an ``asyncio.start_server`` on 127.0.0.1 whose every connection
is handed to a script (``async def script(peer: RawPeer) -> None``): the script reads
requests with :meth:`RawPeer.read_request` and writes exactly the bytes it wants, so a
test controls the framing of every response (interim responses, chunk boundaries, early
closes, bytes after a 101). :class:`ThreadedRawUpstream` serves one from a background
thread, for tests that drive a live server with blocking tools such as curl.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

__all__ = [
    "RawPeer",
    "RawRequest",
    "RawUpstream",
    "Script",
    "ThreadedRawUpstream",
    "response",
    "serving",
]

# Bounds for a request as read by a script: a runaway test fails instead of hanging.
_MAX_REQUEST_HEAD = 1024 * 1024
_READ_TIMEOUT_SECONDS = 20.0


@dataclass(frozen=True)
class RawRequest:
    """One request as an upstream received it."""

    head: bytes  # request line and header lines, each with its CRLF (no final blank line)
    body: bytes  # the body, de-chunked
    wire_body: bytes  # the body bytes exactly as they came (chunk framing included)

    @property
    def request_line(self) -> bytes:
        return self.head.split(b"\r\n", 1)[0]

    @property
    def header_lines(self) -> list[tuple[bytes, bytes]]:
        lines = []
        for line in self.head.split(b"\r\n")[1:]:
            if line:
                name, _, value = line.partition(b":")
                lines.append((name, value.strip(b" \t")))
        return lines

    def all(self, name: str) -> list[bytes]:
        wanted = name.lower().encode()
        return [value for n, value in self.header_lines if n.lower() == wanted]


class RawPeer:
    """One accepted connection, as a script sees it."""

    def __init__(
        self,
        upstream: RawUpstream,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        index: int,
    ) -> None:
        self.upstream = upstream
        self.reader = reader
        self.writer = writer
        self.index = index  # 0 for the first connection the upstream accepted

    async def read_request(self) -> RawRequest | None:
        """The next request (recorded in ``upstream.requests``), or None at a clean EOF."""
        async with asyncio.timeout(_READ_TIMEOUT_SECONDS):
            try:
                head = await self.reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError as exc:
                if exc.partial:
                    raise
                return None
            if len(head) > _MAX_REQUEST_HEAD:
                raise ValueError("request head too large")
            request = RawRequest(head[:-2], b"", b"")
            lengths = request.all("Content-Length")
            if b"chunked" in b",".join(request.all("Transfer-Encoding")).lower():
                body, wire = await self._read_chunked()
            elif lengths:
                body = wire = await self.reader.readexactly(int(lengths[0]))
            else:
                body = wire = b""
        request = RawRequest(request.head, body, wire)
        self.upstream.requests.append(request)
        return request

    async def _read_chunked(self) -> tuple[bytes, bytes]:
        body = bytearray()
        wire = bytearray()
        while True:
            size_line = await self.reader.readuntil(b"\r\n")
            wire += size_line
            size = int(size_line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                while (line := await self.reader.readuntil(b"\r\n")) != b"\r\n":
                    wire += line  # a trailer field
                wire += line
                return bytes(body), bytes(wire)
            data = await self.reader.readexactly(size + 2)
            if data[-2:] != b"\r\n":
                raise ValueError("chunk not followed by CRLF")
            wire += data
            body += data[:-2]

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def wait_closed_by_client(self) -> bytes:
        """Everything the client sends until it closes the connection."""
        async with asyncio.timeout(_READ_TIMEOUT_SECONDS):
            return await self.reader.read()


Script = Callable[[RawPeer], Awaitable[None]]


@dataclass
class RawUpstream:
    """A scripted HTTP upstream on 127.0.0.1 (see the module docstring)."""

    script: Script
    requests: list[RawRequest] = field(default_factory=list)
    connections: int = 0
    errors: list[BaseException] = field(default_factory=list)
    port: int = 0
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)

    async def start(self) -> RawUpstream:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        index = self.connections
        self.connections += 1
        try:
            await self.script(RawPeer(self, reader, writer, index))
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away: what it saw is what the test checks
        except asyncio.CancelledError:
            pass  # stop(): ends quietly (asyncio logs a handler task that ends cancelled)
        except Exception as exc:  # kept for the test to report
            self.errors.append(exc)
        finally:
            writer.transport.close()
            self._writers.discard(writer)
            self._tasks.discard(task)


@contextlib.asynccontextmanager
async def serving(script: Script) -> AsyncIterator[RawUpstream]:
    """A :class:`RawUpstream` for the body of an ``async with``; on leaving, any exception a
    script raised fails the test."""
    upstream = await RawUpstream(script).start()
    try:
        yield upstream
    finally:
        await upstream.stop()
    assert upstream.errors == [], upstream.errors


class ThreadedRawUpstream:
    """A :class:`RawUpstream` served from its own event loop in a daemon thread."""

    def __init__(self, script: Script) -> None:
        self.upstream = RawUpstream(script)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def start(self) -> ThreadedRawUpstream:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.upstream.start(), self.loop).result(10)
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.upstream.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()

    @property
    def url(self) -> str:
        return self.upstream.url

    @property
    def requests(self) -> list[RawRequest]:
        return self.upstream.requests

    @property
    def connections(self) -> int:
        return self.upstream.connections


def response(
    body: bytes = b"", *headers: str, status: str = "200 OK", length: bool = True
) -> bytes:
    """``HTTP/1.1 <status>``, the header lines given, ``Content-Length`` (unless
    ``length=False``) and the body."""
    lines = [f"HTTP/1.1 {status}", *headers]
    if length:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body
