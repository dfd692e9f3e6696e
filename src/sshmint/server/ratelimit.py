"""Per-signing-key token buckets for ``POST /exec`` (SPEC §7, step 7).

One bucket per key fingerprint (exe0 and exe1 tokens of one key share it):

- a bucket starts with :data:`BURST` (60) tokens;
- it regains one token per *whole* elapsed second, never above :data:`BURST`;
- a request is allowed iff the balance is positive;
- every request that reaches the check, allowed or not, lowers the balance by one, but
  never below :data:`FLOOR` (−120), so a client that keeps sending while limited stays
  limited until it pauses long enough for the balance to climb above zero.

A bucket that has refilled to :data:`BURST` is indistinguishable from a missing one, so
full buckets are evicted; memory is bounded by the keys active in the last few minutes.
The clock is injected (seconds, monotonic), which keeps the arithmetic testable.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["BURST", "FLOOR", "RateLimiter"]

BURST = 60
FLOOR = -120
# Sweep for full buckets once the table grows past this many entries.
_SWEEP_THRESHOLD = 4096


@dataclass(slots=True)
class _Bucket:
    balance: int
    # Time from which the next whole second of refill is counted.
    refilled_at: float


class RateLimiter:
    """Token buckets keyed by fingerprint; ``check(fp)`` consumes one and says if allowed."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._sweep_at = _SWEEP_THRESHOLD

    def __len__(self) -> int:
        return len(self._buckets)

    def check(self, fingerprint: str) -> bool:
        """Record one request for ``fingerprint``; True iff it is within the limit."""
        now = self._clock()
        bucket = self._buckets.get(fingerprint)
        if bucket is None:
            bucket = self._buckets[fingerprint] = _Bucket(BURST, now)
        else:
            self._refill(bucket, now)
        allowed = bucket.balance > 0
        bucket.balance = max(FLOOR, bucket.balance - 1)
        if len(self._buckets) >= self._sweep_at:
            self._sweep(now)
        return allowed

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
