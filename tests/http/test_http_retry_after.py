"""R162: a 429 from ``POST /exec`` says when to come back (docs/http-api.md#retry-after), against a live
``sshmint serve`` (SQLite only: the buckets live in the server process).

The arithmetic of N at every balance is in ``test_http_ratelimit_unit.py``; here a real
client exhausts a key's burst, reads ``Retry-After``, waits exactly that long and is let in.
"""

from __future__ import annotations

import http.client
import time

import pytest

from tests.support.exec_support import assert_error, assert_ok, post_exec
from tests.support.harness import SSHMintServer
from tests.support.http_support import Reply
from tests.support.keys import Account

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def live(sqlite_server: SSHMintServer) -> SSHMintServer:
    """SQLite only (overrides the two-backend fixture of conftest.py)."""
    return sqlite_server


def exec_until_429(server: SSHMintServer, token: str, limit: int = 200) -> list[Reply]:
    """``help`` back to back on one keep-alive connection until the first 429 (every
    request of a burst within the same second or two, so the 61st or soon after)."""
    replies: list[Reply] = []
    connection = http.client.HTTPConnection(server.http_host, server.http_port, timeout=30)
    try:
        for _ in range(limit):
            connection.request(
                "POST", "/exec", body=b"help", headers={"Authorization": f"Bearer {token}"}
            )
            response = connection.getresponse()
            replies.append(Reply(response.status, response.getheaders(), response.read()))
            if response.status == 429:
                break
    finally:
        connection.close()
    return replies


def test_r162_429_carries_retry_after_and_waiting_that_long_lets_the_key_in(
    live: SSHMintServer, account: Account
) -> None:
    token = account.token()
    started = time.monotonic()
    replies = exec_until_429(live, token)
    refused = replies[-1]
    assert refused.status == 429, [reply.status for reply in replies]
    assert len(replies) <= 61 + int(time.monotonic() - started)
    assert_error(refused, 429, "rate limit exceeded")
    assert all(reply.header("Retry-After") is None for reply in replies[:-1])
    text = refused.header("Retry-After")
    assert text is not None and text.isdigit(), refused.headers
    retry_after = int(text)
    assert 1 <= retry_after <= 121
    # The first refusal finds the balance at exactly 0 (the request before it was allowed)
    # and leaves it at -1: two refills, so N is 2 (docs/http-api.md#retry-after names the exact value).
    assert retry_after == 2
    time.sleep(retry_after)  # the client does what it was told, nothing in between
    assert_ok(post_exec(live, b"whoami", token=token))
