"""The ``/exec`` rate limit is global across nodes (docs/http-api.md#rate-limit-across-nodes,
R165), and each node keeps to its connection budget (docs/storage.md#connections)."""

from __future__ import annotations

import concurrent.futures
import http.client
import time

from tests.support.cluster import POOL_SIZE, Cluster, exec_on
from tests.support.keys import Account
from tests.support.polling import wait_until

REQUESTS = 200


def test_r165_200_rapid_requests_alternating_between_two_nodes_share_one_bucket(
    cluster: Cluster, member: Account
) -> None:
    """R165: at most 60 + (whole seconds elapsed) + 2 of 200 rapid requests of one key,
    sent to node A and node B in turn, succeed; the first refusal says ``Retry-After: 2``
    whichever node gives it (docs/http-api.md#retry-after: balance 0 before it, -1 after),
    and every refusal an integer from 1 to 121."""
    token = member.token()
    connections = [
        http.client.HTTPConnection("127.0.0.1", node.http_port, timeout=30)
        for node in cluster.nodes
    ]
    statuses: list[int] = []
    retry_after: list[int] = []
    started = time.monotonic()
    try:
        for index in range(REQUESTS):
            connection = connections[index % 2]
            connection.request(
                "POST", "/exec", body=b"whoami", headers={"Authorization": f"Bearer {token}"}
            )
            response = connection.getresponse()
            response.read()
            statuses.append(response.status)
            if response.status == 429:
                retry_after.append(int(response.getheader("Retry-After") or "0"))
    finally:
        for connection in connections:
            connection.close()
    elapsed = int(time.monotonic() - started)
    assert set(statuses) == {200, 429}, statuses
    successes = statuses.count(200)
    assert 60 <= successes <= 60 + elapsed + 2, (successes, elapsed)
    assert statuses[:60] == [200] * 60  # the burst, whichever node answered
    assert retry_after[0] == 2
    assert all(1 <= seconds <= 121 for seconds in retry_after), retry_after


def test_s12_each_node_keeps_to_its_db_pool_size(cluster: Cluster, member: Account) -> None:
    """docs/storage.md#connections: after concurrent load on both nodes, the database sees
    at most nodes × ``--db-pool-size`` connections named ``sshmint``."""
    token = member.token()
    database = cluster.db_url.rsplit("/", 1)[1]
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        urls = [node.http_url for node in cluster.nodes] * 16
        replies = list(pool.map(lambda url: exec_on(url, token, "help"), urls))
    assert all(reply.status_code in (200, 429) for reply in replies)

    def connections() -> int:
        return int(
            cluster.postgres.psql(
                "SELECT count(*) FROM pg_stat_activity"
                f" WHERE datname = '{database}' AND application_name = 'sshmint'"
            )
        )

    # The test's own short-lived store (registering the user) may linger for a moment.
    assert wait_until(lambda: 0 < connections() <= 2 * POOL_SIZE, timeout=10), connections()
