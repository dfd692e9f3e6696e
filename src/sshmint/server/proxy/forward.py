"""The authenticating reverse proxy in front of VMs (docs/proxy.md#vm-proxy): :class:`VMProxy`.

Order of processing (docs/proxy.md#order-of-processing): ambiguity check (400) → VM lookup (404) → credential
selection and validation (docs/proxy.md#credentials) → access rules for private VMs (401/403) →
forwarding (docs/proxy.md#what-the-upstream-receives) or 502. The header rules are pure functions
(:mod:`.headers`); this module does the I/O.

Requests go out on pooled keep-alive connections (:mod:`.pool`, :mod:`.connection`), with
exactly the head built here; bodies stream both ways with flow control (nothing is
buffered beyond a few hundred KiB), responses are never decompressed, cookies never
stored, redirects never followed. The response is relayed by :mod:`.response`;
``Connection: Upgrade`` requests (WebSocket) are relayed byte for byte after a
``101 Switching Protocols`` (:mod:`.upgrade`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Final

import aiohttp
from aiohttp import web
from aiohttp.streams import StreamReader
from multidict import MultiMapping

from sshmint.errors import TokenError
from sshmint.server.auth import (
    Authenticator,
    KeyPermissionsError,
    KeyRestrictionError,
    Principal,
    has_vm_access,
)
from sshmint.server.config import ServerConfig
from sshmint.server.infra.logs import redact_tokens
from sshmint.server.infra.observe import Observer
from sshmint.server.proxy.answers import (
    MSG_AMBIGUOUS,
    MSG_FORBIDDEN,
    MSG_INTERNAL,
    MSG_NOT_FOUND,
    MSG_TIMED_OUT,
    MSG_UNAUTHENTICATED,
    MSG_UNAVAILABLE,
    answer,
)
from sshmint.server.proxy.connection import (
    ResponseHead,
    UpstreamConnection,
    UpstreamTimeout,
    UpstreamUnavailable,
    encode_request_head,
)
from sshmint.server.proxy.headers import (
    BearerCredential,
    Identity,
    absolute_target,
    basic_password,
    bearer_credential,
    is_ambiguous,
    is_upgrade_request,
    upstream_request_headers,
)
from sshmint.server.proxy.pool import UpstreamPool
from sshmint.server.proxy.response import LAST_CHUNK, chunk, relay_response
from sshmint.server.proxy.upgrade import relay_upgrade
from sshmint.server.proxy.upstreams import Upstream, UpstreamChecks
from sshmint.server.store import VM, Store, StoreError
from sshmint.server.store.validation import is_valid_vm_name

__all__ = ["VMProxy", "send_continue"]

_CONNECT_TIMEOUT_SECONDS: Final = 10.0
# aiohttp's HTTP parser switches a connection to raw bytes for exactly these protocols.
_RELAYABLE_UPGRADES: Final = frozenset({"websocket", "tcp"})


async def send_continue(request: web.BaseRequest) -> None:
    """Send ``100 Continue`` to a client waiting for it, once its body is really wanted.

    The routes use a no-op expect handler so that a request refused before its body is
    needed (401, 404, ...) never invites the client to upload it.
    """
    if (
        request.version >= aiohttp.HttpVersion11
        and request.headers.get("Expect", "").lower() == "100-continue"
    ):
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")


class VMProxy:
    """Handles every request whose Host names a VM (docs/proxy.md#host-routing)."""

    def __init__(
        self,
        config: ServerConfig,
        store: Store,
        auth: Authenticator,
        *,
        logger: logging.Logger,
        observer: Observer | None = None,
    ) -> None:
        self._observer = observer or Observer()
        self._store = store
        self._auth = auth
        self._log = logger
        self._vm_host = config.vm_host
        self._head_timeout = config.upstream_timeout
        self._upstreams = UpstreamChecks(config.upstream_allow)
        self._pool: UpstreamPool | None = None

    async def start(self) -> None:
        self._pool = UpstreamPool(
            connect_timeout=_CONNECT_TIMEOUT_SECONDS,
            head_timeout=self._head_timeout,
        )

    async def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    async def handle(self, request: web.BaseRequest, label: str) -> web.StreamResponse:
        headers = request.headers
        # 1. Ambiguity (docs/proxy.md#credentials), before anything else.
        if is_ambiguous(headers):
            return answer(400, MSG_AMBIGUOUS)
        # 2. VM lookup (docs/proxy.md#unknown-vms).
        store = self._store
        if not is_valid_vm_name(label):
            return answer(404, MSG_NOT_FOUND)
        try:
            found = await store.proxy_lookup(label)  # the VM and its owner in one read
        except StoreError:
            self._log.error("proxy: database error looking up VM %s", label)
            return answer(500, MSG_INTERNAL)
        if found is None:
            return answer(404, MSG_NOT_FOUND)
        vm, owner = found
        if owner is None or owner.locked:
            return answer(404, MSG_NOT_FOUND)
        # 3. Credentials (docs/proxy.md#credentials).
        consumed = bearer_credential(headers)
        try:
            principal = await self._authenticate(vm, consumed, headers)
        except StoreError:
            self._log.error("proxy: database error authenticating for VM %s", label)
            return answer(500, MSG_INTERNAL)
        # 4. Access (docs/proxy.md#access-rules).
        if vm.share != "public":
            if principal is None:
                return answer(401, MSG_UNAUTHENTICATED, {"WWW-Authenticate": "Bearer, Basic"})
            try:
                allowed = await has_vm_access(store, vm, principal.user)
            except StoreError:
                self._log.error("proxy: database error checking shares of %s", label)
                return answer(500, MSG_INTERNAL)
            if not allowed:
                return answer(403, MSG_FORBIDDEN)
        identity = None
        if principal is not None:
            perms = principal.permissions
            identity = Identity(
                principal.user.user_id,
                principal.user.email,
                perms.ctx_raw if perms.has_ctx else None,
            )
        # 5. Forwarding (docs/proxy.md#what-the-upstream-receives).
        return await self._forward(request, vm, consumed, identity)

    async def _authenticate(
        self, vm: VM, bearer: BearerCredential | None, headers: MultiMapping[str]
    ) -> Principal | None:
        """docs/proxy.md#credentials: the bearer token only, else the Basic password; None if neither works."""
        namespace = f"v0@{vm.name}.{self._vm_host}"
        if bearer is not None:
            principal = await self._try_token(vm, bearer.token, namespace)
            if principal is not None:
                return principal
        password = basic_password(headers)
        if password is not None:
            return await self._try_token(vm, password, namespace)
        return None

    async def _try_token(self, vm: VM, token: str, namespace: str) -> Principal | None:
        """docs/proxy.md#token-validation-at-the-proxy: every check of the token path, the key's
        restrictions for this VM included; failures are silent (never a reason for the client)."""
        try:
            return await self._auth.authenticate(token, namespace, vm=vm)
        except (TokenError, KeyRestrictionError, KeyPermissionsError):
            return None

    @staticmethod
    def _target(request: web.BaseRequest) -> str:
        """Method, path and query exactly as received (docs/proxy.md#what-the-upstream-receives): no re-encoding. An
        absolute-form target (``GET http://host/path``) is sent in origin form."""
        raw = request.raw_path  # the request target exactly as received
        if raw == "*" and request.method == "OPTIONS":  # asterisk form (RFC 9112 §3.2.4)
            return raw
        target = absolute_target(raw)
        if target is not None:
            raw = target.raw_path_qs or "/"
        return raw if raw.startswith("/") else "/" + raw

    def _timed_out(self, vm: VM) -> web.Response:
        """docs/security.md#slow-and-idle-clients: no response head within ``--upstream-timeout`` (the connection has
        been closed by the client module)."""
        self._log.info("proxy: upstream of VM %s sent no response head in time", vm.name)
        return answer(504, MSG_TIMED_OUT)

    def _unavailable(self, vm: VM, exc: BaseException) -> web.Response:
        reason = redact_tokens(f"{type(exc).__name__}: {exc}")[:300]
        self._log.info("proxy: upstream of VM %s unavailable: %s", vm.name, reason)
        return answer(502, MSG_UNAVAILABLE)

    async def _forward(
        self,
        request: web.BaseRequest,
        vm: VM,
        consumed: BearerCredential | None,
        identity: Identity | None,
    ) -> web.StreamResponse:
        pool = self._pool
        if pool is None:
            return answer(500, MSG_INTERNAL)
        upstream = await self._upstream_of(vm)
        if upstream is None:
            return answer(502, MSG_UNAVAILABLE)
        headers = request.headers
        # Only protocols aiohttp's parser hands over as raw bytes can be relayed; any other
        # Upgrade request is forwarded as a plain request (docs/proxy.md#responses makes upgrades optional).
        upgrade = (
            is_upgrade_request(headers)
            and headers.get("Upgrade", "").lower() in _RELAYABLE_UPGRADES
        )
        try:
            head, has_body, chunked = self._request_head(request, consumed, identity, upgrade)
        except ValueError as exc:  # a ctx with a line break cannot travel in a header
            return self._unavailable(vm, exc)
        await send_continue(request)
        body: StreamReader | None = request.content if has_body else None
        if body is not None and body.is_eof():  # the whole body is here: one write with the head
            data = body.read_nowait()
            head += chunk(data) + LAST_CHUNK if chunked else data
            body = None
        exchange = _Exchange(pool, upstream)
        try:
            try:
                # The one metrics hook here: the wait for the response head, timed.
                conn, response_head = await self._observer.upstream(
                    exchange.send(
                        head, body, chunked=chunked, head_request=request.method == "HEAD"
                    )
                )
            except UpstreamTimeout:
                return self._timed_out(vm)
            except (OSError, TimeoutError, UpstreamUnavailable) as exc:
                return self._unavailable(vm, exc)
            return await self._respond(request, vm, conn, response_head, upgrade=upgrade)
        finally:
            await exchange.finish()

    async def _upstream_of(self, vm: VM) -> Upstream | None:
        """The VM's upstream, parsed and in an allowed network (docs/proxy.md#what-the-upstream-receives);
        None, logged, otherwise."""
        upstream = self._upstreams.parse(vm.upstream)
        if upstream is None:
            self._log.error("proxy: VM %s has an unusable upstream", vm.name)
            return None
        if not await self._upstreams.allowed(upstream.host):
            self._log.warning("proxy: upstream of VM %s is not in an allowed network", vm.name)
            return None
        return upstream

    def _request_head(
        self,
        request: web.BaseRequest,
        consumed: BearerCredential | None,
        identity: Identity | None,
        upgrade: bool,
    ) -> tuple[bytes, bool, bool]:
        """The request head the upstream receives, whether a body follows it, and whether
        that body goes chunked. Raises ``ValueError`` for a head that cannot be sent."""
        out_headers = upstream_request_headers(
            request.headers.items(),
            consumed=consumed,
            client_ip=request.remote or "",
            default_proto=request.scheme,
            identity=identity,
            upgrade=upgrade,
        )
        has_body = request.body_exists and not upgrade
        # A body without Content-Length came chunked (its Transfer-Encoding is hop-by-hop
        # and was removed): it goes on chunked.
        chunked = has_body and request.content_length is None
        if chunked:
            out_headers.append(("Transfer-Encoding", "chunked"))
        head = encode_request_head(request.method, self._target(request), out_headers)
        return head, has_body, chunked

    async def _respond(
        self,
        request: web.BaseRequest,
        vm: VM,
        conn: UpstreamConnection,
        head: ResponseHead,
        *,
        upgrade: bool,
    ) -> web.StreamResponse:
        logger = self._log
        if upgrade and head.status == 101 and conn.upgraded:
            return await relay_upgrade(request, conn, head, logger)
        if head.status == 101:  # a switch nobody asked for
            return self._unavailable(vm, ValueError("unexpected 101 response"))
        # A refused upgrade leaves the client connection in raw mode: do not reuse it.
        return await relay_response(request, conn, head, close=upgrade, logger=logger)


class _Exchange:
    """One request sent to an upstream: the connection it went out on and the task
    streaming its body, and what becomes of both afterwards."""

    __slots__ = ("conn", "pool", "sender", "upstream")

    def __init__(self, pool: UpstreamPool, upstream: Upstream) -> None:
        self.pool = pool
        self.upstream = upstream
        self.conn: UpstreamConnection | None = None
        self.sender: asyncio.Task[None] | None = None

    async def send(
        self, head: bytes, body: StreamReader | None, *, chunked: bool, head_request: bool
    ) -> tuple[UpstreamConnection, ResponseHead]:
        """Send ``head`` (and stream ``body``, when given) and wait for the response head.

        A pooled connection the upstream has just closed fails before any response byte:
        the request is sent once more on a new connection, unless a body stream (which
        cannot be replayed) was already being sent. Raises ``OSError`` or ``TimeoutError``
        when no connection can be made, :class:`UpstreamTimeout` and
        :class:`UpstreamUnavailable`."""
        host, port = self.upstream.host, self.upstream.port
        conn = await self.pool.acquire(host, port)
        try:
            return conn, await self._exchange(conn, head, body, chunked, head_request)
        except UpstreamUnavailable:
            if not conn.reused or body is not None or conn.got_response_bytes:
                raise
        conn = await self.pool.connect(host, port)
        return conn, await self._exchange(conn, head, body, chunked, head_request)

    async def _exchange(
        self,
        conn: UpstreamConnection,
        head: bytes,
        body: StreamReader | None,
        chunked: bool,
        head_request: bool,
    ) -> ResponseHead:
        self.conn = conn
        conn.send(head, head_request=head_request)
        if body is not None:
            self.sender = asyncio.ensure_future(_send_body(conn, body, chunked=chunked))
        try:
            return await conn.read_head()
        except UpstreamUnavailable:
            conn.abort()
            raise

    async def finish(self) -> None:
        """Stop a request body still being sent (the response ended first: the rest is not
        wanted), then pool the connection or close it."""
        conn, sender = self.conn, self.sender
        if sender is not None:
            if not sender.done():
                sender.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sender
                if conn is not None:
                    conn.abort()  # half a request body went out: the connection is spent
            elif not sender.cancelled() and sender.exception() is not None and conn:
                conn.abort()
        if conn is not None and not conn.upgraded:
            self.pool.release(conn, self.upstream.host, self.upstream.port)


async def _send_body(conn: UpstreamConnection, body: StreamReader, *, chunked: bool) -> None:
    """Stream the client's request body to the upstream as it arrives (docs/proxy.md#what-the-upstream-receives).

    The response head's deadline (docs/security.md#slow-and-idle-clients) is held while the client is being waited
    for, and counts from the last bytes written otherwise: a slow upload is not the
    upstream's delay, an upstream that stops reading is."""
    try:
        while True:
            conn.hold_head_deadline()
            data = await body.readany()
            if not data:
                break
            if chunked:  # framed in three writes: a large piece is not copied (see chunk())
                conn.write(b"%x\r\n" % len(data))
                conn.write(data)
                conn.write(b"\r\n")
            else:
                conn.write(data)
            conn.restart_head_deadline()
            await conn.drain()
        if chunked:
            conn.write(LAST_CHUNK)
        conn.restart_head_deadline()
    except BaseException:
        conn.abort()  # the upstream must not take a truncated body for a whole one
        raise
