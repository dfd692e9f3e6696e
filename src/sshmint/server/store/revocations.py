"""The store's revoked tokens (docs/lifecycle.md#revoking-one-token): one row per revoked
exe0 string, keyed by its SHA-256, never the token itself (docs/storage.md#schema).

Whether a presented token is revoked is not read here: the token path's key lookup joins
the table (``queries.TOKEN_LOOKUP``), so the check costs no round trip of its own. A row is
useless once the token's ``exp`` has passed (the token fails its claims first), and the
periodic purge deletes it (docs/storage.md#housekeeping).
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from sshmint.server.store import queries as q
from sshmint.server.store.core import StoreCore, bounded
from sshmint.server.store.records import Row
from sshmint.server.store.schema import token_revocations
from sshmint.valuetypes import value_type

__all__ = ["Revocation", "Revocations"]


@value_type
@dataclass(frozen=True, slots=True)
class Revocation:
    """One revoked token: ``token_hash`` is the lower-case hex SHA-256 of the exe0 string,
    ``fingerprint`` its signing key's (no prefix), ``exp`` the token's (``None``: none);
    ``key_name`` is the key's current name, ``None`` once the key is removed."""

    token_hash: str
    user_id: str
    fingerprint: str
    revoked_at: int
    exp: int | None
    key_name: str | None


def _revocation(row: Row) -> Revocation:
    return Revocation(
        token_hash=row[0],
        user_id=row[1],
        fingerprint=row[2],
        revoked_at=int(row[3]),
        exp=None if row[4] is None else int(row[4]),
        key_name=row[5],
    )


class Revocations(StoreCore):
    """Revoked tokens of every user."""

    @bounded
    async def revoke_token(
        self, token_hash: str, user_id: str, fingerprint: str, exp: int | None, now: int
    ) -> bool:
        """Record the revocation; revoking a revoked token again changes nothing (the
        first revocation time stays). Returns whether this call wrote the row."""
        insert = postgresql.insert if self.backend == "postgresql" else sqlite.insert
        stmt = (
            insert(token_revocations)
            .values(
                token_hash=token_hash,
                user_id=user_id,
                fingerprint=fingerprint,
                revoked_at=now,
                exp=exp,
            )
            .on_conflict_do_nothing(index_elements=[token_revocations.c.token_hash])
            .returning(token_revocations.c.token_hash)
        )
        async with self._transaction(write=True) as conn:
            result = await conn.execute(stmt)
            return result.first() is not None

    async def revocations_of_user(self, user_id: str, now: int) -> list[Revocation]:
        """The user's revocations whose token has not expired by ``now``, newest first."""
        rows = await self._read(q.REVOCATIONS_OF_USER, {"user_id": user_id, "now": now})
        return [_revocation(row) for row in rows]

    @bounded
    async def revocation_purge_expired(self, now: int) -> int:
        """Delete revocations whose token expired before ``now`` (its ``exp < now``: the
        token fails its claims without them); returns the count. Revocations of tokens
        without ``exp`` stay."""
        async with self._transaction(write=True) as conn:
            result = await conn.execute(
                sa.delete(token_revocations)
                .where(token_revocations.c.exp < now)
                .returning(token_revocations.c.token_hash)
            )
            return len(result.all())
