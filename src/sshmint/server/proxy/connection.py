"""One HTTP/1.1 connection to a VM upstream, used for one exchange at a time.

The proxy (:mod:`sshmint.server.proxy.forward`) sends each request's head exactly as it built it
(docs/proxy.md#what-the-upstream-receives: method and target as received, the filtered header lines in order) and relays
what comes back (docs/proxy.md#responses). A general-purpose client would add headers, re-encode the target
and cost several times the rest of a proxied request, so this client does only what the
proxy needs (connections are pooled by :mod:`.pool`):

- :class:`UpstreamConnection` is an ``asyncio.BufferedProtocol`` that parses responses
  with ``httptools`` (llhttp, the parser Node.js uses), skips interim ``1xx`` responses,
  and queues body bytes with flow control: reading from the upstream pauses while more
  than ``BODY_HIGH_WATER`` bytes wait for a slow client. The rest of a sized body can
  instead be taken straight from the socket (``begin_splice``/``end_splice``, see
  :mod:`.splice`);
- a response head that has not arrived ``head_timeout`` seconds after the request was sent
  (docs/security.md#slow-and-idle-clients, ``--upstream-timeout``) fails the exchange and closes the connection. While
  the caller streams a request body the deadline counts from the last body bytes written
  and is held while the caller waits for more of them: only the upstream's time counts.
  Once the head is in there is no deadline (slow bodies, long polls, upgraded streams).
  One timer serves every connection of a pool (:class:`.pool.HeadDeadlines`);
- after a ``101 Switching Protocols`` the connection is handed over as a raw byte stream.

Errors::

    UpstreamClientError
    ├── UpstreamUnavailable    no usable response head (refused, closed, garbage)
    ├── UpstreamTimeout        no complete response head within the deadline
    └── UpstreamBodyError      the response ended early or was malformed after its head
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Protocol, cast

import httptools

from sshmint.server.proxy.splice import transport_fd
from sshmint.valuetypes import value_type

__all__ = [
    "BODY_HIGH_WATER",
    "BODY_LOW_WATER",
    "LARGE_READ",
    "MAX_HEAD_BYTES",
    "HeadDeadlineQueue",
    "ResponseHead",
    "UpstreamBodyError",
    "UpstreamClientError",
    "UpstreamConnection",
    "UpstreamTimeout",
    "UpstreamUnavailable",
    "encode_head",
    "encode_request_head",
    "set_reading",
]

# Response body bytes queued for the client before reading from the upstream pauses.
BODY_HIGH_WATER: Final = 512 * 1024
BODY_LOW_WATER: Final = 128 * 1024
# Read sizes (see UpstreamConnection).
SMALL_READ: Final = 64 * 1024
LARGE_READ: Final = 256 * 1024
# Response head size cap (status line plus header lines), like the 32 KiB per line the
# listener accepts from clients, for a whole head.
MAX_HEAD_BYTES: Final = 256 * 1024


class UpstreamClientError(Exception):
    """Root of this module's errors."""


class UpstreamUnavailable(UpstreamClientError):
    """No usable response head: docs/proxy.md#responses's 502 ``upstream unavailable``."""


class UpstreamTimeout(UpstreamClientError):
    """No complete response head within the deadline: docs/security.md#slow-and-idle-clients's 504 ``upstream timed
    out``."""


class UpstreamBodyError(UpstreamClientError):
    """The response broke off or turned malformed after its head had been relayed."""


@value_type
@dataclass(frozen=True, slots=True)
class ResponseHead:
    """A final (non-1xx, or 101) response's status line and header lines, decoded as
    aiohttp decodes client headers (UTF-8 with surrogate escapes, so nothing is lost)."""

    status: int
    reason: str
    headers: list[tuple[str, str]]


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def encode_head(start_line: str, headers: list[tuple[str, str]]) -> bytes | None:
    """A start line and header lines, each ended by CRLF, then the blank line, as bytes
    (surrogate escapes back to the bytes they stand for); ``None`` if any part holds a CR
    or LF of its own, which would end a line early and start a header or a message."""
    text = start_line + "\r\n" + "".join(f"{n}: {v}\r\n" for n, v in headers)
    # Exactly the line ends written above: one scan per character class is cheaper than
    # checking every part.
    lines = len(headers) + 1
    if text.count("\n") != lines or text.count("\r") != lines:
        return None
    return (text + "\r\n").encode("utf-8", "surrogateescape")


