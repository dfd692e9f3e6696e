"""docs/tokens.md#who-sees-which-message/docs/storage.md#nothing-usable-at-rest: no token ever reaches the server's output.

Named to run after the other ``/exec`` modules, which share the same session servers, so the
check covers everything they sent as well.
"""

from __future__ import annotations

from harness import SSHMintServer
from http_support import Account, curl, wait_for


def test_zz_logs_never_contain_tokens(live: SSHMintServer, account: Account) -> None:
    """docs/tokens.md#who-sees-which-message/docs/storage.md#nothing-usable-at-rest: after everything above, not one token in the server's output — even
    when a client puts one in the query string or the Referer."""
    token = account.token()
    curl(
        live.http_url + f"/exec?token={token}",
        "-H", f"Referer: http://localhost/?t={token}",
        "-H", f"Authorization: Bearer {token}",
        data=b"whoami",
    )  # fmt: skip
    curl(live.http_url + "/healthz", "-H", f"User-Agent: {token}")
    # The access log line of that request (with the token redacted) proves logging is on.
    assert wait_for(lambda: "<redacted token>" in live.stderr), live.stderr[-2000:]
    output = live.stdout + live.stderr
    assert "exe0." not in output and "exe1." not in output
