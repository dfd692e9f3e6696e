"""Fixtures for the client tests: a fake clock, tiny loopback HTTP servers, a real ``git
http-backend``, and accounts on the session's shared SQLite server (``sqlite_server``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

import pytest
from aiohttp import web

from tests.support.client_support import FakeClock, LoopbackServer
from tests.support.git_http import GitBackend, git_backend_app, seed_bare_repository
from tests.support.harness import SSHMintServer
from tests.support.http_support import ThreadedApp, add_key
from tests.support.keys import Account, new_key

__all__ = [
    "account",
    "clock",
    "echo_server",
    "git_backend",
    "live_user",
    "status_server",
]


class StatusServer(Protocol):
    """The ``status_server`` fixture: ``make(status, body, content_type) -> url``."""

    def __call__(self, status: int, body: bytes, content_type: str = "application/json") -> str: ...


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


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
    running = ThreadedApp(app).start()
    server.url = running.url
    yield server
    running.stop()


@pytest.fixture
def status_server() -> Iterator[StatusServer]:
    """``make(status, body, content_type) -> url`` of a server answering exactly that."""
    answers: dict[str, tuple[int, bytes, str]] = {}

    async def handle(request: web.Request) -> web.Response:
        status, body, content_type = answers[request.match_info["name"]]
        return web.Response(status=status, body=body, headers={"Content-Type": content_type})

    app = web.Application()
    app.router.add_route("*", "/{name}/exec", handle)
    running = ThreadedApp(app).start()

    def make(status: int, body: bytes, content_type: str = "application/json") -> str:
        name = f"s{len(answers)}"
        answers[name] = (status, body, content_type)
        return f"{running.url}/{name}"

    yield make
    running.stop()


@pytest.fixture
def git_backend(tmp_path: Path) -> Iterator[GitBackend]:
    """A real ``git http-backend`` upstream serving ``repo.git`` (one commit on ``main``)."""
    root = tmp_path / "git-root"
    root.mkdir()
    seed_bare_repository(root)
    backend = GitBackend(root)
    running = ThreadedApp(git_backend_app(backend)).start()
    backend.url = running.url
    yield backend
    running.stop()


@pytest.fixture(scope="session")
def live_user(
    sqlite_server: SSHMintServer, owner_of: Callable[[SSHMintServer], Account]
) -> Account:
    """The main user of the shared SQLite server."""
    return owner_of(sqlite_server)


@pytest.fixture
def account(sqlite_server: SSHMintServer, live_user: Account, tmp_path: Path) -> Account:
    """A fresh ed25519 key of ``live_user`` (so a fresh rate-limit bucket,
    docs/http-api.md#post-exec), made by the real ssh-keygen and registered with ``ssh-key
    add`` over ``/exec``."""
    key = new_key(tmp_path / "id_ed25519", comment="client-test")
    return add_key(sqlite_server, live_user, key)
