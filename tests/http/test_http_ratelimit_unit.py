"""The per-key token bucket of SPEC §7 step 7, driven by an injected clock."""

from __future__ import annotations

import pytest

from sshmint.server.ratelimit import BURST, FLOOR, RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_r119_a_burst_of_60_passes_and_the_61st_is_refused(clock: Clock) -> None:
    limiter = RateLimiter(clock)
    assert [limiter.check("fp") for _ in range(BURST)] == [True] * BURST
    assert limiter.check("fp") is False


def test_s7_one_token_is_regained_per_whole_second_only(clock: Clock) -> None:
    limiter = RateLimiter(clock)
    for _ in range(BURST):
        limiter.check("fp")
    assert limiter.balance("fp") == 0
    clock.now += 0.999
    assert limiter.balance("fp") == 0
    clock.now += 0.001
    assert limiter.balance("fp") == 1
    assert limiter.check("fp") is True
    assert limiter.check("fp") is False


def test_s7_fractions_of_a_second_accumulate(clock: Clock) -> None:
    limiter = RateLimiter(clock)
    for _ in range(BURST):
        limiter.check("fp")
    for _ in range(3):
        clock.now += 0.5
        limiter.balance("fp")  # refill checks in between must not lose the half seconds
    assert limiter.balance("fp") == 1


def test_s7_refused_requests_still_consume_down_to_the_floor(clock: Clock) -> None:
    limiter = RateLimiter(clock)
    for _ in range(BURST + 500):
        limiter.check("fp")
    assert limiter.balance("fp") == FLOOR
    # From the floor it takes 121 whole seconds to become positive again.
    clock.now += -FLOOR
    assert limiter.check("fp") is False
    clock.now += 2
    assert limiter.check("fp") is True


def test_s7_a_client_that_keeps_sending_stays_limited(clock: Clock) -> None:
    limiter = RateLimiter(clock)
    for _ in range(BURST + 1):
        limiter.check("fp")
    allowed = 0
    for _ in range(50):  # one request per second: each regained token is spent at once
        clock.now += 1
        allowed += limiter.check("fp")
    assert allowed == 0
    clock.now += 3  # a pause lets the balance climb above zero
    assert limiter.check("fp") is True


def test_s7_the_balance_never_exceeds_60(clock: Clock) -> None:
    limiter = RateLimiter(clock)
    limiter.check("fp")
    clock.now += 3600
    assert limiter.balance("fp") == BURST
    assert [limiter.check("fp") for _ in range(BURST + 1)].count(True) == BURST


def test_r120_buckets_are_per_fingerprint(clock: Clock) -> None:
    limiter = RateLimiter(clock)
    for _ in range(BURST + 1):
        limiter.check("a")
    assert limiter.check("a") is False
    assert limiter.check("b") is True


def test_full_buckets_are_evicted_so_memory_stays_bounded(clock: Clock) -> None:
    limiter = RateLimiter(clock)
    for number in range(10_000):
        limiter.check(f"fp{number}")
        clock.now += 0.01
    # Old buckets refilled and were dropped; only the last ~minute of keys remains.
    assert len(limiter) < 8192
    clock.now += 120
    limiter.check("trigger")
    for number in range(5000):
        limiter.check(f"late{number}")
    assert len(limiter) <= 5001 + 4096
    # An evicted key starts over with a full bucket, exactly as if it had been kept.
    assert limiter.balance("fp0") == BURST
