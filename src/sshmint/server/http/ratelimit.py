"""Per-signing-key token buckets for ``POST /exec`` (docs/http-api.md#post-exec, step 7).

One bucket per key fingerprint (exe0 and exe1 tokens of one key share it):

- a bucket starts with :data:`BURST` (60) tokens;
- it regains one token per *whole* elapsed second, never above :data:`BURST`;
- a request is allowed iff the balance is positive;
- every request that reaches the check, allowed or not, lowers the balance by one, but
  never below :data:`FLOOR` (−120), so a client that keeps sending while limited stays
  limited until it pauses long enough for the balance to climb above zero.

A refused request is told when to come back (docs/http-api.md#retry-after, ``Retry-After``):
:func:`retry_after_seconds` is a pure function of the balance, the refill rate and the
floor, so a bucket kept elsewhere (a database shared by several nodes) answers the same.

A bucket that has refilled to :data:`BURST` is indistinguishable from a missing one, so
full buckets are evicted; memory is bounded by the keys active in the last few minutes.
The clock is injected (seconds, monotonic), which keeps the arithmetic testable.

Where the buckets live (docs/http-api.md#rate-limit-across-nodes): on SQLite (one node) in
this process (:class:`RateLimiter`); on PostgreSQL in the database, shared by every node
(:class:`SharedRateLimiter`: one statement per request, the same arithmetic in SQL, see
``server/store/rate_limits.py``). :func:`rate_limiter_for` picks; both answer ``take``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from sshmint.server.store import Store

__all__ = [
    "BURST",
    "FLOOR",
    "REFILL_PER_SECOND",
    "KeyRateLimit",
    "RateLimiter",
    "SharedRateLimiter",
    "rate_limiter_for",
    "retry_after_seconds",
]

BURST = 60
FLOOR = -120
# Tokens regained per whole elapsed second.
REFILL_PER_SECOND = 1
# Sweep for full buckets once the table grows past this many entries.
_SWEEP_THRESHOLD = 4096


def retry_after_seconds(
    balance: int, *, refill_per_second: int = REFILL_PER_SECOND, floor: int = FLOOR
) -> int:
    """docs/http-api.md#retry-after: the whole seconds after which a bucket left at ``balance`` (by the
    request just refused) is positive again if nothing more is sent; 0 if it already is.

    Tokens come back ``refill_per_second`` at a time, each time another whole second has
    passed since the bucket's last refill; that moment is less than a second away (the
    fraction already elapsed is kept), so ``k`` refills take at most ``k`` seconds and
    more than ``k - 1``: the answer is ``ceil((1 - balance) / refill_per_second)``
    whatever the fraction. With the defaults: balance -1 (the 61st request of a burst)
    gives 2, the floor (-120) gives 121, the largest answer there is.
    """
    if balance > 0:
        return 0
    balance = max(balance, floor)
    return -(-(1 - balance) // refill_per_second)


@dataclass(slots=True)
class _Bucket:
    balance: int
    # Time from which the next whole second of refill is counted.
    refilled_at: float


class KeyRateLimit(Protocol):
    """What ``/exec`` step 7 asks: take a token of the key's bucket."""

    async def take(self, fingerprint: str) -> int:
        """0 if the request is within the limit, else its ``Retry-After`` seconds."""
        ...


class SharedRateLimiter:
    """The buckets in the database (PostgreSQL), shared by every node using it: one
    statement per request. A database failure raises ``StoreError`` (the caller fails
    closed)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def take(self, fingerprint: str) -> int:
        balance = await self._store.take_rate_token(fingerprint, burst=BURST, floor=FLOOR)
        return 0 if balance >= 0 else retry_after_seconds(balance)


def rate_limiter_for(store: Store) -> KeyRateLimit:
    """The buckets of docs/http-api.md#rate-limit-across-nodes: in the database on
    PostgreSQL (several nodes may share it), in this process on SQLite."""
    if store.backend == "postgresql":
        return SharedRateLimiter(store)
    return RateLimiter()


class RateLimiter:
    """Token buckets keyed by fingerprint; ``consume(fp)`` takes one and answers 0 if the
    request is allowed, else its ``Retry-After`` seconds."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._sweep_at = _SWEEP_THRESHOLD

    def __len__(self) -> int:
        return len(self._buckets)

    def consume(self, fingerprint: str) -> int:
        """Record one request for ``fingerprint``: 0 if it is within the limit, else the
        seconds after which the next one will be (docs/http-api.md#retry-after, always 1 to 121)."""
        now = self._clock()
        bucket = self._buckets.get(fingerprint)
        if bucket is None:
            bucket = self._buckets[fingerprint] = _Bucket(BURST, now)
        else:
            self._refill(bucket, now)
        balance = bucket.balance
        bucket.balance = balance - 1 if balance > FLOOR else FLOOR
        if len(self._buckets) >= self._sweep_at:
            self._sweep(now)
        if balance > 0:
            return 0
        return retry_after_seconds(bucket.balance)

    async def take(self, fingerprint: str) -> int:
        """:meth:`consume`, as :class:`KeyRateLimit` asks it."""
        return self.consume(fingerprint)

    def check(self, fingerprint: str) -> bool:
        """Record one request for ``fingerprint``; True iff it is within the limit."""
        return self.consume(fingerprint) == 0

    def balance(self, fingerprint: str) -> int:
        """The current balance (after refill), without consuming anything."""
        bucket = self._buckets.get(fingerprint)
        if bucket is None:
            return BURST
        self._refill(bucket, self._clock())
        return bucket.balance

    @staticmethod
    def _refill(bucket: _Bucket, now: float) -> None:
        if bucket.balance >= BURST:
            # A full bucket gains nothing: restart the second count from now.
            bucket.refilled_at = now
            return
        whole_seconds = int(now - bucket.refilled_at)
        if whole_seconds <= 0:
            return
        bucket.balance = min(BURST, bucket.balance + whole_seconds)
        # Keep the fraction of a second already elapsed towards the next token.
        bucket.refilled_at += whole_seconds
        if bucket.balance >= BURST:
            bucket.refilled_at = now

    def _sweep(self, now: float) -> None:
        for fingerprint, bucket in list(self._buckets.items()):
            self._refill(bucket, now)
            if bucket.balance >= BURST:
                del self._buckets[fingerprint]
        # Buckets still draining belong to recently active keys; sweep again only once
        # the table has doubled, so sweeping stays amortised O(1) per request.
        self._sweep_at = max(_SWEEP_THRESHOLD, 2 * len(self._buckets))
