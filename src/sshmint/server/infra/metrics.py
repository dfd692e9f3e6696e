"""Prometheus metrics (docs/operations.md#metrics): the families, their values, and the
listener that serves them at ``GET /metrics``.

:class:`Metrics` holds every family of docs/operations.md#metrics in a registry of its own
(never the library's global one) with the library's process collector. The values are
plain numbers updated on the event loop, and a collector turns them into
``prometheus_client`` families when ``/metrics`` is read: updating a library ``Counter``
child costs about a microsecond (a lock per value) and a ``Histogram`` observation three,
where a dictionary increment and a bisection cost a tenth of that — and the HTTP
front end makes two of them on every request. Everything runs on the one event loop
thread, so the numbers need no lock.

Label values come from fixed sets (routes, transports, causes, results, statuses), from
the HTTP status code, or from the command tree's own names: never from what a client
sent, so no label is ever a user id, email, VM name, fingerprint, path or token. Label
sets known in advance are present from the start, at zero.

:class:`MetricsListener` serves the registry on its own sockets (``--metrics-listen``),
never on the API listener.
"""

from __future__ import annotations

import socket
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence
from typing import Final, Literal

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from sshmint.errors import FAILURE_CAUSES, FailureCause

__all__ = [
    "COMMAND_STATUSES",
    "DURATION_BUCKETS",
    "ROUTES",
    "SESSION_RESULTS",
    "TRANSPORTS",
    "UNKNOWN_COMMAND",
    "Histogram",
    "Metrics",
    "MetricsListener",
    "Route",
    "Transport",
]

Route = Literal["exec", "proxy", "healthz", "other"]
Transport = Literal["exec", "proxy", "ssh"]

ROUTES: Final[tuple[Route, ...]] = ("exec", "proxy", "healthz", "other")
TRANSPORTS: Final[tuple[Transport, ...]] = ("exec", "proxy", "ssh")
SESSION_RESULTS: Final = ("accepted", "refused")
COMMAND_STATUSES: Final = ("ok", "error")
#: The ``command`` label of a command line that names no command of the tree.
UNKNOWN_COMMAND: Final = "unknown"
# Seconds: from a tenth of a millisecond (a /healthz or a memoised /exec answer) to the
# --exec-timeout and --upstream-timeout defaults.
DURATION_BUCKETS: Final[tuple[float, ...]] = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip


class Histogram:
    """One histogram series: a count per bucket of :data:`DURATION_BUCKETS` (plus +Inf)
    and the sum of the values observed."""

    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(DURATION_BUCKETS) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(DURATION_BUCKETS, value)] += 1
        self.total += value

    def buckets(self) -> list[tuple[str, float]]:
        """Cumulative counts by upper bound, as the exposition format wants them."""
        out: list[tuple[str, float]] = []
        running = 0
        for bound, count in zip((*DURATION_BUCKETS, float("inf")), self.counts, strict=True):
            running += count
            out.append(("+Inf" if bound == float("inf") else repr(bound), running))
        return out


def _increment(counts: dict[tuple[str, ...], float], key: tuple[str, ...]) -> None:
    try:
        counts[key] += 1
    except KeyError:
        counts[key] = 1


class Metrics:
    """Every family of docs/operations.md#metrics, updated by the observer
    (:mod:`sshmint.server.infra.observe`) and read by :class:`MetricsListener`."""

    def __init__(self) -> None:
        # (route, status code) -> requests; the status is an int until exposition.
        self.http_requests: dict[tuple[str, int], float] = {}
        self.http_durations: dict[str, Histogram] = {route: Histogram() for route in ROUTES}
        self.auth_failures: dict[tuple[str, ...], float] = {
            (transport, cause): 0 for transport in TRANSPORTS for cause in FAILURE_CAUSES
        }
        self.rate_limited = 0
        self.ssh_sessions: dict[tuple[str, ...], float] = {
            (result,): 0 for result in SESSION_RESULTS
        }
        self.commands: dict[tuple[str, ...], float] = {}
        self.upstream_duration = Histogram()
        self.upstream_errors = 0
        self.db_errors = 0
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(_Collector(self))
        ProcessCollector(registry=self.registry)

    # -- updates (event loop only) ---------------------------------------------------------

    def http_request(self, route: str, status: int, seconds: float) -> None:
        key = (route, status)
        counts = self.http_requests
        try:
            counts[key] += 1
        except KeyError:
            counts[key] = 1
        self.http_durations[route].observe(seconds)

    def auth_failure(self, transport: Transport, cause: FailureCause) -> None:
        _increment(self.auth_failures, (transport, cause))

    def ssh_session(self, accepted: bool) -> None:
        _increment(self.ssh_sessions, (SESSION_RESULTS[0] if accepted else SESSION_RESULTS[1],))

    def command(self, transport: Transport, command: str | None, ok: bool) -> None:
        """``command`` is a name of the command tree, or None for a line naming none."""
        status = COMMAND_STATUSES[0] if ok else COMMAND_STATUSES[1]
        _increment(self.commands, (transport, command or UNKNOWN_COMMAND, status))

    # -- exposition ------------------------------------------------------------------------

    def exposition(self) -> bytes:
        """The registry in the Prometheus text format."""
        return generate_latest(self.registry)


