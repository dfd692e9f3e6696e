"""Single statements on PostgreSQL through asyncpg: the route of every read on the request
hot path (and of the shared rate-limit bucket).

Why: the same indexed lookup costs ≈ 450 µs of the server's CPU through SQLAlchemy's
async layer (a pool checkout, the adapted cursor, result processing, a task for the
deadline) and ≈ 70 µs as an asyncpg prepared statement on a connection held here; with
asyncpg's own pool in between it is ≈ 180 µs (a task per release, a reset query per
release unless switched off). So this module keeps its own few connections.

What it does:

- Connections are opened on demand, at most ``size`` at once, and kept open; a call takes
  one, runs one statement in autocommit mode (no ``BEGIN``/``COMMIT``: one round trip) and
  gives it back. A caller finding every connection busy waits for one.
- Statements come compiled once (:class:`~.queries.PgStatement`, ``$n`` parameters); each
  is prepared once per connection and kept with it, and from then on runs with one
  ``Bind``/``Execute`` exchange (≈ 15 µs less per call than asyncpg's ``fetch`` with its
  statement cache and a timeout). A statement the server no longer knows or whose result
  type changed (a migration by a newer node) is prepared again, once. Rows are asyncpg
  records, which index and slice like the tuples the row decoders expect (same column
  order as the SQLAlchemy statement).
- Nothing is cached but the prepared statements: every call queries the database
  (docs/storage.md#backends).

Deadline (docs/security.md#slow-and-idle-clients): a call ends within its ``deadline``
whatever the database does. Waiting for a connection, connecting (at most
:data:`~.engine.PG_CONNECT_TIMEOUT_S`) and the statement itself share it. Calls with the
same limit (in practice ``--db-timeout``, and the ping's) are watched by one
:class:`~sshmint.server.deadline.DeadlineWatch` each, which cancels a call still running
at its deadline; the cancellation becomes ``StoreUnavailable``. That replaces asyncpg's
per-call ``timeout`` (a timer armed and cancelled on every statement, and the time left
computed before each step; docs/performance.md#postgresql-fast-path). A connection whose
statement timed out, or whose caller was cancelled, is terminated at once (its socket
closed, asyncpg's pending cancel request dropped): against a hung server nothing waits
for a rollback or a reset, and no connection in an unknown state goes back to the set.

Broken connections: a server restart kills every held connection. The statements run
here are idempotent reads and the bucket upsert, which either happened or did not (a
connection that breaks mid-statement fails before a result is read, and the retry then
finds the bucket as the server committed it), so a call whose connection turns out
closed is repeated once on a fresh connection, and the other held connections — dead
too, most likely — are dropped.

Failures of the database or the connection, and the deadline, become
:class:`~.errors.StoreUnavailable` (one warning line, no SQL, no parameters).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg
from sqlalchemy.dialects.postgresql.asyncpg import dialect as _asyncpg_dialect

from sshmint.server.deadline import Deadline, DeadlineWatch
from sshmint.server.store.engine import (
    PG_CONNECT_TIMEOUT_S,
    DatabaseURL,
    is_unavailable,
    unavailable,
)
from sshmint.server.store.errors import StoreUnavailable
from sshmint.server.store.queries import PgStatement

__all__ = ["PgFastPath"]

# Failures meaning "this connection is gone" (besides asyncpg reporting it closed): the
# socket failed, or the server is shutting down, crashed or restarting (57P01–57P03).
_CONNECTION_LOST = (
    OSError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.CannotConnectNowError,
)
# A prepared statement to prepare again.
_STALE_STATEMENT = (
    asyncpg.exceptions.InvalidCachedStatementError,
    asyncpg.exceptions.InvalidSQLStatementNameError,
)


class _Held:
    """A connection of the fast path and the statements prepared on it."""

    __slots__ = ("conn", "statements")

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.statements: dict[str, asyncpg.prepared_stmt.PreparedStatement] = {}


def connect_arguments(db: DatabaseURL) -> dict[str, Any]:
    """asyncpg's ``connect`` arguments for ``db``, translated as SQLAlchemy's own asyncpg
    dialect does (host, port, user, password, database, ``ssl``, a socket directory)."""
    dialect = _asyncpg_dialect()  # type: ignore[no-untyped-call]
    args, kwargs = dialect.create_connect_args(db.url)  # type: ignore[no-untyped-call]
    assert not args
    kwargs = dict(kwargs)
    kwargs.setdefault("server_settings", {"application_name": "sshmint"})
    return kwargs


class PgFastPath:
    """At most ``size`` asyncpg connections for single statements; one per process."""

    def __init__(self, connect_args: Mapping[str, Any], size: int, description: str) -> None:
        if size < 1:
            raise ValueError("the PostgreSQL fast path needs at least one connection")
        self._connect_args = dict(connect_args)
        self._size = size
        self._description = description
        self._idle: list[_Held] = []
        self._open = 0  # connections held or being opened
        # Callers waiting for a connection: each gets one, or None ("a place is free:
        # open one yourself").
        self._waiters: deque[asyncio.Future[_Held | None]] = deque()
        self._closed = False
        # One watch per limit in use (a store passes --db-timeout, or the ping's limit).
        self._watches: dict[float, DeadlineWatch] = {}

    @classmethod
    def for_database(cls, db: DatabaseURL, size: int) -> PgFastPath:
        return cls(connect_arguments(db), size, db.description)

    @property
    def size(self) -> int:
        return self._size

    @property
    def open_connections(self) -> int:
        return self._open

    async def fetch(
        self, statement: PgStatement, params: Mapping[str, Any], deadline: float
    ) -> Sequence[asyncpg.Record]:
        """Every row of ``statement`` run with ``params``, within ``deadline`` seconds."""
        watch = self._watches.get(deadline)
        if watch is None:
            watch = self._watches[deadline] = DeadlineWatch(deadline)
        limit = watch.start()
        try:
            rows = await self._run(statement.sql, statement.args(params), limit)
        except asyncio.CancelledError:
            if limit.close() and not limit.cancelled_by_others():
                raise self._timed_out(deadline) from None
            raise
        except TimeoutError:  # connecting took the time left
            limit.close()
            raise self._timed_out(deadline) from None
        except BaseException:
            limit.close()
            raise
        if limit.close():  # the deadline's cancellation was absorbed: fail closed anyway
            raise self._timed_out(deadline)
        return rows

    async def _run(self, sql: str, args: tuple[Any, ...], limit: Deadline) -> Sequence[Any]:
        for attempt in range(2):
            held = self._take_idle()
            if held is None:
                held = await self._acquire(limit)
            try:
                prepared = held.statements.get(sql)
                if prepared is None:
                    prepared = await held.conn.prepare(sql)
                    held.statements[sql] = prepared
                rows = await prepared.fetch(*args)
            except (TimeoutError, asyncio.CancelledError):
                self._discard(held)
                raise
            except Exception as exc:
                retry = attempt == 0 and not limit.expired
                if isinstance(exc, _STALE_STATEMENT) and not held.conn.is_closed():
                    held.statements.clear()
                    self._release(held)
                elif held.conn.is_closed() or isinstance(exc, _CONNECTION_LOST):
                    self._discard(held)
                    self._drop_idle()
                else:  # the statement failed; the connection is fine
                    self._release(held)
                    retry = False
                if retry:
                    continue
                if is_unavailable(exc):
                    raise unavailable(exc, self._description) from None
                raise
            self._release(held)
            return rows  # type: ignore[no-any-return]
        raise AssertionError("unreachable")  # pragma: no cover

    async def close(self) -> None:
        """Close the idle connections; busy ones are closed when their call ends."""
        self._closed = True
        # The watches stay: a call still running keeps its deadline.
        idle, self._idle = self._idle, []
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(StoreUnavailable("the store is closed"))
        self._waiters.clear()
        for held in idle:
            self._open -= 1
            try:
                await held.conn.close(timeout=PG_CONNECT_TIMEOUT_S)
            except Exception:  # a connection that cannot close cleanly is just dropped
                held.conn.terminate()

    # -- connections ---------------------------------------------------------------------

    def _take_idle(self) -> _Held | None:
        """An idle connection, without awaiting anything (the usual case), or None."""
        if self._closed:
            raise StoreUnavailable("the store is closed")
        while self._idle:
            held = self._idle.pop()  # the most recently used: few connections stay warm
            if not held.conn.is_closed():
                return held
            self._open -= 1
        return None

    async def _acquire(self, limit: Deadline) -> _Held:
        """A new connection if there is room, else the next one given back; the caller's
        deadline (its watch cancels the wait) bounds both."""
        if self._open < self._size:
            return await self._connect(limit)
        waiter: asyncio.Future[_Held | None]
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            given = await waiter
        except BaseException:
            # Given a connection (or a free place) just as the wait ended: pass it on.
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                passed = waiter.result()
                if passed is None:
                    self._wake_for_place()
                else:
                    self._release(passed)
            raise
        if given is None:
            return await self._connect(limit)
        return given

    async def _connect(self, limit: Deadline) -> _Held:
        self._open += 1
        try:
            left = limit.at - asyncio.get_running_loop().time()
            if left <= 0:
                raise TimeoutError
            conn: asyncpg.Connection = await asyncpg.connect(
                **self._connect_args, timeout=min(PG_CONNECT_TIMEOUT_S, left)
            )
        except BaseException as exc:
            self._open -= 1
            self._wake_for_place()
            if isinstance(exc, Exception) and not isinstance(exc, TimeoutError):
                raise unavailable(exc, self._description) from None
            raise
        return _Held(conn)

    def _release(self, held: _Held) -> None:
        if self._closed or held.conn.is_closed():
            self._discard(held)
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(held)
                return
        self._idle.append(held)

    def _discard(self, held: _Held) -> None:
        """Close the connection at once (no round trip) and free its place."""
        held.conn.terminate()
        self._open -= 1
        self._wake_for_place()

    def _wake_for_place(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _drop_idle(self) -> None:
        """After a lost connection: the idle ones are most likely dead too (a restart)."""
        idle, self._idle = self._idle, []
        for held in idle:
            self._discard(held)

    def _timed_out(self, deadline: float) -> StoreUnavailable:
        return unavailable(TimeoutError(f"no answer within {deadline:g} s"), self._description)
