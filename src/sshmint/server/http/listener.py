"""The HTTP listener's connections: how many, how long, and what a malformed request gets.

:class:`HTTPListener` serves a request handler on already-bound sockets with aiohttp's
low-level server, and adds what aiohttp leaves to the operator (docs/security.md#secrets-never-logged, docs/security.md#slow-and-idle-clients):

- **Connection limit.** Its own accept loop takes a connection only while fewer than
  ``--max-connections`` are open; beyond that new connections wait in the kernel's listen
  backlog, and no established connection is ever closed to make room. (aiohttp's sites use
  ``loop.create_server``, which accepts everything it is offered.) A TLS handshake runs in
  a task of its own, bounded by the head deadline, so a slow one never holds up the loop.
- **Head deadline.** A connection must deliver a complete request head within
  ``--header-timeout`` of connecting; on a kept-alive connection the clock starts with
  the first byte of the next request (behind TLS, the handshake counts: it is bounded by
  the same deadline). A kept-alive connection on which no byte arrives is closed after
  ``--idle-timeout`` (aiohttp's ``keepalive_timeout``).
- **Parser refusals.** :meth:`FrontEndProtocol.handle_error` is the one place where a
  request aiohttp's parser refuses is answered: a fixed body (:func:`refusal`) that holds
  no byte of the request, and one warning line naming the peer and the parser's error
  class — where aiohttp would log a traceback quoting the offending line and echo it in
  the body. The metrics count it (route ``other``); the access log writes no line. A body the parser can no longer complete (a malformed chunk after the head)
  fails at once instead of leaving its reader waiting.
- **Half-closed clients** (``printf ... | nc -q 1``) are answered before the connection
  closes; aiohttp alone closes on the client's EOF and the answer is lost.

The hooks read attributes of aiohttp's ``RequestHandler`` — ``_messages`` (parsed
requests and refusals not yet handled, a refusal being an ``_ErrInfo``), ``_waiter`` (set
while the connection waits for its next request), ``_current_request``,
``_request_count``, ``_upgraded`` and ``_payload_parser`` — and the hardening tests
(tests/http/test_http_hardening_*.py) fail if any of them changes meaning.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler, RequestPayloadError, _ErrInfo

from sshmint.server.infra.observe import open_scope

__all__ = [
    "HEAD_TOO_LARGE_BODY",
    "REFUSED_BODY",
    "FrontEndProtocol",
    "FrontEndServer",
    "HTTPListener",
    "refusal",
]

_log = logging.getLogger("sshmint.http")

# docs/security.md#secrets-never-logged: the fixed answers to a request the parser refuses (no byte of the request).
REFUSED_BODY: Final = b'{"error":"bad request"}\n'
HEAD_TOO_LARGE_BODY: Final = b'{"error":"request header fields too large"}\n'
_REFUSAL_HEADERS: Final = {
    "Content-Type": "application/json; charset=utf-8",
    "X-Content-Type-Options": "nosniff",
}

# accept(2) failures that mean "out of descriptors or memory for now": the connection
# stays in the backlog, the loop waits a moment (asyncio's own accept loop does the same).
_RESOURCE_ERRORS: Final = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
_RESOURCE_PAUSE: Final = 0.25
_RESOURCE_WARNING_INTERVAL: Final = 60.0


def refusal(exc: HttpProcessingError) -> web.Response:
    """The fixed answer to a request the parser refused: 431 when a line of the head was
    over the limit, else 400; JSON like the API's errors; the connection closes."""
    too_large = isinstance(exc, LineTooLong)
    response = web.Response(
        status=431 if too_large else 400,
        body=HEAD_TOO_LARGE_BODY if too_large else REFUSED_BODY,
        headers=_REFUSAL_HEADERS,
    )
    response.force_close()
    return response


