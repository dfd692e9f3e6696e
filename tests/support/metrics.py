"""Reading a live server's Prometheus metrics (docs/operations.md#metrics) in tests."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from tests.support.harness import SSHMintServer
from tests.support.http_support import curl

__all__ = ["samples", "scrape", "value"]


def scrape(server: SSHMintServer) -> str:
    """``GET /metrics`` on the server's metrics listener: 200, text exposition format."""
    reply = curl(server.metrics_url)
    assert reply.status == 200, reply.body
    assert (reply.header("Content-Type") or "").startswith("text/plain"), reply.headers
    return reply.body.decode()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape, keyed by name and sorted labels."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(text: str, name: str, **labels: str) -> float:
    """One sample's value in a scrape (0 when absent)."""
    return samples(text).get((name, tuple(sorted(labels.items()))), 0.0)
