"""Fixtures for the HTTP tests: live ``sshmint serve`` processes (tests/server/harness.py)
and accounts whose keys come from the real ``ssh-keygen``.

Starting a server and registering a user through the admin CLI take seconds on a busy
machine, so one server per backend serves every module of this directory (session scope),
with one main user each. Tests isolate themselves by signing with a fresh key of that user
(``account``), by creating their own VMs, or by making another user (``make_account``).

``live`` is parametrised over SQLite and PostgreSQL (R146); a module that only exercises
backend-independent rules overrides it with SQLite alone.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent.parent / "server"))

from harness import SSHMintServer
from http_support import Account, AccountFactory, add_key, new_key


def _start(tmp_path_factory: pytest.TempPathFactory, db_url: str) -> SSHMintServer:
    return SSHMintServer(tmp_path_factory.mktemp("server") / "data", db_url).start()


@pytest.fixture(scope="session")
def sqlite_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SSHMintServer]:
    server = _start(tmp_path_factory, f"sqlite:///{tmp_path_factory.mktemp('db') / 'sshmint.db'}")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgresql_server(
    postgres: object, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SSHMintServer]:
    server = _start(tmp_path_factory, postgres.new_database())  # type: ignore[attr-defined]
    yield server
    server.stop()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def live(request: pytest.FixtureRequest) -> SSHMintServer:
    """The shared server of the backend under test."""
    server = request.getfixturevalue(f"{request.param}_server")
    assert isinstance(server, SSHMintServer)
    return server


@pytest.fixture(scope="session")
def make_account(tmp_path_factory: pytest.TempPathFactory) -> AccountFactory:
    """``make_account(server, kind="ed25519", comment="api")``: a fresh ssh-keygen key and a
    user registered with it through the real admin CLI."""
    directory = tmp_path_factory.mktemp("keys")

    def make(server: SSHMintServer, kind: str = "ed25519", comment: str = "api") -> Account:
        name = uuid.uuid4().hex[:12]
        key = new_key(directory / f"id_{kind}_{name}", kind, comment)
        email = f"u{name}@example.com"
        user_id = server.add_user(email, key.with_name(key.name + ".pub"))
        return Account(email, key, user_id)

    return make


_owners: dict[str, Account] = {}


@pytest.fixture(scope="module")
def owner(live: SSHMintServer, make_account: AccountFactory) -> Account:
    """The main user of ``live`` (one per server, shared by every module)."""
    if live.db_url not in _owners:
        _owners[live.db_url] = make_account(live)
    return _owners[live.db_url]


@pytest.fixture
def account(live: SSHMintServer, owner: Account, tmp_path: Path) -> Account:
    """A fresh key of the main user, registered through ``POST /exec ssh-key add``.

    Every test signs with its own key, so rate-limit buckets and revocations never leak
    between tests.
    """
    return add_key(live, owner, new_key(tmp_path / f"key_{uuid.uuid4().hex[:8]}"))
