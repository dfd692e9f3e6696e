"""Database URLs, engine creation, per-connection SQLite settings and schema migration.

docs/storage.md#backends: SQLite (default) and PostgreSQL behave identically; the schema is migrated
automatically at open; SQLite uses WAL (a property of the file, set at open), and every
connection gets foreign keys on and a busy timeout of at least 5 s.

Transactions on SQLite: the driver's own transaction handling is switched off
(``isolation_level = None``) and the ``begin`` event emits ``BEGIN IMMEDIATE`` for
connections marked with :data:`WRITE_OPTION`, plain ``BEGIN`` otherwise (the pattern of
SQLAlchemy's "Enabling Non-Legacy SQLite Transactional Modes" documentation). A write
transaction therefore takes the write lock before its first read, so read-then-write
sequences (the key counter of docs/storage.md#schema) are serialized across connections and
processes, and waiting writers queue on the busy timeout instead of failing with
"database is locked" when a deferred transaction tries to upgrade its lock.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import aiosqlite
import sqlalchemy as sa
import sqlalchemy.exc as sa_exc
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from sshmint.server.store.errors import InvalidDatabaseURL, StoreUnavailable

__all__ = [
    "DEFAULT_DB_POOL_SIZE",
    "DEFAULT_DB_TIMEOUT_S",
    "HEAD_REVISION",
    "MIGRATIONS_DIR",
    "PG_CONNECT_TIMEOUT_S",
    "SQLITE_BUSY_TIMEOUT_MS",
    "WRITE_OPTION",
    "Backend",
    "DatabaseURL",
    "create_engine",
    "is_unavailable",
    "parse_database_url",
    "split_pool",
    "unavailable",
    "upgrade_to_head",
]

log = logging.getLogger("sshmint.store")

Backend = Literal["sqlite", "postgresql"]

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# The newest migration's revision (a test checks it against the migrations directory). A
# database already there is opened without loading Alembic at all, which costs a few
# hundred milliseconds of every `sshmint admin` call and server start.
HEAD_REVISION = "0002"
# How long opening a database waits for another process switching it to WAL mode.
SQLITE_BUSY_TIMEOUT_MS = 10_000
PG_CONNECT_TIMEOUT_S = 3  # A stopped server must fail fast, not hang the caller.
# The deadline of every database call (``--db-timeout``, docs/security.md#slow-and-idle-clients). It is also each
# driver's own limit (SQLite's busy timeout, asyncpg's command timeout, the pool's wait),
# so that a call normally fails inside the driver, cleanly, before the store's own
# deadline (see Store) has to cancel it. docs/storage.md#backends's "busy timeout of at least 5 s" holds at
# the default.
DEFAULT_DB_TIMEOUT_S = 5.0
# The most PostgreSQL connections one process opens (``--db-pool-size``,
# docs/storage.md#connections): nodes × this must stay below the server's max_connections.
DEFAULT_DB_POOL_SIZE = 10
# Execution option marking a connection whose next transaction writes (SQLite only).
WRITE_OPTION = "sshmint_write"
# pg_advisory_xact_lock key serializing concurrent migrations ("sshmint" in ASCII).
_MIGRATION_LOCK_KEY = 0x7373686D696E74

_SQLITE_DRIVERS = {"sqlite", "sqlite+aiosqlite", "sqlite+pysqlite"}
_PG_DRIVERS = {
    "postgres",
    "postgresql",
    "postgresql+asyncpg",
    "postgresql+psycopg",
    "postgresql+psycopg2",
}


@dataclass(frozen=True, slots=True)
class DatabaseURL:
    """A database URL translated for the async drivers.

    ``description`` names the database for messages (a path, or host:port/name) and
    never contains a password.
    """

    url: sa.URL
    backend: Backend
    description: str


def parse_database_url(raw: str) -> DatabaseURL:
    """Accept ``sqlite:///PATH`` and ``postgresql://...`` (or ``postgres://``) URLs."""
    try:
        url = sa.make_url(raw.strip())
    except sa_exc.ArgumentError:
        raise InvalidDatabaseURL(
            "invalid database URL: use sqlite:///PATH or postgresql://USER@HOST/DB"
        ) from None
    driver = url.drivername.lower()
    if driver in _SQLITE_DRIVERS:
        if not url.database or url.database == ":memory:" or url.database.startswith("file:"):
            raise InvalidDatabaseURL("the SQLite database must be a file path: sqlite:///PATH")
        return DatabaseURL(url.set(drivername="sqlite+aiosqlite"), "sqlite", url.database)
    if driver in _PG_DRIVERS:
        url = url.set(drivername="postgresql+asyncpg")
        # libpq's sslmode has the same values as asyncpg's ssl argument.
        sslmode = url.query.get("sslmode")
        if isinstance(sslmode, str):
            url = url.difference_update_query(["sslmode"]).update_query_dict({"ssl": sslmode})
        where = f"{url.host or 'localhost'}:{url.port or 5432}/{url.database or ''}"
        return DatabaseURL(url, "postgresql", f"PostgreSQL {where}")
    raise InvalidDatabaseURL(
        f"unsupported database URL scheme {url.drivername!r}: "
        "use sqlite:///PATH or postgresql://USER@HOST/DB"
    )


