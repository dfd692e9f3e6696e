"""Reads without explicit transactions (docs/storage.md#backends): no cache hides a change, and a read
never waits on a lock on the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import random
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from sshmint.server.store import Store
from sshmint.server.store.fastread import SQLiteFastReader
from tests.support.keys import StoreKey
from tests.support.postgres import PostgresServer

NOW = 1_700_000_000


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[Store]:
    """A store on ``tmp_path / "sshmint.db"`` (SQLite, so with the fast reader)."""
    store = await Store.open(f"sqlite:///{tmp_path / 'sshmint.db'}")
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
async def stores(db_url: str) -> AsyncIterator[tuple[Store, Store]]:
    """Two stores on one database: the second stands for ``sshmint admin`` or another node."""
    first = await Store.open(db_url)
    second = await Store.open(db_url)
    try:
        yield first, second
    finally:
        await first.close()
        await second.close()


async def test_s9_1_login_lookup_sees_removal_lockout_and_permissions_at_once(
    stores: tuple[Store, Store], keys: list[StoreKey]
) -> None:
    server, admin = stores
    user, key = await admin.create_user("ann@example.test", NOW, keys[0], "laptop", "")
    assert key is not None
    assert await server.login_lookup(key.fingerprint) == (key, user)
    assert await server.login_lookup(keys[1].fingerprint) is None

    locked = await admin.set_locked("ann@example.test", True)
    found = await server.login_lookup(key.fingerprint)
    assert found is not None and found[1] is not None
    assert found[1] == locked and found[1].locked

    await admin.set_locked("ann@example.test", False)
    found = await server.login_lookup(key.fingerprint)
    assert found is not None and found[1] is not None and not found[1].locked

    await admin.touch_key_used(key.id, NOW - NOW % 86400)
    found = await server.login_lookup(key.fingerprint)
    assert found is not None and found[0].last_used_at == NOW - NOW % 86400

    assert await admin.delete_key(key.id)
    assert await server.login_lookup(key.fingerprint) is None
    assert await server.key_by_fingerprint(key.fingerprint) is None
    assert await server.keys_of_user(user.user_id) == []


async def test_s9_1_caller_lookup_reads_the_key_its_owner_and_all_their_keys_at_once(
    stores: tuple[Store, Store], keys: list[StoreKey]
) -> None:
    server, admin = stores
    user, first = await admin.create_user("bo@example.test", NOW, keys[0], "laptop", "")
    assert first is not None
    second = await admin.add_key(user.user_id, keys[1], "desk", "", NOW + 1)
    owner = await admin.get_user(user.user_id)  # its key counter moved on
    assert owner is not None
    # From either key: the same owner and both keys, in insertion order (and the token
    # named by the hash is not revoked: None).
    h = "0" * 64
    assert await server.caller_lookup(second.fingerprint, h) == (
        second,
        owner,
        None,
        (first, second),
    )
    assert await server.caller_lookup(first.fingerprint, h) == (first, owner, None, (first, second))
    assert await server.caller_lookup(keys[2].fingerprint, h) is None
    # Nothing is remembered: a rename, a removal and a lockout show on the next read.
    assert await admin.rename_key(first.id, "old-laptop")
    found = await server.caller_lookup(second.fingerprint, h)
    assert found is not None and [k.name for k in found[3]] == ["old-laptop", "desk"]
    assert await admin.delete_key(first.id)
    found = await server.caller_lookup(second.fingerprint, h)
    assert found is not None and found[3] == (second,)
    await admin.set_locked("bo@example.test", True)
    found = await server.caller_lookup(second.fingerprint, h)
    assert found is not None and found[1] is not None and found[1].locked
    assert await server.caller_lookup(first.fingerprint, h) is None


async def test_s8_3_proxy_lookup_sees_vm_owner_lockout_and_shares_at_once(
    stores: tuple[Store, Store],
) -> None:
    server, admin = stores
    owner, _ = await admin.create_user("own@example.test", NOW)
    assert await server.proxy_lookup("app") is None
    vm = await admin.create_vm("app", owner.user_id, "http://127.0.0.1:9", ["web"], NOW)
    assert await server.proxy_lookup("app") == (vm, owner)

    await admin.set_locked("own@example.test", True)
    found = await server.proxy_lookup("app")
    assert found is not None and found[1] is not None and found[1].locked

    public = await admin.set_vm_share(vm.id, "public")
    found = await server.proxy_lookup("app")
    assert found is not None and found[0] == public and found[0].share == "public"

    assert not await server.is_shared_with(vm.id, "bob@example.test")
    await admin.add_share(vm.id, "bob@example.test", owner.user_id, None, NOW)
    assert await server.is_shared_with(vm.id, "bob@example.test")
    await admin.remove_share(vm.id, "bob@example.test")
    assert not await server.is_shared_with(vm.id, "bob@example.test")

    await admin.delete_vm(vm.id)
    assert await server.proxy_lookup("app") is None


async def test_s9_1_sqlite_a_raw_write_by_another_connection_is_seen_by_the_next_read(
    sqlite_store: Store, tmp_path: Path, keys: list[StoreKey]
) -> None:
    path = tmp_path / "sshmint.db"
    user, key = await sqlite_store.create_user("ann@example.test", NOW, keys[0])
    assert key is not None
    assert await sqlite_store.login_lookup(key.fingerprint) is not None
    with sqlite3.connect(path) as other:
        other.execute("UPDATE ssh_keys SET permissions = ? WHERE id = ?", ('{"vm":"x"}', key.id))
    found = await sqlite_store.login_lookup(key.fingerprint)
    assert found is not None and found[0].permissions == '{"vm":"x"}'
    with sqlite3.connect(path) as other:
        other.execute("UPDATE users SET is_locked_out = 1 WHERE user_id = ?", (user.user_id,))
    found = await sqlite_store.login_lookup(key.fingerprint)
    assert found is not None and found[1] is not None and found[1].locked


async def test_s9_1_sqlite_reads_leave_no_snapshot_open(
    sqlite_store: Store, tmp_path: Path, keys: list[StoreKey]
) -> None:
    # A read transaction left open would pin an old snapshot (and hide later changes);
    # a TRUNCATE checkpoint only completes when no reader holds one.
    path = tmp_path / "sshmint.db"
    user, key = await sqlite_store.create_user("ann@example.test", NOW, keys[0])
    assert key is not None
    await sqlite_store.login_lookup(key.fingerprint)
    await sqlite_store.keys_of_user(user.user_id)
    await sqlite_store.ping()
    other = sqlite3.connect(path)
    try:
        other.execute("UPDATE users SET next_ssh_key_number = 7")
        other.commit()
        busy, _log, _done = other.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    finally:
        other.close()
    assert busy == 0
    found = await sqlite_store.get_user(user.user_id)
    assert found is not None and found.next_ssh_key_number == 7


def test_s9_1_sqlite_fast_read_of_a_locked_database_answers_none_at_once(
    tmp_path: Path,
) -> None:
    # Busy must never mean "wait on the event loop": the reader gives up at once and the
    # store repeats the read through the engine. (A rollback-journal file is used because
    # WAL readers are never blocked by the writers a test can set up.)
    path = tmp_path / "plain.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x INTEGER)")
    holder.execute("BEGIN EXCLUSIVE")
    holder.execute("INSERT INTO t VALUES (1)")
    reader = SQLiteFastReader(sqlite3.connect(path, timeout=0, isolation_level=None))
    try:
        started = time.monotonic()
        assert reader.fetch("SELECT x FROM t", {}) is None
        assert time.monotonic() - started < 1.0
        assert reader.fallbacks == 1
        holder.execute("COMMIT")
        assert reader.fetch("SELECT x FROM t", {}) == [(1,)]
    finally:
        reader.close()
        holder.close()


def test_s9_1_sqlite_fast_reads_are_used_only_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "plain.db"
    sqlite3.connect(path).close()
    assert SQLiteFastReader.open(str(path)) is None
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode = WAL")
    reader = SQLiteFastReader.open(str(path))
    assert reader is not None
    try:
        connection = reader._connection
        assert connection is not None
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            connection.execute("CREATE TABLE t (x INTEGER)")
    finally:
        reader.close()


async def test_s9_1_sqlite_a_failing_fast_read_is_repeated_through_the_engine(
    sqlite_store: Store,
) -> None:
    user, _ = await sqlite_store.create_user("ann@example.test", NOW)
    reader = sqlite_store._fast_reader
    assert reader is not None and reader._connection is not None
    reader._connection.close()  # every fast read now fails
    assert await sqlite_store.get_user(user.user_id) == user
    assert await sqlite_store.proxy_lookup("none") is None
    assert reader.fallbacks == 2


async def test_s9_1_postgres_reads_recover_after_a_server_restart(
    db_url: str, postgres: PostgresServer
) -> None:
    if not db_url.startswith("postgresql") or postgres.data_dir is None:
        assert db_url.startswith("sqlite") or postgres.data_dir is None
        return
    store = await Store.open(db_url)
    try:
        user, _ = await store.create_user("ann@example.test", NOW)
        assert await store.get_user(user.user_id) == user  # pooled read connection
        await asyncio.to_thread(postgres.stop)
        await asyncio.to_thread(postgres.start)
        # The pooled connection is dead; the first read after the restart still answers.
        await store.ping()
        assert await store.get_user(user.user_id) == user
    finally:
        await store.close()


# --- answers reused while nothing is committed (PRAGMA data_version) ----------------------


@pytest.fixture
def wal_db(tmp_path: Path) -> Iterator[tuple[Path, sqlite3.Connection]]:
    """A WAL database with one table, and a writer connection standing for any other
    process (``sshmint admin``, the server's own engine)."""
    path = tmp_path / "t.db"
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("PRAGMA journal_mode = WAL")
    writer.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)")
    writer.execute("INSERT INTO t VALUES (1, 'one'), (2, 'two')")
    try:
        yield path, writer
    finally:
        writer.close()


