"""Raw-socket HTTP for the hardening tests: bytes no well-behaved client would send, and
slow clients.

- :func:`exchange` sends bytes and reads one response (``Content-Length`` framed, or up to
  the close); :func:`read_response` reads one from an open socket.
- :func:`closed_within` waits for the server to close a connection.
"""

from __future__ import annotations

import resource
import socket
import time
from dataclasses import dataclass

__all__ = [
    "RawResponse",
    "closed_within",
    "exchange",
    "open_files_at_least",
    "read_all_responses",
    "read_response",
]


@dataclass(frozen=True)
class RawResponse:
    status: int
    head: bytes
    body: bytes

    def header(self, name: str) -> str | None:
        for line in self.head.split(b"\r\n")[1:]:
            key, _, value = line.partition(b":")
            if key.strip().lower() == name.lower().encode():
                return value.strip().decode("latin-1")
        return None


def read_response(sock: socket.socket, timeout: float = 10.0) -> RawResponse:
    """One response from ``sock`` (``Content-Length`` framed, else until the close)."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a response head: {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    response = RawResponse(status, head, b"")
    length = response.header("Content-Length")
    if length is None:
        while chunk := sock.recv(65536):
            body += chunk
    else:
        while len(body) < int(length):
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
    return RawResponse(status, head, body)


def read_all_responses(sock: socket.socket, timeout: float = 10.0) -> list[RawResponse]:
    """Every ``Content-Length`` framed response ``sock`` receives until the server closes."""
    sock.settimeout(timeout)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    responses = []
    while data:
        head, _, rest = data.partition(b"\r\n\r\n")
        response = RawResponse(int(head.split(b" ", 2)[1]), head, b"")
        length = int(response.header("Content-Length") or 0)
        responses.append(RawResponse(response.status, head, rest[:length]))
        data = rest[length:]
    return responses


def exchange(port: int, data: bytes, timeout: float = 10.0) -> RawResponse:
    """Connect to 127.0.0.1:``port``, send ``data``, read one response."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        return read_response(sock, timeout)


def closed_within(sock: socket.socket, timeout: float) -> float | None:
    """Seconds until the server closes ``sock`` (EOF or reset), or None if it stays open
    for ``timeout`` seconds; anything the server sends meanwhile is discarded."""
    started = time.monotonic()
    while True:
        remaining = timeout - (time.monotonic() - started)
        if remaining <= 0:
            return None
        sock.settimeout(remaining)
        try:
            if not sock.recv(65536):
                return time.monotonic() - started
        except TimeoutError:
            return None
        except OSError:  # reset, or a TLS connection cut without close_notify
            return time.monotonic() - started


def open_files_at_least(count: int) -> None:
    """Raise this process's soft limit on open files to ``count`` if it is lower, for
    tests that hold thousands of sockets; fails clearly when the hard limit forbids it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= count:
        return
    assert hard == resource.RLIM_INFINITY or hard >= count, (
        f"this test holds {count} sockets; the hard open-file limit is {hard} (ulimit -Hn)"
    )
    resource.setrlimit(resource.RLIMIT_NOFILE, (count, hard))
