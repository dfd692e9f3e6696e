"""The PostgreSQL fast path (``server/store/pgfast.py``): every read answers as SQLAlchemy
would, within the store's connection budget and deadline (docs/storage.md#connections,
docs/security.md#slow-and-idle-clients). A restart of the server is
test_store_fast_reads.py's; a frozen server test_db_deadline.py's."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import sqlalchemy as sa

from sshmint.server.config import ConfigError, load_config
from sshmint.server.store import Store, StoreUnavailable
from sshmint.server.store import queries as q
from sshmint.server.store.engine import split_pool
from sshmint.server.store.pgfast import PgFastPath
from sshmint.server.store.queries import compile_for_postgres
from tests.support.keys import StoreKey
from tests.support.postgres import PostgresServer

NOW = 1_900_000_000
SLEEP = compile_for_postgres(sa.select(sa.func.pg_sleep(sa.bindparam("s", type_=sa.Float))))


@pytest.fixture(scope="module")
def pg_url(postgres: PostgresServer) -> str:
    return postgres.new_database()


@pytest.fixture
async def small_store(pg_url: str) -> AsyncIterator[Store]:
    """A store allowed 2 connections: one for the fast path, one for the engine."""
    store = await Store.open(pg_url, timeout=5, pool_size=2)
    try:
        yield store
    finally:
        await store.close()


def _fast(store: Store) -> PgFastPath:
    fast = store._pg_fast
    assert fast is not None
    return fast


async def test_s9_1_every_read_answers_on_the_fast_path_as_through_sqlalchemy(
    pg_url: str, keys: list[StoreKey]
) -> None:
    """Each read statement of queries.py, run as an asyncpg prepared statement, returns
    the rows (values and column order) SQLAlchemy returns for it: one decoder serves both."""
    store = await Store.open(pg_url)
    try:
        user, key = await store.create_user(f"{uuid.uuid4().hex[:8]}@example.test", NOW, keys[0])
        assert key is not None
        vm = await store.create_vm(f"vm{uuid.uuid4().hex[:8]}", user.user_id, "http://x", [], NOW)
        friend, _ = await store.create_user(f"{uuid.uuid4().hex[:8]}@example.test", NOW)
        await store.add_share(vm.id, friend.email, user.user_id, "hi", NOW)
        await store.exe1_put("h" * 64, b"sealed", NOW + 60, NOW)
        await store.revoke_token("r" * 64, user.user_id, key.fingerprint, NOW + 60, NOW)
        params: dict[str, Any] = {
            "user_id": user.user_id,
            "email": friend.email,  # a user, and the VM's share
            "fp": key.fingerprint,
            "key_id": key.id,
            "openssh": key.public_key,
            "exe1_hash": "h" * 64,
            "token_hash": "r" * 64,  # revoked: the lookups' join finds its row
            "now": NOW,
            "name": vm.name,
            "vm_id": vm.id,
        }
        queries = [value for value in vars(q).values() if isinstance(value, q.ReadQuery)]
        assert len(queries) >= 15
        for query in queries:
            wanted = {name: params[name] for name in query.postgres.names if name in params}
            fast = [tuple(row) for row in await _fast(store).fetch(query.postgres, wanted, 5)]
            async with store._transaction() as conn:
                slow = [tuple(row) for row in (await conn.execute(query.statement, wanted)).all()]
            assert fast == slow, query.postgres.sql
            assert fast, query.postgres.sql  # every read found its row
    finally:
        await store.close()


async def test_s12_a_store_opens_at_most_its_pool_size(
    pg_url: str, postgres: PostgresServer
) -> None:
    """``--db-pool-size 3``: 40 concurrent reads share the fast path's two connections and
    all answer; the database sees at most three connections from the store."""
    store = await Store.open(pg_url, pool_size=3)
    try:
        assert _fast(store).size == split_pool(3)[0] == 2
        results = await asyncio.gather(*(store.ping() for _ in range(40)))
        assert results == [None] * 40
        assert _fast(store).open_connections <= 2
        await store.create_user(f"{uuid.uuid4().hex[:8]}@example.test", NOW)  # the engine's
        database = pg_url.rsplit("/", 1)[1]
        count = await asyncio.to_thread(
            postgres.psql,
            f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{database}'"
            " AND application_name = 'sshmint'",
        )
        assert 1 <= int(count) <= 3
    finally:
        await store.close()


async def test_r_11_4_waiting_for_a_busy_connection_ends_at_the_deadline(
    small_store: Store,
) -> None:
    """The one fast-path connection is busy: a read waits for it only until its deadline,
    and the connection serves the next read once free."""
    busy = asyncio.ensure_future(_fast(small_store).fetch(SLEEP, {"s": 1.0}, 5))
    await asyncio.sleep(0.1)
    started = time.monotonic()
    with pytest.raises(StoreUnavailable):
        await small_store._read(q.PING, {}, deadline=0.3)
    assert time.monotonic() - started < 0.8
    await busy
    await small_store.ping()
    assert _fast(small_store).open_connections == 1


async def test_r_11_4_a_statement_past_the_deadline_fails_and_its_connection_goes(
    small_store: Store,
) -> None:
    await small_store.ping()
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match=r"no answer within 0\.3 s"):
        await _fast(small_store).fetch(SLEEP, {"s": 3.0}, 0.3)
    assert time.monotonic() - started < 0.8
    assert _fast(small_store).open_connections == 0  # terminated, not reused
    await small_store.ping()  # a new connection


async def test_r_11_4_each_call_keeps_its_own_deadline_and_leaves_no_cancellation(
    small_store: Store,
) -> None:
    """Calls are watched per limit (one timer for all calls sharing it): a call past its
    short limit fails at that limit, a later call with a longer limit is not cut to it,
    and the failed call leaves no cancellation pending in its caller's task."""
    fast = _fast(small_store)
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match=r"no answer within 0\.3 s"):
        await fast.fetch(SLEEP, {"s": 3.0}, 0.3)
    assert time.monotonic() - started < 0.8
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0
    await asyncio.sleep(0.01)  # a pending cancellation would surface here
    started = time.monotonic()
    rows = await fast.fetch(SLEEP, {"s": 0.6}, 5)
    assert len(rows) == 1 and 0.6 <= time.monotonic() - started < 2


