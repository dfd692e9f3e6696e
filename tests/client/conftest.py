"""Fixtures for the client tests: a real ssh-agent, a fake clock, tiny loopback HTTP servers,
and a live ``sshmint serve`` driven by ``tests/server/harness.py``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from aiohttp import web
from client_support import (
    Agent,
    FakeClock,
    GitBackend,
    LiveAccount,
    LoopbackServer,
    git_backend_app,
    seed_bare_repository,
    serve_in_thread,
    wait_until,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the server harness
from server.harness import SSHMintServer
from sshmint.client import Client, SSHMintAuth


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def ssh_agent(tmp_path: Path) -> Iterator[Agent]:
    """A real ``ssh-agent -a SOCK`` in the foreground-less mode, killed at teardown."""
    sock = str(tmp_path / "agent.sock")
    proc = subprocess.Popen(
        ["ssh-agent", "-D", "-a", sock],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert wait_until(lambda: os.path.exists(sock)), "ssh-agent did not create its socket"
        yield Agent(sock, proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)


@pytest.fixture
def echo_server() -> Iterator[LoopbackServer]:
    """Records each request's headers and answers ``{}``: shows what a client sent."""
    server = LoopbackServer("")

    async def handle(request: web.Request) -> web.Response:
        server.requests.append(dict(request.headers))
        server.bodies.append(await request.read())
        return web.json_response({})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    for url in serve_in_thread(app):
        server.url = url
        yield server


@pytest.fixture
def status_server() -> Iterator[Callable[[int, bytes, str], str]]:
    """``make(status, body, content_type) -> url`` of a server answering exactly that."""
    answers: dict[str, tuple[int, bytes, str]] = {}

    async def handle(request: web.Request) -> web.Response:
        status, body, content_type = answers[request.match_info["name"]]
        return web.Response(status=status, body=body, headers={"Content-Type": content_type})

    app = web.Application()
    app.router.add_route("*", "/{name}/exec", handle)
    urls = serve_in_thread(app)
    base = next(urls)

    def make(status: int, body: bytes, content_type: str = "application/json") -> str:
        name = f"s{len(answers)}"
        answers[name] = (status, body, content_type)
        return f"{base}/{name}"

    yield make
    for _ in urls:  # runs the generator's cleanup
        pass


@pytest.fixture
def git_backend(tmp_path: Path) -> Iterator[GitBackend]:
    """A real ``git http-backend`` upstream serving ``repo.git`` (one commit on ``main``)."""
    root = tmp_path / "git-root"
    root.mkdir()
    seed_bare_repository(root)
    backend = GitBackend(root)
    for url in serve_in_thread(git_backend_app(backend)):
        backend.url = url
        yield backend


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SSHMintServer]:
    """One real ``sshmint serve`` (SQLite) for the client tests; each test uses its own key."""
    base = tmp_path_factory.mktemp("live")
    server = SSHMintServer(base / "data", f"sqlite:///{base / 'sshmint.db'}")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _new_key(directory: Path) -> Path:
    key = directory / "id_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "client-test", "-f", str(key)],
        check=True,
    )
    return key


@pytest.fixture(scope="session")
def live_user(live_server: SSHMintServer, tmp_path_factory: pytest.TempPathFactory) -> LiveAccount:
    """One user for the session, registered with the real admin CLI."""
    key = _new_key(tmp_path_factory.mktemp("user"))
    email = f"u{uuid.uuid4().hex[:10]}@example.com"
    live_server.add_user(email, Path(f"{key}.pub"))
    return LiveAccount(email, key)


@pytest.fixture
def account(live_server: SSHMintServer, live_user: LiveAccount, tmp_path: Path) -> LiveAccount:
    """A fresh ed25519 key of ``live_user`` (so a fresh rate-limit bucket, docs/http-api.md#post-exec), made by
    the real ssh-keygen and registered with ``ssh-key add`` over ``/exec``."""
    key = _new_key(tmp_path)
    line = Path(f"{key}.pub").read_text().strip()
    owner = SSHMintAuth(key=live_user.key, cmds=["ssh-key add"])
    with Client(live_server.http_url, auth=owner) as client:
        client.exec(["ssh-key", "add", line])
    return LiveAccount(live_user.email, key)
