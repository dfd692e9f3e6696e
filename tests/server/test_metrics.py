"""The metrics layer in-process (docs/operations.md#metrics,
src/sshmint/server/infra/metrics.py and observe.py): the families and their label names,
histogram arithmetic, and how the observer turns reports into numbers. The same rules
against a real server, with curl: tests/server/test_observability.py."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client.parser import text_string_to_metric_families

from sshmint.errors import FAILURE_CAUSES, FailureCause
from sshmint.server.infra.metrics import DURATION_BUCKETS, Histogram, Metrics
from sshmint.server.infra.observe import Observer, current_scope, note_command, open_scope


def _samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(metrics.exposition().decode())
        for s in family.samples
    }


def test_r169_families_exist_from_the_start_with_known_label_sets_at_zero() -> None:
    samples = _samples(Metrics())
    auth = {labels for name, labels in samples if name == "sshmint_auth_failures_total"}
    assert len(auth) == 3 * len(FAILURE_CAUSES)
    assert all(samples[("sshmint_auth_failures_total", labels)] == 0 for labels in auth)
    for name in (
        "sshmint_rate_limited_total",
        "sshmint_proxy_upstream_errors_total",
        "sshmint_db_errors_total",
        "sshmint_proxy_upstream_duration_seconds_count",
    ):
        assert samples[(name, ())] == 0, name
    for result in ("accepted", "refused"):
        assert samples[("sshmint_ssh_sessions_total", (("result", result),))] == 0
    for route in ("exec", "proxy", "healthz", "other"):
        assert samples[("sshmint_http_request_duration_seconds_count", (("route", route),))] == 0
    assert any(name.startswith("process_") for name, _ in samples)


def test_histogram_buckets_are_cumulative_and_bounded_above() -> None:
    histogram = Histogram()
    for value in (0.00005, 0.0001, 0.0003, 0.02, 100.0):
        histogram.observe(value)
    buckets = dict(histogram.buckets())
    assert buckets["0.0001"] == 2  # a value on a bound counts in that bucket (le)
    assert buckets["0.0005"] == 3
    assert buckets["0.025"] == 4
    assert buckets[repr(DURATION_BUCKETS[-1])] == 4
    assert buckets["+Inf"] == 5
    assert histogram.total == pytest.approx(100.0204)


async def test_observer_counts_under_the_scope_of_each_request() -> None:
    """A refused token counts under its scope's transport and tells the scope its cause;
    /exec's 429s, its resolved commands and their outcome are counted when the request
    ends; nothing is counted for a token checked outside any scope."""
    metrics = Metrics()
    observer = Observer(metrics)
    observer.token_refused("expired")  # no scope: a test or a tool, not a transport

    async def exec_request(
        status: int, command: str | None, cause: FailureCause | None = None, resolved: bool = True
    ) -> None:
        scope = open_scope("exec")
        if cause is not None:
            observer.token_refused(cause)
            assert current_scope() is scope and scope.auth_failure == cause
        else:
            observer.token_accepted("usr0123456789abcdef", "fp")
            if resolved:  # the request reached step 14
                note_command(command)
        observer.http_request(scope, status, 0.001)

    async def proxy_request() -> None:
        scope = open_scope("proxy")
        observer.token_refused("bad_signature")
        observer.http_request(scope, 401, 0.001)

    await asyncio.gather(
        exec_request(200, "whoami"),
        exec_request(422, "rm"),
        exec_request(404, None),
        exec_request(429, None, resolved=False),
        exec_request(401, None, "unknown_key"),
        proxy_request(),
    )
    assert metrics.auth_failures[("exec", "unknown_key")] == 1
    assert metrics.auth_failures[("proxy", "bad_signature")] == 1
    assert sum(metrics.auth_failures.values()) == 2
    assert metrics.rate_limited == 1
    assert metrics.commands == {
        ("exec", "whoami", "ok"): 1,
        ("exec", "rm", "error"): 1,
        ("exec", "unknown", "error"): 1,
    }
    assert metrics.http_requests[("exec", 429)] == 1


async def test_observer_ssh_upstream_and_database_reports() -> None:
    metrics = Metrics()
    observer = Observer(metrics)
    observer.ssh_session(True)
    observer.ssh_session(False, "unknown_key")
    observer.ssh_command(
        user_id="usr0", fingerprint="fp", command=None, exit_status=1, seconds=0.1, remote="-"
    )
    observer.db_error()

    async def answer() -> int:
        return 7

    async def fail() -> int:
        raise ConnectionResetError

    assert await observer.upstream(answer()) == 7
    with pytest.raises(ConnectionResetError):
        await observer.upstream(fail())
    assert metrics.ssh_sessions == {("accepted",): 1, ("refused",): 1}
    assert metrics.auth_failures[("ssh", "unknown_key")] == 1
    assert metrics.commands == {("ssh", "unknown", "error"): 1}
    assert metrics.db_errors == 1
    assert metrics.upstream_errors == 1
    assert sum(metrics.upstream_duration.counts) == 1  # only the answer is timed


async def test_without_metrics_the_observer_keeps_no_numbers() -> None:
    observer = Observer(None)
    scope = open_scope("exec")
    observer.token_refused("expired")
    observer.http_request(scope, 200, 0.1)
    observer.ssh_session(False, "locked")
    observer.db_error()

    async def answer() -> str:
        return "head"

    assert await observer.upstream(answer()) == "head"
    assert scope.auth_failure == "expired"  # the access line still learns the cause
