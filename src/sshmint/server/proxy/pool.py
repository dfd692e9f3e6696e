"""Keep-alive connections to VM upstreams, per ``(host, port)``, and the one timer that
keeps the response-head deadlines of all of them (docs/security.md#slow-and-idle-clients).

A pool takes a connection back only when its last exchange ended cleanly (whole response
read, whole request body sent, the upstream willing to keep the connection).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Final

from sshmint.server.proxy.connection import LARGE_READ, UpstreamConnection

__all__ = ["IDLE_SECONDS", "MAX_IDLE_PER_UPSTREAM", "HeadDeadlines", "UpstreamPool"]

# An idle pooled connection is closed after this long (upstreams usually allow more).
IDLE_SECONDS: Final = 30.0
# Idle connections kept per upstream address; more are closed when released.
MAX_IDLE_PER_UPSTREAM: Final = 64
# Entries a pool's head-deadline queue holds before stale ones are weeded out (see
# HeadDeadlines).
_DEADLINE_QUEUE_COMPACT_AT: Final = 4096


class HeadDeadlines:
    """One timer for the response-head deadlines of every connection of a pool.

    A timer handle per exchange, cancelled when the head arrives, measured about 3 times
    this one's instructions per exchange (``loop.call_at``) or 6 times
    (``asyncio.timeout``). Every deadline here is ``seconds`` after the moment it was
    set, so deadlines set later expire later: a queue in the order they were set and one
    timer aimed at its oldest live entry serve them all. Setting a deadline is an append; an answered exchange costs
    nothing more (its entry is dropped when it reaches the front). A restarted deadline
    gets a new entry; the old one no longer matches the connection's ``head_deadline``
    and is dropped in turn. The timer fires about once per ``seconds`` under steady load.
    A slow exchange at the front keeps later, answered ones queued behind it: past a
    threshold that doubles with the live count, the queue is rebuilt from its live
    entries, so its size stays proportional to the exchanges waiting for a head.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._queue: deque[tuple[float, UpstreamConnection]] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._compact_at = _DEADLINE_QUEUE_COMPACT_AT

    def __len__(self) -> int:
        return len(self._queue)

    def start(self, conn: UpstreamConnection) -> None:
        """``conn`` must have its head within ``seconds`` from now."""
        loop = asyncio.get_running_loop()
        at = conn.head_deadline = loop.time() + self.seconds
        queue = self._queue
        while queue and queue[0][1].head_deadline != queue[0][0]:
            queue.popleft()  # answered, failed, held or restarted since
        queue.append((at, conn))
        if len(queue) > self._compact_at:
            queue = self._queue = deque(e for e in queue if e[1].head_deadline == e[0])
            self._compact_at = max(_DEADLINE_QUEUE_COMPACT_AT, 2 * len(queue))
        if self._timer is None:
            self._timer = loop.call_at(queue[0][0], self._expire, loop)

    def _expire(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        queue = self._queue
        now = loop.time()
        while queue:
            at, conn = queue[0]
            if conn.head_deadline == at:
                if at > now:
                    break
                conn.head_timed_out(self.seconds)
            queue.popleft()
        if queue:
            self._timer = loop.call_at(queue[0][0], self._expire, loop)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._queue.clear()


class UpstreamPool:
    """Keep-alive connections to upstreams, per ``(host, port)``.

    The most recently pooled connection is reused first (it is the least likely to have
    been closed by the upstream); a sweep every ``IDLE_SECONDS`` closes those idle longer.
    ``head_timeout`` (seconds; None for none) is every exchange's deadline for its
    response head (docs/security.md#slow-and-idle-clients).
    """

    def __init__(self, connect_timeout: float, head_timeout: float | None = None) -> None:
        self._connect_timeout = connect_timeout
        self._deadlines = None if head_timeout is None else HeadDeadlines(head_timeout)
        self._idle: dict[tuple[str, int], deque[UpstreamConnection]] = {}
        self._read_buffer = bytearray(LARGE_READ)  # shared: see UpstreamConnection
        self._sweeper: asyncio.TimerHandle | None = None
        self._closed = False

    async def acquire(self, host: str, port: int) -> UpstreamConnection:
        """An idle connection to ``host:port``, or a new one (``OSError`` or
        ``TimeoutError`` when it cannot be made)."""
        idle = self._idle.get((host, port))
        while idle:
            conn = idle.pop()
            if not conn.closed and conn.error is None:
                return conn
        return await self.connect(host, port)

    async def connect(self, host: str, port: int) -> UpstreamConnection:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(self._connect_timeout):
            _transport, conn = await loop.create_connection(
                lambda: UpstreamConnection(self._read_buffer, self._deadlines), host, port
            )
        return conn

    def release(self, conn: UpstreamConnection, host: str, port: int) -> None:
        """Pool ``conn`` if its exchange ended cleanly, else close it."""
        if self._closed or not conn.reusable:
            conn.close()
            return
        idle = self._idle.setdefault((host, port), deque())
        if len(idle) >= MAX_IDLE_PER_UPSTREAM:
            conn.close()
            return
        conn.reset()
        loop = asyncio.get_running_loop()
        conn.idle_since = loop.time()
        idle.append(conn)
        if self._sweeper is None:
            self._sweeper = loop.call_later(IDLE_SECONDS, self._sweep)

    def _sweep(self) -> None:
        """Close connections idle for ``IDLE_SECONDS`` or more (oldest are leftmost)."""
        self._sweeper = None
        loop = asyncio.get_running_loop()
        cutoff = loop.time() - IDLE_SECONDS
        for address, idle in list(self._idle.items()):
            while idle and (idle[0].closed or idle[0].idle_since <= cutoff):
                idle.popleft().close()
            if not idle:
                del self._idle[address]
        if self._idle:
            self._sweeper = loop.call_later(IDLE_SECONDS, self._sweep)

    def close(self) -> None:
        self._closed = True
        if self._deadlines is not None:
            self._deadlines.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for idle in self._idle.values():
            for conn in idle:
                with contextlib.suppress(Exception):
                    conn.close()
        self._idle.clear()