def encode_request_head(method: str, target: str, headers: list[tuple[str, str]]) -> bytes:
    """``METHOD target HTTP/1.1`` and the header lines, in order, as bytes.

    Raises ``ValueError`` if any part contains CR, LF or NUL: a line break in a value
    (a token's ``ctx`` may hold JSON whitespace) would otherwise start a new header.
    """
    head = encode_head(f"{method} {target} HTTP/1.1", headers)
    if head is None or b"\0" in head:
        raise ValueError("line break or NUL inside the request head")
    return head


class HeadDeadlineQueue(Protocol):
    """Where a connection's response-head deadline is kept (:class:`.pool.HeadDeadlines`)."""

    def start(self, conn: UpstreamConnection, /) -> None:
        """``conn`` must have its head within the queue's time from now."""
        ...


class UpstreamConnection(asyncio.BufferedProtocol):
    """One HTTP/1.1 connection to an upstream, used for one exchange at a time.

    Reads go into a caller-supplied buffer (shared by the connections of one pool: each
    read is parsed, and its bytes copied out, before the next read starts). Until the
    head of a sized response is parsed, reads take at most ``SMALL_READ`` bytes, so that
    a large body mostly stays in the socket for the zero-copy relay (see splice.py).
    """

    def __init__(
        self, read_buffer: bytearray | None = None, deadlines: HeadDeadlineQueue | None = None
    ) -> None:
        self._read_view = memoryview(read_buffer or bytearray(LARGE_READ))
        self._deadlines = deadlines  # None: no deadline on response heads
        # Loop time by which the head must be in; None when not counting (no exchange,
        # head in, failed, or held while the caller waits for its client).
        self.head_deadline: float | None = None
        self.transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._head_bytes = 0  # bytes received since the exchange began, until its head
        self._head_size = 0  # status line and header lines of the response being parsed
        self._exchanging = False  # between send() and reset(): bytes are expected
        self._status_raw = b""
        self._header_lines: list[tuple[bytes, bytes]] = []
        self._head: ResponseHead | None = None
        self._head_waiter: asyncio.Future[ResponseHead] | None = None
        self._chunks: deque[bytes] = deque()
        self._queued = 0
        self._content_length: int | None = None  # of the current response, when framed so
        self._body_received = 0
        self._body_done = False
        self._body_waiter: asyncio.Future[None] | None = None
        self._reading_paused = False
        self._write_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self._keep_alive = False
        self._head_request = False
        self._upgraded = False
        self._raw_sink: Callable[[bytes], object] | None = None
        self._raw_eof: Callable[[], None] | None = None
        self._early_raw: bytes = b""
        self.closed = False
        self._spent = False  # closed or aborted by us: never pooled again
        self.error: BaseException | None = None
        self.reused = False
        self.idle_since = 0.0  # loop time when it was last pooled

    # --- asyncio.Protocol --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's does not subclass asyncio.Transport, so no check).
        self.transport = cast(asyncio.Transport, transport)

    def get_buffer(self, sizehint: int) -> memoryview:
        if self._head is not None and self._content_length is None:
            return self._read_view[:LARGE_READ]  # chunked or close-delimited: no splice
        return self._read_view[:SMALL_READ]

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(self._read_view[:nbytes])

    def data_received(self, data: bytes | memoryview) -> None:
        if self._raw_sink is not None:
            self._raw_sink(bytes(data))
            return
        if self._upgraded:  # raw bytes before anyone took the stream over
            self._early_raw += data
            return
        if not self._exchanging:
            # Bytes on an idle connection answer no request of ours: taking them for the
            # next request's response would hand one client another's answer.
            self._fail(ValueError("unsolicited bytes from the upstream"))
            return
        if self._head is None:
            self._head_bytes += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            self._early_raw = bytes(data[upgrade.args[0] :])
            self._upgraded = True
        except httptools.HttpParserError as exc:
            self._fail(exc)
            return
        if self._head is None and self._head_bytes > MAX_HEAD_BYTES:
            self._fail(ValueError("upstream response head too large"))

    def eof_received(self) -> bool | None:
        self._raw_end()
        return None  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._raw_eof is not None:
            self._raw_end()
            return
        if self._head is not None and not self._body_done and self._reads_until_close():
            # HTTP/1.0-style body: the end of the connection is the end of the body.
            self._finish_body()
        self._fail(exc or ConnectionResetError("upstream closed the connection"))
        drain = self._drain_waiter
        if drain is not None and not drain.done():
            drain.set_exception(ConnectionResetError("upstream closed the connection"))

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # --- httptools callbacks -----------------------------------------------------------

    def on_status(self, status: bytes) -> None:
        self._status_raw += status
        self._head_size += len(status)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_lines.append((name, value))
        self._head_size += len(name) + len(value) + 4

    def on_headers_complete(self) -> None:
        if self._head_size > MAX_HEAD_BYTES:  # a head that completed in one large read
            self._fail(ValueError("upstream response head too large"))
            return
        status = self._parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            return  # interim response: skipped at its message end
        self.head_deadline = None
        self._keep_alive = bool(self._parser.should_keep_alive())
        self._content_length = _content_length(self._header_lines)
        self._head = ResponseHead(
            status,
            _text(self._status_raw),
            [(_text(name), _text(value)) for name, value in self._header_lines],
        )
        if self._head_request or status in (204, 304):
            # No body whatever the headers say (RFC 9112 §6.3); llhttp cannot be told
            # about HEAD, so this connection is not reused after one.
            self._keep_alive = self._keep_alive and not self._head_request
            self._finish_body()
        waiter = self._head_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(self._head)

    def on_body(self, body: bytes) -> None:
        if self._body_done:
            return
        self._chunks.append(body)
        self._queued += len(body)
        self._body_received += len(body)
        if self._queued > BODY_HIGH_WATER and not self._reading_paused:
            self._set_reading(False)
        self._wake_body()

    def on_message_complete(self) -> None:
        if self._head is None:  # the end of an interim 1xx response (or of a refused head)
            self._status_raw = b""
            self._header_lines = []
            self._head_size = 0
            return
        self._finish_body()

    # --- the exchange ------------------------------------------------------------------

    def send(self, data: bytes, *, head_request: bool) -> None:
        """Start an exchange by writing the request head (and any body bytes at hand);
        the response head's deadline starts now."""
        assert self.transport is not None
        self._head_request = head_request
        self._exchanging = True
        self.transport.write(data)
        self.restart_head_deadline()

    def write(self, data: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            raise ConnectionResetError("upstream closed the connection")
        self.transport.write(data)

    async def drain(self) -> None:
        if self.closed:
            raise ConnectionResetError("upstream closed the connection")
        if not self._write_paused:
            return
        self._drain_waiter = asyncio.get_running_loop().create_future()
        try:
            await self._drain_waiter
        finally:
            self._drain_waiter = None

    async def read_head(self) -> ResponseHead:
        """The final response head; :class:`UpstreamTimeout` past the deadline,
        :class:`UpstreamUnavailable` for any other failure."""
        if self._head is not None:
            return self._head
        if self.error is not None:
            raise _head_error(self.error)
        self._head_waiter = asyncio.get_running_loop().create_future()
        try:
            return await self._head_waiter
        finally:
            self._head_waiter = None

    # --- the response head's deadline (docs/security.md#slow-and-idle-clients) ----------------------------------------

    def restart_head_deadline(self) -> None:
        """Give the upstream the whole timeout from now (called once the request, or more
        of its body, has been written)."""
        if self._deadlines is not None and self._head is None and self.error is None:
            self._deadlines.start(self)

    def hold_head_deadline(self) -> None:
        """Stop counting while the caller waits for more request body from its client
        (not the upstream's time); :meth:`restart_head_deadline` resumes."""
        self.head_deadline = None

    def head_timed_out(self, seconds: float) -> None:
        """The deadline has passed without a head (``HeadDeadlines`` calls this)."""
        self._fail(UpstreamTimeout(f"no response head within {seconds:g} s"))

    @property
    def body_done(self) -> bool:
        return self._body_done

    @property
    def content_length(self) -> int | None:
        """The current response's ``Content-Length``, when its body is framed by one."""
        return self._content_length

    @property
    def got_response_bytes(self) -> bool:
        return self._head_bytes > 0

    def read_body_nowait(self) -> bytes:
        """Every body byte queued so far (possibly none)."""
        if not self._chunks:
            return b""
        chunks = self._chunks
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        self._queued = 0
        if self._reading_paused:
            self._set_reading(True)
        return data

    async def read_body(self) -> bytes:
        """The next body bytes, ``b""`` at the end; :class:`UpstreamBodyError` if the
        response breaks off."""
        while not self._chunks:
            if self._body_done:
                return b""
            if self.error is not None:
                raise UpstreamBodyError(_describe(self.error))
            self._body_waiter = asyncio.get_running_loop().create_future()
            try:
                await self._body_waiter
            finally:
                self._body_waiter = None
        return self.read_body_nowait()

    @property
    def reusable(self) -> bool:
        return (
            not self._spent
            and self._body_done
            and self._keep_alive
            and not self._upgraded
            and not self.closed
            and self.error is None
            and not self._chunks
        )

    def reset(self) -> None:
        """Ready for the next exchange (called only when :attr:`reusable`)."""
        self._head_bytes = 0
        self._head_size = 0
        self.head_deadline = None
        self._exchanging = False
        self._status_raw = b""
        self._header_lines = []
        self._head = None
        self._body_done = False
        self._content_length = None
        self._body_received = 0
        self._keep_alive = False
        self._head_request = False
        self.reused = True

    # --- zero-copy relay of the rest of a sized body ------------------------------------

    def spliceable_remainder(self) -> int:
        """Body bytes still to come that may bypass the parser: those of a
        Content-Length response when nothing is queued; 0 otherwise."""
        if (
            self._content_length is None
            or self._body_done
            or self._chunks
            or self.error is not None
            or self.transport is None
            or self.transport.is_closing()
        ):
            return 0
        return self._content_length - self._body_received

    def begin_splice(self) -> int:
        """Stop reading (the caller now takes the body bytes from the socket itself) and
        return the socket's file descriptor."""
        assert self.transport is not None
        self._set_reading(False)
        return transport_fd(self.transport)

    def end_splice(self) -> None:
        """The rest of the body was moved past the parser: start a fresh parser, mark the
        response complete and read again."""
        self._parser = httptools.HttpResponseParser(self)
        self._body_received = self._content_length or 0
        self._finish_body()
        self._set_reading(True)

    # --- after 101 Switching Protocols -------------------------------------------------

    @property
    def upgraded(self) -> bool:
        return self._upgraded

    def take_raw_stream(self, sink: Callable[[bytes], object], eof: Callable[[], None]) -> None:
        """From now on every byte from the upstream goes to ``sink``; ``eof`` is called
        once, when it stops sending. Bytes that arrived with the 101 are delivered first."""
        early, self._early_raw = self._early_raw, b""
        self._raw_sink, self._raw_eof = sink, eof
        if early:
            sink(early)
        if self.closed:
            self._raw_end()

    def close(self) -> None:
        self._spent = True
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        self._spent = True
        if self.transport is not None:
            self.transport.abort()

    # --- internals ---------------------------------------------------------------------

    def _raw_end(self) -> None:
        eof, self._raw_eof = self._raw_eof, None
        if eof is not None:
            eof()

    def _reads_until_close(self) -> bool:
        """RFC 9112 §6.3: no Content-Length and no final ``chunked`` coding means the
        body ends when the connection does."""
        head = self._head
        if head is None:
            return False
        codings = ""
        for name, value in head.headers:
            lower = name.lower()
            if lower == "content-length":
                return False
            if lower == "transfer-encoding":
                codings = value
        return codings.rpartition(",")[2].strip().lower() != "chunked"

    def _finish_body(self) -> None:
        self._body_done = True
        self._wake_body()

    def _wake_body(self) -> None:
        waiter = self._body_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc
        self.head_deadline = None
        head_waiter = self._head_waiter
        if head_waiter is not None and not head_waiter.done():
            head_waiter.set_exception(_head_error(self.error))
        self._wake_body()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.abort()

    def _set_reading(self, reading: bool) -> None:
        if set_reading(self.transport, reading):
            self._reading_paused = not reading


def set_reading(transport: asyncio.BaseTransport | None, reading: bool) -> bool:
    """Resume or pause reading on a stream transport; False (nothing done) when it is gone
    or closing. uvloop's transports do not subclass asyncio's, hence the cast."""
    stream = cast(asyncio.Transport | None, transport)
    if stream is None or stream.is_closing():
        return False
    if reading:
        stream.resume_reading()
    else:
        stream.pause_reading()
    return True


def _content_length(lines: list[tuple[bytes, bytes]]) -> int | None:
    """The body length a response head declares (RFC 9112 §6.3): one ``Content-Length``
    and no ``Transfer-Encoding``; None otherwise (llhttp has refused malformed values)."""
    length: int | None = None
    for name, value in lines:
        lower = name.lower()
        if lower == b"transfer-encoding":
            return None
        if lower == b"content-length":
            if length is not None:
                return None
            try:
                length = int(value)
            except ValueError:
                return None
    return length


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _head_error(exc: BaseException) -> UpstreamClientError:
    """What waiting for a response head raises when the exchange failed with ``exc``."""
    if isinstance(exc, UpstreamTimeout):
        return exc
    return UpstreamUnavailable(_describe(exc))