def _counter(
    name: str,
    documentation: str,
    labels: Sequence[str],
    values: Iterable[tuple[Sequence[str], float]],
) -> CounterMetricFamily:
    family = CounterMetricFamily(name, documentation, labels=labels)
    for label_values, value in values:
        family.add_metric(label_values, value)
    return family


def _histogram(
    name: str,
    documentation: str,
    labels: Sequence[str],
    series: Iterable[tuple[Sequence[str], Histogram]],
) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, documentation, labels=labels)
    for label_values, histogram in series:
        family.add_metric(label_values, histogram.buckets(), histogram.total)
    return family


class _Collector(Collector):
    """The families of a :class:`Metrics`, built from its numbers at each scrape."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        m = self._metrics
        yield _counter(
            "sshmint_http_requests_total",
            "HTTP requests answered, by route and status code.",
            ("route", "code"),
            (((route, str(code)), n) for (route, code), n in sorted(m.http_requests.items())),
        )
        yield _histogram(
            "sshmint_http_request_duration_seconds",
            "Time from a request's head to the end of its answer, by route.",
            ("route",),
            (((route,), h) for route, h in m.http_durations.items()),
        )
        yield _counter(
            "sshmint_auth_failures_total",
            "Refused tokens and SSH logins, by transport and cause.",
            ("transport", "reason"),
            sorted(m.auth_failures.items()),
        )
        yield _counter(
            "sshmint_rate_limited_total",
            "/exec requests refused by the rate limit.",
            (),
            [((), m.rate_limited)],
        )
        yield _counter(
            "sshmint_ssh_sessions_total",
            "SSH sessions, accepted or refused (unregistered key, locked account).",
            ("result",),
            sorted(m.ssh_sessions.items()),
        )
        yield _counter(
            "sshmint_commands_total",
            "Commands run, by transport, command name (or unknown) and outcome.",
            ("transport", "command", "status"),
            sorted(m.commands.items()),
        )
        yield _histogram(
            "sshmint_proxy_upstream_duration_seconds",
            "Time from sending a request upstream to its response head.",
            (),
            [((), m.upstream_duration)],
        )
        yield _counter(
            "sshmint_proxy_upstream_errors_total",
            "Proxied requests whose upstream failed (unreachable, closed, timed out).",
            (),
            [((), m.upstream_errors)],
        )
        yield _counter(
            "sshmint_db_errors_total",
            "Database calls that failed or passed their deadline.",
            (),
            [((), m.db_errors)],
        )


class MetricsListener:
    """``GET /metrics`` (and ``HEAD``) on the ``--metrics-listen`` sockets; anything else
    is 404 or 405. No access log: a scraper's requests are not the service's."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._runner: web.ServerRunner | None = None

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        if request.path != "/metrics":
            return web.Response(status=404, text="not found\n")
        if request.method not in ("GET", "HEAD"):
            return web.Response(
                status=405, text="method not allowed\n", headers={"Allow": "GET, HEAD"}
            )
        return web.Response(
            body=self._metrics.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def start(self, sockets: list[socket.socket]) -> None:
        server = web.Server(self._handle, access_log=None)
        self._runner = web.ServerRunner(server, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        for sock in sockets:
            await web.SockSite(self._runner, sock).start()

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
