"""Housekeeping (docs/storage.md#housekeeping): expired exe1 rows are deleted by every running server,
at start and then periodically; several nodes may purge concurrently without error."""

from __future__ import annotations

import asyncio
import time

from sshmint.server.store import Store
from sshmint.server.store.housekeeping import PURGE_INTERVAL_S, Housekeeping
from tests.support.polling import wait_until
from tests.support.server_fixtures import ServerFactory
from tests.support.store_audit import dump_tables

NOW = 1_900_000_000


async def _put_handles(
    store: Store, count: int, *, expired: bool, tag: str, now: int = NOW
) -> None:
    expires = now - 10 if expired else now + 3600
    for i in range(count):
        assert await store.exe1_put(f"{tag}{i:060d}", b"sealed", expires, now - 100)


async def _hashes(store: Store) -> set[str]:
    tables = await dump_tables(store)
    return {str(row[0]) for row in tables["exe1_tokens"]}


def test_s11_8_purge_runs_at_least_hourly() -> None:
    assert PURGE_INTERVAL_S <= 3600


async def test_s11_8_purge_repeats_and_keeps_live_handles(db_url: str) -> None:
    store = await Store.open(db_url)
    try:
        await _put_handles(store, 3, expired=False, tag="live")
        await _put_handles(store, 5, expired=True, tag="old")
        keeper = Housekeeping(store, lambda: NOW, interval=0.05)
        keeper.start()
        try:
            for _ in range(20):
                if not any(h.startswith("old") for h in await _hashes(store)):
                    break
                await asyncio.sleep(0.05)
            assert {h[:4] for h in await _hashes(store)} == {"live"}
            # A second round of expired rows goes too: the purge is periodic, not once.
            await _put_handles(store, 2, expired=True, tag="late")
            for _ in range(40):
                if not any(h.startswith("late") for h in await _hashes(store)):
                    break
                await asyncio.sleep(0.05)
            assert {h[:4] for h in await _hashes(store)} == {"live"}
        finally:
            await keeper.close()
    finally:
        await store.close()


async def test_s11_8_concurrent_purges_of_several_nodes_do_not_fail(db_url: str) -> None:
    stores = [await Store.open(db_url) for _ in range(3)]
    try:
        await _put_handles(stores[0], 50, expired=True, tag="old")
        counts = await asyncio.gather(
            *(Housekeeping(store, lambda: NOW).purge_once() for store in stores for _ in range(2))
        )
        assert sum(counts) == 50
        assert await _hashes(stores[0]) == set()
    finally:
        for store in stores:
            await store.close()


def test_s11_8_a_starting_server_purges_expired_handles(
    server_factory: ServerFactory, db_url: str
) -> None:
    async def seed() -> None:
        store = await Store.open(db_url)
        try:
            await _put_handles(store, 4, expired=True, tag="old", now=int(time.time()))
        finally:
            await store.close()

    async def remaining() -> set[str]:
        store = await Store.open(db_url)
        try:
            return await _hashes(store)
        finally:
            await store.close()

    asyncio.run(seed())
    server_factory(db_url)
    assert wait_until(lambda: asyncio.run(remaining()) == set(), timeout=20)
