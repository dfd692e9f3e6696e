"""``POST /exec`` request rules, rate limiting, ``/healthz`` and ``sshmint exec`` against a
live ``sshmint serve`` (docs/http-api.md#post-exec, R107–R123, R125, R155), with real curl.

None of these rules touches the database differently per backend, so this module runs on
SQLite only; ``test_http_exec_auth.py`` covers both backends.
"""

from __future__ import annotations

import base64
import http.client
import json
import socket
import time
import uuid
from pathlib import Path

import pytest

from tests.support.exec_support import assert_error, assert_ok, check_api_headers, post_exec, ssh_ok
from tests.support.harness import SSHMintServer, run_sshmint
from tests.support.http_support import Reply, curl
from tests.support.keys import Account, new_key, public_line, recipe_token
from tests.support.polling import wait_until
from tests.support.raw_http import read_response


@pytest.fixture(scope="module")
def live(sqlite_server: SSHMintServer) -> SSHMintServer:
    """SQLite only (overrides the two-backend fixture of conftest.py)."""
    return sqlite_server


def test_r107_get_exec_is_405_with_allow_post(live: SSHMintServer) -> None:
    reply = curl(live.http_url + "/exec")
    assert_error(reply, 405, "method not allowed")
    assert reply.header("Allow") == "POST"


@pytest.mark.parametrize(
    "header",
    [None, "Basic dXNlcjpwYXNz", "Bearer", "Bearer    ", "Token x", "Bearerexe0.x.y"],
)
def test_r108_missing_or_non_bearer_authorization_is_401(
    live: SSHMintServer, header: str | None
) -> None:
    headers = () if header is None else (f"Authorization: {header}",)
    assert_error(
        post_exec(live, b"whoami", *headers), 401, "missing or invalid Authorization header"
    )


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "Bearer", "bEaReR"])
def test_r109_bearer_scheme_is_case_insensitive_and_extra_spaces_are_ignored(
    live: SSHMintServer, account: Account, scheme: str
) -> None:
    token = account.token()
    assert_ok(post_exec(live, b"whoami", f"Authorization: {scheme}     {token}  "))


def test_r110_basic_credentials_carrying_a_valid_token_are_refused(
    live: SSHMintServer, account: Account
) -> None:
    basic = base64.b64encode(f"x:{account.token()}".encode()).decode()
    reply = post_exec(live, b"whoami", f"Authorization: Basic {basic}")
    assert_error(reply, 401, "missing or invalid Authorization header")


def test_r14_r15_token_size_limit_is_checked_by_the_validator_not_the_http_layer(
    live: SSHMintServer,
) -> None:
    # The header is > 8 KiB, above aiohttp's default line limit: the spec's message must win.
    assert_error(
        post_exec(live, b"whoami", token="x" * 8193), 401, "invalid token: exceeds maximum size"
    )
    exactly = "exe0." + "A" * (8192 - 5)
    assert_error(
        post_exec(live, b"whoami", token=exactly),
        401,
        "invalid token format: expected exe0.<payload>.<sigblob>",
    )
    # A 16 KiB Authorization value still reaches step 1.
    assert_error(
        post_exec(live, b"whoami", token="exe0." + "A" * 16000),
        401,
        "invalid token: exceeds maximum size",
    )


@pytest.mark.parametrize(
    ("permissions", "message"),
    [
        ('{"foo":"bar"}', 'invalid token: unknown field "foo"'),
        ('{"EXP":1}', 'invalid token: unknown field "EXP"'),
        ('{"exp":2000000000,"exp":2100000000}', "invalid token: invalid JSON"),
        ('{"exp":100}', "invalid token: exp out of valid range"),
        ('{"cmds":["ls",""]}', "invalid token: cmds elements must be non-empty strings"),
        (" {}", "invalid token: payload must not have leading or trailing whitespace"),
        ("[]", "invalid token: payload must be a JSON object"),
        ('{"exp":946684800}', "invalid token: token has expired"),
    ],
)
def test_r23_r35_parse_and_claim_messages_reach_the_client_verbatim(
    live: SSHMintServer, account: Account, permissions: str, message: str
) -> None:
    assert_error(post_exec(live, b"whoami", token=account.token(permissions)), 401, message)


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("exe2.a.b", "invalid token format: missing exe0. prefix"),
        ("payload.sigblob", "invalid token format: missing exe0. prefix"),
        ("exe0.onlyonepart", "invalid token format: expected exe0.<payload>.<sigblob>"),
        ("exe0.!!!.sig", "invalid token: payload is not valid base64url"),
        ("exe0.e30.!!!", "invalid token: signature is not valid base64url"),
        ("exe0.e30.", "invalid token: malformed signature"),
        ("exe1.AAAAAAAAAAAAAAAAAAAAAAAAAA", "invalid token"),  # R12: well formed, unknown
        ("exe1.aaaaaaaaaaaaaaaaaaaaaaaaaa", "invalid token"),  # R11: lower case
    ],
)
def test_r16_r18_r31_r11_r12_malformed_tokens(
    live: SSHMintServer, token: str, message: str
) -> None:
    assert_error(post_exec(live, b"whoami", token=token), 401, message)


