"""Helpers for the HTTP tests: real curl requests, keys registered over ``POST /exec``,
direct database edits, a self-signed certificate, and upstreams served by aiohttp in a
thread (:class:`ThreadedApp`, :class:`RecordingUpstream`).
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import sqlite3
import subprocess
import threading
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.harness import SSHMintServer
from tests.support.keys import Account, public_line

__all__ = [
    "Recorded",
    "RecordingUpstream",
    "Reply",
    "ThreadedApp",
    "add_key",
    "assert_proxy_error",
    "curl",
    "db_execute",
    "self_signed",
    "via_proxy",
]

T = TypeVar("T")


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A self-signed EC certificate for localhost, 127.0.0.1 and a few VM hosts, and its
    key: ``(cert.pem, key.pem)`` in ``directory``."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.DNSName("tlsvm.localhost"),
                    x509.DNSName("tlsbig.localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def add_key(server: SSHMintServer, holder: Account, key: Path, *flags: str) -> Account:
    """Register ``key`` (with ``ssh-key add`` flags) for ``holder``'s user through
    ``POST /exec ssh-key add``; returns the same user signing with ``key``."""
    token = holder.token('{"cmds":["ssh-key add"]}')
    line = " ".join(["ssh-key add", *flags, public_line(key)])
    reply = curl(
        server.http_url + "/exec", "-H", f"Authorization: Bearer {token}", data=line.encode()
    )
    assert reply.status == 200, reply.body
    return Account(holder.email, key, holder.user_id)


def db_execute(db_url: str, sql: str, params: Sequence[object] = ()) -> None:
    """Change the database behind the server's back (states the CLI cannot produce).

    ``sql`` uses ``?`` placeholders; for PostgreSQL the literals are inlined through
    ``psql`` variables, so only simple text/int parameters are supported.
    """
    if db_url.startswith("sqlite:///"):
        with sqlite3.connect(db_url.removeprefix("sqlite:///"), timeout=10) as conn:
            conn.execute(sql, tuple(params))
        return
    args = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", db_url]
    numbered = sql
    for index, value in enumerate(params):
        numbered = numbered.replace("?", f":'p{index}'", 1)
        args += ["-v", f"p{index}={value}"]
    subprocess.run([*args], input=numbered, text=True, check=True, capture_output=True)


@dataclass
class Reply:
    """One HTTP response as curl saw it (the final one after any ``100 Continue``)."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def all(self, name: str) -> list[str]:
        return [v for n, v in self.headers if n.lower() == name.lower()]

    def header(self, name: str) -> str | None:
        values = self.all(name)
        return values[0] if values else None

    def json(self) -> Any:
        return json.loads(self.body)


def _parse_curl_output(raw: bytes) -> Reply:
    rest = raw
    while True:
        head, sep, rest = rest.partition(b"\r\n\r\n")
        assert sep, f"no header block in curl output: {raw[:200]!r}"
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        if 100 <= status < 200 and status != 101:
            continue
        headers = []
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers.append((name, value.strip()))
        return Reply(status, headers, rest)


def curl(url: str, *args: str, data: bytes | None = None, timeout: float = 60) -> Reply:
    """Run the real curl (``-i``) and parse its answer; ``data`` is sent as the body."""
    cmd = ["curl", "-sS", "-i", "--max-time", str(int(timeout)), *args]
    if data is not None:
        cmd += ["--data-binary", "@-"]
    cmd.append(url)
    result = subprocess.run(cmd, input=data, capture_output=True, timeout=timeout + 5)
    assert result.returncode == 0, f"curl failed ({result.returncode}): {result.stderr!r}"
    return _parse_curl_output(result.stdout)


def via_proxy(
    live: SSHMintServer,
    vm: str,
    path: str = "/",
    *args: str,
    data: bytes | None = None,
    timeout: float = 60,
) -> Reply:
    """curl ``http://<vm>.localhost:<port><path>`` on a live server (``SSHMintServer``),
    the name resolved to the server's address."""
    host = f"{vm}.localhost"
    return curl(
        f"http://{host}:{live.http_port}{path}",
        "--resolve",
        f"{host}:{live.http_port}:{live.http_host}",
        "--path-as-is",
        *args,
        data=data,
        timeout=timeout,
    )


