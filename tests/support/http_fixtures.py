"""Fixtures of the HTTP tests: accounts on the shared server of each backend (``live``).

Starting a server and registering a user take a while on a busy machine, so one server per
backend serves every module of ``tests/http`` (session scope), with one main user each.
Tests isolate themselves by signing with a fresh key of that user (``account``), by
creating their own VMs, or by making another user (``new_account``).

- ``live`` (``server_fixtures.py``) is parametrised over SQLite and PostgreSQL (R146); a
  module that only exercises backend-independent rules overrides it with SQLite alone.
- ``owner``: the main user of ``live``; ``account``: a fresh key of that user, registered
  through ``POST /exec ssh-key add``, so rate-limit buckets and revocations never leak
  between tests.
- ``tls_server``: a server whose HTTP listener speaks TLS (a self-signed certificate for
  localhost and a few VM hosts) with a 1-second head deadline, and that certificate.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.harness import SSHMintServer
from tests.support.http_support import add_key, self_signed
from tests.support.keys import Account, new_key

__all__ = ["account", "owner", "tls_server"]


@pytest.fixture(scope="module")
def owner(live: SSHMintServer, owner_of: Callable[[SSHMintServer], Account]) -> Account:
    """The main user of ``live`` (one per server, shared by every module)."""
    return owner_of(live)


@pytest.fixture
def account(live: SSHMintServer, owner: Account, tmp_path: Path) -> Account:
    """A fresh key of the main user, registered through ``POST /exec ssh-key add``.

    Every test signs with its own key, so rate-limit buckets and revocations never leak
    between tests.
    """
    return add_key(live, owner, new_key(tmp_path / f"key_{uuid.uuid4().hex[:8]}"))


@pytest.fixture(scope="session")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SSHMintServer, Path]]:
    base = tmp_path_factory.mktemp("tls")
    cert, key = self_signed(base)
    server = SSHMintServer(
        base / "data",
        f"sqlite:///{base / 'sshmint.db'}",
        extra_args=["--tls-cert", str(cert), "--tls-key", str(key), "--header-timeout", "1s"],
    ).start()
    yield server, cert
    server.stop()
