"""The HTTP listener: host routing (docs/proxy.md#host-routing, docs/security.md#host-header), the API (``POST /exec``, ``/healthz``, docs/http-api.md#post-exec).

:class:`HTTPFrontEnd` handles every request: a Host that is not a plain host name is
refused (docs/security.md#host-header), those whose Host names a VM go to the reverse proxy
(:mod:`sshmint.server.proxy`), everything else to the API. ``build_http_listener`` serves
it with :class:`sshmint.server.http_listener.HTTPListener` (connection limit, head and
idle deadlines, parser refusals) and ``HTTP_HANDLER_ARGS``: header lines of up to 32 KiB
reach the application (docs/tokens.md#validation notes: an over-long bearer token is answered by step 1,
not by the HTTP parser) and the access log never shows a token.
``ssl_context_from_config`` builds the TLS context for ``--tls-cert``/``--tls-key``.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import re
import ssl
import time as time_module
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_log import AccessLogger
from aiohttp.web_protocol import RequestPayloadError

from sshmint.errors import TokenError
from sshmint.server.auth import Authenticator, KeyPermissionsError, Principal
from sshmint.server.auth.permissions import key_restriction_error
from sshmint.server.commands import (
    CommandContext,
    CommandResult,
    CommandSettings,
    CommandSyntaxError,
    resolve_command_name,
    run_words,
    split_command_line,
)
from sshmint.server.config import ServerConfig
from sshmint.server.deadline import DeadlineWatch
from sshmint.server.http_listener import HTTPListener
from sshmint.server.infra.logs import direct_line_writer, redact_tokens
from sshmint.server.proxy import VMProxy, absolute_target, send_continue
from sshmint.server.ratelimit import RateLimiter
from sshmint.server.store import StoreError

if TYPE_CHECKING:
    from sshmint.server.runtime import ServerRuntime

__all__ = [
    "HTTP_HANDLER_ARGS",
    "INVALID_HOST",
    "MAX_BODY_BYTES",
    "HTTPFrontEnd",
    "HostRouter",
    "RedactingAccessLogger",
    "build_http_listener",
    "route_host",
    "ssl_context_from_config",
    "valid_host",
]


_LOG_SOURCE = "aiohttp access log"


class RedactingAccessLogger(AccessLogger):
    """aiohttp's access log with token-like strings removed from every field.

    The default format (``%a %t "%r" %s %b "%{Referer}i" "%{User-Agent}i"``) is rendered
    directly, with the timestamp formatted once per second: aiohttp's generic field
    machinery costs more than the rest of a proxied request's own work. Any other format
    goes through aiohttp's formatter.
    """

    def __init__(self, logger: logging.Logger, log_format: str = AccessLogger.LOG_FORMAT) -> None:
        super().__init__(logger, log_format)
        self._default_format = log_format == AccessLogger.LOG_FORMAT
        # One per connection: logging's configuration is looked at when it opens.
        self._write_line = direct_line_writer(logger)
        self._stamp_second = -1
        self._stamp = ""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        if not self._default_format or request is None:
            super().log(request, response, time)
            return
        try:
            headers = request.headers
            version = request.version
            line = (
                f"{request.remote or '-'} {self._timestamp(time_module.time() - time)}"
                f' "{request.method} {request.path_qs} HTTP/{version.major}.{version.minor}"'
                f" {response.status} {response.body_length}"
                f' "{headers.get("Referer", "-")}" "{headers.get("User-Agent", "-")}"'
            )
            if self._write_line is not None:  # it redacts tokens itself
                self._write_line(line)
                return
            if "exe0" in line or "exe1" in line:  # cheap tests before the pattern
                line = redact_tokens(line)
            # logger.info() minus the stack walk for the caller's file and line, which
            # would only ever name aiohttp's protocol module.
            logger = self.logger
            logger.handle(
                logger.makeRecord(logger.name, logging.INFO, _LOG_SOURCE, 0, line, (), None)
            )
        except Exception:
            self.logger.exception("Error in logging")

    def _timestamp(self, start: float) -> str:
        second = int(start)
        if second != self._stamp_second:
            local = datetime.datetime.fromtimestamp(second).astimezone()
            self._stamp = local.strftime("[%d/%b/%Y:%H:%M:%S %z]")
            self._stamp_second = second
        return self._stamp

    def _format_line(
        self, request: web.BaseRequest, response: web.StreamResponse, time: float
    ) -> Iterable[tuple[str | tuple[str, str], str]]:
        return [
            (key, redact_tokens(value) if isinstance(value, str) else value)
            for key, value in super()._format_line(request, response, time)
        ]


# For web.Server(handler, **HTTP_HANDLER_ARGS): header lines up to 32 KiB (docs/tokens.md#validation needs
# ≥ 16 KiB for Authorization values) and the redacting access log.
HTTP_HANDLER_ARGS: Final[Mapping[str, Any]] = {
    "max_line_size": 32 * 1024,
    "max_field_size": 32 * 1024,
    "access_log_class": RedactingAccessLogger,
}

# docs/http-api.md#post-exec steps 8–9 (step 17's time limit is --exec-timeout).
MAX_BODY_BYTES: Final = 65536

_JSON_HEADERS: Final[Mapping[str, str]] = {
    "Content-Type": "application/json; charset=utf-8",
    "X-Content-Type-Options": "nosniff",
}


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


# docs/http-api.md#post-exec /healthz bodies, rendered once.
_HEALTH_OK: Final = '{"status":"ok"}\n'
_HEALTH_UNAVAILABLE: Final = '{"status":"error","error":"database unavailable"}\n'


def _json_response(
    status: int, body: Mapping[str, object] | str, headers: Mapping[str, str] | None = None
) -> web.Response:
    """An API response: JSON + ``\\n`` (or a body already rendered), with docs/http-api.md#post-exec's headers."""
    text = (
        body
        if isinstance(body, str)
        else json.dumps(body, ensure_ascii=False, separators=(",", ":")) + "\n"
    )
    response = web.Response(status=status, body=text.encode("utf-8"), headers=_JSON_HEADERS)
    if headers:
        response.headers.update(headers)
    return response


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> web.Response:
    return _json_response(status, {"error": message}, headers)