@pytest.fixture
def reader(wal_db: tuple[Path, sqlite3.Connection]) -> Iterator[SQLiteFastReader]:
    reader = SQLiteFastReader.open(str(wal_db[0]))
    assert reader is not None
    try:
        yield reader
    finally:
        reader.close()


def _bounded_reader(path: Path, **bounds: int) -> contextlib.closing[SQLiteFastReader]:
    connection = sqlite3.connect(path, timeout=0, isolation_level=None)
    return contextlib.closing(SQLiteFastReader(connection, **bounds))


_SELECT_V = "SELECT v FROM t WHERE k = :k"


def test_s9_1_sqlite_an_unchanged_database_answers_a_repeated_read_from_memory(
    reader: SQLiteFastReader,
) -> None:
    assert reader.fetch(_SELECT_V, {"k": 1}, reuse=True) == [("one",)]
    assert reader.reused == 0
    assert reader.fetch(_SELECT_V, {"k": 1}, reuse=True) == [("one",)]
    assert reader.reused == 1
    # Other parameters are another read.
    assert reader.fetch(_SELECT_V, {"k": 2}, reuse=True) == [("two",)]
    assert reader.reused == 1
    # Without reuse the statement always runs.
    assert reader.fetch(_SELECT_V, {"k": 1}) == [("one",)]
    assert reader.reused == 1


