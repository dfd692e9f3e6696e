"""docs/accounts.md#vms: upstream URLs and the ``--upstream-allow`` network check."""

from __future__ import annotations

import ipaddress

import pytest

from sshmint.server.proxy.upstreams import (
    Upstream,
    UpstreamError,
    check_upstream,
    parse_upstream,
    upstream_allowed,
)
from sshmint.strictjson import quote

LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


@pytest.mark.parametrize(
    ("url", "stored", "port"),
    [
        ("http://127.0.0.1", "http://127.0.0.1", 80),
        ("http://127.0.0.1/", "http://127.0.0.1", 80),  # a lone / is dropped
        ("http://127.0.0.1:9000", "http://127.0.0.1:9000", 9000),
        ("http://localhost:65535/", "http://localhost:65535", 65535),
        ("http://[::1]:8080", "http://[::1]:8080", 8080),
        ("HTTP://LOCALHOST:1", "http://localhost:1", 1),
    ],
)
def test_s5_6_valid_upstreams(url: str, stored: str, port: int) -> None:
    upstream = parse_upstream(url)
    assert upstream.url == stored
    assert upstream.port == port


@pytest.mark.parametrize(
    "url",
    [
        "ftp://x",  # R97
        "https://127.0.0.1",
        "127.0.0.1:80",
        "http://",
        "http://:80",
        "http://user@127.0.0.1",
        "http://user:pw@127.0.0.1",
        "http://127.0.0.1/path",
        "http://127.0.0.1//",
        "http://127.0.0.1?",
        "http://127.0.0.1/?a=1",
        "http://127.0.0.1#",
        "http://127.0.0.1#frag",
        "http://127.0.0.1:",
        "http://127.0.0.1:0",
        "http://127.0.0.1:65536",
        "http://127.0.0.1:+80",
        "http://127.0.0.1:8o",
        "http://::1",
        "http://[not-ipv6]:80",
        "http://127.0.0.1 ",
        "http://127.0.0.1\n",
        "",
    ],
)
def test_s5_6_invalid_upstreams_have_the_exact_message(url: str) -> None:
    with pytest.raises(UpstreamError) as err:
        parse_upstream(url)
    assert err.value.message == f"invalid upstream URL {quote(url)}: must be http://HOST[:PORT]"


def test_s5_6_with_port_replaces_the_port() -> None:
    assert parse_upstream("http://127.0.0.1").with_port(81).url == "http://127.0.0.1:81"
    assert Upstream("::1", None).url == "http://[::1]"


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("127.0.0.1", True),
        ("127.255.0.9", True),
        ("::1", True),
        ("localhost", True),  # resolved: every address is loopback
        ("10.0.0.1", False),  # R97
        ("::2", False),
        ("::ffff:10.0.0.1", False),  # mapped IPv4 is judged as IPv6: fail closed
    ],
)
async def test_s5_6_upstream_allow_list(host: str, allowed: bool) -> None:
    assert await upstream_allowed(host, LOOPBACK) is allowed


async def test_s5_6_no_networks_allow_nothing() -> None:
    assert not await upstream_allowed("127.0.0.1", ())


async def test_r97_disallowed_network_message() -> None:
    with pytest.raises(UpstreamError) as err:
        await check_upstream("http://10.0.0.1:80", LOOPBACK)
    assert err.value.message == 'upstream host "10.0.0.1" is not in an allowed network'
    assert (await check_upstream("http://127.0.0.1:80", LOOPBACK)).port == 80
