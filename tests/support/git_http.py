"""The real git, and the real ``git http-backend`` behind a small aiohttp CGI gateway on
127.0.0.1 (an upstream for the VM proxy).

- :func:`git` runs git isolated from the machine's configuration and raises on failure.
- :class:`GitBackend` records every request the gateway received; :func:`git_backend_app`
  is the gateway (it streams bodies both ways); :func:`seed_bare_repository` makes the
  ``repo.git`` it serves, with one commit on ``main``.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

__all__ = ["GIT_ENV", "GitBackend", "git", "git_backend_app", "seed_bare_repository"]

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


@dataclass
class GitBackend:
    """What the gateway serves (``root/repo.git``) and what it received: each request's
    headers as a dict (``requests``) and as the raw lines (``raw_requests``)."""

    root: Path
    url: str = ""
    requests: list[dict[str, str]] = field(default_factory=list)
    raw_requests: list[list[tuple[bytes, bytes]]] = field(default_factory=list)

    @property
    def repo(self) -> Path:
        return self.root / "repo.git"


def _cgi_environment(backend: GitBackend, request: web.Request) -> dict[str, str]:
    """RFC 3875 variables for ``git http-backend``. aiohttp has already undone any
    ``Content-Encoding`` of the body, so neither that nor the encoded length is passed on
    (without ``CONTENT_LENGTH`` http-backend reads to the end of its input). The proxy's
    identity header becomes ``REMOTE_USER``, which is what lets http-backend accept pushes
    (``http.receivepack`` is off by default for anonymous users)."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        **{k: v for k, v in GIT_ENV.items() if k.startswith("GIT_CONFIG")},
        "HOME": str(backend.root),
        "GIT_PROJECT_ROOT": str(backend.root),
        "GIT_HTTP_EXPORT_ALL": "1",
        "REQUEST_METHOD": request.method,
        "PATH_INFO": request.path,
        "QUERY_STRING": request.query_string,
        "CONTENT_TYPE": request.headers.get("Content-Type", ""),
        "REMOTE_ADDR": request.remote or "",
    }
    if "Content-Length" in request.headers and "Content-Encoding" not in request.headers:
        env["CONTENT_LENGTH"] = request.headers["Content-Length"]
    if "Git-Protocol" in request.headers:
        env["GIT_PROTOCOL"] = request.headers["Git-Protocol"]
    if "X-ExeDev-Email" in request.headers:
        env["REMOTE_USER"] = request.headers["X-ExeDev-Email"]
    return env


def git_backend_app(backend: GitBackend) -> web.Application:
    """Run ``git http-backend`` (git-http-backend(1), RFC 3875 CGI) for every request."""

    async def handle(request: web.Request) -> web.StreamResponse:
        backend.requests.append(dict(request.headers))
        backend.raw_requests.append(list(request.raw_headers))
        proc = await asyncio.create_subprocess_exec(
            "git",
            "http-backend",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=_cgi_environment(backend, request),
        )
        assert proc.stdin is not None and proc.stdout is not None
        stdin, stdout = proc.stdin, proc.stdout

        async def feed() -> None:
            async for chunk in request.content.iter_any():
                stdin.write(chunk)
                await stdin.drain()
            stdin.close()

        feeder = asyncio.ensure_future(feed())
        status, headers = 200, []
        while (line := await stdout.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "status":
                status = int(value.split()[0])
            else:
                headers.append((name.strip(), value.strip()))
        response = web.StreamResponse(status=status)
        for name, value in headers:
            response.headers.add(name, value)
        await response.prepare(request)
        while chunk := await stdout.read(65536):
            await response.write(chunk)
        await feeder
        await proc.wait()
        await response.write_eof()
        return response

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