def _unauthorized(message: str) -> web.Response:
    # docs/http-api.md#post-exec: every 401 carries WWW-Authenticate: Bearer (R34).
    return _error(401, message, {"WWW-Authenticate": "Bearer"})


class _API:
    """``/exec`` and ``/healthz`` on every non-VM host (docs/http-api.md#post-exec)."""

    def __init__(self, runtime: ServerRuntime, auth: Authenticator) -> None:
        self._runtime = runtime
        self._auth = auth
        self._limiter = RateLimiter()
        self._namespace = f"v0@{runtime.config.web_host}"
        self._settings: CommandSettings | None = None
        self._deadlines = DeadlineWatch(runtime.config.exec_timeout)
        self._body_timeout = runtime.config.body_timeout

    def close(self) -> None:
        self._deadlines.close()

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        path = request.path
        if path == "/exec":
            return await self._exec(request)
        if path == "/healthz":
            return await self._healthz(request)
        return _error(404, "not found")

    async def _healthz(self, request: web.BaseRequest) -> web.Response:
        if request.method not in ("GET", "HEAD"):
            return _error(405, "method not allowed", {"Allow": "GET, HEAD"})
        try:
            await self._runtime.store.ping()
        except Exception:  # any failure to query the database means "unavailable"
            self._runtime.logger.warning("healthz: database unavailable")
            return _json_response(503, _HEALTH_UNAVAILABLE)
        return _json_response(200, _HEALTH_OK)

    async def _exec(self, request: web.BaseRequest) -> web.Response:
        head_at = (
            time_module.monotonic()
        )  # the body's deadline counts from here (docs/security.md#slow-and-idle-clients)
        # Step 1.
        if request.method != "POST":
            return _error(405, "method not allowed", {"Allow": "POST"})
        # Step 2: first Authorization value, trimmed, scheme "Bearer " case-insensitively.
        header = request.headers.get("Authorization", "").strip()
        if len(header) < 7 or header[:7].lower() != "bearer ":
            return _unauthorized("missing or invalid Authorization header")
        token = header[7:].strip()
        # Steps 3–5: one authentication path (exe1 resolution, parse, claims, key, signature,
        # lockout — which also loads the user, step 4), then the key's stored restrictions.
        try:
            principal = await self._auth.authenticate(token, self._namespace, with_user_keys=True)
        except TokenError as exc:
            return _unauthorized(exc.message)
        except (StoreError, KeyPermissionsError) as exc:
            self._runtime.logger.error(
                "exec: authentication failed internally: %s", type(exc).__name__
            )
            return _error(500, "internal error")
        now = self._runtime.now()
        # Step 6.
        if principal.key_permissions.expired(now):
            return _error(403, "SSH key has expired")
        # Step 7: every request reaching this step consumes a token (docs/http-api.md#retry-after: a refusal
        # says when the key's balance is positive again).
        retry_after = self._limiter.consume(principal.key.fingerprint)
        if retry_after:
            return _error(429, "rate limit exceeded", {"Retry-After": str(retry_after)})
        # Steps 8–9.
        try:
            body = await self._read_body(request, head_at + self._body_timeout)
        except (HttpProcessingError, RequestPayloadError, OSError, asyncio.IncompleteReadError):
            # TimeoutError (an OSError) included: the body was not complete in time. The
            # request's framing is lost either way: the connection closes.
            response = _error(400, "failed to read request body")
            response.force_close()
            return response
        if len(body) > MAX_BODY_BYTES:
            return _error(413, "request body exceeds 64KB limit")
        # Step 10.
        if b"\x00" in body:
            return _error(400, "request body must not contain null bytes")
        # Step 11.
        line = body.decode("utf-8", errors="replace").strip()
        if not line:
            return _error(400, "missing command in request body")
        # Step 12.
        try:
            words = split_command_line(line)
        except CommandSyntaxError:
            return _error(400, "invalid command syntax")
        # Step 13.
        if not words:
            return _error(400, "missing command in request body")
        # Step 14.
        name = resolve_command_name(words)
        if name is None:
            return _error(404, "unknown command")
        # Step 15.
        if not principal.permissions.allows(name):
            return _error(403, "command not allowed by token permissions")
        # Step 16.
        if key_restriction_error(principal.key_permissions, name) is not None:
            return _error(403, "command not allowed by SSH key permissions")
        # Step 17.
        return await self._run(principal, words)

    @staticmethod
    async def _read_body(request: web.BaseRequest, deadline: float) -> bytes:
        """Read at most MAX_BODY_BYTES + 1 bytes: enough to tell an over-long body.

        Raises ``TimeoutError`` when the body is not complete by ``deadline``
        (``time.monotonic()``, docs/security.md#slow-and-idle-clients); a body already complete never waits.
        """
        await send_continue(request)
        content = request.content
        if content.is_eof():  # the usual small body, already complete: no awaiting
            return content.read_nowait()
        chunks: list[bytes] = []
        size = 0
        async with asyncio.timeout(deadline - time_module.monotonic()):
            while size <= MAX_BODY_BYTES:
                chunk = await content.read(MAX_BODY_BYTES + 1 - size)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
                if content.at_eof():  # the usual one-piece body: no extra read for the EOF
                    break
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def _command_settings(self) -> CommandSettings:
        """The runtime's command settings, rebuilt only if the bound HTTP port changed."""
        settings = self._settings
        if settings is None or settings.http_port != self._runtime.http_port:
            settings = self._settings = self._runtime.command_settings()
        return settings

    async def _run(self, principal: Principal, words: list[str]) -> web.Response:
        """Step 17: run the command in this request's task, cancelled at the
        ``--exec-timeout`` deadline, 30 s by default (no extra task: the watch cancels the
        running one)."""
        runtime = self._runtime
        ctx = CommandContext(
            store=runtime.store,
            settings=self._command_settings(),
            user=principal.user,
            key=principal.key,
            now=runtime.now,
            stdin=None,
            indent_json=False,
            authenticator=runtime.authenticator,
            user_keys=principal.user_keys,
        )
        deadline = self._deadlines.start()
        try:
            result: CommandResult = await run_words(ctx, words, force_json=True)
        except asyncio.CancelledError:
            if deadline.close() and not deadline.cancelled_by_others():
                return _error(504, "command timed out")
            raise
        except Exception as exc:
            deadline.close()
            return self._internal_error(words[0], exc)
        # A command that finished while being cancelled (it absorbed the cancellation): a
        # completed success is never a timeout (docs/http-api.md#post-exec), a failure still is.
        if deadline.close() and result.exit_status != 0:
            return _error(504, "command timed out")
        return self._command_response(result)

    def _internal_error(self, command: str, exc: BaseException) -> web.Response:
        self._runtime.logger.error(
            "exec: command %r failed: %s", command, type(exc).__name__, exc_info=exc
        )
        return _error(500, "internal error")

    @staticmethod
    def _command_response(result: CommandResult) -> web.Response:
        output = result.stdout.strip()
        if result.exit_status == 0:
            return _json_response(200, output + "\n" if output else "")
        if not output:
            output = json.dumps({"error": result.stderr.strip() or "command failed"})
        return _json_response(422, output + "\n")