def test_s9_1_sqlite_any_commit_by_another_connection_ends_every_reused_answer(
    wal_db: tuple[Path, sqlite3.Connection], reader: SQLiteFastReader
) -> None:
    _, writer = wal_db
    for _ in range(2):
        assert reader.fetch(_SELECT_V, {"k": 1}, reuse=True) == [("one",)]
        assert reader.fetch(_SELECT_V, {"k": 2}, reuse=True) == [("two",)]
    assert reader.reused == 2
    # A commit touching neither row still ends reuse of both (nothing is guessed).
    writer.execute("INSERT INTO t VALUES (3, 'three')")
    assert reader.fetch(_SELECT_V, {"k": 1}, reuse=True) == [("one",)]
    assert reader.reused == 2
    writer.execute("UPDATE t SET v = 'ONE' WHERE k = 1")
    assert reader.fetch(_SELECT_V, {"k": 1}, reuse=True) == [("ONE",)]
    writer.execute("DELETE FROM t WHERE k = 2")
    assert reader.fetch(_SELECT_V, {"k": 2}, reuse=True) == []
    # A rolled-back transaction commits nothing: the answer stands.
    assert reader.fetch(_SELECT_V, {"k": 1}, reuse=True) == [("ONE",)]
    writer.execute("BEGIN")
    writer.execute("UPDATE t SET v = 'gone' WHERE k = 1")
    writer.execute("ROLLBACK")
    before = reader.reused
    assert reader.fetch(_SELECT_V, {"k": 1}, reuse=True) == [("ONE",)]
    assert reader.reused == before + 1


