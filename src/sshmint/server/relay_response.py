"""The status line and headers of a relayed upstream response, as the client gets them
(docs/proxy.md#responses), and the response object that tells aiohttp it has been written.

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

from typing import Final, NamedTuple

from aiohttp import web

from sshmint.server.upstream_client import ResponseHead, encode_head

__all__ = ["LAST_CHUNK", "RelayHead", "SentResponse", "chunk", "relay_head"]

LAST_CHUNK: Final = b"0\r\n\r\n"

# aiohttp.helpers.EMPTY_BODY_STATUS_CODES / should_remove_content_length (RFC 9110 §8.6).
_NO_CONTENT_LENGTH: Final = frozenset((204, 304, *range(100, 200)))


class RelayHead(NamedTuple):
    """What to write before the body, and how the body is framed (a tuple: built on
    every proxied request, where a frozen dataclass's ``__init__`` costs several times
    as much)."""

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
