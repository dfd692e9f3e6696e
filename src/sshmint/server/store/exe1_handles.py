"""The store's exe1 handles (docs/tokens.md#exe1-tokens, docs/tokens.md#exe1-resolution,
docs/storage.md#nothing-usable-at-rest): the derivation secret, live handles, their purge."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from sshmint.server.store import queries as q
from sshmint.server.store.core import StoreCore, bounded
from sshmint.server.store.engine import Backend
from sshmint.server.store.errors import StoreUnavailable
from sshmint.server.store.schema import EXE1_SECRET_NAME, exe1_tokens

__all__ = ["Exe1Handles", "put_exe1"]


class Exe1Handles(StoreCore):
    """exe1 handles; the secret is immutable once made, so it is the one thing cached."""

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

    @bounded
    async def exe1_put(self, exe1_hash: str, exe0_sealed: bytes, expires_at: int, now: int) -> bool:
        """Store a handle: insert, or replace an expired row with the same hash.

        A live row with the same hash is kept (its exe1 derives from the same exe0, so
        it is the same handle); returns whether this call wrote the row.
        """
        async with self._transaction(write=True) as conn:
            return await put_exe1(conn, self.backend, exe1_hash, exe0_sealed, expires_at, now)

    @bounded
    async def exe1_purge_expired(self, now: int) -> int:
        """Delete handles with ``expires_at < now`` (docs/storage.md#schema allows it); returns the count."""
        async with self._transaction(write=True) as conn:
            result = await conn.execute(
                sa.delete(exe1_tokens)
                .where(exe1_tokens.c.expires_at < now)
                .returning(exe1_tokens.c.exe1_hash)
            )
            return len(result.all())


async def put_exe1(
    conn: AsyncConnection,
    backend: Backend,
    exe1_hash: str,
    exe0_sealed: bytes,
    expires_at: int,
    now: int,
) -> bool:
    """Insert a handle, or replace an expired row with the same hash, in the transaction of
    ``conn``; returns whether the row was written (a live one is kept)."""
    values = {
        "exe1_hash": exe1_hash,
        "exe0_sealed": exe0_sealed,
        "expires_at": expires_at,
        "created_at": now,
    }
    insert = postgresql.insert if backend == "postgresql" else sqlite.insert
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