def assert_proxy_error(reply: Reply, status: int, body: bytes) -> None:
    """A proxy-generated error (docs/proxy.md#order-of-processing): the status, ``<message>\\n``, plain text, nosniff."""
    assert (reply.status, reply.body) == (status, body), (reply.status, reply.body)
    assert reply.header("Content-Type") == "text/plain; charset=utf-8"
    assert reply.header("X-Content-Type-Options") == "nosniff"
    if status == 401:
        assert reply.header("WWW-Authenticate") == "Bearer, Basic"


# --- upstreams ----------------------------------------------------------------------------


class ThreadedApp:
    """An aiohttp application served on 127.0.0.1 from a background thread."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.port = 0
        self.loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def start(self) -> ThreadedApp:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        return self

    async def _start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert isinstance(server, asyncio.Server)
        self.port = server.sockets[0].getsockname()[1]

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Recorded:
    """What an upstream received: raw header lines (bytes) and the whole body."""

    method: str
    raw_path: str
    raw_headers: list[tuple[bytes, bytes]]
    body: bytes

    def all(self, name: str) -> list[bytes]:
        wanted = name.lower().encode()
        return [v for n, v in self.raw_headers if n.lower() == wanted]

    def header(self, name: str) -> bytes | None:
        values = self.all(name)
        return values[0] if values else None


@dataclass
class RecordingUpstream:
    """A VM backend that records every request and offers a few special paths:

    - ``/stream``: sends a first chunk, then waits for :meth:`release` before the rest;
    - ``/ws``: a WebSocket echo;
    - ``/sink``: counts the request body without keeping it (large uploads);
    - ``/status/<n>``: like the default, with status ``n``;
    - anything else: 200 ``upstream saw <method> <raw path>`` with two Set-Cookie headers
      and ``Server: recording-upstream``.
    """

    requests: list[Recorded] = field(default_factory=list)
    sunk: list[int] = field(default_factory=list)
    _release: threading.Event = field(default_factory=threading.Event)
    server: ThreadedApp | None = None

    def start(self) -> RecordingUpstream:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("GET", "/stream", self._stream)
        app.router.add_route("GET", "/ws", self._ws)
        app.router.add_route("*", "/sink", self._sink)
        app.router.add_route("*", "/{tail:.*}", self._record)
        self.server = ThreadedApp(app).start()
        return self

    def stop(self) -> None:
        self._release.set()
        if self.server is not None:
            self.server.stop()

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url

    def release(self) -> None:
        self._release.set()

    def last(self) -> Recorded:
        return self.requests[-1]

    async def _record(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.append(
            Recorded(request.method, request.raw_path, list(request.raw_headers), body)
        )
        status = 200
        if request.raw_path.startswith("/status/"):
            status = int(request.raw_path.split("/")[2])
        response = web.Response(
            status=status,
            body=f"upstream saw {request.method} {request.raw_path}".encode(),
            headers={
                "Content-Type": "text/x-upstream",
                "X-Upstream": "yes",
                "Server": "recording-upstream",
            },
        )
        response.headers.add("Set-Cookie", "a=1; Path=/")
        response.headers.add("Set-Cookie", "b=2; Path=/")
        return response

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(
            Recorded(request.method, request.raw_path, list(request.raw_headers), b"")
        )
        # Each /stream request waits for a release() of its own (the fixture is shared).
        self._release.clear()
        response = web.StreamResponse(status=200, headers={"Content-Type": "text/plain"})
        await response.prepare(request)
        await response.write(b"first chunk\n")
        await asyncio.get_running_loop().run_in_executor(None, self._release.wait, 60)
        await response.write(b"second chunk\n")
        await response.write_eof()
        return response

    async def _ws(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(
            Recorded(request.method, request.raw_path, list(request.raw_headers), b"")
        )
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for message in ws:
            if message.type.name == "TEXT":
                await ws.send_str("echo: " + message.data)
            elif message.type.name == "BINARY":
                await ws.send_bytes(message.data)
        return ws

    async def _sink(self, request: web.Request) -> web.StreamResponse:
        total = 0
        async for chunk in request.content.iter_any():
            total += len(chunk)
        self.sunk.append(total)
        return web.Response(text=str(total))
