"""Fixtures that run the real ``sshmint serve`` (see ``harness.py``) and register accounts.

Per test:

- ``server``: a fresh server on the parametrised ``db_url`` (sqlite, postgresql: R146).
- ``server_factory(db_url, start=True, data_dir=None, **SSHMintServer options)``: more
  servers (restarts, custom options, ``preload=``); all are stopped after the test.

Shared (tests that share a server isolate themselves: an account, a key or a VM of their
own):

- ``served(base, db_url=None, **options)``: a module's own server, for a fixture to
  ``yield from`` (stopped at the fixture's end, its output checked for tokens).
- ``sqlite_server`` / ``postgresql_server``: one server per backend for the whole session;
  ``live`` (module scope, parametrised over both) is the one under test. At the end of the
  session their output is checked for leaked tokens (``log_checks.py``).

Accounts:

- ``new_account(server, comment="test", kind="ed25519", email="")``: a user registered with
  a fresh ``ssh-keygen`` key.
- ``owner_of(server)``: the main user of a shared server, one per server for the session.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Protocol, TypedDict, Unpack

import pytest

from tests.support.harness import SSHMintServer
from tests.support.keys import Account, AccountFactory, KeyFactory
from tests.support.log_checks import assert_no_token_in_output
from tests.support.postgres import PostgresServer

__all__ = [
    "live",
    "new_account",
    "owner_of",
    "postgresql_server",
    "served",
    "server",
    "server_factory",
    "sqlite_server",
]


class ServerOptions(TypedDict, total=False):
    """The keyword options of :class:`SSHMintServer` that ``server_factory`` passes on."""

    extra_args: Sequence[str]
    env: Mapping[str, str] | None
    preload: str | None
    pythonpath: Sequence[Path]
    ssh_listen: str | None
    http_listen: str | None


class ServerFactory(Protocol):
    """The ``server_factory`` fixture: ``make(db_url, start=, data_dir=, **options)``, each
    server stopped when the test ends."""

    def __call__(
        self,
        db_url: str,
        *,
        start: bool = True,
        data_dir: Path | None = None,
        **options: Unpack[ServerOptions],
    ) -> SSHMintServer: ...


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[ServerFactory]:
    servers: list[SSHMintServer] = []
    counter = itertools.count(1)

    def make(
        db_url: str,
        *,
        start: bool = True,
        data_dir: Path | None = None,
        **options: Unpack[ServerOptions],
    ) -> SSHMintServer:
        directory = data_dir or tmp_path / f"server{next(counter)}" / "data"
        server = SSHMintServer(directory, db_url, **options)
        servers.append(server)
        return server.start() if start else server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def server(server_factory: ServerFactory, db_url: str) -> SSHMintServer:
    return server_factory(db_url)


def served(
    base: Path, db_url: str | None = None, **options: Unpack[ServerOptions]
) -> Iterator[SSHMintServer]:
    """For a fixture to ``yield from``: a server with its data directory in ``base`` (on
    SQLite in ``base`` unless ``db_url``), stopped when the fixture ends, its output then
    checked for leaked tokens."""
    url = db_url or f"sqlite:///{base / 'sshmint.db'}"
    server = SSHMintServer(base / "data", url, **options).start()
    try:
        yield server
    finally:
        server.stop()
    assert_no_token_in_output(server)


@pytest.fixture(scope="session")
def sqlite_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SSHMintServer]:
    yield from served(tmp_path_factory.mktemp("sqlite-server"))


@pytest.fixture(scope="session")
def postgresql_server(
    postgres: PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SSHMintServer]:
    yield from served(tmp_path_factory.mktemp("postgresql-server"), postgres.new_database())


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def live(request: pytest.FixtureRequest) -> SSHMintServer:
    """The shared server of each backend (R146), for a module whose tests do not interfere
    with each other (each makes its own account, keys or VMs)."""
    server = request.getfixturevalue(f"{request.param}_server")
    assert isinstance(server, SSHMintServer)
    return server


@pytest.fixture(scope="session")
def new_account(fresh_key: KeyFactory) -> AccountFactory:
    def make(
        server: SSHMintServer, comment: str = "test", kind: str = "ed25519", email: str = ""
    ) -> Account:
        key = fresh_key(kind, comment=comment)
        address = email or f"u{uuid.uuid4().hex[:10]}@example.com"
        user_id = server.add_user(address, key.with_name(key.name + ".pub"))
        return Account(address.strip().lower(), key, user_id)

    return make


@pytest.fixture(scope="session")
def owner_of(new_account: AccountFactory) -> Callable[[SSHMintServer], Account]:
    """``owner_of(server)``: the main user of a shared server, made on first use."""
    owners: dict[str, Account] = {}

    def get(server: SSHMintServer) -> Account:
        if server.db_url not in owners:
            owners[server.db_url] = new_account(server, comment="api")
        return owners[server.db_url]

    return get
