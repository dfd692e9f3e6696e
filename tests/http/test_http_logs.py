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
from tests.support.keys import Account, key_fingerprint
from tests.support.log_checks import leaked
from tests.support.polling import wait_until


def test_tokens_in_the_query_referer_and_user_agent_never_reach_the_log(
    live: SSHMintServer, account: Account
) -> None:
    """docs/tokens.md#who-sees-which-message, docs/storage.md#nothing-usable-at-rest: not
    one token in the server's output, even when a client puts one in the query string, the
    Referer or the User-Agent."""
    token = account.token()
    marker = f"/probe-{uuid.uuid4().hex}"
    curl(
        live.http_url + f"/exec?token={token}",
        "-H", f"Referer: http://localhost/?t={token}",
        "-H", f"Authorization: Bearer {token}",
        data=b"whoami",
    )  # fmt: skip
    curl(live.http_url + f"{marker}?t={token}&page=2", "-H", f"User-Agent: {token}")
    # The access log line of that last request (with the token redacted) proves logging is
    # on and that the lines of the requests above were written.
    assert wait_until(lambda: marker in live.stderr), live.stderr[-2000:]
    line = next(line for line in live.stderr.splitlines() if marker in line)
    assert REDACTED in line, line
    assert f'"GET {marker} HTTP/1.1" 404' in line, line  # docs/operations.md#logs: no query
    assert not leaked(live.stdout + live.stderr, token)


def test_r170_text_access_and_audit_lines_name_who_and_why(
    live: SSHMintServer, account: Account
) -> None:
    """docs/operations.md#logs, text format: an /exec access line names the host, the user,
    the signing key and the command; a refused token's line names the cause (never the
    token); an SSH command gets one audit line with its name and exit status."""
    fingerprint = key_fingerprint(account.pub)
    marker = uuid.uuid4().hex
    ok = curl(
        live.http_url + "/exec",
        "-H", f"Authorization: Bearer {account.token()}",
        "-H", f"User-Agent: ok-{marker}",
        data=b"whoami",
    )  # fmt: skip
    assert ok.status == 200, ok.body
    expired = account.token('{"exp":1000000000}')
    refused = curl(
        live.http_url + "/exec",
        "-H", f"Authorization: Bearer {expired}",
        "-H", f"User-Agent: refused-{marker}",
        data=b"whoami",
    )  # fmt: skip
    assert refused.status == 401
    assert live.ssh(account.key, "whoami").returncode == 0

    def line(part: str) -> str:
        return next((x for x in live.stderr.splitlines() if part in x), "")

    audit = f"ssh command user_id={account.user_id} key={fingerprint} command=whoami exit_status=0"
    assert wait_until(lambda: bool(line(f"refused-{marker}") and line(audit))), live.stderr[-2000:]
    assert f" host=127.0.0.1:{live.http_port} user_id={account.user_id} key={fingerprint}" in (
        line(f"ok-{marker}")
    )
    assert line(f"ok-{marker}").split(" sshmint.access: ")[1].startswith("127.0.0.1 [")
    assert '"POST /exec HTTP/1.1" 200 ' in line(f"ok-{marker}")
    assert " command=whoami " in line(f"ok-{marker}")
    assert " auth_failure=expired " in line(f"refused-{marker}")
    assert "user_id=" not in line(f"refused-{marker}")
    assert not leaked(live.stderr, expired)
