"""The store's core: opening, the deadline of every database call, and the two routes
that reads and writes take (docs/storage.md#backends, docs/security.md#slow-and-idle-clients).

Nothing is cached except the immutable exe1 derivation secret, so a change made by another
process (``sshmint admin``, another server node) is visible to the next call (docs/storage.md#backends).
(SQLite's fast reader may give a read's answer again, but only after asking the database
whether anything at all was committed since; see :mod:`.fastread`.)

Reads and writes take different routes:

- writes run in one transaction on the async engine (``BEGIN IMMEDIATE`` on SQLite);
- single-statement reads (:mod:`.queries`) run without an explicit transaction: on SQLite
  in WAL mode synchronously on a read-only connection (:mod:`.fastread`; a busy or failing
  read falls back to the engine), on PostgreSQL as asyncpg prepared statements on
  connections of the store's own (:mod:`.pgfast`: one round trip, no ``BEGIN``/``COMMIT``,
  no SQLAlchemy layer). Each read still queries the database.

On PostgreSQL the process opens at most ``pool_size`` connections (``--db-pool-size``):
:func:`~.engine.split_pool` shares them between the fast path and the engine.

Uniqueness violations are detected by the database (unique constraints) and classified
afterwards by looking at what is there, which is the same on both backends; driver and
connection failures become :class:`StoreUnavailable`.

The aggregates (``users.py``, ``ssh_keys.py``, ``vms.py``, ``exe1_handles.py``) build on
:class:`StoreCore`; ``store.py`` composes them into the one ``Store``.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from pathlib import Path
from typing import Any, Concatenate, Generic, ParamSpec, Self, TypeVar

import sqlalchemy.exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from sshmint.server.infra.files import create_private_file
from sshmint.server.store import queries as q
from sshmint.server.store.engine import (
    DEFAULT_DB_POOL_SIZE,
    DEFAULT_DB_TIMEOUT_S,
    WRITE_OPTION,
    Backend,
    DatabaseURL,
    create_engine,
    is_unavailable,
    parse_database_url,
    split_pool,
    unavailable,
    upgrade_to_head,
)
from sshmint.server.store.errors import StoreError, StoreUnavailable
from sshmint.server.store.fastread import SQLiteFastReader
from sshmint.server.store.pgfast import PgFastPath
from sshmint.server.store.records import Row

__all__ = ["PING_TIMEOUT_S", "RowMemo", "StoreCore", "bounded", "unclassified_conflict"]

# /healthz answers within 2 seconds whatever --db-timeout is (docs/security.md#slow-and-idle-clients): its database
# check gets at most this long.
PING_TIMEOUT_S = 1.5

_P = ParamSpec("_P")
_R = TypeVar("_R")
_S = TypeVar("_S", bound="StoreCore")
_T = TypeVar("_T")


def bounded(
    method: Callable[Concatenate[_S, _P], Awaitable[_R]],
) -> Callable[Concatenate[_S, _P], Coroutine[Any, Any, _R]]:
    """Run a store method that goes through an engine within the store's deadline (see
    :meth:`StoreCore._within_deadline`)."""

    @functools.wraps(method)
    async def run(self: _S, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        return await self._within_deadline(method(self, *args, **kwargs))

    return run


def _retrieve(task: asyncio.Future[Any]) -> None:
    """Collect the outcome of an abandoned call, so asyncio does not report it."""
    if not task.cancelled():
        task.exception()


class RowMemo(Generic[_T]):
    """Records built from rows *as just read*, remembered by the row's exact values.

    Turning a row into records is a pure function of its values, so this hides no change
    (docs/storage.md#backends): a changed row is a different key. It only saves rebuilding the same
    records (and re-parsing a VM's tags) on every proxied request.
    """

    def __init__(self, build: Callable[[tuple[Any, ...]], _T], size: int = 4096) -> None:
        self._build = build
        self._size = size
        self._memo: dict[tuple[Any, ...], _T] = {}

    def __call__(self, row: Row) -> _T:
        key = tuple(row)
        found = self._memo.get(key)
        if found is None:
            found = self._build(key)
            if len(self._memo) >= self._size:
                self._memo.clear()
            self._memo[key] = found
        return found


def _open_sqlite_file(db: DatabaseURL) -> None:
    """Open (creating it if need be) the SQLite file once, here, so that a path that cannot
    be opened fails before aiosqlite starts a worker thread for it: after a failed connect
    that thread still answers a future on the event loop, and raises "Event loop is
    closed" when the loop (a short ``sshmint admin`` run, say) has ended first.

    A new file is created with mode 0600 whatever the umask, and SQLite gives its
    ``-wal`` and ``-shm`` files the same mode (docs/security.md#files-and-modes, see files.py)."""
    path = db.url.database or ""
    try:
        create_private_file(Path(path))
        sqlite3.connect(path).close()
    except (OSError, sqlite3.Error) as exc:
        raise unavailable(exc, db.description) from None


def unclassified_conflict() -> StoreError:
    # A constraint fired but the conflicting row is gone again (a concurrent delete).
    return StoreError("the change conflicted with a concurrent change; please retry")


class StoreCore:
    """Async access to the database: what every aggregate's methods stand on.

    ``on_unavailable`` is called once for every call that fails as ``StoreUnavailable``
    (every call through an engine passes :meth:`_within_deadline`); the server counts them.
    """

    on_unavailable: Callable[[], object] | None = None

    def __init__(
        self,
        engine: AsyncEngine,
        db: DatabaseURL,
        *,
        pg_fast: PgFastPath | None = None,
        fast_reader: SQLiteFastReader | None = None,
        timeout: float = DEFAULT_DB_TIMEOUT_S,
    ) -> None:
        self._engine = engine
        self._db = db
        # Every call through an engine ends within this (docs/security.md#slow-and-idle-clients, --db-timeout).
        self._timeout = timeout
        # Calls given up at their deadline whose clean-up has not finished yet.
        self._abandoned: set[asyncio.Future[Any]] = set()
        # PostgreSQL: asyncpg connections for single statements (reads, the rate limit).
        self._pg_fast = pg_fast
        # SQLite in WAL mode: reads on the calling thread (see fastread.py).
        self._fast_reader = fast_reader
        self._secret: bytes | None = None
        # SQLite admits one writer at a time anyway: queueing this process's writers here
        # keeps them off the busy-timeout polling, which then only arbitrates between
        # processes.
        self._sqlite_write_lock = asyncio.Lock() if db.backend == "sqlite" else None

    # -- lifecycle -------------------------------------------------------------------

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        timeout: float = DEFAULT_DB_TIMEOUT_S,
        pool_size: int = DEFAULT_DB_POOL_SIZE,
    ) -> Self:
        """Connect and migrate the schema to head (docs/storage.md#backends). ``timeout`` is the deadline
        of every later database call (``--db-timeout``); ``pool_size`` the most PostgreSQL
        connections this store opens (``--db-pool-size``; SQLite ignores it).

        Raises ``InvalidDatabaseURL`` for an unsupported URL and ``StoreUnavailable`` when
        the database cannot be opened, reached or migrated.
        """
        db = parse_database_url(url)
        if db.backend == "sqlite":
            _open_sqlite_file(db)
        engine = create_engine(db, timeout, pool_size)
        try:
            await upgrade_to_head(engine, db.backend)
        except BaseException as exc:
            await engine.dispose()
            if isinstance(exc, StoreError):
                raise
            if is_unavailable(exc):
                raise unavailable(exc, db.description) from None
            raise
        if db.backend == "sqlite":
            assert db.url.database is not None
            reader = SQLiteFastReader.open(db.url.database)
            return cls(engine, db, fast_reader=reader, timeout=timeout)
        fast_share, _ = split_pool(pool_size)
        pg_fast = PgFastPath.for_database(db, fast_share)
        return cls(engine, db, pg_fast=pg_fast, timeout=timeout)

    @property
    def backend(self) -> Backend:
        return self._db.backend

    @property
    def description(self) -> str:
        """The database's path or ``PostgreSQL host:port/name`` (no password)."""
        return self._db.description

    async def close(self) -> None:
        if self._abandoned:  # calls past their deadline still cleaning up
            await asyncio.wait(tuple(self._abandoned), timeout=self._timeout)
        if self._fast_reader is not None:
            self._fast_reader.close()
        if self._pg_fast is not None:
            await self._pg_fast.close()
        await self._engine.dispose()

    async def ping(self) -> None:
        """Raise ``StoreUnavailable`` unless the database answers a query on a table
        within ``PING_TIMEOUT_S`` (or the store's deadline, if shorter)."""
        await self._read(q.PING, {}, deadline=min(self._timeout, PING_TIMEOUT_S))

    async def _read(
        self, query: q.ReadQuery, params: dict[str, Any], *, deadline: float | None = None
    ) -> Sequence[Row]:
        """Every row of one read statement, as the database has it now, within
        ``deadline`` seconds (default: the store's).

        SQLite: answered synchronously when the fast reader can (WAL readers never wait;
        an answer may be reused while nothing at all has been committed, see fastread.py),
        else through the engine. PostgreSQL: one prepared statement on the fast path.
        """
        reader = self._fast_reader
        if reader is not None:
            fast_rows = reader.fetch(
                query.sqlite_sql, query.sqlite_params(params), reuse=query.reusable
            )
            if fast_rows is not None:
                return fast_rows
        pg_fast = self._pg_fast
        if pg_fast is not None:
            limit = self._timeout if deadline is None else deadline
            return await pg_fast.fetch(query.postgres, params, limit)
        return await self._within_deadline(self._engine_read(query, params), deadline)

    async def _engine_read(self, query: q.ReadQuery, params: dict[str, Any]) -> Sequence[Row]:
        async with self._transaction() as conn:
            result = await conn.execute(query.statement, params)
            rows: Sequence[Row] = result.all()
        return rows

    async def _within_deadline(self, call: Awaitable[_R], deadline: float | None = None) -> _R:
        """The result of ``call``, or ``StoreUnavailable`` once ``deadline`` seconds (the
        store's by default) have passed (docs/security.md#slow-and-idle-clients).

        The call runs as a task of its own and is abandoned at the deadline: cancelled,
        its clean-up (a rollback, closing the connection) left to finish in the
        background. Cancelling it in the caller's task would make the caller wait for
        that clean-up, which against a hung database host lasts as long again. When the
        caller itself is cancelled (a shutdown), the call is cancelled and its clean-up
        awaited, within the deadline; :meth:`close` waits for abandoned calls likewise.
        """
        limit = self._timeout if deadline is None else deadline
        task = asyncio.ensure_future(call)
        try:
            done, _ = await asyncio.wait((task,), timeout=limit)
        except asyncio.CancelledError:
            task.cancel()
            await asyncio.wait((task,), timeout=limit)
            if not task.done():
                self._abandon(task)
            raise
        try:
            if not done:
                task.cancel()
                self._abandon(task)
                raise self._timed_out()
            return task.result()
        except StoreUnavailable:
            if self.on_unavailable is not None:  # docs/operations.md#metrics
                self.on_unavailable()
            raise

    def _abandon(self, task: asyncio.Future[Any]) -> None:
        self._abandoned.add(task)
        task.add_done_callback(self._abandoned.discard)
        task.add_done_callback(_retrieve)

    def _timed_out(self) -> StoreUnavailable:
        """A call that did not end within the deadline: one warning, no driver detail."""
        return unavailable(TimeoutError(f"no answer within {self._timeout:g} s"), self.description)

    @asynccontextmanager
    async def _transaction(self, *, write: bool = False) -> AsyncIterator[AsyncConnection]:
        """One transaction; committed when the block ends normally, else rolled back.

        Callers are methods marked ``@bounded`` (or ``_engine_read``), which keep the
        deadline. ``IntegrityError`` and ``StoreError`` pass through; failures of the
        database or the connection, and a driver's timeout, become ``StoreUnavailable``.
        """
        lock: AbstractAsyncContextManager[Any] = nullcontext()
        if write and self._sqlite_write_lock is not None:
            lock = self._sqlite_write_lock
        try:
            async with lock, self._engine.connect() as conn:
                if write and self._db.backend == "sqlite":
                    await conn.execution_options(**{WRITE_OPTION: True})
                async with conn.begin():
                    yield conn
        except (StoreError, sa_exc.IntegrityError):
            raise
        except TimeoutError:
            raise self._timed_out() from None
        except Exception as exc:
            if is_unavailable(exc):
                raise unavailable(exc, self._db.description) from None
            raise
