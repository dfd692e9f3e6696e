"""The ``/exec`` rate limit's token buckets kept in the database, so that every node using
it shares them (docs/http-api.md#rate-limit-across-nodes). PostgreSQL only: on SQLite
(one node) the buckets stay in the process (``server/http/ratelimit.py``).

One statement per rate-limited request, :func:`take_statement`: an upsert on the UNLOGGED table
``rate_limits`` that refills the bucket by the whole seconds elapsed, takes one token and
returns the balance left, all under the row's lock, so concurrent requests of one key on
any number of nodes each see the bucket as the one before them left it. The arithmetic is
that of the in-memory bucket (see ``RateLimiter`` there), step for step:

- ``elapsed`` = whole seconds since ``refilled_at`` (never negative);
- ``refilled`` = ``least(burst, balance + elapsed)``;
- the new balance is ``greatest(refilled - 1, floor)``: the request was allowed iff it is
  ``>= 0`` (``refilled`` was positive);
- ``refilled_at`` moves on by the whole seconds counted, keeping the fraction already
  elapsed, or becomes now when the bucket is full (a full bucket gains nothing);
- a fingerprint without a row starts full: ``burst - 1`` left, refilled now.

"Now" is the database's clock (``clock_timestamp()``, seconds since the epoch as a
``double precision``), never a node's: nodes' clocks may differ, the database has one.

A full bucket behaves as a missing one, so :meth:`RateLimits.purge_full_rate_buckets`
(housekeeping) deletes those rows; the table holds the keys active in the last minutes.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from sshmint.server.store.core import StoreCore, bounded
from sshmint.server.store.queries import PgStatement, compile_for_postgres
from sshmint.server.store.schema import rate_limits

__all__ = ["RateLimits", "take", "take_statement"]


# Constants are written into the statement, not sent as parameters.
_ZERO: sa.ColumnClause[int] = sa.literal_column("0", sa.Integer)
_ONE: sa.ColumnClause[int] = sa.literal_column("1", sa.Integer)


def _now() -> sa.ColumnElement[Any]:
    return sa.cast(sa.extract("epoch", sa.func.clock_timestamp()), sa.Float)


def take_statement() -> sa.Insert:
    """The bucket upsert; parameters ``fp``, ``burst`` and ``floor``; returns ``balance``."""
    bucket = rate_limits.c
    burst = sa.bindparam("burst", type_=sa.Integer)
    insert = postgresql.insert(rate_limits).values(
        fingerprint=sa.bindparam("fp", type_=sa.Text),
        balance=burst - _ONE,
        refilled_at=_now(),
    )
    now = insert.excluded.refilled_at  # the moment of this request, taken once
    elapsed = sa.func.greatest(sa.func.floor(now - bucket.refilled_at), _ZERO)
    refilled = sa.func.least(burst, bucket.balance + elapsed)
    return insert.on_conflict_do_update(
        index_elements=[bucket.fingerprint],
        set_={
            "balance": sa.func.greatest(
                sa.cast(refilled, sa.Integer) - _ONE, sa.bindparam("floor", type_=sa.Integer)
            ),
            "refilled_at": sa.case((refilled >= burst, now), else_=bucket.refilled_at + elapsed),
        },
    ).returning(bucket.balance)


@functools.cache
def take() -> PgStatement:
    """:func:`take_statement` compiled for asyncpg (once, on first use)."""
    return compile_for_postgres(take_statement())


class RateLimits(StoreCore):
    """The shared token buckets (PostgreSQL)."""

    async def take_rate_token(self, fingerprint: str, *, burst: int, floor: int) -> int:
        """Take one token from the bucket of ``fingerprint`` (refilled first); the balance
        left: ``>= 0`` iff the request is allowed. One statement, within the deadline;
        ``StoreUnavailable`` when the database fails."""
        pg_fast = self._pg_fast
        if pg_fast is None:
            raise RuntimeError("buckets are kept in the database on PostgreSQL only")
        rows: Sequence[Any] = await pg_fast.fetch(
            take(), {"fp": fingerprint, "burst": burst, "floor": floor}, self._timeout
        )
        return int(rows[0][0])

    @bounded
    async def purge_full_rate_buckets(self, burst: int) -> int:
        """Delete the buckets that have refilled completely (indistinguishable from no
        row); the number deleted. Nothing to do on SQLite."""
        if self.backend != "postgresql":
            return 0
        bucket = rate_limits.c
        elapsed = sa.func.floor(_now() - bucket.refilled_at)
        async with self._transaction(write=True) as conn:
            result = await conn.execute(
                sa.delete(rate_limits)
                .where(bucket.balance + elapsed >= burst)
                .returning(bucket.fingerprint)
            )
            return len(result.all())
