"""The ``Store``: every read and write of sshmint's state (docs/accounts.md#accounts-keys-and-vms, docs/storage.md#storage).

Nothing is cached except the immutable exe1 derivation secret, so a change made by another
process (``sshmint admin``, another server node) is visible to the next call (docs/storage.md#backends).
(SQLite's fast reader may give a read's answer again, but only after asking the database
whether anything at all was committed since; see :mod:`.fastread`.)

Reads and writes take different routes:

- writes run in one transaction on the async engine (``BEGIN IMMEDIATE`` on SQLite);
- single-statement reads (:mod:`.queries`) run without an explicit transaction: on SQLite
  in WAL mode synchronously on a read-only connection (:mod:`.fastread`; a busy or failing
  read falls back to the engine), on PostgreSQL on an autocommit connection (one round
  trip: no ``BEGIN``/``COMMIT``, no pre-ping). Each read still queries the database.

Uniqueness violations are detected by the database (unique constraints) and classified
afterwards by looking at what is there, which is the same on both backends; driver and
connection failures become :class:`StoreUnavailable`.
"""

from __future__ import annotations

import asyncio
import functools
import json
import secrets
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from pathlib import Path
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar

import sqlalchemy as sa
import sqlalchemy.exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from sshmint.server.infra.files import create_private_file
from sshmint.server.store import queries as q
from sshmint.server.store.engine import (
    DEFAULT_DB_TIMEOUT_S,
    WRITE_OPTION,
    Backend,
    DatabaseURL,
    create_engine,
    create_read_engine,
    is_unavailable,
    parse_database_url,
    unavailable,
    upgrade_to_head,
)
from sshmint.server.store.errors import (
    AlreadyShared,
    EmailTaken,
    KeyTaken,
    NameTaken,
    StoreError,
    StoreUnavailable,
    UserNotFound,
    VMNotFound,
)
from sshmint.server.store.fastread import SQLiteFastReader
from sshmint.server.store.records import VM, KeyIdentity, Share, SSHKeyRow, User
from sshmint.server.store.schema import (
    EXE1_SECRET_NAME,
    exe1_tokens,
    ssh_keys,
    users,
    vm_shares,
    vms,
)

__all__ = ["VM_SHARE_MODES", "Store", "new_user_id"]

VM_SHARE_MODES = frozenset({"private", "public"})
# /healthz answers within 2 seconds whatever --db-timeout is (docs/security.md#slow-and-idle-clients): its database
# check gets at most this long.
PING_TIMEOUT_S = 1.5

_P = ParamSpec("_P")
_R = TypeVar("_R")


