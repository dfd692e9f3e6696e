"""The database deadline (``--db-timeout``, docs/security.md#slow-and-idle-clients): a database that is stopped,
frozen or locked never holds a client longer than the deadline plus one second, and
``/healthz`` answers 503 within two seconds."""

from __future__ import annotations

import concurrent.futures
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from sshmint.signing import load_private_key
from sshmint.token import mint_exe0
from tests.support.keys import Account, key_fingerprint
from tests.support.polling import wait_until
from tests.support.postgres import PostgresServer
from tests.support.server_fixtures import ServerFactory

DEADLINE = 1  # the --db-timeout these tests give the server (seconds)
# The client's own overhead on top of the server's bound: a new ssh connection (key
# exchange, authentication) on a busy two-core machine.
SSH_OVERHEAD = 3.0


def _token(account: Account) -> str:
    return mint_exe0(b"{}", load_private_key(str(account.key)), "v0@localhost")


def _timed(action: Callable[[], Any]) -> tuple[Any, float]:
    started = time.monotonic()
    result = action()
    return result, time.monotonic() - started


def _concurrently(*actions: Callable[[], Any]) -> list[tuple[Any, float]]:
    """Start every action at once, each in its own thread; their results and durations."""
    with concurrent.futures.ThreadPoolExecutor(len(actions)) as pool:
        return [future.result() for future in [pool.submit(_timed, a) for a in actions]]


def test_r_11_4_frozen_postgresql_is_bounded_by_the_db_timeout(
    postgres: PostgresServer,
    server_factory: ServerFactory,
    new_account: Callable[..., Account],
) -> None:
    """docs/security.md#slow-and-idle-clients: with the database host hung (every PostgreSQL process stopped), /exec fails
    with 500 within the deadline plus one second, /healthz with 503 within two seconds,
    an SSH command with ``database unavailable``; the server recovers once it answers."""
    server = server_factory(postgres.new_database(), extra_args=["--db-timeout", f"{DEADLINE}s"])
    account = new_account(server)
    token = _token(account)

    def exec_call() -> httpx.Response:
        return httpx.post(
            f"{server.http_url}/exec",
            headers={"Authorization": f"Bearer {token}"},
            content="whoami",
            timeout=30,
        )

    assert exec_call().status_code == 200
    with postgres.frozen():  # three clients at once: each is timed on its own
        (health, health_seconds), (executed, exec_seconds), (ssh, ssh_seconds) = _concurrently(
            lambda: httpx.get(f"{server.http_url}/healthz", timeout=30),
            exec_call,
            lambda: server.ssh(account.key, "whoami"),
        )
    assert (health.status_code, health.json()) == (
        503,
        {"status": "error", "error": "database unavailable"},
    )
    assert health_seconds < 2.0
    assert (executed.status_code, executed.json()) == (500, {"error": "internal error"})
    assert exec_seconds < DEADLINE + 1.0
    assert (ssh.returncode, ssh.stderr) == (1, "database unavailable\n")
    assert ssh_seconds < DEADLINE + 1.0 + SSH_OVERHEAD
    assert wait_until(lambda: exec_call().status_code == 200, timeout=30)
    assert httpx.get(f"{server.http_url}/healthz", timeout=30).status_code == 200
    assert "Traceback" not in server.stderr


def test_r_11_4_locked_sqlite_write_is_bounded_by_the_db_timeout(
    server_factory: ServerFactory,
    new_account: Callable[..., Account],
    fresh_key: Callable[..., Path],
    tmp_path: Path,
) -> None:
    """docs/security.md#slow-and-idle-clients on SQLite: while another process holds the write lock, a command that writes
    fails with ``database unavailable`` within the deadline plus one second (and writes
    nothing); reads keep working (WAL) and the write succeeds once the lock is gone."""
    database = tmp_path / "locked.db"
    server = server_factory(f"sqlite:///{database}", extra_args=["--db-timeout", f"{DEADLINE}s"])
    account = new_account(server)
    key = fresh_key()
    pub = key.with_name(key.name + ".pub")
    holder = sqlite3.connect(database, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        # The write and a read at once. Each login also waits for the deadline on the
        # key's last-used update before the command runs.
        (added, elapsed), (read, _) = _concurrently(
            lambda: server.ssh(account.key, "ssh-key", "add", pub.read_text().strip()),
            lambda: server.ssh(account.key, "whoami"),
        )
        assert (added.returncode, added.stderr) == (1, "database unavailable\n")
        assert elapsed < 2 * DEADLINE + 1.0 + SSH_OVERHEAD
        assert read.returncode == 0, read.stderr  # reads are not blocked
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    listed = server.ssh(account.key, "ssh-key", "list", "--json").stdout
    assert key_fingerprint(pub) not in listed  # the refused add wrote nothing
    assert server.ssh(account.key, "ssh-key", "add", pub.read_text().strip()).returncode == 0
