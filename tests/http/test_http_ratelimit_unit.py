"""The per-key token bucket of docs/http-api.md#post-exec step 7 and its ``Retry-After`` answer (docs/http-api.md#retry-after),
driven by an injected clock."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sshmint.server.http.ratelimit import BURST, FLOOR, RateLimiter, retry_after_seconds


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


# --- docs/http-api.md#retry-after: Retry-After ----------------------------------------------------------------


def balance_after(limiter: RateLimiter, clock: Clock, seconds: float) -> int:
    """The balance of "fp" ``seconds`` from now if nothing is sent meanwhile (a copy of the
    limiter on its own clock: the original is left as it was)."""
    probe_clock = Clock()
    probe_clock.now = clock.now + seconds
    probe = copy.deepcopy(limiter, memo={id(clock): probe_clock})
    return probe.balance("fp")


def assert_exact_retry_after(limiter: RateLimiter, clock: Clock, retry_after: int) -> None:
    """N is the least whole number of seconds after which the balance is positive."""
    assert 1 <= retry_after <= 121
    assert balance_after(limiter, clock, retry_after) > 0
    assert balance_after(limiter, clock, retry_after - 1) <= 0


@pytest.mark.parametrize(
    ("balance", "expected"),
    [(60, 0), (1, 0), (0, 1), (-1, 2), (-2, 3), (-59, 60), (-119, 120), (-120, 121), (-500, 121)],
)
def test_r162_retry_after_is_a_pure_function_of_the_balance(balance: int, expected: int) -> None:
    """ceil((1 - balance) / refill), the balance taken no lower than the floor."""
    assert retry_after_seconds(balance) == expected


def test_r162_retry_after_takes_the_refill_rate_and_floor_as_parameters() -> None:
    """The same function serves a bucket kept elsewhere with other parameters."""
    assert retry_after_seconds(-1, refill_per_second=2) == 1
    assert retry_after_seconds(-2, refill_per_second=2) == 2
    assert retry_after_seconds(-9, refill_per_second=5, floor=-10) == 2
    assert retry_after_seconds(-50, refill_per_second=1, floor=-10) == 11


def test_r162_allowed_requests_answer_0_and_the_61st_answers_2(clock: Clock) -> None:
    """The 61st request of a burst leaves the balance at -1: two refills are needed, so
    N = 2 (1 would leave it at 0, which is not positive)."""
    limiter = RateLimiter(clock)
    assert [limiter.consume("fp") for _ in range(BURST)] == [0] * BURST
    assert limiter.consume("fp") == 2
    assert_exact_retry_after(limiter, clock, 2)
    clock.now += 2
    assert limiter.consume("fp") == 0


def test_r162_a_client_retrying_every_second_is_told_2_each_time(clock: Clock) -> None:
    """Each early retry spends the token regained meanwhile, so the answer stays 2."""
    limiter = RateLimiter(clock)
    for _ in range(BURST + 1):
        limiter.consume("fp")
    for _ in range(5):
        clock.now += 1
        assert limiter.consume("fp") == 2
    clock.now += 2
    assert limiter.consume("fp") == 0


@pytest.mark.parametrize("refused", [1, 2, 10, 60, 119, 120, 121, 500])
def test_r162_retry_after_is_exact_at_every_depth(clock: Clock, refused: int) -> None:
    """After ``refused`` refusals in a row the balance is -min(refused, 120): N is one more,
    121 at the floor."""
    limiter = RateLimiter(clock)
    for _ in range(BURST):
        limiter.consume("fp")
    answers = [limiter.consume("fp") for _ in range(refused)]
    assert answers == [min(n, -FLOOR) + 1 for n in range(1, refused + 1)]
    assert_exact_retry_after(limiter, clock, answers[-1])


@pytest.mark.parametrize("fraction", [0.0, 0.25, 0.5, 0.999])
def test_r162_part_of_a_second_already_elapsed_does_not_change_n(
    clock: Clock, fraction: float
) -> None:
    """The next refill is less than a second away, so k refills take more than k - 1
    whole seconds and at most k: N is the same whatever part of a second has passed."""
    limiter = RateLimiter(clock)
    limiter.consume("fp")  # the bucket's second count starts here
    clock.now += fraction
    for _ in range(BURST + 4):
        limiter.consume("fp")
    assert limiter.balance("fp") == -5
    assert limiter.consume("fp") == 7
    assert_exact_retry_after(limiter, clock, 7)


# Pauses in 1/1024 s steps: sums of such floats are exact, so a probe "exactly N seconds
# later" is not moved across a second boundary by rounding.
_pauses = st.integers(0, 3 * 1024).map(lambda steps: steps / 1024)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(_pauses, st.integers(1, 40)), min_size=1, max_size=25))
def test_r162_every_refusal_names_the_least_whole_seconds_to_a_positive_balance(
    steps: list[tuple[float, int]],
) -> None:
    """Any pattern of pauses and bursts: every refused request's N is exact (docs/http-api.md#retry-after)."""
    clock = Clock()
    limiter = RateLimiter(clock)
    for pause, burst in steps:
        clock.now += pause
        for _ in range(burst):
            retry_after = limiter.consume("fp")
            if retry_after:
                assert_exact_retry_after(limiter, clock, retry_after)
            else:
                assert limiter.balance("fp") >= 0  # it was positive before this request


def test_s7_check_is_consume_as_a_yes_or_no(clock: Clock) -> None:
    limiter = RateLimiter(clock)
    for _ in range(BURST):
        limiter.check("fp")
    assert limiter.check("fp") is False
    clock.now += 2
    assert limiter.check("fp") is True
