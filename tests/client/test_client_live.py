"""The Python client against a live ``sshmint serve``: httpx (sync, async) and requests auth,
token refresh, and every ``POST /exec`` error status the server produces (docs/http-api.md#post-exec)."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import pytest
import requests

from sshmint.client import (
    AsyncClient,
    BadRequest,
    Client,
    CommandFailed,
    Forbidden,
    RateLimited,
    RequestTooLarge,
    SSHMintAuth,
    Unauthorized,
    UnknownCommand,
)
from sshmint.keys import load_public_key_file
from tests.support.client_support import FakeClock, LoopbackServer
from tests.support.harness import SSHMintServer
from tests.support.keys import Account


def test_httpx_client_with_sshmintauth_runs_whoami(
    sqlite_server: SSHMintServer, account: Account
) -> None:
    auth = SSHMintAuth(key=account.key)
    with httpx.Client(auth=auth) as http:
        response = http.post(sqlite_server.http_url + "/exec", content="whoami")
    assert response.status_code == 200
    assert response.json()["email"] == account.email


async def test_httpx_async_client_with_sshmintauth(
    sqlite_server: SSHMintServer, account: Account
) -> None:
    auth = SSHMintAuth(key=account.key)
    async with httpx.AsyncClient(auth=auth) as http:
        responses = await asyncio.gather(
            *(http.post(sqlite_server.http_url + "/exec", content="whoami") for _ in range(5))
        )
    assert [r.status_code for r in responses] == [200] * 5
    assert auth.minter.mint_count == 1


def test_requests_with_sshmintauth(sqlite_server: SSHMintServer, account: Account) -> None:
    auth = SSHMintAuth(key=account.key)
    response = requests.post(
        sqlite_server.http_url + "/exec", data="ssh-key list", auth=auth, timeout=30
    )
    assert response.status_code == 200
    current = [k["fingerprint"] for k in response.json()["ssh_keys"] if k["current"]]
    fingerprint = load_public_key_file(f"{account.key}.pub").fingerprint
    assert current == [f"SHA256:{fingerprint}"]  # the key that signed the token


def test_client_exec_returns_parsed_json_sync_and_async(
    sqlite_server: SSHMintServer, account: Account
) -> None:
    auth = SSHMintAuth(key=account.key)
    with Client(sqlite_server.http_url, auth=auth) as client:
        assert client.exec("whoami")["email"] == account.email
        assert isinstance(client.exec(["ls"])["vms"], list)

    async def run() -> dict[str, object]:
        async with AsyncClient(sqlite_server.http_url, auth=auth) as aclient:
            return await aclient.exec(["whoami"])

    assert asyncio.run(run())["email"] == account.email


def test_client_accepts_a_plain_token(sqlite_server: SSHMintServer, account: Account) -> None:
    token = SSHMintAuth(key=account.key).token()
    with Client(sqlite_server.http_url, token=token) as client:
        assert client.exec("whoami")["email"] == account.email


def test_refreshed_token_after_80_percent_is_accepted(
    sqlite_server: SSHMintServer, account: Account
) -> None:
    clock = FakeClock(time.time())
    auth = SSHMintAuth(key=account.key, ttl=300, clock=clock)
    with Client(sqlite_server.http_url, auth=auth) as client:
        client.exec("whoami")
        first = auth.token()
        clock.advance(240)  # 80 % of the lifetime: the next request carries a new token
        client.exec("whoami")
        assert auth.token() != first and auth.minter.mint_count == 2


def test_s7_401_refused_token_raises_unauthorized_with_the_reason(
    sqlite_server: SSHMintServer, account: Account
) -> None:
    with (
        Client(sqlite_server.http_url, token="exe0.e30.") as client,
        pytest.raises(Unauthorized) as err,
    ):
        client.exec("whoami")
    assert (err.value.status, err.value.message) == (401, "invalid token: malformed signature")
    expired = SSHMintAuth(key=account.key, ttl=60, clock=lambda: time.time() - 3600)
    with Client(sqlite_server.http_url, auth=expired) as client, pytest.raises(Unauthorized) as err:
        client.exec("whoami")
    assert err.value.message == "invalid token: token has expired"
    wrong_namespace = SSHMintAuth(key=account.key, vm="somevm")
    with (
        Client(sqlite_server.http_url, auth=wrong_namespace) as client,
        pytest.raises(Unauthorized) as err,
    ):
        client.exec("whoami")
    assert err.value.message == "invalid token"


def test_s7_403_token_cmds_raise_forbidden(sqlite_server: SSHMintServer, account: Account) -> None:
    auth = SSHMintAuth(key=account.key, cmds=["whoami"])
    with Client(sqlite_server.http_url, auth=auth) as client:
        assert client.exec("whoami")["email"] == account.email
        with pytest.raises(Forbidden) as err:
            client.exec("ls")
    assert (err.value.status, err.value.message) == (
        403,
        "command not allowed by token permissions",
    )


def test_s7_404_unknown_command(sqlite_server: SSHMintServer, account: Account) -> None:
    auth = SSHMintAuth(key=account.key)
    with Client(sqlite_server.http_url, auth=auth) as client, pytest.raises(UnknownCommand) as err:
        client.exec("notacommand")
    assert (err.value.status, err.value.message) == (404, "unknown command")


def test_s7_422_failing_command_raises_command_failed(
    sqlite_server: SSHMintServer, account: Account
) -> None:
    auth = SSHMintAuth(key=account.key, cmds=["ssh-key rename"])
    with Client(sqlite_server.http_url, auth=auth) as client, pytest.raises(CommandFailed) as err:
        client.exec(["ssh-key", "rename", "a"])
    assert (err.value.status, err.value.message) == (
        422,
        "usage: ssh-key rename <old-name> <new-name>",
    )


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("whoami 'unterminated", "invalid command syntax"),
        ("   \n", "missing command in request body"),
        ("who\x00ami", "request body must not contain null bytes"),
    ],
)
def test_s7_400_bad_command_lines_raise_bad_request(
    sqlite_server: SSHMintServer, account: Account, command: str, message: str
) -> None:
    auth = SSHMintAuth(key=account.key)
    with Client(sqlite_server.http_url, auth=auth) as client, pytest.raises(BadRequest) as err:
        client.exec(command)
    assert (err.value.status, err.value.message) == (400, message)


def test_s7_413_body_over_64k_raises_request_too_large(
    sqlite_server: SSHMintServer, account: Account
) -> None:
    auth = SSHMintAuth(key=account.key)
    with Client(sqlite_server.http_url, auth=auth) as client, pytest.raises(RequestTooLarge) as err:
        client.exec("whoami " + "x" * 65536)
    assert (err.value.status, err.value.message) == (413, "request body exceeds 64KB limit")


def test_s7_429_after_the_burst_of_60_raises_rate_limited(
    sqlite_server: SSHMintServer, account: Account
) -> None:
    succeeded = 0
    auth = SSHMintAuth(key=account.key)
    with Client(sqlite_server.http_url, auth=auth) as client, pytest.raises(RateLimited) as err:
        for _ in range(300):  # bounded: the bucket holds 60 and refills 1/s
            client.exec("whoami")
            succeeded += 1
    assert succeeded >= 60
    assert (err.value.status, err.value.message) == (429, "rate limit exceeded")


def test_vm_token_reaches_the_upstream_through_the_proxy_without_the_token(
    sqlite_server: SSHMintServer, account: Account, echo_server: LoopbackServer
) -> None:
    """docs/proxy.md#credentials: a VM token via SSHMintAuth(vm=...) authenticates; the upstream sees the
    identity headers and never the token."""
    with Client(sqlite_server.http_url, auth=SSHMintAuth(key=account.key)) as client:
        vm = "c" + uuid.uuid4().hex[:10]
        client.exec(["new", f"--name={vm}", f"--upstream={echo_server.url}"])
    auth = SSHMintAuth(key=account.key, vm=vm, ctx={"job": 1})
    with httpx.Client(auth=auth) as http:
        response = http.get(sqlite_server.http_url + "/hello", headers={"Host": f"{vm}.localhost"})
    assert response.status_code == 200
    (seen,) = echo_server.requests
    assert seen["X-ExeDev-Email"] == account.email
    assert seen["X-ExeDev-Token-Ctx"] == '{"job":1}'
    assert "Authorization" not in seen
    assert not any("exe0." in value for value in seen.values())