def split_pool(size: int) -> tuple[int, int]:
    """A PostgreSQL connection budget (``--db-pool-size``, at least 2) shared out:
    ``(fast path, engine)``. The fast path (pgfast.py) carries every request's reads and
    the rate-limit bucket; the engine the writes and the rare multi-statement reads, each
    a short transaction, so a fifth of the budget (at least one connection) serves it."""
    if size < 2:
        raise ValueError("a PostgreSQL pool needs at least 2 connections")
    engine = max(1, size // 5)
    return size - engine, engine


def create_engine(
    db: DatabaseURL, timeout: float = DEFAULT_DB_TIMEOUT_S, pool_size: int = DEFAULT_DB_POOL_SIZE
) -> AsyncEngine:
    """The engine for writes and multi-statement reads; ``timeout`` is ``--db-timeout``;
    on PostgreSQL it holds the engine's share of ``pool_size`` connections at most."""
    if db.backend == "sqlite":
        engine = create_async_engine(
            db.url,
            connect_args={"timeout": timeout},
            pool_size=5,
            max_overflow=5,
        )
        busy_ms = max(1, int(timeout * 1000))

        def on_connect(dbapi_connection: Any, _record: object) -> None:
            _sqlite_on_connect(dbapi_connection, busy_ms)

        sa.event.listen(engine.sync_engine, "connect", on_connect)
        sa.event.listen(engine.sync_engine, "begin", _sqlite_on_begin)
        return engine
    _, engine_share = split_pool(pool_size)
    return create_async_engine(
        db.url,
        pool_size=engine_share,
        max_overflow=0,
        pool_timeout=timeout,
        pool_recycle=1800,
        # Connections broken by a server restart are replaced on checkout.
        pool_pre_ping=True,
        connect_args={
            "timeout": min(PG_CONNECT_TIMEOUT_S, timeout),
            "command_timeout": timeout,
            "server_settings": {"application_name": "sshmint"},
        },
    )


def _sqlite_on_connect(dbapi_connection: Any, busy_ms: int) -> None:
    # Hand transaction control to the "begin" listener (see module docstring).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {busy_ms}")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _sqlite_on_begin(conn: Connection) -> None:
    if conn.get_execution_options().get(WRITE_OPTION):
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        conn.exec_driver_sql("BEGIN")


async def upgrade_to_head(engine: AsyncEngine, backend: Backend) -> None:
    """Apply the Alembic migrations in one locking transaction.

    SQLite: ``BEGIN IMMEDIATE`` holds the write lock; PostgreSQL: a transaction-scoped
    advisory lock. A concurrent opener waits, then finds the schema at head.
    """
    if backend == "sqlite":
        await _enable_wal(engine)
    if await _at_head(engine):
        return
    async with engine.connect() as conn:
        if backend == "sqlite":
            await conn.execution_options(**{WRITE_OPTION: True})
        async with conn.begin():
            if backend == "postgresql":
                await conn.execute(
                    sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY}
                )
            await conn.run_sync(_run_alembic_upgrade)


async def _enable_wal(engine: AsyncEngine) -> None:
    """Put the database file in WAL mode (a persistent property of the file).

    Switching needs exclusive access, and SQLite reports a conflict with a concurrent
    opener as "database is locked" at once instead of waiting on the busy timeout: retry
    for up to the busy timeout. Runs outside any transaction, on the driver connection.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SQLITE_BUSY_TIMEOUT_MS / 1000
    delay = 0.01
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        driver = raw.driver_connection
        assert isinstance(driver, aiosqlite.Connection)
        while True:
            try:
                async with driver.execute("PRAGMA journal_mode = WAL") as cursor:
                    row = await cursor.fetchone()
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or loop.time() + delay > deadline:
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.2)
    if row is None or str(row[0]).lower() != "wal":
        log.warning("SQLite database stays in %s journal mode, not WAL", row and row[0])


async def _at_head(engine: AsyncEngine) -> bool:
    """True if the database records ``HEAD_REVISION`` as its only schema version."""
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(sa.text("SELECT version_num FROM alembic_version"))).all()
    except sa_exc.DBAPIError:  # no version table yet (a new database), or unreadable
        return False
    return [tuple(row) for row in rows] == [(HEAD_REVISION,)]


def _run_alembic_upgrade(connection: Connection) -> None:
    from alembic import command  # loaded only when a migration may be needed
    from alembic.config import Config
    from alembic.util import CommandError

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    try:
        command.upgrade(config, "head")
    except CommandError as exc:
        # E.g. the database was migrated by a newer sshmint.
        raise StoreUnavailable(f"cannot migrate the database schema: {_first_line(exc)}") from None


def is_unavailable(exc: BaseException) -> bool:
    """True for failures meaning "the database is unreachable or failing".

    Integrity errors are not among them: they are rule violations the store classifies.
    """
    if isinstance(exc, sa_exc.IntegrityError):
        return False
    if isinstance(
        exc,
        OSError  # includes ConnectionError and TimeoutError
        | sa_exc.DBAPIError  # OperationalError, InterfaceError, invalidated connections...
        | sa_exc.TimeoutError  # connection pool exhausted
        | sa_exc.DisconnectionError
        | sa_exc.ResourceClosedError,
    ):
        return True
    # asyncpg errors raised outside SQLAlchemy's wrapping, e.g. while connecting
    # ("the database system is starting up").
    return type(exc).__module__.split(".")[0] == "asyncpg"


def unavailable(exc: BaseException, description: str) -> StoreUnavailable:
    """One line naming the database and the driver's reason; no SQL, parameters or password."""
    cause: BaseException = exc
    if isinstance(exc, sa_exc.DBAPIError) and isinstance(exc.orig, BaseException):
        cause = exc.orig
    reason = _first_line(cause) or type(cause).__name__
    log.warning("database %s unavailable: %s: %s", description, type(cause).__name__, reason)
    return StoreUnavailable(f"database unavailable ({description}): {reason}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    # SQLAlchemy's adapted asyncpg errors read "<class 'asyncpg...Error'>: message".
    if text.startswith("<class "):
        text = text.partition(">: ")[2] or text
    line = text.splitlines()[0] if text else ""
    return line[:200]
