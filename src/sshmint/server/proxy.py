"""The authenticating reverse proxy in front of VMs (docs/proxy.md#vm-proxy).

Order of processing (docs/proxy.md#order-of-processing): ambiguity check (400) → VM lookup (404) → credential
selection and validation (docs/proxy.md#credentials) → access rules for private VMs (401/403) →
forwarding (docs/proxy.md#what-the-upstream-receives) or 502. The header rules are pure functions at the top of this
module so they can be tested without sockets; :class:`VMProxy` does the I/O.

Requests go out through :mod:`sshmint.server.upstream_client` on pooled keep-alive
connections, with exactly the head built here; bodies stream both ways with flow control
(nothing is buffered beyond a few hundred KiB), responses are never decompressed, cookies
never stored, redirects never followed. ``Connection: Upgrade`` requests (WebSocket) are
relayed byte for byte after a ``101 Switching Protocols``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import ipaddress
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Protocol

import aiohttp
from aiohttp import web
from aiohttp.streams import StreamReader
from multidict import CIMultiDict, MultiMapping
from yarl import URL

from sshmint.errors import TokenError
from sshmint.server.auth import Authenticator, KeyPermissionsError, Principal
from sshmint.server.infra.logs import redact_tokens
from sshmint.server.relay_response import LAST_CHUNK, SentResponse, chunk, relay_head
from sshmint.server.splice import SpliceError, splice_available, splice_exactly, transport_fd
from sshmint.server.store import VM, StoreError
from sshmint.server.store.validation import is_valid_vm_name
from sshmint.server.upstream import Upstream, UpstreamError, parse_upstream, upstream_allowed
from sshmint.server.upstream_client import (
    ResponseHead,
    UpstreamBodyError,
    UpstreamConnection,
    UpstreamPool,
    UpstreamTimeout,
    UpstreamUnavailable,
    encode_request_head,
    set_reading,
)
from sshmint.token import EXE0_PREFIX, EXE1_PREFIX

if TYPE_CHECKING:
    from sshmint.server.runtime import ServerRuntime

__all__ = [
    "HOP_BY_HOP",
    "Identity",
    "VMProxy",
    "absolute_target",
    "basic_password",
    "bearer_credential",
    "carries_exe_token",
    "is_ambiguous",
    "is_upgrade_request",
    "normalises_to_protected",
    "send_continue",
    "upstream_request_headers",
    "upstream_response_headers",
]

# docs/proxy.md#what-the-upstream-receives step 1 (RFC 9110 §7.6.1), plus the obsolete Keep-Alive/Proxy-Connection.
HOP_BY_HOP: Final = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
_EXE_PREFIXES: Final = (EXE0_PREFIX, EXE1_PREFIX)
_EXEDEV_PREFIX: Final = "x-exedev-"
_FORWARDED: Final = frozenset({"x-forwarded-proto", "x-forwarded-host", "x-forwarded-for"})
# docs/proxy.md#header-names-with-underscores: names that, spelled with "_" for "-", mean a protected header to WSGI/CGI.
_UNDERSCORE_PROTECTED: Final = _FORWARDED | {"authorization"}

# docs/proxy.md#order-of-processing table, and docs/security.md#slow-and-idle-clients's 504.
MSG_AMBIGUOUS: Final = "Authorization and X-Exedev-Authorization must not be identical"
MSG_UNAUTHENTICATED: Final = "invalid or missing authentication"
MSG_FORBIDDEN: Final = "access denied"
MSG_NOT_FOUND: Final = "VM not found"
MSG_INTERNAL: Final = "internal server error"
MSG_UNAVAILABLE: Final = "upstream unavailable"
MSG_TIMED_OUT: Final = "upstream timed out"

# Upgraded connections: stop reading a side once this much is queued for the other.
_RELAY_HIGH_WATER: Final = 256 * 1024
_RELAY_LOW_WATER: Final = 64 * 1024
_CONNECT_TIMEOUT_SECONDS: Final = 10.0
# Response bytes that may queue towards a client before the relay waits for it.
_CLIENT_WRITE_HIGH_WATER: Final = 256 * 1024
# Smaller body remainders are copied: setting up a splice costs about as much as copying
# this much.
_SPLICE_MIN_BYTES: Final = 64 * 1024
# Distinct upstream strings whose parse (and IP-literal verdicts) are remembered.
_UPSTREAM_MEMO_SIZE: Final = 4096
# aiohttp's HTTP parser switches a connection to raw bytes for exactly these protocols.
_RELAYABLE_UPGRADES: Final = frozenset({"websocket", "tcp"})


# --- pure header logic --------------------------------------------------------------------


@dataclass(frozen=True)
class Identity:
    """What the upstream learns about an authenticated request (docs/proxy.md#what-the-upstream-receives step 8).

    ``ctx_raw`` is the exact text of the token's ``ctx`` value, or None without ``ctx``.
    """

    user_id: str
    email: str
    ctx_raw: str | None


@dataclass(frozen=True)
class BearerCredential:
    """The bearer token chosen by docs/proxy.md#credentials and the header line it came from."""

    token: str
    header_name: str
    header_value: str


def _is_bearer(value: str) -> bool:
    return value[:7].lower() == "bearer "


def is_ambiguous(headers: MultiMapping[str]) -> bool:
    """docs/proxy.md#credentials: a non-empty X-Exedev-Authorization value identical to an Authorization one."""
    extra = _getall(headers, "X-Exedev-Authorization")
    if not extra:
        return False
    auth = set(_getall(headers, "Authorization"))
    return any(value and value in auth for value in extra)


def bearer_credential(headers: MultiMapping[str]) -> BearerCredential | None:
    """docs/proxy.md#credentials: the first ``Bearer`` value among X-Exedev-Authorization then Authorization."""
    for name in ("X-Exedev-Authorization", "Authorization"):
        for value in _getall(headers, name):
            if _is_bearer(value):
                return BearerCredential(value[7:].strip(), name, value)
    return None


def basic_password(headers: MultiMapping[str]) -> str | None:
    """docs/proxy.md#credentials: the password of a ``Basic`` first Authorization value, else None."""
    values = _getall(headers, "Authorization")
    if not values or values[0][:6].lower() != "basic ":
        return None
    try:
        decoded = base64.b64decode(values[0][6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    _user, colon, password = decoded.partition(":")
    return password if colon else None


def carries_exe_token(authorization_values: Sequence[str]) -> bool:
    """docs/proxy.md#what-the-upstream-receives step 4: an exe0/exe1 bearer in any value, or as the first value's Basic
    password."""
    for value in authorization_values:
        if _is_bearer(value) and value[7:].strip().startswith(_EXE_PREFIXES):
            return True
    if authorization_values:
        password = basic_password(CIMultiDict(Authorization=authorization_values[0]))
        if password is not None and password.startswith(_EXE_PREFIXES):
            return True
    return False


def normalises_to_protected(name: str) -> bool:
    """docs/proxy.md#header-names-with-underscores: a header name with ``_`` that WSGI, CGI and similar servers would read
    as a protected one: lower-cased with every ``_`` made ``-``, it starts with
    ``x-exedev-`` or is an ``X-Forwarded-*`` name of docs/proxy.md#what-the-upstream-receives or ``authorization``.

    Names without ``_`` are left to the rules of docs/proxy.md#what-the-upstream-receives (and answer False here). The ``_``
    test comes first and is all that most names cost.
    """
    if "_" not in name:
        return False
    normalised = name.lower().replace("_", "-")
    return normalised.startswith(_EXEDEV_PREFIX) or normalised in _UNDERSCORE_PROTECTED


def _connection_tokens(headers: Iterable[tuple[str, str]]) -> set[str]:
    tokens: set[str] = set()
    for name, value in headers:
        if name.lower() == "connection":
            tokens.update(t.strip().lower() for t in value.split(",") if t.strip())
    return tokens


def is_upgrade_request(headers: MultiMapping[str]) -> bool:
    """docs/proxy.md#responses: ``Connection: Upgrade`` together with an ``Upgrade`` header."""
    return "Upgrade" in headers and "upgrade" in _connection_tokens(headers.items())


def upstream_request_headers(
    headers: Iterable[tuple[str, str]],
    *,
    consumed: BearerCredential | None,
    client_ip: str,
    default_proto: str,
    identity: Identity | None,
    upgrade: bool,
) -> list[tuple[str, str]]:
    """The request headers the upstream receives, in docs/proxy.md#what-the-upstream-receives order.

    ``headers`` are the client's header lines in order (``Host`` among them). ``upgrade``
    keeps ``Connection: Upgrade`` and ``Upgrade`` (docs/proxy.md#responses).
    """
    # Each name is lower-cased once; the steps below then work on (lower, name, value).
    lines = [(name.lower(), name, value) for name, value in headers]
    incoming_host = ""
    incoming_proto: str | None = None
    incoming_for_values: list[str] = []
    upgrade_values: list[str] = []
    connection_values: list[str] = []
    seen_host = False
    for lower, _name, value in lines:
        if lower == "host":
            if not seen_host:
                incoming_host, seen_host = value, True
        elif lower == "x-forwarded-proto":
            if incoming_proto is None:
                incoming_proto = value
        elif lower == "x-forwarded-for":
            incoming_for_values.append(value)
        elif lower == "upgrade":
            upgrade_values.append(value)
        elif lower == "connection":
            connection_values.append(value)
    incoming_for = ", ".join(incoming_for_values).strip()

    # 1. Hop-by-hop headers, and every header the Connection header names.
    drop = HOP_BY_HOP
    if connection_values:
        drop = drop | _connection_tokens(("connection", v) for v in connection_values)
    kept = [line for line in lines if line[0] not in drop]
    # 2. The consumed header line, whatever token it carried.
    if consumed is not None:
        consumed_name = consumed.header_name.lower()
        for index, (lower, _name, value) in enumerate(kept):
            if lower == consumed_name and value == consumed.header_value:
                del kept[index]
                break
    # 3. Every X-ExeDev-* header, client-sent identity headers included; and 5.–7.
    # X-Forwarded-*, replaced below whatever the client sent; and (docs/proxy.md#header-names-with-underscores) any name
    # with "_" that a WSGI/CGI upstream would read as one of these. The filters commute
    # with step 4, which looks at Authorization only.
    kept = [
        line
        for line in kept
        if not line[0].startswith(_EXEDEV_PREFIX)
        and line[0] not in _FORWARDED
        and not ("_" in line[0] and normalises_to_protected(line[0]))
    ]
    # 4. Authorization lines when any of them carries an exe0/exe1 token.
    authorization = [value for lower, _name, value in kept if lower == "authorization"]
    if authorization and carries_exe_token(authorization):
        kept = [line for line in kept if line[0] != "authorization"]
    out = [(name, value) for _lower, name, value in kept]
    if upgrade:
        out.append(("Connection", "Upgrade"))
        out.extend(("Upgrade", value) for value in upgrade_values)
    proto = incoming_proto if incoming_proto in ("http", "https") else default_proto
    out.append(("X-Forwarded-Proto", proto))
    out.append(("X-Forwarded-Host", incoming_host))
    out.append(("X-Forwarded-For", f"{incoming_for}, {client_ip}" if incoming_for else client_ip))
    # 8. Identity of an authenticated request.
    if identity is not None:
        out.append(("X-ExeDev-UserID", identity.user_id))
        out.append(("X-ExeDev-Email", identity.email))
        if identity.ctx_raw is not None:
            out.append(("X-ExeDev-Token-Ctx", identity.ctx_raw))
    return out


def upstream_response_headers(
    headers: Iterable[tuple[str, str]], *, switching: bool
) -> list[tuple[str, str]]:
    """docs/proxy.md#responses: the upstream's response headers minus hop-by-hop ones (a 101 keeps
    ``Connection``/``Upgrade``)."""
    lines = list(headers)
    drop = HOP_BY_HOP | _connection_tokens(lines)
    if switching:
        drop = drop - {"connection", "upgrade"}
    return [(n, v) for n, v in lines if n.lower() not in drop]


def absolute_target(raw: str) -> URL | None:
    """The URL of an absolute-form request target (``GET http://host/path``, RFC 9112
    docs/tokens.md#claims), else None; ``raw`` is the target exactly as received."""
    if raw.startswith("/"):
        return None
    target = URL(raw, encoded=True)
    return target if target.is_absolute() else None


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _getall(headers: MultiMapping[str], name: str) -> list[str]:
    return list(headers.getall(name, []))


# --- responses ----------------------------------------------------------------------------


def _text(status: int, message: str, headers: Mapping[str, str] | None = None) -> web.Response:
    """A proxy-generated response (docs/proxy.md#order-of-processing): text/plain, nosniff, ``<message>\\n``."""
    response = web.Response(
        status=status,
        body=(message + "\n").encode("utf-8"),
        headers={
            "Content-Type": "text/plain; charset=utf-8",
            "X-Content-Type-Options": "nosniff",
        },
    )
    if headers:
        response.headers.update(headers)
    return response


# --- byte relay for upgraded connections --------------------------------------------------


class _Pipe:
    """Receives one side's bytes (as an aiohttp payload parser) and queues them for a pump.

    Reading from the source transport pauses while too much is queued, so a slow reader on
    the other side cannot make the proxy buffer without bound.
    """

    def __init__(self, transport: asyncio.BaseTransport | None) -> None:
        self._transport = transport
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self._eof = False
        self._paused = False
        self._ready = asyncio.Event()

    # aiohttp payload-parser interface
    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        if data:
            self._chunks.append(bytes(data))
            self._size += len(data)
            self._ready.set()
            if self._size > _RELAY_HIGH_WATER and not self._paused:
                self._set_reading(False)
        return False, b""

    def feed_eof(self) -> None:
        self._eof = True
        self._ready.set()

    async def read(self) -> bytes:
        """The next queued chunk, or ``b""`` once the source has closed."""
        while not self._chunks and not self._eof:
            self._ready.clear()
            await self._ready.wait()
        if not self._chunks:
            return b""
        chunk = self._chunks.popleft()
        self._size -= len(chunk)
        if self._paused and self._size < _RELAY_LOW_WATER:
            self._set_reading(True)
        return chunk

    def _set_reading(self, reading: bool) -> None:
        if set_reading(self._transport, reading):
            self._paused = not reading


class _AsyncWriter(Protocol):
    async def write(self, data: bytes, /) -> None: ...


async def _pump(source: _Pipe, sink: _AsyncWriter) -> int:
    """Copy until the source ends; returns the number of bytes copied."""
    copied = 0
    while chunk := await source.read():
        await sink.write(chunk)
        copied += len(chunk)
    return copied


# --- the proxy ----------------------------------------------------------------------------


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

    def __init__(self, runtime: ServerRuntime, auth: Authenticator) -> None:
        self._runtime = runtime
        self._auth = auth
        self._vm_host = runtime.config.vm_host
        self._networks = tuple(runtime.config.upstream_allow)
        self._pool: UpstreamPool | None = None
        self._upstreams: dict[str, Upstream | None] = {}
        self._literal_verdicts: dict[str, bool] = {}

    async def start(self) -> None:
        self._pool = UpstreamPool(
            connect_timeout=_CONNECT_TIMEOUT_SECONDS,
            head_timeout=self._runtime.config.upstream_timeout,
        )

    async def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    async def handle(self, request: web.BaseRequest, label: str) -> web.StreamResponse:
        headers = request.headers
        # 1. Ambiguity (docs/proxy.md#credentials), before anything else.
        if is_ambiguous(headers):
            return _text(400, MSG_AMBIGUOUS)
        # 2. VM lookup (docs/proxy.md#unknown-vms).
        store = self._runtime.store
        if not is_valid_vm_name(label):
            return _text(404, MSG_NOT_FOUND)
        try:
            found = await store.proxy_lookup(label)  # the VM and its owner in one read
        except StoreError:
            self._runtime.logger.error("proxy: database error looking up VM %s", label)
            return _text(500, MSG_INTERNAL)
        if found is None:
            return _text(404, MSG_NOT_FOUND)
        vm, owner = found
        if owner is None or owner.locked:
            return _text(404, MSG_NOT_FOUND)
        # 3. Credentials (docs/proxy.md#credentials).
        consumed = bearer_credential(headers)
        try:
            principal = await self._authenticate(vm, consumed, headers)
        except StoreError:
            self._runtime.logger.error("proxy: database error authenticating for VM %s", label)
            return _text(500, MSG_INTERNAL)
        # 4. Access (docs/proxy.md#access-rules).
        if vm.share != "public":
            if principal is None:
                return _text(401, MSG_UNAUTHENTICATED, {"WWW-Authenticate": "Bearer, Basic"})
            try:
                allowed = principal.user.user_id == vm.owner_user_id or await store.is_shared_with(
                    vm.id, principal.user.email
                )
            except StoreError:
                self._runtime.logger.error("proxy: database error checking shares of %s", label)
                return _text(500, MSG_INTERNAL)
            if not allowed:
                return _text(403, MSG_FORBIDDEN)
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
        """docs/proxy.md#token-validation-at-the-proxy; failures are silent (never a reason for the client)."""
        try:
            principal = await self._auth.authenticate(token, namespace)
        except (TokenError, KeyPermissionsError):
            return None
        key = principal.key_permissions
        if key.expired(self._runtime.now()):
            return None
        if key.vm is not None and key.vm != vm.name:
            return None
        if key.tag is not None and key.tag not in vm.tags:
            return None
        return principal

    def _parse_upstream(self, text: str) -> Upstream | None:
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

    async def _allowed(self, host: str) -> bool:
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
        self._runtime.logger.info("proxy: upstream of VM %s sent no response head in time", vm.name)
        return _text(504, MSG_TIMED_OUT)

    def _unavailable(self, vm: VM, exc: BaseException) -> web.Response:
        reason = redact_tokens(f"{type(exc).__name__}: {exc}")[:300]
        self._runtime.logger.info("proxy: upstream of VM %s unavailable: %s", vm.name, reason)
        return _text(502, MSG_UNAVAILABLE)

    async def _forward(
        self,
        request: web.BaseRequest,
        vm: VM,
        consumed: BearerCredential | None,
        identity: Identity | None,
    ) -> web.StreamResponse:
        pool = self._pool
        if pool is None:
            return _text(500, MSG_INTERNAL)
        upstream = self._parse_upstream(vm.upstream)
        if upstream is None:
            self._runtime.logger.error("proxy: VM %s has an unusable upstream", vm.name)
            return _text(502, MSG_UNAVAILABLE)
        if not await self._allowed(upstream.host):
            self._runtime.logger.warning(
                "proxy: upstream of VM %s is not in an allowed network", vm.name
            )
            return _text(502, MSG_UNAVAILABLE)
        headers = request.headers
        # Only protocols aiohttp's parser hands over as raw bytes can be relayed; any other
        # Upgrade request is forwarded as a plain request (docs/proxy.md#responses makes upgrades optional).
        upgrade = (
            is_upgrade_request(headers)
            and headers.get("Upgrade", "").lower() in _RELAYABLE_UPGRADES
        )
        out_headers = upstream_request_headers(
            headers.items(),
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
        try:
            head = encode_request_head(request.method, self._target(request), out_headers)
        except ValueError as exc:  # a ctx with a line break cannot travel in a header
            return self._unavailable(vm, exc)
        await send_continue(request)
        body = request.content
        if has_body and body.is_eof():  # the whole body is here: one write with the head
            data = body.read_nowait()
            head += chunk(data) + LAST_CHUNK if chunked else data
            has_body = False
        host, port = upstream.host, upstream.port
        head_request = request.method == "HEAD"
        conn: UpstreamConnection | None = None
        sender: asyncio.Task[None] | None = None
        try:
            # A pooled connection the upstream has just closed fails before any response
            # byte: the request is sent once more on a new connection, unless a body
            # stream (which cannot be replayed) was already being sent.
            for attempt in range(2):
                try:
                    conn = await (
                        pool.acquire(host, port) if attempt == 0 else pool.connect(host, port)
                    )
                except (OSError, TimeoutError) as exc:
                    return self._unavailable(vm, exc)
                conn.send(head, head_request=head_request)
                if has_body:
                    sender = asyncio.ensure_future(_send_body(conn, body, chunked=chunked))
                try:
                    response_head = await conn.read_head()
                    break
                except UpstreamTimeout:
                    return self._timed_out(vm)
                except UpstreamUnavailable as exc:
                    conn.abort()
                    if (
                        attempt == 0
                        and conn.reused
                        and not has_body
                        and not conn.got_response_bytes
                    ):
                        continue
                    return self._unavailable(vm, exc)
            else:  # pragma: no cover - the loop always breaks or returns
                return _text(502, MSG_UNAVAILABLE)
            if upgrade and response_head.status == 101 and conn.upgraded:
                return await self._relay_upgrade(request, conn, response_head)
            if response_head.status == 101:  # a switch nobody asked for
                return self._unavailable(vm, ValueError("unexpected 101 response"))
            return await self._relay_response(request, conn, response_head, close=upgrade)
        finally:
            if sender is not None:
                if not sender.done():
                    sender.cancel()  # the response ended first: the rest is not wanted
                    with contextlib.suppress(asyncio.CancelledError):
                        await sender
                    if conn is not None:
                        conn.abort()  # half a request body went out: the connection is spent
                elif not sender.cancelled() and sender.exception() is not None and conn:
                    conn.abort()
            if conn is not None and not conn.upgraded:
                pool.release(conn, host, port)

    async def _relay_response(
        self,
        request: web.BaseRequest,
        conn: UpstreamConnection,
        head: ResponseHead,
        *,
        close: bool,
    ) -> web.StreamResponse:
        """Write the response to the client ourselves (relay_response.py): the head and
        whatever body arrived with it in one write, then the rest as it comes (spliced
        when large), framed as ``relay_head`` decided."""
        lines = upstream_response_headers(head.headers, switching=False)
        # A refused upgrade leaves the client connection in raw mode: do not reuse it.
        relay = relay_head(
            head,
            lines,
            conn.content_length,
            method=request.method,
            version=request.version,
            keep_alive=request.keep_alive and not close,
        )
        if relay is None:
            conn.abort()
            self._runtime.logger.info("proxy: upstream response head cannot be relayed")
            return _text(502, MSG_UNAVAILABLE)
        writer = request.writer
        transport = request.transport
        chunked = relay.chunked
        sent = 0
        try:
            first = conn.read_body_nowait() if relay.has_body else b""
            out = relay.data + (chunk(first) if chunked else first)
            if not relay.has_body or conn.body_done:  # the whole response is here
                if chunked:
                    out += LAST_CHUNK
                await writer.write(out)
                return SentResponse(head.status, len(out), keep_alive=relay.keep_alive)
            if transport is not None:
                # Let a body's worth of data queue towards the client before waiting on it.
                transport.set_write_buffer_limits(high=_CLIENT_WRITE_HIGH_WATER)
            await writer.write(out)  # the head goes now, even if the body is slow to come
            sent = len(out)
            spliceable: bool | None = None  # decided once a large remainder turns up
            while True:
                if spliceable is not False:
                    spliceable = await _splice_rest(transport, conn, spliceable)
                data = await conn.read_body()
                if not data:
                    break
                out = chunk(data) if chunked else data
                await writer.write(out)
                sent += len(out)
            if chunked:
                await writer.write(LAST_CHUNK)
                sent += len(LAST_CHUNK)
        except (UpstreamBodyError, SpliceError, OSError) as exc:
            # The status line is gone already: all that is left is to cut the connection.
            self._runtime.logger.info("proxy: relay interrupted: %s", type(exc).__name__)
            conn.abort()
            if transport is not None:
                transport.close()
            return SentResponse(head.status, sent, keep_alive=False)
        return SentResponse(head.status, sent, keep_alive=relay.keep_alive)

    async def _relay_upgrade(
        self, request: web.BaseRequest, conn: UpstreamConnection, head: ResponseHead
    ) -> web.StreamResponse:
        """docs/proxy.md#responses: relay the 101, then copy bytes both ways until either side closes."""
        client_protocol = request.protocol
        if client_protocol is None or conn.transport is None:
            conn.close()
            return _text(502, MSG_UNAVAILABLE)
        lines = upstream_response_headers(head.headers, switching=True)
        relay = relay_head(
            head, lines, None, method=request.method, version=request.version, keep_alive=False
        )
        if relay is None:
            conn.close()
            self._runtime.logger.info("proxy: upstream 101 head cannot be relayed")
            return _text(502, MSG_UNAVAILABLE)
        writer = request.writer
        try:
            await writer.write(relay.data)
        except OSError:  # the client has gone
            conn.close()
            return SentResponse(101, 0, keep_alive=False)

        from_client = _Pipe(request.transport)
        from_upstream = _Pipe(conn.transport)
        client_protocol.set_parser(from_client)  # type: ignore[arg-type]
        conn.take_raw_stream(from_upstream.feed_data, from_upstream.feed_eof)
        to_upstream = asyncio.ensure_future(_pump(from_client, _ConnectionWriter(conn)))
        to_client = asyncio.ensure_future(_pump(from_upstream, writer))
        pumps = [to_upstream, to_client]
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in pumps:
                task.cancel()
            for task in pumps:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            conn.close()
            if request.transport is not None:
                request.transport.close()
        relayed = 0
        if to_client.done() and not to_client.cancelled() and to_client.exception() is None:
            relayed = to_client.result()
        return SentResponse(101, len(relay.data) + relayed, keep_alive=False)


async def _splice_rest(
    transport: asyncio.Transport | None, conn: UpstreamConnection, spliceable: bool | None
) -> bool | None:
    """Move a large rest of a sized body socket to socket inside the kernel, once everything
    before it has left (splice.py). Returns whether these transports allow it (None: not
    decided yet, nothing large has turned up)."""
    if transport is None or conn.transport is None:
        return spliceable
    if transport.get_write_buffer_size():
        return spliceable
    remainder = conn.spliceable_remainder()
    if remainder < _SPLICE_MIN_BYTES:
        return spliceable
    if spliceable is None:
        spliceable = splice_available(asyncio.get_running_loop(), transport, conn.transport)
    if spliceable:
        await splice_exactly(conn.begin_splice(), transport_fd(transport), remainder)
        conn.end_splice()
    return spliceable


# --- request bodies -----------------------------------------------------------------------


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


class _ConnectionWriter:
    """The upstream side of an upgraded connection, as ``_pump`` writes to it."""

    def __init__(self, conn: UpstreamConnection) -> None:
        self._conn = conn

    async def write(self, data: bytes) -> None:
        self._conn.write(data)
        await self._conn.drain()
