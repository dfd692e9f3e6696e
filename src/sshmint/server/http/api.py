"""The API on every host that is not a VM's (docs/http-api.md#post-exec): ``POST /exec``,
which runs one command of the command tree as a token's user, and ``/healthz``."""

from __future__ import annotations

import asyncio
import json
import time as time_module
from collections.abc import Mapping
from typing import TYPE_CHECKING, Final

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from sshmint.errors import TokenError
from sshmint.server.auth import (
    Authenticator,
    KeyPermissionsError,
    KeyRestrictionError,
    Principal,
    command_refusal,
)
from sshmint.server.commands import (
    INVALID_COMMAND_SYNTAX,
    CommandContext,
    CommandResult,
    CommandSettings,
    CommandSyntaxError,
    resolve_command_name,
    run_words,
    split_command_line,
)
from sshmint.server.deadline import DeadlineWatch
from sshmint.server.http.ratelimit import rate_limiter_for
from sshmint.server.infra.observe import note_command
from sshmint.server.proxy import send_continue
from sshmint.server.store import StoreError

if TYPE_CHECKING:
    from sshmint.server.runtime import ServerRuntime

__all__ = ["API", "MAX_BODY_BYTES", "json_error"]

# docs/http-api.md#post-exec steps 8–9 (step 17's time limit is --exec-timeout).
MAX_BODY_BYTES: Final = 65536

_JSON_HEADERS: Final[Mapping[str, str]] = {
    "Content-Type": "application/json; charset=utf-8",
    "X-Content-Type-Options": "nosniff",
}


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


def json_error(status: int, message: str, headers: Mapping[str, str] | None = None) -> web.Response:
    return _json_response(status, {"error": message}, headers)


def _unauthorized(message: str) -> web.Response:
    # docs/http-api.md#post-exec: every 401 carries WWW-Authenticate: Bearer (R34).
    return json_error(401, message, {"WWW-Authenticate": "Bearer"})


