"""Helpers for the ``POST /exec`` tests: requests with curl and the checks of docs/http-api.md#post-exec."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.harness import SSHMintServer
from tests.support.http_support import Reply, curl

__all__ = ["assert_error", "assert_ok", "check_api_headers", "post_exec", "ssh_ok"]

API_HEADERS = {
    "content-type": "application/json; charset=utf-8",
    "x-content-type-options": "nosniff",
}


def post_exec(server: SSHMintServer, body: bytes, *headers: str, token: str | None = None) -> Reply:
    args = ["-X", "POST", "-H", "Content-Type:"]
    if token is not None:
        args += ["-H", f"Authorization: Bearer {token}"]
    for header in headers:
        args += ["-H", header]
    return curl(server.http_url + "/exec", *args, data=body)


def check_api_headers(reply: Reply) -> None:
    """R117: every /exec response carries both headers; bodies are one JSON object + one \\n."""
    for name, value in API_HEADERS.items():
        assert reply.header(name) == value, (name, reply.headers)
    if reply.body:
        assert reply.body.endswith(b"\n") and not reply.body.endswith(b"\n\n"), reply.body
        assert isinstance(json.loads(reply.body), dict)


def assert_error(reply: Reply, status: int, message: str) -> None:
    check_api_headers(reply)
    assert (reply.status, reply.json()) == (status, {"error": message}), reply.body
    if status == 401:
        assert reply.header("WWW-Authenticate") == "Bearer"  # R34


def assert_ok(reply: Reply) -> dict[str, object]:
    check_api_headers(reply)
    assert reply.status == 200, reply.body
    data = reply.json()
    assert isinstance(data, dict)
    return data


def ssh_ok(server: SSHMintServer, key: Path, *words: str) -> str:
    result = server.ssh(key, *words)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()
