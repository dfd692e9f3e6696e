"""Fixtures that run the real ``sshmint serve`` (see ``harness.py``), on both backends (R146).

- ``server``: a fresh server for one test, on the parametrised ``db_url`` (sqlite, postgresql).
- ``module_server``: one server per test module and backend, for tests that do not
  interfere with each other (give each test its own account via ``new_account``).
- ``server_factory(db_url, start=True, data_dir=None, **SSHMintServer options)``: more
  servers (restarts, custom options, ``preload=``); all are stopped after the test.
- ``new_account(server, comment="test", kind="ed25519")``: a fresh key made by the real
  ``ssh-keygen`` and a user registered with it through the real admin CLI.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from server.harness import Account, SSHMintServer


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Callable[..., SSHMintServer]]:
    servers: list[SSHMintServer] = []
    counter = itertools.count(1)

    def make(
        db_url: str, *, start: bool = True, data_dir: Path | None = None, **options: object
    ) -> SSHMintServer:
        directory = data_dir or tmp_path / f"server{next(counter)}" / "data"
        server = SSHMintServer(directory, db_url, **options)  # type: ignore[arg-type]
        servers.append(server)
        return server.start() if start else server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def server(server_factory: Callable[..., SSHMintServer], db_url: str) -> SSHMintServer:
    return server_factory(db_url)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def module_db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('db') / 'sshmint.db'}"
    return str(request.getfixturevalue("postgres").new_database())


@pytest.fixture(scope="module")
def module_server(
    module_db_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SSHMintServer]:
    server = SSHMintServer(tmp_path_factory.mktemp("server") / "data", module_db_url)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def fresh_key(ssh_keygen_key: Callable[..., Path]) -> Callable[..., Path]:
    """A new key pair from the real ssh-keygen: ``fresh_key(kind="ed25519", comment="test")``."""

    def make(kind: str = "ed25519", comment: str = "test", bits: int | None = None) -> Path:
        return ssh_keygen_key(kind, bits=bits, name=uuid.uuid4().hex[:12], comment=comment)

    return make


@pytest.fixture
def new_account(fresh_key: Callable[..., Path]) -> Callable[..., Account]:
    def make(
        server: SSHMintServer, comment: str = "test", kind: str = "ed25519", email: str = ""
    ) -> Account:
        key = fresh_key(kind, comment=comment)
        address = email or f"u{uuid.uuid4().hex[:10]}@example.com"
        user_id = server.add_user(address, key.with_name(key.name + ".pub"))
        return Account(address.strip().lower(), key, user_id)

    return make