async def test_r_11_4_a_call_running_when_the_store_closes_keeps_its_deadline(
    pg_url: str,
) -> None:
    """Closing the fast path (a shutdown) leaves calls in flight bounded by their deadline."""
    store = await Store.open(pg_url, timeout=5, pool_size=2)
    try:
        await store.ping()
        started = time.monotonic()
        call = asyncio.ensure_future(_fast(store).fetch(SLEEP, {"s": 3.0}, 0.3))
        await asyncio.sleep(0.05)
        await _fast(store).close()
        with pytest.raises(StoreUnavailable, match=r"no answer within 0\.3 s"):
            await call
        assert time.monotonic() - started < 0.8
        assert _fast(store).open_connections == 0
    finally:
        await store.close()


async def test_s9_1_a_cancelled_read_frees_its_connection(small_store: Store) -> None:
    """A caller cancelled mid-statement (a client gone, a shutdown): its connection is
    closed at once, never handed to the next caller half-way through a statement."""
    task = asyncio.ensure_future(_fast(small_store).fetch(SLEEP, {"s": 3.0}, 5))
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert _fast(small_store).open_connections == 0
    started = time.monotonic()
    await small_store.ping()
    assert time.monotonic() - started < 1


def test_s12_db_pool_size_option() -> None:
    """docs/operations.md#options: ``--db-pool-size`` defaults to 10; 2 is the least (one
    connection for reads, one for writes)."""
    assert load_config({}, environ={}).db_pool_size == 10
    assert load_config({"db-pool-size": "4"}, environ={}).db_pool_size == 4
    assert load_config({}, environ={"SSHMINT_DB_POOL_SIZE": "25"}).db_pool_size == 25
    for bad in ("1", "0", "ten", "-3"):
        with pytest.raises(ConfigError, match="--db-pool-size"):
            load_config({"db-pool-size": bad}, environ={})
    assert split_pool(2) == (1, 1) and split_pool(10) == (8, 2) and split_pool(20) == (16, 4)


async def test_s9_1_a_statement_the_server_forgot_is_prepared_again(small_store: Store) -> None:
    """Prepared statements are kept per connection; one the server no longer has (a
    ``DEALLOCATE``, a pooler's reset) is prepared again and the read answers."""
    await small_store.ping()
    (held,) = _fast(small_store)._idle
    assert held.statements
    await held.conn.execute("DEALLOCATE ALL")
    await small_store.ping()
    assert _fast(small_store).open_connections == 1
