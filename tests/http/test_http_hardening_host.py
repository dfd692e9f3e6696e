"""docs/security.md#host-header (R163): a Host that is not a plain host name is refused before routing, on
every listener — the API host and VM hosts, plain HTTP and TLS — and the TLS listener's
handshake and request head share the head deadline of docs/security.md#slow-and-idle-clients.
"""

from __future__ import annotations

import socket
import ssl
import time
from pathlib import Path

import pytest

from sshmint.server.http import INVALID_HOST, HostRouter, route_host, valid_host
from tests.support.harness import SSHMintServer
from tests.support.raw_http import RawResponse, closed_within, exchange, read_response

pytestmark = pytest.mark.slow

INVALID_HOST_BODY = b'{"error":"invalid Host header"}\n'


@pytest.mark.parametrize(
    "host",
    [
        "localhost",
        "LOCALHOST:8080",
        "myvm.localhost:8080",
        "my-vm.localhost.",
        "under_score.localhost",
        "127.0.0.1:8080",
        "[::1]:8080",
        "[fe80::1]",
        "",  # HTTP/1.0 without Host: the API's
    ],
)
def test_r163_plain_host_names_are_valid(host: str) -> None:
    assert valid_host(host)


@pytest.mark.parametrize(
    "host",
    [
        "myvm.localhost@evil.example",
        "user@localhost",
        "@",
        "local host",
        " localhost",
        "localhost\t",
        "a/b.localhost",
        "a%2eb.localhost",
        "a?b",
        "a#b",
        "a,b",
        "a;b",
        "a\\b",
        "évil.localhost",
        "ｌocalhost",  # a fullwidth letter: not an ASCII letter
        "a\x00b",
    ],
)
def test_r163_anything_else_is_invalid(host: str) -> None:
    assert not valid_host(host)


def test_r163_the_router_refuses_invalid_hosts_and_routes_the_rest() -> None:
    """``HostRouter`` answers as ``valid_host`` + ``route_host`` would, every time, with
    a bounded memory of the hosts it has seen."""
    router = HostRouter("localhost", "localhost")
    hosts = ["localhost:8080", "myvm.localhost", "a.b.localhost", "myvm.localhost@evil.example"]
    for _ in range(2):  # the second round is answered from memory
        for host in hosts:
            expected = route_host(host, "localhost", "localhost") if valid_host(host) else ""
            assert router.route(host) == expected
    assert router.route("myvm.localhost@evil.example") == INVALID_HOST
    for n in range(5000):  # many distinct hosts: memory stays bounded, answers stay right
        assert router.route(f"vm{n}.localhost") == f"vm{n}"
    assert len(router._known) <= 1024


def _request(host: str, target: str = "/healthz") -> bytes:
    return f"GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()


def assert_invalid_host(reply: RawResponse) -> None:
    assert (reply.status, reply.body) == (400, INVALID_HOST_BODY)
    assert reply.header("Content-Type") == "application/json; charset=utf-8"
    assert reply.header("X-Content-Type-Options") == "nosniff"


@pytest.mark.parametrize(
    ("host", "target"),
    [
        ("myvm.localhost@evil.example", "/"),  # R163: would route to VM myvm
        ("localhost@evil.example", "/healthz"),  # the API host
        ("myvm.localhost:8080@evil.example", "/"),
        ("local host", "/healthz"),
        ("localhost", "http://user@myvm.localhost/"),  # absolute-form authority with userinfo
        ("myvm.localhost@evil.example", "http://localhost/healthz"),  # the header still counts
    ],
)
def test_r163_invalid_hosts_are_refused_before_routing(
    sqlite_server: SSHMintServer, host: str, target: str
) -> None:
    assert_invalid_host(exchange(sqlite_server.http_port, _request(host, target)))


def test_r163_valid_hosts_still_route(sqlite_server: SSHMintServer) -> None:
    """Validation only refuses: the API answers, a VM host reaches the proxy (404 for an
    unknown VM, in the proxy's own text form)."""
    api = exchange(sqlite_server.http_port, _request("localhost:8080"))
    assert (api.status, api.body) == (200, b'{"status":"ok"}\n')
    vm = exchange(sqlite_server.http_port, _request("novm.localhost", "/"))
    assert (vm.status, vm.body) == (404, b"VM not found\n")
    absolute = exchange(sqlite_server.http_port, _request("ignored", "http://localhost/healthz"))
    assert absolute.status == 200


# --- the TLS listener --------------------------------------------------------------------


def _tls_connect(server: SSHMintServer, cert: Path) -> ssl.SSLSocket:
    context = ssl.create_default_context(cafile=str(cert))
    raw = socket.create_connection(("127.0.0.1", server.http_port), timeout=10)
    return context.wrap_socket(raw, server_hostname="localhost")


def test_r163_over_tls(tls_server: tuple[SSHMintServer, Path]) -> None:
    server, cert = tls_server
    with _tls_connect(server, cert) as sock:
        sock.sendall(_request("myvm.localhost@evil.example", "/"))
        assert_invalid_host(read_response(sock))
    with _tls_connect(server, cert) as sock:
        sock.sendall(_request("localhost"))
        assert read_response(sock).status == 200


def test_r159_tls_a_silent_client_is_closed_at_the_head_deadline(
    tls_server: tuple[SSHMintServer, Path],
) -> None:
    """docs/security.md#slow-and-idle-clients behind TLS: no ClientHello at all, and a handshake followed by half a
    head, are both closed about ``--header-timeout`` (1 s) after connecting."""
    server, cert = tls_server
    with socket.create_connection(("127.0.0.1", server.http_port), timeout=10) as silent:
        waited = closed_within(silent, 6)
    assert waited is not None and 0.8 <= waited <= 3, waited

    started = time.monotonic()
    with _tls_connect(server, cert) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: local")
        assert closed_within(sock, 6) is not None
    assert 0.8 <= time.monotonic() - started <= 3
