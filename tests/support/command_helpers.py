"""Helpers for the command-layer tests: a real Store, callers with real keys, a clock.

Tests drive ``run_words`` directly, as the SSH transport and ``POST /exec`` do, against
a real database: SQLite (a fresh file per test) and PostgreSQL (the session cluster of
``tests/conftest.py``; one migrated database emptied before each test).
"""

from __future__ import annotations

import ipaddress
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from sshmint.keys import PublicKey
from sshmint.server.auth import NO_POLICY, Authenticator, LifetimePolicy
from sshmint.server.commands import (
    CommandContext,
    CommandResult,
    CommandSettings,
    run_words,
    split_command_line,
)
from sshmint.server.store import SSHKeyRow, Store, User
from sshmint.signing import PrivateKeySigner, generate_ed25519
from sshmint.token import mint_exe0

__all__ = [
    "BACKENDS",
    "NOW",
    "SETTINGS",
    "Caller",
    "Env",
    "backend_env",
    "json_of",
    "open_env",
    "pub_line",
]

# 2030-03-17T17:46:40Z: inside the token claim range (docs/tokens.md#validation steps 10-11).
NOW = 1_900_000_000
SETTINGS = CommandSettings(
    web_host="sshmint.test",
    vm_host="vm.test",
    http_port=8080,
    upstream_allow=(ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")),
)


def pub_line(key: PublicKey, comment: str = "") -> str:
    return f"{key.openssh} {comment}".strip()


def json_of(result: CommandResult) -> Any:
    """The single JSON object a successful or failing JSON-mode command printed."""
    assert result.stdout.endswith("\n"), result
    assert result.stdout.count("\n") == 1, result  # compact: exactly one line
    return json.loads(result.stdout)


@dataclass
class Caller:
    """A user logged in with ``key`` (its current row) whose private half is ``signer``."""

    env: Env
    user: User
    key: SSHKeyRow
    signer: PrivateKeySigner

    async def run(
        self,
        line: str | list[str],
        *,
        force_json: bool = False,
        stdin: bytes | None = None,
        indent_json: bool = False,
    ) -> CommandResult:
        return await self.env.run(
            self, line, force_json=force_json, stdin=stdin, indent_json=indent_json
        )

    async def ok(self, line: str | list[str], **kw: Any) -> Any:
        """Run in JSON mode; assert success; return the JSON object."""
        result = await self.run(line, force_json=True, **kw)
        assert result.exit_status == 0, result
        return json_of(result)

    async def fail(self, line: str | list[str], **kw: Any) -> str:
        """Run in JSON mode; assert failure with ``{"error": msg}``; return ``msg``."""
        result = await self.run(line, force_json=True, **kw)
        assert result.exit_status == 1, result
        body = json_of(result)
        assert set(body) == {"error"}, body
        assert result.stderr == body["error"] + "\n"
        return str(body["error"])

    def token(self, payload: bytes = b"{}", namespace: str | None = None) -> str:
        """An exe0 token signed by this caller's key."""
        return mint_exe0(payload, self.signer, namespace or f"v0@{SETTINGS.web_host}")


@dataclass
class Env:
    store: Store
    settings: CommandSettings
    now: int = NOW
    users: int = 0
    # The server's --max-token-lifetime (docs/lifecycle.md#lifetime-policy).
    policy: LifetimePolicy = NO_POLICY

    def clock(self) -> int:
        return self.now

    def authenticator(self) -> Authenticator:
        """The server's authentication path on this store, clock and policy."""
        return Authenticator(
            self.store, self.clock, logging.getLogger("sshmint.server"), policy=self.policy
        )

    async def caller(
        self, email: str | None = None, *, permissions: str = "", key_name: str = "login"
    ) -> Caller:
        """A new user with one fresh Ed25519 login key carrying ``permissions``."""
        self.users += 1
        signer = generate_ed25519()
        user, key = await self.store.create_user(
            email or f"user{self.users}@example.com",
            self.now,
            key=signer.public_key,
            key_name=key_name,
            key_permissions=permissions,
        )
        assert key is not None
        return Caller(self, user, key, signer)

    async def add_key(
        self, caller: Caller, *, permissions: str = "", name: str = ""
    ) -> tuple[SSHKeyRow, PrivateKeySigner]:
        """Register one more fresh key for ``caller``'s user (directly in the store)."""
        signer = generate_ed25519()
        row = await self.store.add_key(
            caller.user.user_id, signer.public_key, name, permissions, self.now
        )
        return row, signer

    async def run(
        self,
        caller: Caller,
        line: str | list[str],
        *,
        force_json: bool = False,
        stdin: bytes | None = None,
        indent_json: bool = False,
    ) -> CommandResult:
        words = split_command_line(line) if isinstance(line, str) else line
        # Like the transports: the calling key is re-read before every command.
        row = await self.store.key_by_id(caller.key.id)
        assert row is not None, "the calling key was removed"
        stdin_reader = None
        if stdin is not None:
            data = stdin

            async def read(limit: int) -> bytes:
                return data[:limit]

            stdin_reader = read
        ctx = CommandContext(
            store=self.store,
            settings=self.settings,
            user=caller.user,
            key=row,
            now=self.clock,
            authenticator=self.authenticator(),
            stdin=stdin_reader,
            indent_json=indent_json,
        )
        return await run_words(ctx, words, force_json=force_json)


@asynccontextmanager
async def open_env(db_url: str, settings: CommandSettings = SETTINGS) -> AsyncIterator[Env]:
    store = await Store.open(db_url)
    try:
        yield Env(store, settings)
    finally:
        await store.close()


# PostgreSQL: one migrated database per test session, emptied before each test. Creating
# a database per test costs ~0.5-2 s on a busy machine; emptying one costs ~50 ms.
_PG_DATABASES: dict[str, str] = {}
_KEEP_TABLES = ("alembic_version", "server_secrets")


async def _empty_postgres_database(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        tables = await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            " AND tablename <> ALL($1::text[])",
            list(_KEEP_TABLES),
        )
        async with conn.transaction():
            # Superuser in the test cluster: skip FK triggers, so the order does not matter.
            await conn.execute("SET LOCAL session_replication_role = replica")
            for (table,) in tables:
                await conn.execute(f'DELETE FROM "{table}"')
    finally:
        await conn.close()


async def backend_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty, migrated database of ``backend`` (``sqlite`` or ``postgresql``)."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'sshmint.db'}"
    server = request.getfixturevalue("postgres")
    key = server.url()
    if key not in _PG_DATABASES:
        url = server.new_database()
        store = await Store.open(url)  # migrate once
        await store.close()
        _PG_DATABASES[key] = url
    url = _PG_DATABASES[key]
    await _empty_postgres_database(url)
    return url


@asynccontextmanager
async def backend_env(
    backend: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    settings: CommandSettings = SETTINGS,
) -> AsyncIterator[Env]:
    """A fresh environment on ``backend``; every test runs on both (R146)."""
    async with open_env(await backend_url(backend, request, tmp_path), settings) as env:
        yield env


BACKENDS = ["sqlite", "postgresql"]