class API:
    """``/exec`` and ``/healthz`` on every non-VM host (docs/http-api.md#post-exec)."""

    def __init__(self, runtime: ServerRuntime, auth: Authenticator) -> None:
        self._runtime = runtime
        self._auth = auth
        self._limiter = rate_limiter_for(runtime.store)
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
        return json_error(404, "not found")

    async def _healthz(self, request: web.BaseRequest) -> web.Response:
        if request.method not in ("GET", "HEAD"):
            return json_error(405, "method not allowed", {"Allow": "GET, HEAD"})
        try:
            await self._runtime.store.ping()
        except Exception:  # any failure to query the database means "unavailable"
            self._runtime.logger.warning("healthz: database unavailable")
            return _json_response(503, _HEALTH_UNAVAILABLE)
        return _json_response(200, _HEALTH_OK)

    async def _exec(self, request: web.BaseRequest) -> web.Response:
        """docs/http-api.md#post-exec, steps 1–17 in order: the first refusal is the answer."""
        # The body's deadline counts from here (docs/security.md#slow-and-idle-clients).
        head_at = time_module.monotonic()
        # Step 1.
        if request.method != "POST":
            return json_error(405, "method not allowed", {"Allow": "POST"})
        principal = await self._principal(request)  # steps 2–7
        if isinstance(principal, web.Response):
            return principal
        body = await self._body(request, head_at)  # steps 8–10
        if isinstance(body, web.Response):
            return body
        words = _command_words(body, principal)  # steps 11–16
        if isinstance(words, web.Response):
            return words
        # Step 17.
        return await self._run(principal, words)

    async def _principal(self, request: web.BaseRequest) -> Principal | web.Response:
        """Steps 2–7: who the bearer token speaks for, or the refusal."""
        # Step 2: first Authorization value, trimmed, scheme "Bearer " case-insensitively.
        header = request.headers.get("Authorization", "").strip()
        if len(header) < 7 or header[:7].lower() != "bearer ":
            return _unauthorized("missing or invalid Authorization header")
        token = header[7:].strip()
        # Steps 3–6: one authentication path (exe1 resolution, parse, claims, key, signature,
        # lockout — which also loads the user, step 4 — revocation, the key's stored
        # restrictions and expiry, step 6, and the lifetime policy).
        try:
            principal = await self._auth.authenticate(token, self._namespace, with_user_keys=True)
        except TokenError as exc:
            return _unauthorized(exc.message)
        except KeyRestrictionError as exc:  # step 6: the signing key has expired
            return json_error(403, exc.message)
        except (StoreError, KeyPermissionsError) as exc:
            self._runtime.logger.error(
                "exec: authentication failed internally: %s", type(exc).__name__
            )
            return json_error(500, "internal error")
        # Step 7: every request reaching this step consumes a token (docs/http-api.md#retry-after: a refusal
        # says when the key's balance is positive again); the bucket is shared by every
        # node on PostgreSQL (docs/http-api.md#rate-limit-across-nodes), and a database
        # that cannot answer fails closed.
        try:
            retry_after = await self._limiter.take(principal.key.fingerprint)
        except StoreError as exc:
            self._runtime.logger.error("exec: rate limit unavailable: %s", type(exc).__name__)
            return json_error(500, "internal error")
        if retry_after:
            return json_error(429, "rate limit exceeded", {"Retry-After": str(retry_after)})
        return principal

    async def _body(self, request: web.BaseRequest, head_at: float) -> bytes | web.Response:
        """Steps 8–10: the request body, or the refusal."""
        # Steps 8–9.
        try:
            body = await self._read_body(request, head_at + self._body_timeout)
        except (HttpProcessingError, RequestPayloadError, OSError, asyncio.IncompleteReadError):
            # TimeoutError (an OSError) included: the body was not complete in time. The
            # request's framing is lost either way: the connection closes.
            response = json_error(400, "failed to read request body")
            response.force_close()
            return response
        if len(body) > MAX_BODY_BYTES:
            return json_error(413, "request body exceeds 64KB limit")
        # Step 10.
        if b"\x00" in body:
            return json_error(400, "request body must not contain null bytes")
        return body

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
                return json_error(504, "command timed out")
            raise
        except Exception as exc:
            deadline.close()
            return self._internal_error(words[0], exc)
        # A command that finished while being cancelled (it absorbed the cancellation): a
        # completed success is never a timeout (docs/http-api.md#post-exec), a failure still is.
        if deadline.close() and result.exit_status != 0:
            return json_error(504, "command timed out")
        return self._command_response(result)

    def _internal_error(self, command: str, exc: BaseException) -> web.Response:
        self._runtime.logger.error(
            "exec: command %r failed: %s", command, type(exc).__name__, exc_info=exc
        )
        return json_error(500, "internal error")

    @staticmethod
    def _command_response(result: CommandResult) -> web.Response:
        output = result.stdout.strip()
        if result.exit_status == 0:
            return _json_response(200, output + "\n" if output else "")
        if not output:
            output = json.dumps({"error": result.stderr.strip() or "command failed"})
        return _json_response(422, output + "\n")


def _command_words(body: bytes, principal: Principal) -> list[str] | web.Response:
    """Steps 11–16: the command line's words, if they name a command the token and its key
    allow; else the refusal."""
    # Step 11.
    line = body.decode("utf-8", errors="replace").strip()
    if not line:
        return json_error(400, "missing command in request body")
    # Step 12.
    try:
        words = split_command_line(line)
    except CommandSyntaxError:
        return json_error(400, INVALID_COMMAND_SYNTAX)
    # Step 13.
    if not words:
        return json_error(400, "missing command in request body")
    # Step 14.
    name = resolve_command_name(words)
    note_command(name)  # for the metrics and the access line (docs/operations.md#metrics)
    if name is None:
        return json_error(404, "unknown command")
    # Steps 15–16: the token's cmds, then the key's restrictions.
    refusal = command_refusal(principal.permissions, principal.key_permissions, name)
    if refusal is not None:
        return json_error(403, refusal.message)
    return words
