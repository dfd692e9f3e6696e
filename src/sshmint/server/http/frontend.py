"""The HTTP listener's one request handler: host routing (docs/proxy.md#host-routing,
docs/security.md#host-header), then the API (``POST /exec``, ``/healthz``) or the VM proxy.

:class:`HTTPFrontEnd` handles every request: a Host that is not a plain host name is
refused (docs/security.md#host-header), those whose Host names a VM go to the reverse proxy
(:mod:`sshmint.server.proxy`), everything else to the API (:mod:`.api`). ``build_http_listener``
serves it with :class:`.listener.HTTPListener` (connection limit, head and
idle deadlines, parser refusals) and ``HTTP_HANDLER_ARGS``: header lines of up to 32 KiB
reach the application (docs/tokens.md#validation notes: an over-long bearer token is answered by step 1,
not by the HTTP parser).

Instrumentation (docs/operations.md#metrics): :meth:`HTTPFrontEnd.handle` opens each
request's scope (its route — ``exec``, ``healthz``, ``proxy``, ``other`` — and the VM a
proxied request names); the access log (:mod:`.accesslog`), which aiohttp calls once the
answer is sent, closes it: metrics and the access line, never a token.
"""

from __future__ import annotations

import logging
import re
import ssl
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from aiohttp import web

from sshmint.server.config import ServerConfig
from sshmint.server.http.accesslog import ACCESS_LOGGER, access_log_class
from sshmint.server.http.api import API, json_error
from sshmint.server.http.listener import HTTPListener
from sshmint.server.infra.metrics import Route
from sshmint.server.infra.observe import Observer, open_scope
from sshmint.server.proxy import VMProxy, absolute_target

if TYPE_CHECKING:
    from sshmint.server.runtime import ServerRuntime

__all__ = [
    "HTTP_HANDLER_ARGS",
    "INVALID_HOST",
    "HTTPFrontEnd",
    "HostRouter",
    "build_http_listener",
    "route_host",
    "valid_host",
]

# For web.Server(handler, **HTTP_HANDLER_ARGS): header lines up to 32 KiB (docs/tokens.md#validation needs
# ≥ 16 KiB for Authorization values).
HTTP_HANDLER_ARGS: Final[Mapping[str, Any]] = {
    "max_line_size": 32 * 1024,
    "max_field_size": 32 * 1024,
}
# The metrics route of an API request, by path (docs/operations.md#metrics).
_API_ROUTES: Final[Mapping[str, Route]] = {"/exec": "exec", "/healthz": "healthz"}


# docs/security.md#host-header: what a Host may contain (an empty one, HTTP/1.0 without Host, is the API's).
_VALID_HOST = re.compile(r"[A-Za-z0-9.:\[\]_-]*").fullmatch


def valid_host(host: str) -> bool:
    """docs/security.md#host-header: letters, digits, ``-``, ``.``, ``:``, ``[``, ``]`` and ``_`` only — no
    ``@``, no space, nothing else (ASCII letters and digits: ``str.isalnum`` would let
    other scripts through)."""
    return _VALID_HOST(host) is not None


def route_host(host: str, web_host: str, vm_host: str) -> str | None:
    """docs/proxy.md#host-routing: the VM label a Host names, or None for an API request.

    The host is lower-cased, its port and one trailing ``.`` removed; equal to ``web_host``
    → API; ``<label>.<vm_host>`` with a non-empty label without ``.`` → that label.
    """
    name = host.strip().lower()
    if name.startswith("["):
        end = name.find("]")
        name = name[: end + 1] if end != -1 else name
    else:
        name = name.rpartition(":")[0] if ":" in name else name
    if name.endswith("."):
        name = name[:-1]
    if name == web_host.lower():
        return None
    suffix = "." + vm_host.lower()
    if name.endswith(suffix):
        label = name[: -len(suffix)]
        if label and "." not in label:
            return label
    return None


# HostRouter.route's answer for a Host that docs/security.md#host-header refuses (route_host never names an
# empty label).
INVALID_HOST: Final = ""
_ROUTES_REMEMBERED: Final = 1024


