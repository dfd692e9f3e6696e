"""Helpers for the client tests: a fake clock, a counting signer, ssh-agent and loopback servers."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from sshmint.keys import PublicKey
from sshmint.signing import Signer

ROOT = Path(__file__).resolve().parents[2]
SSHMINT = ROOT / ".venv" / "bin" / "sshmint"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll ``predicate`` until true or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


class FakeClock:
    """An injectable clock (unix seconds) that moves only when told to."""

    def __init__(self, now: float = 1_900_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class CountingSigner:
    """Wraps a real signer and counts signatures (one signature = one minted token)."""

    def __init__(self, inner: Signer) -> None:
        self.inner = inner
        self.count = 0
        self._lock = threading.Lock()

    @property
    def public_key(self) -> PublicKey:
        return self.inner.public_key

    def sign(self, data: bytes) -> bytes:
        with self._lock:
            self.count += 1
        return self.inner.sign(data)


@dataclass
class Agent:
    sock: str
    pid: int

    def add(self, key: Path) -> None:
        subprocess.run(
            ["ssh-add", "-q", str(key)],
            env={**os.environ, "SSH_AUTH_SOCK": self.sock},
            check=True,
            capture_output=True,
        )


@dataclass
class LoopbackServer:
    """An aiohttp app served on 127.0.0.1 from a background thread."""

    url: str
    requests: list[dict[str, str]] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)


def serve_in_thread(app: web.Application) -> Iterator[str]:
    """Run ``app`` on a free loopback port in a thread; yield its base URL; stop it."""
    port = free_port()
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    ready = threading.Event()

    async def start() -> None:
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        ready.set()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(10), "loopback server did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


GIT_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
    "GIT_TERMINAL_PROMPT": "0",
}


def git(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    """Run the real git; raise with its stderr on failure."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "SSH_AUTH_SOCK"))}
    result = subprocess.run(
        ["git", *args],
        cwd=cwd,
        env={**base, **GIT_ENV, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )
    if result.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed ({result.returncode}): {result.stderr}")
    return result.stdout


@dataclass(frozen=True)
class LiveAccount:
    email: str
    key: Path  # private key; the public key is ``<key>.pub``


@dataclass
class GitBackend:
    """``git http-backend`` behind a small aiohttp CGI gateway on 127.0.0.1."""

    root: Path
    url: str = ""
    requests: list[dict[str, str]] = field(default_factory=list)

    @property
    def repo(self) -> Path:
        return self.root / "repo.git"


def git_backend_app(backend: GitBackend) -> web.Application:
    """Run ``git http-backend`` (git-http-backend(1), RFC 3875 CGI) for every request.

    The proxy's identity header becomes ``REMOTE_USER``, which is what lets http-backend
    accept pushes (``http.receivepack`` is off by default for anonymous users).
    """

    async def handle(request: web.Request) -> web.StreamResponse:
        backend.requests.append(dict(request.headers))
        body = await request.read()  # aiohttp has already undone any Content-Encoding
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            **{k: v for k, v in GIT_ENV.items() if k.startswith("GIT_CONFIG")},
            "GIT_PROJECT_ROOT": str(backend.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "REQUEST_METHOD": request.method,
            "PATH_INFO": request.path,
            "QUERY_STRING": request.query_string,
            "CONTENT_TYPE": request.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_ADDR": request.remote or "",
        }
        if "Git-Protocol" in request.headers:
            env["GIT_PROTOCOL"] = request.headers["Git-Protocol"]
        if "X-ExeDev-Email" in request.headers:
            env["REMOTE_USER"] = request.headers["X-ExeDev-Email"]
        proc = await asyncio.create_subprocess_exec(
            "git",
            "http-backend",
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        out, _ = await proc.communicate(body)
        sep = b"\r\n\r\n" if b"\r\n\r\n" in out else b"\n\n"
        head, _, payload = out.partition(sep)
        status, headers = 200, {}
        for line in head.decode("latin-1").splitlines():
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.split()[0])
            elif name:
                headers[name.strip()] = value.strip()
        return web.Response(status=status, body=payload, headers=headers)

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


def seed_bare_repository(root: Path) -> Path:
    """``root/repo.git`` with one commit on ``main``."""
    seed = root / "seed"
    git("init", "-q", "-b", "main", str(seed))
    (seed / "README").write_text("hello\n")
    git("add", "README", cwd=seed)
    git("commit", "-q", "-m", "initial", cwd=seed)
    git("clone", "-q", "--bare", str(seed), str(root / "repo.git"))
    return root / "repo.git"


def find_tokens(*roots: Path) -> list[Path]:
    """Every file under ``roots`` that contains an exe0 or exe1 token prefix."""
    hits = []
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file() and not path.is_symlink():
                data = path.read_bytes()
                if b"exe0." in data or b"exe1." in data:
                    hits.append(path)
    return hits