def test_s9_1_sqlite_reused_answers_always_equal_a_fresh_read(
    wal_db: tuple[Path, sqlite3.Connection], reader: SQLiteFastReader
) -> None:
    # Random interleavings of commits (including checkpoints that restart the WAL) and
    # reads: every reused answer must be what running the statement would return.
    path, writer = wal_db
    rng = random.Random(20261128)
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as checker:
        for step in range(600):
            action = rng.random()
            k = rng.randint(1, 4)
            if action < 0.25:
                writer.execute("INSERT OR REPLACE INTO t VALUES (?, ?)", (k, f"v{step}"))
            elif action < 0.3:
                writer.execute("DELETE FROM t WHERE k = ?", (k,))
            elif action < 0.33:
                writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            else:
                got = reader.fetch(_SELECT_V, {"k": k}, reuse=True)
                assert got == checker.execute(_SELECT_V, {"k": k}).fetchall(), step
    assert reader.reused > 100  # the reuse path was exercised, not just fresh reads


def test_s9_1_sqlite_reused_answers_are_bounded(
    wal_db: tuple[Path, sqlite3.Connection],
) -> None:
    with _bounded_reader(wal_db[0], results_kept=2) as reader:
        for k in (1, 2):
            reader.fetch(_SELECT_V, {"k": k}, reuse=True)
        assert len(reader._results) == 2
        reader.fetch(_SELECT_V, {"k": 3}, reuse=True)  # full: everything is dropped first
        assert len(reader._results) == 1
        assert reader.fetch(_SELECT_V, {"k": 1}, reuse=True) == [("one",)]
        assert reader.reused == 0


def test_s9_1_sqlite_reused_answers_hold_a_bounded_number_of_rows(
    wal_db: tuple[Path, sqlite3.Connection],
) -> None:
    path, writer = wal_db
    writer.execute("INSERT INTO t VALUES (3, 'three'), (4, 'four')")
    every = "SELECT v FROM t WHERE k <= :k ORDER BY k"
    with _bounded_reader(path, rows_kept=3) as reader:
        reader.fetch(every, {"k": 2}, reuse=True)  # 2 rows held
        reader.fetch(every, {"k": 1}, reuse=True)  # 3 rows held
        assert len(reader._results) == 2
        reader.fetch(every, {"k": 1}, reuse=True)
        assert reader.reused == 1
        # One more row would pass the bound: everything is dropped first.
        reader.fetch(_SELECT_V, {"k": 3}, reuse=True)
        assert list(reader._results) == [(_SELECT_V, ("k", 3))]
        # An answer larger than the bound is given but never kept.
        assert len(reader.fetch(every, {"k": 4}, reuse=True) or []) == 4
        assert list(reader._results) == [(_SELECT_V, ("k", 3))]


async def test_s9_1_sqlite_health_pings_always_query_the_file(
    sqlite_store: Store, keys: list[StoreKey]
) -> None:
    reader = sqlite_store._fast_reader
    assert reader is not None
    for _ in range(3):
        await sqlite_store.ping()
    assert reader.reused == 0
    user, key = await sqlite_store.create_user("ann@example.test", NOW, keys[0])
    assert key is not None
    for _ in range(3):
        assert await sqlite_store.login_lookup(key.fingerprint) == (key, user)
    assert reader.reused == 2
    # The store's own writes go through another connection: seen at once.
    locked = await sqlite_store.set_locked("ann@example.test", True)
    assert await sqlite_store.login_lookup(key.fingerprint) == (key, locked)
