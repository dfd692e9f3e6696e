"""Fixtures for the store tests: a ``Store`` on the parametrised database, and real
ssh-keygen keys in the shape it takes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from sshmint.server.store import Store
from tests.support.keys import StoreKey, make_keys

__all__ = ["keys", "store"]


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[Store]:
    """A ``Store`` opened (so migrated) on a fresh database of each backend."""
    opened = await Store.open(db_url)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> list[StoreKey]:
    """24 distinct Ed25519 public keys made by the real ssh-keygen, for the whole session."""
    return make_keys(tmp_path_factory.mktemp("store-keys"), 24)