def test_r41_r43_r46_token_cmds(live: SSHMintServer, account: Account) -> None:
    default = account.token()
    assert_error(
        post_exec(live, b"rm x", token=default), 403, "command not allowed by token permissions"
    )
    only_whoami = account.token('{"cmds":["whoami"]}')
    assert_ok(post_exec(live, b"whoami", token=only_whoami))
    assert_error(
        post_exec(live, b"ls", token=only_whoami), 403, "command not allowed by token permissions"
    )
    nothing = account.token('{"cmds":[]}')
    assert_error(post_exec(live, b"notacommand", token=nothing), 404, "unknown command")
    assert_error(post_exec(live, b"WHOAMI", token=nothing), 404, "unknown command")


def test_r45_flags_never_matter(live: SSHMintServer, account: Account) -> None:
    token = account.token('{"cmds":["ls"]}')
    for line in (b"ls --json", b"ls -l", b"ls --help"):
        assert post_exec(live, line, token=token).status == 200, line


def test_r111_r113_body_size_and_content_rules(live: SSHMintServer, account: Account) -> None:
    token = account.token('{"cmds":["whoami","ssh-key rename"]}')
    exactly = b"whoami" + b" " * (65536 - 6)
    assert_ok(post_exec(live, exactly, token=token))  # R111: read, trimmed, run
    assert_error(
        post_exec(live, exactly + b" ", token=token), 413, "request body exceeds 64KB limit"
    )
    assert_error(
        post_exec(live, b"who\x00ami", token=token), 400, "request body must not contain null bytes"
    )
    for empty in (b"", b"   \n\t "):
        assert_error(post_exec(live, empty, token=token), 400, "missing command in request body")
    assert_error(post_exec(live, b"ls 'unterminated", token=token), 400, "invalid command syntax")
    assert_error(post_exec(live, b"notacommand", token=token), 404, "unknown command")
    reply = post_exec(live, b"ssh-key rename onlyone", token=token)
    assert_error(reply, 422, "usage: ssh-key rename <old-name> <new-name>")  # R116


def test_s7_step8_unreadable_body_is_400(live: SSHMintServer, account: Account) -> None:
    """The client promises 100 bytes, sends 6 and shuts down its side: the read fails
    after the token was accepted, and the handler answers 400 — which the half-closed
    client still receives — and the connection closes. (A malformed chunk, and a body
    that never completes, are in test_http_hardening_*.)"""
    # A User-Agent of its own tells this request's log line apart (the query string is
    # never logged).
    agent = f"step8-{uuid.uuid4().hex}"
    marker = '"POST /exec HTTP/1.1" 400 '
    head = (
        f"POST /exec HTTP/1.1\r\nHost: localhost\r\nUser-Agent: {agent}\r\n"
        f"Authorization: Bearer {account.token()}\r\nContent-Length: 100\r\n\r\nwhoami"
    )
    with socket.create_connection((live.http_host, live.http_port), timeout=30) as sock:
        sock.sendall(head.encode())
        sock.shutdown(socket.SHUT_WR)
        reply = read_response(sock)
        assert sock.recv(65536) == b""
    assert (reply.status, reply.body) == (400, b'{"error":"failed to read request body"}\n')

    def lines() -> list[str]:
        return [line for line in live.stderr.splitlines() if agent in line]

    assert wait_until(lambda: bool(lines())), live.stderr[-2000:]
    assert len(lines()) == 1 and marker in lines()[0], lines()


def test_s7_query_string_and_content_type_are_ignored(
    live: SSHMintServer, account: Account
) -> None:
    reply = curl(
        live.http_url + "/exec?cmd=ls&x=1",
        "-H", f"Authorization: Bearer {account.token()}",
        "-H", "Content-Type: application/json",
        data=b"whoami",
    )  # fmt: skip
    assert assert_ok(reply)["email"] == account.email


