"""Client error mapping for answers that a live server rarely gives (docs/http-api.md#post-exec: 504, 5xx),
for responses of a foreign shape, and for connection failures, using tiny loopback servers.

The statuses a live ``sshmint serve`` produces are checked against it in ``test_live.py``.
"""

from __future__ import annotations

import json

import pytest

from sshmint.client import (
    AsyncClient,
    Client,
    CommandFailed,
    ConnectionFailed,
    InvalidResponse,
    RequestTooLarge,
    ServerError,
    SSHMintClientError,
    Timeout,
)
from sshmint.client.errors import error_for_status
from tests.support.client_fixtures import StatusServer
from tests.support.client_support import LoopbackServer
from tests.support.polling import free_port


def body(message: str) -> bytes:
    return json.dumps({"error": message}).encode() + b"\n"


def test_s7_504_command_timed_out_raises_timeout(status_server: StatusServer) -> None:
    url = status_server(504, body("command timed out"))
    with Client(url, token="exe0.x.y") as client, pytest.raises(Timeout) as err:
        client.exec("whoami")
    assert (err.value.status, err.value.message) == (504, "command timed out")


@pytest.mark.parametrize(
    ("status", "payload", "message"),
    [
        (500, body("internal error"), "internal error"),
        (502, b"upstream unavailable\n", "upstream unavailable"),  # e.g. a reverse proxy's text
        (503, b"", "Service Unavailable"),  # no body: the reason phrase
    ],
)
def test_other_5xx_raise_server_error(
    status_server: StatusServer, status: int, payload: bytes, message: str
) -> None:
    url = status_server(status, payload, "text/plain")
    with Client(url, token="exe0.x.y") as client, pytest.raises(ServerError) as err:
        client.exec("whoami")
    assert (err.value.status, err.value.message) == (status, message)


async def test_async_client_maps_the_same_way(status_server: StatusServer) -> None:
    url = status_server(422, body("usage: ssh-key rename <old-name> <new-name>"))
    async with AsyncClient(url, token="exe0.x.y") as client:
        with pytest.raises(CommandFailed) as err:
            await client.exec(["ssh-key", "rename", "a"])
    assert err.value.message == "usage: ssh-key rename <old-name> <new-name>"
    assert str(err.value) == "422: usage: ssh-key rename <old-name> <new-name>"


def test_unexpected_status_raises_the_base_class(status_server: StatusServer) -> None:
    url = status_server(418, body("teapot"))
    with Client(url, token="exe0.x.y") as client, pytest.raises(SSHMintClientError) as err:
        client.exec("whoami")
    assert type(err.value) is SSHMintClientError and err.value.status == 418


@pytest.mark.parametrize("payload", [b"not json\n", b"[1,2]\n"])
def test_200_that_is_not_a_json_object_raises_invalid_response(
    status_server: StatusServer, payload: bytes
) -> None:
    url = status_server(200, payload)
    with Client(url, token="exe0.x.y") as client, pytest.raises(InvalidResponse):
        client.exec("whoami")


def test_s7_200_with_empty_body_is_an_empty_dict(status_server: StatusServer) -> None:
    with Client(status_server(200, b""), token="exe0.x.y") as client:
        assert client.exec("rm-nothing") == {}


def test_connection_refused_raises_connection_failed() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with Client(url, token="exe0.x.y") as client, pytest.raises(ConnectionFailed) as err:
        client.exec("whoami")
    assert err.value.status is None and url in err.value.message
    assert "exe0" not in err.value.message


async def test_async_connection_refused_raises_connection_failed() -> None:
    async with AsyncClient(f"http://127.0.0.1:{free_port()}", token="exe0.x.y") as client:
        with pytest.raises(ConnectionFailed):
            await client.exec("whoami")


def test_every_documented_status_has_its_exception() -> None:
    expected = {
        400: "BadRequest",
        401: "Unauthorized",
        403: "Forbidden",
        404: "UnknownCommand",
        405: "MethodNotAllowed",
        413: "RequestTooLarge",
        422: "CommandFailed",
        429: "RateLimited",
        504: "Timeout",
        500: "ServerError",
        599: "ServerError",
    }
    for status, name in expected.items():
        error = error_for_status(status, "m")
        assert type(error).__name__ == name and isinstance(error, SSHMintClientError)
        assert (error.status, error.message) == (status, "m")
    assert isinstance(error_for_status(413, "x"), RequestTooLarge)


def test_client_needs_exactly_one_of_auth_or_token() -> None:
    with pytest.raises(ValueError, match="exactly one of auth= or token="):
        Client("http://127.0.0.1:1")
    with pytest.raises(ValueError, match="must not be empty"):
        Client("http://127.0.0.1:1", token=" ")


def test_client_repr_hides_the_token() -> None:
    with Client("http://127.0.0.1:1/", token="exe0.secret.value") as client:
        assert "secret" not in repr(client) and repr(client) == "Client('http://127.0.0.1:1')"
        assert "secret" not in repr(client._http.auth)


def test_a7_string_is_sent_verbatim_and_a_list_is_shell_quoted(echo_server: LoopbackServer) -> None:
    with Client(echo_server.url, token="exe0.x.y") as client:
        assert client.exec("ssh-key list") == {}
        client.exec(["share", "add", "my vm", "it's"])
        client.exec(["ssh-key list"])
    assert echo_server.bodies == [
        b"ssh-key list",
        b"share add 'my vm' 'it'\"'\"'s'",
        b"'ssh-key list'",
    ]
    request = echo_server.requests[0]
    assert request["Authorization"] == "Bearer exe0.x.y"
    assert request["Content-Type"] == "text/plain; charset=utf-8"