class HTTPFrontEnd:
    """The one request handler of the HTTP listener: an invalid Host is refused (docs/security.md#host-header), VM hosts go to the proxy, every other host to the API (docs/proxy.md#host-routing).

    It runs under aiohttp's low-level ``web.Server`` (see ``build_http_listener``): with one
    handler for every path, an ``Application`` would only add a router lookup and request
    wrapping to every request. That server also never answers ``Expect: 100-continue`` by
    itself, which is what the API and the proxy want (see ``send_continue``).
    """

    def __init__(self, runtime: ServerRuntime) -> None:
        auth = runtime.authenticator
        self._api = _API(runtime, auth)
        self._proxy = VMProxy(runtime, auth)
        self._router = HostRouter(runtime.config.web_host, runtime.config.vm_host)

    async def start(self) -> None:
        await self._proxy.start()

    async def close(self) -> None:
        self._api.close()
        await self._proxy.close()

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        vm_label = self._router.route_request(request)
        if vm_label is None:
            return await self._api.handle(request)
        if vm_label == INVALID_HOST:
            return _error(400, "invalid Host header")
        return await self._proxy.handle(request, vm_label)


def build_http_listener(
    front_end: HTTPFrontEnd,
    config: ServerConfig,
    tls: ssl.SSLContext | None,
    shutdown_timeout: float,
) -> HTTPListener:
    """The HTTP listener around ``front_end``: ``HTTP_HANDLER_ARGS`` and the deadlines and
    connection limit of ``config`` (docs/security.md#slow-and-idle-clients).

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
        handler_args={**HTTP_HANDLER_ARGS, "lingering_time": config.body_timeout},
    )


def ssl_context_from_config(config: ServerConfig) -> ssl.SSLContext | None:
    """A server TLS context from ``config.tls_cert``/``config.tls_key``, or None without them.

    Raises ``ValueError`` naming the file when the pair cannot be loaded.
    """
    cert, key = config.tls_cert, config.tls_key
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise ValueError("--tls-cert and --tls-key must be given together")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(str(cert), str(key))
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or str(exc)
        raise ValueError(f"cannot load TLS certificate {cert} / key {key}: {reason}") from None
    return context