class FrontEndProtocol(RequestHandler):
    """aiohttp's HTTP/1 connection handler with a request-head deadline, a connection
    slot, the fixed answer to parser refusals, and answers for half-closed clients."""

    __slots__ = (
        "_accepted_at",
        "_head_timer",
        "_header_timeout",
        "_last_payload",
        "_release_slot",
    )

    def __init__(self, manager: FrontEndServer, *, loop: asyncio.AbstractEventLoop, **kwargs: Any):
        super().__init__(manager, loop=loop, **kwargs)
        # Made when the socket is accepted (before any TLS handshake): the head's clock.
        self._accepted_at = loop.time()
        self._header_timeout = manager.header_timeout
        self._release_slot: Callable[[], None] | None = manager.release_slot
        self._head_timer: asyncio.TimerHandle | None = None
        # The body of the latest request parsed (it may still be arriving).
        self._last_payload: StreamReader | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._head_timer = self._loop.call_at(
            self._accepted_at + self._header_timeout, self._head_deadline_passed
        )

    def data_received(self, data: bytes) -> None:
        RequestHandler.data_received(self, data)  # (no super(): this runs per request)
        messages = self._messages
        if messages:  # a complete head (or a refusal) is queued: its deadline is met
            self._last_payload = messages[-1][1]
            if self._head_timer is not None or self._current_request is not None:
                self._head_complete()
        elif self._head_timer is None and self._waiter is not None and not self._waiter.done():
            # The first bytes of the next request on a kept-alive connection.
            self._head_timer = self._loop.call_later(
                self._header_timeout, self._head_deadline_passed
            )

    def _head_complete(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        request = self._current_request
        if request is not None:
            self._fail_unfinished_body(request)

    def eof_received(self) -> bool | None:  # type: ignore[override]  # asyncio allows bool
        """The client has shut down its sending side (``nc -N``, ``nc -q``): it has sent
        all it will. aiohttp would close the connection at once, losing the answer to a
        request already received — a parser refusal included. Instead: answer the
        request that arrived (a body it left unfinished fails), then close. With no
        complete request, on a relayed (upgraded) connection, or behind TLS (asyncio's
        TLS transport closes on the peer's close_notify whatever this returns), close now
        as before."""
        if self._upgraded or self._payload_parser is not None or self.ssl_context is not None:
            return None
        # A request is queued, or being handled (start() is not waiting for the next one:
        # it may have taken the request without its handler having started yet).
        if not (self._messages or (self._waiter is None and self._request_count)):
            return None
        self.close()  # no request after this one
        unfinished = [payload for _, payload in self._messages]
        if self._last_payload is not None:  # being handled, or drained after its answer
            unfinished.append(self._last_payload)
        for payload in unfinished:
            if not payload.is_eof():
                payload.set_exception(RequestPayloadError("request body cut short"))
                payload.feed_eof()
        return True  # keep the transport open for the answer

    def _fail_unfinished_body(self, request: web.BaseRequest) -> None:
        """The parser refused what followed a request whose body is still being read (a
        malformed chunk, say): that body will never complete, so reading it fails now
        (aiohttp would leave the handler waiting for it)."""
        content = request.content
        if not content.is_eof() and isinstance(self._messages[-1][0], _ErrInfo):
            content.set_exception(RequestPayloadError("malformed request body"))
            content.feed_eof()  # nothing more will come: no lingering read after the answer

    def _head_deadline_passed(self) -> None:
        self._head_timer = None
        self.force_close()

    def connection_lost(self, exc: BaseException | None) -> None:
        super().connection_lost(exc)
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        self.release_slot()

    def release_slot(self) -> None:
        """Give the listener's connection slot back (once)."""
        release, self._release_slot = self._release_slot, None
        if release is not None:
            release()

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if not isinstance(exc, HttpProcessingError):
            return super().handle_error(request, status, exc, message)
        # aiohttp's own version logs a traceback quoting the refused bytes and puts them in
        # the body: here, one line with the peer and the error class, and a fixed body.
        _log.warning(
            "HTTP parser refused a request from %s: %s", request.remote or "-", type(exc).__name__
        )
        # That warning is its one line: the access log counts the refusal in the metrics
        # (route "other") and writes no line for it.
        open_scope("other").refused = True
        if request.writer.output_size > 0:  # a response has begun: only closing is left
            raise ConnectionResetError("request refused after its response began")
        return refusal(exc)


class FrontEndServer(web.Server):
    """aiohttp's low-level server making :class:`FrontEndProtocol` connections."""

    def __init__(
        self,
        handler: Callable[[web.BaseRequest], Awaitable[web.StreamResponse]],
        *,
        header_timeout: float,
        release_slot: Callable[[], None] | None = None,
        **handler_args: Any,
    ) -> None:
        super().__init__(handler, **handler_args)
        self.header_timeout = header_timeout
        self.release_slot = release_slot
        self._handler_args = handler_args
        self._handler_loop = asyncio.get_running_loop()

    def __call__(self) -> FrontEndProtocol:
        return FrontEndProtocol(self, loop=self._handler_loop, **self._handler_args)


class HTTPListener:
    """Serves ``handler`` on bound, listening sockets (see the module docstring).

    ``handler_args`` go to aiohttp's ``RequestHandler`` (line limits, access log);
    ``idle_timeout`` becomes its ``keepalive_timeout``.
    """

    def __init__(
        self,
        handler: Callable[[web.BaseRequest], Awaitable[web.StreamResponse]],
        *,
        header_timeout: float,
        idle_timeout: float,
        max_connections: int,
        tls: ssl.SSLContext | None = None,
        shutdown_timeout: float = 3.0,
        handler_args: dict[str, Any] | None = None,
    ) -> None:
        self._handler = handler
        self._header_timeout = header_timeout
        self._idle_timeout = idle_timeout
        self._max_connections = max_connections
        self._tls = tls
        self._shutdown_timeout = shutdown_timeout
        self._handler_args = dict(handler_args or {})
        self._accepting: list[asyncio.Task[None]] = []
        self._opening: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(max_connections)
        self._open = 0
        self._runner: web.ServerRunner | None = None
        self._warned_at = -_RESOURCE_WARNING_INTERVAL

    @property
    def connections(self) -> int:
        """Connections held now (accepted, not yet closed)."""
        return self._open

    async def start(self, sockets: list[socket.socket]) -> None:
        """Start accepting on every socket (they share the connection limit)."""
        loop = asyncio.get_running_loop()
        server = FrontEndServer(
            self._handler,
            header_timeout=self._header_timeout,
            release_slot=self._release,
            keepalive_timeout=self._idle_timeout,
            **self._handler_args,
        )
        self._runner = web.ServerRunner(
            server, handle_signals=False, shutdown_timeout=self._shutdown_timeout
        )
        await self._runner.setup()
        for sock in sockets:
            self._accepting.append(loop.create_task(self._accept(sock, server)))

    async def close(self) -> None:
        """Stop accepting, then let in-flight requests finish (``shutdown_timeout``)."""
        tasks = [*self._accepting, *self._opening]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._accepting.clear()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _release(self) -> None:
        self._open -= 1
        self._slots.release()

    async def _accept(self, sock: socket.socket, server: FrontEndServer) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._slots.acquire()  # at the limit, connections wait in the backlog
            try:
                conn, _ = await loop.sock_accept(sock)
            except (InterruptedError, ConnectionAbortedError):
                self._slots.release()
                continue
            except OSError as exc:
                self._slots.release()
                if exc.errno not in _RESOURCE_ERRORS:
                    _log.error("http: stopped accepting on %s: %s", sock.getsockname(), exc)
                    return
                self._warn_resources(exc)
                await asyncio.sleep(_RESOURCE_PAUSE)
                continue
            except BaseException:
                self._slots.release()
                raise
            self._open += 1
            task = loop.create_task(self._connect(conn, server))
            self._opening.add(task)
            task.add_done_callback(self._opening.discard)

    async def _connect(self, conn: socket.socket, server: FrontEndServer) -> None:
        """Hand an accepted socket to a new connection handler (after the TLS handshake)."""
        made: list[FrontEndProtocol] = []

        def protocol() -> FrontEndProtocol:
            made.append(server())
            return made[0]

        try:
            await asyncio.get_running_loop().connect_accepted_socket(
                protocol,
                conn,
                ssl=self._tls,
                ssl_handshake_timeout=self._header_timeout if self._tls is not None else None,
            )
        except BaseException as exc:
            # A failed or slow TLS handshake, or a peer already gone: asyncio has closed
            # the transport, if any; the slot comes back here (once: see release_slot).
            if made:
                made[0].release_slot()
            else:
                conn.close()
                self._release()
            if not isinstance(exc, Exception):
                raise

    def _warn_resources(self, exc: OSError) -> None:
        now = time.monotonic()
        if now - self._warned_at >= _RESOURCE_WARNING_INTERVAL:
            self._warned_at = now
            _log.warning(
                "http: cannot accept connections (%s); %d open, waiting",
                exc.strerror or exc,
                self._open,
            )