def _fire(
    server: SSHMintServer, token: str, count: int, stop_at_429: bool = True
) -> tuple[list[int], Reply]:
    """Send ``help`` back to back on one keep-alive connection (real HTTP, no curl start-up
    per request); returns the statuses and the last response."""
    statuses: list[int] = []
    last = Reply(0, [], b"")
    connection = http.client.HTTPConnection(server.http_host, server.http_port, timeout=30)
    try:
        for _ in range(count):
            connection.request(
                "POST", "/exec", body=b"help", headers={"Authorization": f"Bearer {token}"}
            )
            response = connection.getresponse()
            last = Reply(response.status, response.getheaders(), response.read())
            statuses.append(response.status)
            if stop_at_429 and response.status == 429:
                break
    finally:
        connection.close()
    return statuses, last


def test_r119_r120_burst_of_60_then_429_per_key(
    live: SSHMintServer, account: Account, tmp_path: Path
) -> None:
    """A fresh key's bucket holds 60 and regains one per whole second, so by any moment
    at most ``60 + whole seconds since its first request`` requests can have passed."""
    token = account.token()
    started = time.monotonic()
    statuses, last = _fire(live, token, 200)
    assert statuses[:60] == [200] * 60
    assert statuses[-1] == 429, statuses
    assert len(statuses) <= 61 + int(time.monotonic() - started)
    assert_error(last, 429, "rate limit exceeded")
    # A client that keeps sending stays limited: refused requests consume too.
    more, _ = _fire(live, token, 5, stop_at_429=False)
    passed = statuses.count(200) + more.count(200)
    assert passed <= 60 + int(time.monotonic() - started), (statuses, more)

    # R120: another key of the same user has its own bucket.
    other = new_key(tmp_path / "other")
    ssh_ok(live, account.key, "ssh-key", "add", public_line(other))
    assert_ok(post_exec(live, b"whoami", token=recipe_token(other)))


def test_r121_invalid_token_requests_consume_nothing(live: SSHMintServer, account: Account) -> None:
    token = account.token()
    prefix, _, signature = token.split(".")
    tampered = f"{prefix}.{base64.urlsafe_b64encode(b'{ }').decode().rstrip('=')}.{signature}"
    assert _fire(live, tampered, 70, stop_at_429=False)[0] == [401] * 70
    assert _fire(live, token, 60, stop_at_429=False)[0] == [200] * 60


def test_r123_healthz_and_other_paths(live: SSHMintServer) -> None:
    reply = curl(live.http_url + "/healthz")
    check_api_headers(reply)
    assert (reply.status, reply.json()) == (200, {"status": "ok"})
    head = curl(live.http_url + "/healthz", "-I")
    assert head.status == 200 and head.body == b""
    for method in ("POST", "PUT", "DELETE"):
        reply = curl(live.http_url + "/healthz", "-X", method)
        assert_error(reply, 405, "method not allowed")
        assert reply.header("Allow") == "GET, HEAD"
    assert_error(curl(live.http_url + "/nope"), 404, "not found")
    assert_error(curl(live.http_url + "/exec/"), 404, "not found")


def test_r125_host_routing_to_the_api(live: SSHMintServer, account: Account) -> None:
    token = account.token()
    for host in (f"localhost:{live.http_port}", "LOCALHOST.", "a.b.localhost", "example.org"):
        reply = post_exec(live, b"whoami", f"Host: {host}", token=token)
        assert assert_ok(reply)["email"] == account.email, host


def test_r155_sshmint_exec(live: SSHMintServer, account: Account) -> None:
    token = account.token('{"cmds":["whoami","ssh-key list"]}')
    ok = run_sshmint("exec", "--url", live.http_url, "--token", token, "whoami")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["email"] == account.email
    # Several words are quoted and joined; the environment supplies URL and token.
    listed = run_sshmint(
        "exec", "ssh-key", "list", env={"SSHMINT_URL": live.http_url, "SSHMINT_TOKEN": token}
    )
    assert listed.returncode == 0, listed.stderr
    assert "ssh_keys" in json.loads(listed.stdout)
    refused = run_sshmint("exec", "--url", live.http_url, "--token", token, "ls")
    assert refused.returncode == 1 and refused.stdout == ""
    assert json.loads(refused.stderr) == {"error": "command not allowed by token permissions"}
    # Minted on the fly from the mint options (docs/client.md#sshmint-mint).
    minted = run_sshmint(
        "exec", "--url", live.http_url, "--key", str(account.key), "--cmds", "whoami", "whoami"
    )
    assert minted.returncode == 0, minted.stderr
    assert json.loads(minted.stdout)["email"] == account.email
    dead = run_sshmint("exec", "--url", "http://127.0.0.1:9", "--token", token, "whoami")
    assert dead.returncode == 1 and "127.0.0.1:9" in dead.stderr and token not in dead.stderr
