"""Fixtures of the HTTP tests: the shared server of each backend and accounts on it.

Starting a server and registering a user take a while on a busy machine, so one server per
backend serves every module of ``tests/http`` (session scope), with one main user each.
Tests isolate themselves by signing with a fresh key of that user (``account``), by
creating their own VMs, or by making another user (``new_account``).

- ``live`` (module scope) is parametrised over SQLite and PostgreSQL (R146); a module that
  only exercises backend-independent rules overrides it with SQLite alone.
- ``owner``: the main user of ``live``; ``account``: a fresh key of that user, registered
  through ``POST /exec ssh-key add``, so rate-limit buckets and revocations never leak
  between tests.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.harness import SSHMintServer
from tests.support.http_support import add_key
from tests.support.keys import Account, new_key

__all__ = ["account", "live", "owner"]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def live(request: pytest.FixtureRequest) -> SSHMintServer:
    """The shared server of the backend under test."""
    server = request.getfixturevalue(f"{request.param}_server")
    assert isinstance(server, SSHMintServer)
    return server


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