class HostRouter:
    """Where a Host goes: a VM label, None for the API, or ``INVALID_HOST`` (docs/proxy.md#host-routing,
    docs/security.md#host-header). The answer is a pure function of the Host, and clients send the same Host on
    every request, so answers are remembered (up to ``_ROUTES_REMEMBERED`` hosts, then
    forgotten at once): a repeated Host costs one dictionary lookup, less than checking
    and routing it again."""

    def __init__(self, web_host: str, vm_host: str) -> None:
        self._web_host = web_host
        self._vm_host = vm_host
        self._known: dict[str, str | None] = {}

    def route(self, host: str) -> str | None:
        known = self._known
        try:
            return known[host]
        except KeyError:
            pass
        if _VALID_HOST(host) is None:
            decision: str | None = INVALID_HOST
        else:
            decision = route_host(host, self._web_host, self._vm_host)
        if len(known) >= _ROUTES_REMEMBERED:
            known.clear()
        known[host] = decision
        return decision

    def route_request(self, request: web.BaseRequest) -> str | None:
        """:meth:`route` for a request: by its Host header, or by the authority of an
        absolute-form target (the Host header must be valid all the same)."""
        route = self.route(request.headers.get("Host", ""))
        raw_path = request.raw_path
        if raw_path[:1] != "/" and route != INVALID_HOST:
            target = absolute_target(raw_path)
            if target is not None and target.raw_authority:
                route = self.route(target.raw_authority)
        return route


class HTTPFrontEnd:
    """The one request handler of the HTTP listener: an invalid Host is refused (docs/security.md#host-header), VM hosts go to the proxy, every other host to the API (docs/proxy.md#host-routing).

    It runs under aiohttp's low-level ``web.Server`` (see ``build_http_listener``): with one
    handler for every path, an ``Application`` would only add a router lookup and request
    wrapping to every request. That server also never answers ``Expect: 100-continue`` by
    itself, which is what the API and the proxy want (see ``send_continue``).
    """

    def __init__(self, runtime: ServerRuntime) -> None:
        auth = runtime.authenticator
        self.observer: Observer = runtime.observer
        self._api = API(runtime, auth)
        self._proxy = VMProxy(
            runtime.config,
            runtime.store,
            auth,
            logger=runtime.logger,
            observer=runtime.observer,
        )
        self._router = HostRouter(runtime.config.web_host, runtime.config.vm_host)

    async def start(self) -> None:
        await self._proxy.start()

    async def close(self) -> None:
        self._api.close()
        await self._proxy.close()

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        vm_label = self._router.route_request(request)
        if vm_label is None:
            open_scope(_API_ROUTES.get(request.path, "other"))
            return await self._api.handle(request)
        if vm_label == INVALID_HOST:
            open_scope("other")
            return json_error(400, "invalid Host header")
        open_scope("proxy").vm = vm_label
        return await self._proxy.handle(request, vm_label)


def build_http_listener(
    front_end: HTTPFrontEnd,
    config: ServerConfig,
    tls: ssl.SSLContext | None,
    shutdown_timeout: float,
) -> HTTPListener:
    """The HTTP listener around ``front_end``: ``HTTP_HANDLER_ARGS``, the access log
    reporting to the front end's observer, and the deadlines and connection limit of
    ``config`` (docs/security.md#slow-and-idle-clients).

    aiohttp's lingering close — after answering a request whose body it has not read, it
    reads and discards the rest before closing, so that the client sees the answer — is
    bounded by ``--body-timeout`` too (aiohttp's default is 10 s, the same as ours)."""
    return HTTPListener(
        front_end.handle,
        header_timeout=config.header_timeout,
        idle_timeout=config.idle_timeout,
        max_connections=config.max_connections,
        tls=tls,
        shutdown_timeout=shutdown_timeout,
        handler_args={
            **HTTP_HANDLER_ARGS,
            "access_log_class": access_log_class(front_end.observer),
            "access_log": logging.getLogger(ACCESS_LOGGER),
            "lingering_time": config.body_timeout,
        },
    )
