"""The rate limit's buckets in PostgreSQL, shared by every node (docs/http-api.md#rate-limit-across-nodes,
R165): the same arithmetic as the in-memory bucket, atomic under concurrent requests from
several stores, and full buckets purged.

Time in the database cannot be faked, but only differences with ``refilled_at`` count:
moving a bucket's ``refilled_at`` back by ``dt`` is ``dt`` seconds passing for it. Steps
are multiples of half a second, and an example runs in far less, so the real time that
passes meanwhile never crosses a whole second the fake clock does not.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from sshmint.server.http.ratelimit import (
    BURST,
    FLOOR,
    RateLimiter,
    SharedRateLimiter,
    rate_limiter_for,
    retry_after_seconds,
)
from sshmint.server.store import Store
from sshmint.server.store.housekeeping import Housekeeping
from tests.support.postgres import PostgresServer


@pytest.fixture(scope="module")
def pg_url(postgres: PostgresServer) -> str:
    return postgres.new_database()


@pytest.fixture
async def pg_store(pg_url: str) -> AsyncIterator[Store]:
    store = await Store.open(pg_url)
    try:
        yield store
    finally:
        await store.close()


async def _elapse(url: str, fingerprint: str, seconds: float) -> None:
    """``seconds`` pass for the bucket of ``fingerprint`` (see the module docstring)."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "UPDATE rate_limits SET refilled_at = refilled_at - $2 WHERE fingerprint = $1",
            fingerprint,
            seconds,
        )
    finally:
        await conn.close()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# A scenario: ("take", n) sends n requests; ("wait", k) lets k half-seconds pass.
_steps = st.lists(
    st.one_of(
        st.tuples(st.just("take"), st.integers(1, 70)),
        st.tuples(st.just("wait"), st.sampled_from([1, 2, 3, 5, 8, 240, 400])),
    ),
    min_size=1,
    max_size=8,
)


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(steps=_steps)
# Half seconds add up across requests; the floor; a long pause refills to 60 exactly.
@example(steps=[("take", 61), ("wait", 1), ("take", 1), ("wait", 1), ("take", 2)])
@example(steps=[("take", 200), ("wait", 3), ("take", 1), ("wait", 240), ("take", 62)])
@example(steps=[("take", 30), ("wait", 5), ("take", 40), ("wait", 8), ("take", 5)])
async def test_r165_the_database_bucket_answers_as_the_in_memory_one(
    pg_store: Store, pg_url: str, steps: list[tuple[str, int]]
) -> None:
    """Step for step, the balance left and the ``Retry-After`` of the shared bucket equal
    those of the in-memory one (burst 60, one per whole second, floor -120)."""
    fingerprint = uuid.uuid4().hex
    clock = FakeClock()
    local = RateLimiter(clock)
    started = time.monotonic()
    for action, count in steps:
        if action == "wait":
            clock.now += count / 2
            await _elapse(pg_url, fingerprint, count / 2)
            continue
        for _ in range(count):
            balance = await pg_store.take_rate_token(fingerprint, burst=BURST, floor=FLOOR)
            expected = local.consume(fingerprint)
            assert (0 if balance >= 0 else retry_after_seconds(balance)) == expected
            assert balance == local.balance(fingerprint)
    assert time.monotonic() - started < 0.5  # else the real clock may have crossed a second


async def test_r165_the_shared_bucket_answers_retry_after_as_docs_say(pg_store: Store) -> None:
    """docs/http-api.md#retry-after through the database: the 61st request waits 2 s, one
    at the floor 121 s."""
    shared = SharedRateLimiter(pg_store)
    fingerprint = uuid.uuid4().hex
    assert [await shared.take(fingerprint) for _ in range(BURST)] == [0] * BURST
    assert await shared.take(fingerprint) == 2
    for _ in range(-FLOOR + 5):
        last = await shared.take(fingerprint)
    assert last == 121


async def test_r165_concurrent_requests_through_two_stores_lose_no_update(pg_url: str) -> None:
    """Two stores (two nodes) take 100 tokens each at once from one bucket: every take
    sees the balance the one before it left, so the balances returned are exactly those of
    200 takes in a row (59 down to -120, then -120), and 60 are allowed."""
    first, second = await Store.open(pg_url), await Store.open(pg_url)
    fingerprint = uuid.uuid4().hex
    try:
        started = time.monotonic()
        balances = await asyncio.gather(
            *(
                store.take_rate_token(fingerprint, burst=BURST, floor=FLOOR)
                for _ in range(100)
                for store in (first, second)
            )
        )
        elapsed = time.monotonic() - started
    finally:
        await first.close()
        await second.close()
    allowed = sum(1 for balance in balances if balance >= 0)
    assert BURST <= allowed <= BURST + int(elapsed) + 1
    if elapsed < 1:  # no whole second passed: the exact serial outcome
        serial = [max(BURST - 1 - n, FLOOR) for n in range(200)]
        assert sorted(balances) == sorted(serial)


async def test_s7_full_buckets_are_purged_and_active_ones_kept(
    pg_store: Store, pg_url: str
) -> None:
    active, full = uuid.uuid4().hex, uuid.uuid4().hex
    for fingerprint in (active, full):
        for _ in range(5):
            await pg_store.take_rate_token(fingerprint, burst=BURST, floor=FLOOR)
    await _elapse(pg_url, full, 10)  # 55 + 10 tokens: full again
    assert await pg_store.purge_full_rate_buckets(BURST) >= 1
    left = await _fingerprints(pg_url)
    assert active in left and full not in left
    # A purged bucket is a full one: the next request starts from 60 again.
    assert await pg_store.take_rate_token(full, burst=BURST, floor=FLOOR) == BURST - 1


async def test_s12_sqlite_keeps_its_buckets_in_the_process(store: Store) -> None:
    """One node on SQLite: in-memory buckets; PostgreSQL: the database's."""
    limiter = rate_limiter_for(store)
    if store.backend == "sqlite":
        assert isinstance(limiter, RateLimiter)
        assert await store.purge_full_rate_buckets(BURST) == 0
    else:
        assert isinstance(limiter, SharedRateLimiter)


async def test_s7_housekeeping_purges_full_buckets(pg_store: Store, pg_url: str) -> None:
    """The server's periodic purge (docs/storage.md#housekeeping) takes the full buckets."""
    fingerprint = uuid.uuid4().hex
    await pg_store.take_rate_token(fingerprint, burst=BURST, floor=FLOOR)
    await _elapse(pg_url, fingerprint, 5)
    keeper = Housekeeping(pg_store, lambda: int(time.time()), rate_limit_burst=BURST)
    keeper.start()
    try:
        for _ in range(100):
            if fingerprint not in await _fingerprints(pg_url):
                break
            await asyncio.sleep(0.02)
    finally:
        await keeper.close()
    assert fingerprint not in await _fingerprints(pg_url)


async def _fingerprints(url: str) -> set[str]:
    conn = await asyncpg.connect(url)
    try:
        return {row[0] for row in await conn.fetch("SELECT fingerprint FROM rate_limits")}
    finally:
        await conn.close()
