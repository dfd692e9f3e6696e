"""docs/tokens.md#who-sees-which-message, docs/storage.md#nothing-usable-at-rest: no token
ever reaches the server's output.

This module checks the places a client can put a token besides ``Authorization``. The
whole output of the session's shared servers — every request of every module — is checked
when they stop at the end of the session (``tests/support/log_checks.py``), whatever order
the tests ran in.
"""

from __future__ import annotations

import uuid

from sshmint.server.infra.logs import REDACTED
from tests.support.harness import SSHMintServer
from tests.support.http_support import curl
from tests.support.keys import Account
from tests.support.log_checks import leaked
from tests.support.polling import wait_until


def test_tokens_in_the_query_referer_and_user_agent_never_reach_the_log(
    live: SSHMintServer, account: Account
) -> None:
    """docs/tokens.md#who-sees-which-message, docs/storage.md#nothing-usable-at-rest: not
    one token in the server's output, even when a client puts one in the query string, the
    Referer or the User-Agent."""
    token = account.token()
    marker = f"/healthz?probe={uuid.uuid4().hex}"
    curl(
        live.http_url + f"/exec?token={token}",
        "-H", f"Referer: http://localhost/?t={token}",
        "-H", f"Authorization: Bearer {token}",
        data=b"whoami",
    )  # fmt: skip
    curl(live.http_url + marker, "-H", f"User-Agent: {token}")
    # The access log line of that last request (with the token redacted) proves logging is
    # on and that the lines of the requests above were written.
    assert wait_until(lambda: marker in live.stderr), live.stderr[-2000:]
    line = next(line for line in live.stderr.splitlines() if marker in line)
    assert REDACTED in line, line
    assert not leaked(live.stdout + live.stderr, token)
