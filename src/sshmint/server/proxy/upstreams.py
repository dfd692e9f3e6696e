"""VM upstream URLs: parsing (docs/accounts.md#vms) and the ``--upstream-allow`` network check.

The proxy repeats :func:`upstream_allowed` for every request (docs/proxy.md#what-the-upstream-receives), so a host name
that starts resolving elsewhere is refused from then on (:class:`UpstreamChecks` remembers
only what cannot change). ``vm new`` and ``share`` check the same rules when a VM's
upstream is set.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from sshmint.errors import SSHMintError
from sshmint.server.config import IPNetwork
from sshmint.strictjson import quote

__all__ = [
    "DEFAULT_PORT",
    "RESOLVE_TIMEOUT_SECONDS",
    "Upstream",
    "UpstreamChecks",
    "UpstreamError",
    "check_upstream",
    "parse_upstream",
    "require_allowed",
    "upstream_allowed",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

DEFAULT_PORT = 80
# A resolver that does not answer counts as "not allowed" rather than hanging a command.
RESOLVE_TIMEOUT_SECONDS = 5.0
# Distinct upstream strings whose parse (and IP-literal verdicts) are remembered.
_UPSTREAM_MEMO_SIZE: Final = 4096


class UpstreamError(SSHMintError):
    """An upstream URL is malformed or points outside the allowed networks."""


@dataclass(frozen=True)
class Upstream:
    """A parsed upstream ``http://HOST[:PORT]``; ``host`` has no IPv6 brackets."""

    host: str
    explicit_port: int | None

    @property
    def port(self) -> int:
        """docs/accounts.md#vms: the explicit port, or 80."""
        return DEFAULT_PORT if self.explicit_port is None else self.explicit_port

    @property
    def url(self) -> str:
        """The stored form: ``http://HOST[:PORT]`` without a trailing ``/``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = "" if self.explicit_port is None else f":{self.explicit_port}"
        return f"http://{host}{port}"

    def with_port(self, port: int) -> Upstream:
        return Upstream(self.host, port)


# HOST (bracketed when IPv6) and an optional all-digit port.
_NETLOC = re.compile(r"(?:\[[^\[\]]+\]|[^:\[\]]+)(?::[0-9]+)?")


def _invalid(url: str) -> UpstreamError:
    return UpstreamError(f"invalid upstream URL {quote(url)}: must be http://HOST[:PORT]")


def parse_upstream(url: str) -> Upstream:
    """Parse an upstream URL per docs/accounts.md#vms, raising :class:`UpstreamError`.

    Scheme ``http``; a host; optional port 1–65535; no user info, query or fragment (an
    empty ``?`` or ``#`` counts); path empty or ``/``.
    """
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        raise _invalid(url)
    if "?" in url or "#" in url or "@" in url:
        raise _invalid(url)
    try:
        parts = urlsplit(url)
        explicit_port = parts.port
    except ValueError:
        raise _invalid(url) from None
    host = parts.hostname or ""
    if parts.scheme != "http" or not host or parts.path not in ("", "/"):
        raise _invalid(url)
    # urlsplit is lenient about ports ("host:", "+80", port 0): insist on 1-65535 in digits.
    if _NETLOC.fullmatch(parts.netloc) is None or explicit_port == 0:
        raise _invalid(url)
    if parts.netloc.startswith("["):
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise _invalid(url) from None
    return Upstream(host, explicit_port)


def _literal_address(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _inside(address: IPAddress, networks: Iterable[IPNetwork]) -> bool:
    # Comparing an address with a network of the other family is simply "not inside":
    # an IPv4-mapped IPv6 address is not waved through by an IPv4 network (fail closed).
    return any(address.version == net.version and address in net for net in networks)


async def upstream_allowed(host: str, networks: Iterable[IPNetwork]) -> bool:
    """True iff ``host`` (an IP literal, or every address it resolves to) is inside one of
    ``networks``. Resolution failures and empty answers are "not allowed"."""
    nets = tuple(networks)
    literal = _literal_address(host)
    if literal is not None:
        return _inside(literal, nets)
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(host, None, type=socket.SOCK_STREAM),
            timeout=RESOLVE_TIMEOUT_SECONDS,
        )
    except (OSError, TimeoutError, UnicodeError):
        return False
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        address = _literal_address(str(sockaddr[0]))
        if address is None:
            return False
        addresses.append(address)
    return bool(addresses) and all(_inside(a, nets) for a in addresses)


async def check_upstream(url: str, networks: Iterable[IPNetwork]) -> Upstream:
    """Parse ``url`` and require its host to be allowed (docs/accounts.md#vms), else raise
    :class:`UpstreamError` with the exact message."""
    upstream = parse_upstream(url)
    await require_allowed(upstream, networks)
    return upstream


async def require_allowed(upstream: Upstream, networks: Iterable[IPNetwork]) -> None:
    if not await upstream_allowed(upstream.host, networks):
        raise UpstreamError(f"upstream host {quote(upstream.host)} is not in an allowed network")


class UpstreamChecks:
    """The checks the proxy makes of a VM's upstream on every request, with what they may
    remember: a parse is a pure function of the text, an IP literal's verdict depends on
    nothing else; a host name is resolved every time."""

    def __init__(self, networks: Iterable[IPNetwork]) -> None:
        self._networks = tuple(networks)
        self._upstreams: dict[str, Upstream | None] = {}
        self._literal_verdicts: dict[str, bool] = {}

    def parse(self, text: str) -> Upstream | None:
        """``parse_upstream`` of the VM's upstream *as just read*, memoised by its text
        (parsing is a pure function of the string, so this hides no change)."""
        if text in self._upstreams:
            return self._upstreams[text]
        try:
            parsed: Upstream | None = parse_upstream(text)
        except UpstreamError:
            parsed = None
        if len(self._upstreams) >= _UPSTREAM_MEMO_SIZE:
            self._upstreams.clear()
        self._upstreams[text] = parsed
        return parsed

    async def allowed(self, host: str) -> bool:
        """docs/proxy.md#what-the-upstream-receives: the allow-list check for every request. Host names are resolved
        every time; only the verdict for an IP literal (which needs no resolution and
        depends on nothing else) is memoised."""
        if host in self._literal_verdicts:
            return self._literal_verdicts[host]
        allowed = await upstream_allowed(host, self._networks)
        if _is_ip_literal(host):
            if len(self._literal_verdicts) >= _UPSTREAM_MEMO_SIZE:
                self._literal_verdicts.clear()
            self._literal_verdicts[host] = allowed
        return allowed


def _is_ip_literal(host: str) -> bool:
    return _literal_address(host) is not None