def _bounded(
    method: Callable[Concatenate[Store, _P], Awaitable[_R]],
) -> Callable[Concatenate[Store, _P], Coroutine[Any, Any, _R]]:
    """Run a store method that goes through an engine within the store's deadline (see
    :meth:`Store._within_deadline`)."""

    @functools.wraps(method)
    async def run(self: Store, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        return await self._within_deadline(method(self, *args, **kwargs))

    return run


def _retrieve(task: asyncio.Future[Any]) -> None:
    """Collect the outcome of an abandoned call, so asyncio does not report it."""
    if not task.cancelled():
        task.exception()


def new_user_id() -> str:
    """docs/accounts.md#users: ``usr`` followed by 16 lowercase hexadecimal characters."""
    return "usr" + secrets.token_hex(8)


Row = Sequence[Any]
_T = TypeVar("_T")

# Positions of columns in whole-table rows (a select of the table, or RETURNING *table.c).
_USER_COLS = len(users.c)
_KEY_COLS = len(ssh_keys.c)
_VM_COLS = len(vms.c)


def _user(row: Row, at: int = 0) -> User:
    return User(
        user_id=row[at],
        email=row[at + 1],
        locked=bool(row[at + 2]),
        next_ssh_key_number=int(row[at + 3]),
        created_at=int(row[at + 4]),
    )


def _key(row: Row, at: int = 0) -> SSHKeyRow:
    last_used = row[at + 8]
    return SSHKeyRow(
        id=int(row[at]),
        user_id=row[at + 1],
        public_key=row[at + 2],
        fingerprint=row[at + 3],
        name=row[at + 4],
        permissions=row[at + 5],
        api_key_hint=row[at + 6],
        added_at=int(row[at + 7]),
        last_used_at=None if last_used is None else int(last_used),
    )


def _vm(row: Row, at: int = 0) -> VM:
    tags = json.loads(row[at + 5])
    return VM(
        id=int(row[at]),
        name=row[at + 1],
        owner_user_id=row[at + 2],
        upstream=row[at + 3],
        share=row[at + 4],
        tags=tuple(str(tag) for tag in tags),
        created_at=int(row[at + 6]),
    )


def _share(row: Row) -> Share:
    return Share(
        vm_id=int(row[1]),
        email=row[2],
        shared_by_user_id=row[3],
        message=row[4],
        created_at=int(row[5]),
    )


def _check_column_order() -> None:
    """The decoders above read whole-table rows by position: pin the order they assume."""
    expected = {
        users: ["user_id", "email", "is_locked_out", "next_ssh_key_number", "created_at"],
        ssh_keys: [
            "id", "user_id", "public_key", "fingerprint", "comment", "permissions",
            "api_key_hint", "added_at", "last_used_at",
        ],
        vms: ["id", "name", "owner_user_id", "upstream", "share", "tags", "created_at"],
        vm_shares: ["id", "vm_id", "email", "shared_by_user_id", "message", "created_at"],
    }  # fmt: skip
    for table, names in expected.items():
        if [column.name for column in table.c] != names:
            raise RuntimeError(f"unexpected column order in table {table.name}")


_check_column_order()


class _RowMemo(Generic[_T]):
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


# The reads of every authenticated or proxied request (see _RowMemo).
_auth_records: _RowMemo[tuple[SSHKeyRow, User | None]] = _RowMemo(
    lambda row: (_key(row), None if row[_KEY_COLS] is None else _user(row, _KEY_COLS))
)
_proxy_records: _RowMemo[tuple[VM, User | None]] = _RowMemo(
    lambda row: (_vm(row), None if row[_VM_COLS] is None else _user(row, _VM_COLS))
)
_key_record: _RowMemo[SSHKeyRow] = _RowMemo(_key)  # keys of a user (whoami, ssh-key list)
_CALLER_PEER_AT = _KEY_COLS + _USER_COLS  # where CALLER_LOOKUP's "every key" columns start


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


def _unclassified_conflict() -> StoreError:
    # A constraint fired but the conflicting row is gone again (a concurrent delete).
    return StoreError("the change conflicted with a concurrent change; please retry")


def _tags_text(tags: Iterable[str]) -> str:
    """docs/storage.md#schema: a sorted JSON array without duplicates, in compact form."""
    return json.dumps(sorted(set(tags)), separators=(",", ":"))


class Store:
    """Async access to the database. Use :meth:`open`; one instance per process."""

    def __init__(
        self,
        engine: AsyncEngine,
        db: DatabaseURL,
        *,
        read_engine: AsyncEngine | None = None,
        fast_reader: SQLiteFastReader | None = None,
        timeout: float = DEFAULT_DB_TIMEOUT_S,
    ) -> None:
        self._engine = engine
        self._db = db
        # Every call through an engine ends within this (docs/security.md#slow-and-idle-clients, --db-timeout).
        self._timeout = timeout
        # Calls given up at their deadline whose clean-up has not finished yet.
        self._abandoned: set[asyncio.Future[Any]] = set()
        # PostgreSQL: a pool of autocommit connections for single-statement reads.
        self._read_engine = read_engine
        # SQLite in WAL mode: reads on the calling thread (see fastread.py).
        self._fast_reader = fast_reader
        self._secret: bytes | None = None
        # SQLite admits one writer at a time anyway: queueing this process's writers here
        # keeps them off the busy-timeout polling, which then only arbitrates between
        # processes.
        self._sqlite_write_lock = asyncio.Lock() if db.backend == "sqlite" else None

    # -- lifecycle -------------------------------------------------------------------

    @classmethod
    async def open(cls, url: str, *, timeout: float = DEFAULT_DB_TIMEOUT_S) -> Store:
        """Connect and migrate the schema to head (docs/storage.md#backends). ``timeout`` is the deadline
        of every later database call (``--db-timeout``).

        Raises ``InvalidDatabaseURL`` for an unsupported URL and ``StoreUnavailable`` when
        the database cannot be opened, reached or migrated.
        """
        db = parse_database_url(url)
        if db.backend == "sqlite":
            _open_sqlite_file(db)
        engine = create_engine(db, timeout)
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
        return cls(engine, db, read_engine=create_read_engine(db, timeout), timeout=timeout)

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
        if self._read_engine is not None:
            await self._read_engine.dispose()
        await self._engine.dispose()

    async def ping(self) -> None:
        """Raise ``StoreUnavailable`` unless the database answers a query on a table
        within ``PING_TIMEOUT_S`` (or the store's deadline, if shorter)."""
        await self._read(q.PING, {}, deadline=min(self._timeout, PING_TIMEOUT_S))

    async def _read(
        self, query: q.ReadQuery, params: dict[str, Any], *, deadline: float | None = None
    ) -> Sequence[Row]:
        """Every row of one read statement, as the database has it now.

        SQLite: answered synchronously when the fast reader can (WAL readers never wait;
        an answer may be reused while nothing at all has been committed, see fastread.py),
        else through the engine. PostgreSQL: one autocommit round trip. A read through
        an engine ends within ``deadline`` seconds (default: the store's).
        """
        reader = self._fast_reader
        if reader is not None:
            fast_rows = reader.fetch(
                query.sqlite_sql, query.sqlite_params(params), reuse=query.reusable
            )
            if fast_rows is not None:
                return fast_rows
        return await self._within_deadline(self._engine_read(query, params), deadline)

    async def _engine_read(self, query: q.ReadQuery, params: dict[str, Any]) -> Sequence[Row]:
        if self._read_engine is not None:
            return await self._autocommit_read(self._read_engine, query, params)
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
        if not done:
            task.cancel()
            self._abandon(task)
            raise self._timed_out()
        return task.result()

    def _abandon(self, task: asyncio.Future[Any]) -> None:
        self._abandoned.add(task)
        task.add_done_callback(self._abandoned.discard)
        task.add_done_callback(_retrieve)

    def _timed_out(self) -> StoreUnavailable:
        """A call that did not end within the deadline: one warning, no driver detail."""
        return unavailable(TimeoutError(f"no answer within {self._timeout:g} s"), self.description)

    async def _autocommit_read(
        self, engine: AsyncEngine, query: q.ReadQuery, params: dict[str, Any]
    ) -> Sequence[Row]:
        """PostgreSQL read without BEGIN/COMMIT and without a pre-ping round trip.

        A pooled connection broken by a server restart fails the first statement, and
        SQLAlchemy then invalidates the pool; a read is idempotent, so it is retried once
        on a fresh connection.
        """
        for attempt in range(2):
            try:
                async with engine.connect() as conn:
                    result = await conn.execute(query.statement, params)
                    rows: Sequence[Row] = result.all()
                return rows
            except sa_exc.DBAPIError as exc:
                if attempt == 0 and exc.connection_invalidated:
                    continue
                if is_unavailable(exc):
                    raise unavailable(exc, self._db.description) from None
                raise
            except Exception as exc:
                if is_unavailable(exc):
                    raise unavailable(exc, self._db.description) from None
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    @asynccontextmanager
    async def _transaction(self, *, write: bool = False) -> AsyncIterator[AsyncConnection]:
        """One transaction; committed when the block ends normally, else rolled back.

        Callers are methods marked ``@_bounded`` (or ``_engine_read``), which keep the
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

    # -- users -----------------------------------------------------------------------

    @_bounded
    async def create_user(
        self,
        email: str,
        now: int,
        key: KeyIdentity | None = None,
        key_name: str = "",
        key_permissions: str = "",
    ) -> tuple[User, SSHKeyRow | None]:
        """Create a user and, optionally, its first key in one transaction (docs/operations.md#admin-commands).

        ``EmailTaken`` first, then ``KeyTaken``. An empty ``key_name`` becomes ``key-1``.
        """
        user_id = new_user_id()
        try:
            async with self._transaction(write=True) as conn:
                await conn.execute(
                    sa.insert(users).values(
                        user_id=user_id,
                        email=email,
                        is_locked_out=0,
                        next_ssh_key_number=1,
                        created_at=now,
                    )
                )
                key_row = None
                if key is not None:
                    number = await self._take_key_number(conn, user_id)
                    key_row = await self._insert_key(
                        conn, user_id, key, key_name or f"key-{number}", key_permissions, None, now
                    )
                result = await conn.execute(sa.select(users).where(users.c.user_id == user_id))
                user = _user(result.one())
        except sa_exc.IntegrityError:
            if await self.get_user_by_email(email) is not None:
                raise EmailTaken(email) from None
            if key is not None:
                await self._raise_if_key_taken(key)
            raise _unclassified_conflict() from None
        return user, key_row

    async def get_user(self, user_id: str) -> User | None:
        rows = await self._read(q.USER_BY_ID, {"user_id": user_id})
        return _user(rows[0]) if rows else None

    async def get_user_by_email(self, email: str) -> User | None:
        rows = await self._read(q.USER_BY_EMAIL, {"email": email})
        return _user(rows[0]) if rows else None

    @_bounded
    async def set_locked(self, email: str, locked: bool) -> User | None:
        """Set or clear the locked-out flag (idempotent); ``None`` for an unknown email."""
        async with self._transaction(write=True) as conn:
            result = await conn.execute(
                sa.update(users)
                .where(users.c.email == email)
                .values(is_locked_out=1 if locked else 0)
                .returning(*users.c)
            )
            row = result.first()
        return None if row is None else _user(row)

    @_bounded
    async def list_users(self) -> list[tuple[User, int]]:
        """Every user with its number of keys, ordered by email (docs/operations.md#admin-commands)."""
        key_count = (
            sa.select(sa.func.count())
            .where(ssh_keys.c.user_id == users.c.user_id)
            .scalar_subquery()
            .label("key_count")
        )
        async with self._transaction() as conn:
            result = await conn.execute(sa.select(users, key_count).order_by(users.c.email))
            rows = result.all()
        return [(_user(row), int(row[_USER_COLS])) for row in rows]

    @_bounded
    async def emails_with_accounts(self, emails: Iterable[str]) -> set[str]:
        """The subset of ``emails`` that belong to an account (share status, docs/ssh.md#share-show)."""
        wanted = sorted(set(emails))
        if not wanted:
            return set()
        async with self._transaction() as conn:
            result = await conn.execute(sa.select(users.c.email).where(users.c.email.in_(wanted)))
            return {str(email) for email in result.scalars()}

    # -- keys ------------------------------------------------------------------------

    async def key_by_fingerprint(self, fingerprint: str) -> SSHKeyRow | None:
        rows = await self._read(q.KEY_BY_FINGERPRINT, {"fp": fingerprint})
        return _key(rows[0]) if rows else None

    async def key_by_public_key(self, openssh: str) -> SSHKeyRow | None:
        rows = await self._read(q.KEY_BY_PUBLIC_KEY, {"openssh": openssh})
        return _key(rows[0]) if rows else None

    async def key_by_id(self, key_id: int) -> SSHKeyRow | None:
        rows = await self._read(q.KEY_BY_ID, {"key_id": key_id})
        return _key(rows[0]) if rows else None

    async def auth_lookup(self, fingerprint: str) -> tuple[SSHKeyRow, User | None] | None:
        """The key with ``fingerprint`` and its owner, read together in one query (docs/tokens.md#validation steps 18 and 20); ``None`` when no key has the fingerprint, and a ``None``
        user when the key's owner row is missing."""
        rows = await self._read(q.AUTH_LOOKUP, {"fp": fingerprint})
        return _auth_records(rows[0]) if rows else None

    async def caller_lookup(
        self, fingerprint: str
    ) -> tuple[SSHKeyRow, User | None, tuple[SSHKeyRow, ...]] | None:
        """``auth_lookup`` plus every key of the same owner in insertion order, all read
        in one statement (one consistent snapshot, one round trip)."""
        rows = await self._read(q.CALLER_LOOKUP, {"fp": fingerprint})
        if not rows:
            return None
        key, user = _auth_records(rows[0][:_CALLER_PEER_AT])
        return key, user, tuple(_key_record(row[_CALLER_PEER_AT:]) for row in rows)

    async def keys_of_user(self, user_id: str) -> list[SSHKeyRow]:
        """The user's keys in insertion order."""
        return [_key_record(row) for row in await self._read(q.KEYS_OF_USER, {"user_id": user_id})]

    @_bounded
    async def add_key(
        self, user_id: str, public_key: KeyIdentity, name: str, permissions: str, now: int
    ) -> SSHKeyRow:
        """Register a key (docs/accounts.md#name-sanitising, docs/ssh.md#ssh-key-add): the key counter is read and incremented in
        the same transaction, always; an empty ``name`` becomes ``key-<n>``. Names are not
        checked (docs/accounts.md#uniqueness). ``KeyTaken`` if any account has the key; ``UserNotFound``.
        """
        try:
            async with self._transaction(write=True) as conn:
                number = await self._take_key_number(conn, user_id)
                return await self._insert_key(
                    conn, user_id, public_key, name or f"key-{number}", permissions, None, now
                )
        except sa_exc.IntegrityError:
            await self._raise_if_key_taken(public_key)
            raise _unclassified_conflict() from None

    @_bounded
    async def add_generated_key(
        self,
        user_id: str,
        public_key: KeyIdentity,
        name: str,
        permissions: str,
        api_key_hint: str,
        exe1_hash: str,
        exe0_sealed: bytes,
        expires_at: int,
        now: int,
    ) -> SSHKeyRow:
        """docs/ssh.md#ssh-key-generate-api-key step 7: the key and its exe1 row in one transaction.

        ``NameTaken`` when a key of the user already has ``name``; ``KeyTaken``;
        ``UserNotFound``. The key counter is not used (the name is always given).
        """
        try:
            async with self._transaction(write=True) as conn:
                await self._lock_user(conn, user_id)
                await self._check_name_free(conn, user_id, name, except_key_id=None)
                key_row = await self._insert_key(
                    conn, user_id, public_key, name, permissions, api_key_hint, now
                )
                await self._put_exe1(conn, exe1_hash, exe0_sealed, expires_at, now)
                return key_row
        except sa_exc.IntegrityError:
            await self._raise_if_key_taken(public_key)
            raise _unclassified_conflict() from None

    @_bounded
    async def delete_key(self, key_id: int) -> bool:
        """Delete the key row (docs/accounts.md#key-removal-and-revocation); False if it did not exist."""
        async with self._transaction(write=True) as conn:
            result = await conn.execute(
                sa.delete(ssh_keys).where(ssh_keys.c.id == key_id).returning(ssh_keys.c.id)
            )
            return result.first() is not None

    @_bounded
    async def rename_key(self, key_id: int, new_name: str) -> SSHKeyRow | None:
        """Rename a key (docs/ssh.md#ssh-key-rename); ``NameTaken`` if another key of the same user has
        ``new_name``; ``None`` if the key does not exist (any more)."""
        async with self._transaction(write=True) as conn:
            result = await conn.execute(
                sa.select(ssh_keys.c.user_id).where(ssh_keys.c.id == key_id)
            )
            user_id = result.scalar()
            if user_id is None:
                return None
            await self._lock_user(conn, user_id)
            await self._check_name_free(conn, user_id, new_name, except_key_id=key_id)
            result = await conn.execute(
                sa.update(ssh_keys)
                .where(ssh_keys.c.id == key_id)
                .values(comment=new_name)
                .returning(*ssh_keys.c)
            )
            row = result.first()
        return None if row is None else _key(row)

    @_bounded
    async def touch_key_used(self, key_id: int, day_start: int) -> None:
        """Record use of a key on the UTC day starting at ``day_start`` (docs/accounts.md#ssh-keys).

        Only moves forward, and writes at most once per key and day: the common case
        (already recorded today) is a read and takes no write lock.
        """
        rows = await self._read(q.KEY_LAST_USED, {"key_id": key_id})
        if not rows or (rows[0][0] is not None and rows[0][0] >= day_start):
            return
        async with self._transaction(write=True) as conn:
            await conn.execute(
                sa.update(ssh_keys)
                .where(
                    ssh_keys.c.id == key_id,
                    sa.or_(ssh_keys.c.last_used_at.is_(None), ssh_keys.c.last_used_at < day_start),
                )
                .values(last_used_at=day_start)
            )

    async def _take_key_number(self, conn: AsyncConnection, user_id: str) -> int:
        """Read and increment the key counter atomically (docs/storage.md#schema).

        ``UPDATE ... RETURNING`` holds the row lock on PostgreSQL until commit; on SQLite
        the transaction already owns the write lock (``BEGIN IMMEDIATE``).
        """
        result = await conn.execute(
            sa.update(users)
            .where(users.c.user_id == user_id)
            .values(next_ssh_key_number=users.c.next_ssh_key_number + 1)
            .returning(users.c.next_ssh_key_number)
        )
        after = result.scalar()
        if after is None:
            raise UserNotFound(user_id)
        return int(after) - 1

    async def _lock_user(self, conn: AsyncConnection, user_id: str) -> None:
        """Serialize name checks of one user (``FOR UPDATE``; SQLite holds the write lock)."""
        result = await conn.execute(
            sa.select(users.c.user_id).where(users.c.user_id == user_id).with_for_update()
        )
        if result.first() is None:
            raise UserNotFound(user_id)

    async def _check_name_free(
        self, conn: AsyncConnection, user_id: str, name: str, except_key_id: int | None
    ) -> None:
        query = sa.select(ssh_keys.c.id).where(
            ssh_keys.c.user_id == user_id, ssh_keys.c.comment == name
        )
        if except_key_id is not None:
            query = query.where(ssh_keys.c.id != except_key_id)
        result = await conn.execute(query.limit(1))
        if result.first() is not None:
            raise NameTaken(name)

    async def _insert_key(
        self,
        conn: AsyncConnection,
        user_id: str,
        key: KeyIdentity,
        name: str,
        permissions: str,
        api_key_hint: str | None,
        now: int,
    ) -> SSHKeyRow:
        result = await conn.execute(
            sa.insert(ssh_keys)
            .values(
                user_id=user_id,
                public_key=key.openssh,
                fingerprint=key.fingerprint,
                comment=name,
                permissions=permissions,
                api_key_hint=api_key_hint,
                added_at=now,
                last_used_at=None,
            )
            .returning(*ssh_keys.c)
        )
        return _key(result.one())

    async def _raise_if_key_taken(self, key: KeyIdentity) -> None:
        """After a unique violation: raise ``KeyTaken`` if the key (or its fingerprint) is
        registered; otherwise return and let the caller re-raise."""
        rows = await self._read(q.KEY_OWNER_BY_KEY, {"openssh": key.openssh, "fp": key.fingerprint})
        if rows:
            raise KeyTaken(str(rows[0][0]))

    # -- exe1 handles (docs/tokens.md#exe1-tokens, docs/tokens.md#exe1-resolution, docs/storage.md#nothing-usable-at-rest) -------------------------------------------

    async def exe1_secret(self) -> bytes:
        """The ``exe1-derivation`` secret (immutable once made, so it is cached)."""
        if self._secret is None:
            rows = await self._read(q.EXE1_SECRET, {})
            if not rows:
                raise StoreUnavailable(
                    f"the {EXE1_SECRET_NAME} secret is missing from the database"
                )
            self._secret = bytes(rows[0][0])
        return self._secret

    async def exe1_lookup(self, exe1_hash: str, now: int) -> bytes | None:
        """The sealed exe0 of a live handle (``expires_at >= now``), else ``None``."""
        rows = await self._read(q.EXE1_LOOKUP, {"exe1_hash": exe1_hash, "now": now})
        return bytes(rows[0][0]) if rows else None

    @_bounded
    async def exe1_put(self, exe1_hash: str, exe0_sealed: bytes, expires_at: int, now: int) -> bool:
        """Store a handle: insert, or replace an expired row with the same hash.

        A live row with the same hash is kept (its exe1 derives from the same exe0, so
        it is the same handle); returns whether this call wrote the row.
        """
        async with self._transaction(write=True) as conn:
            return await self._put_exe1(conn, exe1_hash, exe0_sealed, expires_at, now)

    @_bounded
    async def exe1_purge_expired(self, now: int) -> int:
        """Delete handles with ``expires_at < now`` (docs/storage.md#schema allows it); returns the count."""
        async with self._transaction(write=True) as conn:
            result = await conn.execute(
                sa.delete(exe1_tokens)
                .where(exe1_tokens.c.expires_at < now)
                .returning(exe1_tokens.c.exe1_hash)
            )
            return len(result.all())

    async def _put_exe1(
        self, conn: AsyncConnection, exe1_hash: str, exe0_sealed: bytes, expires_at: int, now: int
    ) -> bool:
        values = {
            "exe1_hash": exe1_hash,
            "exe0_sealed": exe0_sealed,
            "expires_at": expires_at,
            "created_at": now,
        }
        insert = postgresql.insert if self._db.backend == "postgresql" else sqlite.insert
        stmt = insert(exe1_tokens).values(values)
        stmt = stmt.on_conflict_do_update(
            index_elements=[exe1_tokens.c.exe1_hash],
            set_={
                "exe0_sealed": stmt.excluded.exe0_sealed,
                "expires_at": stmt.excluded.expires_at,
                "created_at": stmt.excluded.created_at,
            },
            where=exe1_tokens.c.expires_at < now,
        )
        result = await conn.execute(stmt.returning(exe1_tokens.c.exe1_hash))
        return result.first() is not None

    # -- VMs (docs/accounts.md#vms) ---------------------------------------------------------------

    @_bounded
    async def create_vm(
        self, name: str, owner_user_id: str, upstream: str, tags: Iterable[str], now: int
    ) -> VM:
        """A private VM without shares; ``NameTaken`` (server-wide), ``UserNotFound``."""
        try:
            async with self._transaction(write=True) as conn:
                result = await conn.execute(
                    sa.insert(vms)
                    .values(
                        name=name,
                        owner_user_id=owner_user_id,
                        upstream=upstream,
                        share="private",
                        tags=_tags_text(tags),
                        created_at=now,
                    )
                    .returning(*vms.c)
                )
                return _vm(result.one())
        except sa_exc.IntegrityError:
            if await self.vm_by_name(name) is not None:
                raise NameTaken(name) from None
            if await self.get_user(owner_user_id) is None:
                raise UserNotFound(owner_user_id) from None
            raise _unclassified_conflict() from None

    async def vm_by_name(self, name: str) -> VM | None:
        rows = await self._read(q.VM_BY_NAME, {"name": name})
        return _vm(rows[0]) if rows else None

    async def vm_by_id(self, vm_id: int) -> VM | None:
        rows = await self._read(q.VM_BY_ID, {"vm_id": vm_id})
        return _vm(rows[0]) if rows else None

    async def proxy_lookup(self, name: str) -> tuple[VM, User | None] | None:
        """The VM named ``name`` and its owner, read together in one query (docs/proxy.md#unknown-vms: a
        missing VM or a locked-out owner is "VM not found"); ``None`` without such a VM,
        and a ``None`` user when the owner row is missing."""
        rows = await self._read(q.PROXY_LOOKUP, {"name": name})
        return _proxy_records(rows[0]) if rows else None

    async def vms_of_owner(self, user_id: str) -> list[VM]:
        """The user's VMs sorted by name (code-point order on both backends)."""
        return [_vm(row) for row in await self._read(q.VMS_OF_OWNER, {"user_id": user_id})]

    @_bounded
    async def delete_vm(self, vm_id: int) -> bool:
        """Delete the VM and (by cascade) its shares; False if it did not exist."""
        async with self._transaction(write=True) as conn:
            result = await conn.execute(sa.delete(vms).where(vms.c.id == vm_id).returning(vms.c.id))
            return result.first() is not None

    async def set_vm_upstream(self, vm_id: int, upstream: str) -> VM | None:
        return await self._update_vm(vm_id, upstream=upstream)

    async def set_vm_share(self, vm_id: int, share: str) -> VM | None:
        """``share`` is ``"private"`` or ``"public"`` (``ValueError`` otherwise)."""
        if share not in VM_SHARE_MODES:
            raise ValueError(f"share must be 'private' or 'public', not {share!r}")
        return await self._update_vm(vm_id, share=share)

    async def shares_of_vm(self, vm_id: int) -> list[Share]:
        """Ordered by creation time, then email (docs/ssh.md#share-show)."""
        return [_share(row) for row in await self._read(q.SHARES_OF_VM, {"vm_id": vm_id})]

    @_bounded
    async def add_share(
        self, vm_id: int, email: str, by_user_id: str, message: str | None, now: int
    ) -> Share:
        """Share a VM with an email (docs/ssh.md#share-add); ``AlreadyShared``, ``VMNotFound``,
        ``UserNotFound``."""
        try:
            async with self._transaction(write=True) as conn:
                result = await conn.execute(
                    sa.insert(vm_shares)
                    .values(
                        vm_id=vm_id,
                        email=email,
                        shared_by_user_id=by_user_id,
                        message=message,
                        created_at=now,
                    )
                    .returning(*vm_shares.c)
                )
                return _share(result.one())
        except sa_exc.IntegrityError:
            if await self.is_shared_with(vm_id, email):
                raise AlreadyShared(vm_id, email) from None
            if await self.vm_by_id(vm_id) is None:
                raise VMNotFound(vm_id) from None
            if await self.get_user(by_user_id) is None:
                raise UserNotFound(by_user_id) from None
            raise _unclassified_conflict() from None

    @_bounded
    async def remove_share(self, vm_id: int, email: str) -> bool:
        async with self._transaction(write=True) as conn:
            result = await conn.execute(
                sa.delete(vm_shares)
                .where(vm_shares.c.vm_id == vm_id, vm_shares.c.email == email)
                .returning(vm_shares.c.id)
            )
            return result.first() is not None

    async def is_shared_with(self, vm_id: int, email: str) -> bool:
        return bool(await self._read(q.SHARE_EXISTS, {"vm_id": vm_id, "email": email}))

    @_bounded
    async def _update_vm(self, vm_id: int, /, **values: str) -> VM | None:
        async with self._transaction(write=True) as conn:
            result = await conn.execute(
                sa.update(vms).where(vms.c.id == vm_id).values(**values).returning(*vms.c)
            )
            row = result.first()
        return None if row is None else _vm(row)

    # -- tests and audits ---------------------------------------------------------------

    @_bounded
    async def dump_tables(self) -> dict[str, list[tuple[object, ...]]]:
        """Every row of every table in the database, including Alembic's (docs/storage.md#nothing-usable-at-rest)."""
        async with self._transaction() as conn:
            names = await conn.run_sync(_table_names)
            quote = conn.dialect.identifier_preparer.quote
            dump: dict[str, list[tuple[object, ...]]] = {}
            for name in names:
                result = await conn.execute(sa.text(f"SELECT * FROM {quote(name)}"))
                dump[name] = [tuple(row) for row in result]
        return dump


def _table_names(conn: Connection) -> list[str]:
    return sorted(sa.inspect(conn).get_table_names())
