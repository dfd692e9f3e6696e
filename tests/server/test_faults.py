"""Faults: database outage and recovery, a crash during writes, an unexpected exception in a
session (docs/storage.md#backends, docs/ssh.md#output-and-exit-status; "bad input gets a clear error and loses nothing")."""

from __future__ import annotations

import json
import queue
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.support.keys import Account, fresh_public_key, line_fingerprint
from tests.support.polling import wait_until
from tests.support.postgres import PostgresServer
from tests.support.server_fixtures import ServerFactory


def test_spec_9_postgresql_outage_gives_one_line_errors_and_the_server_recovers(
    postgres: PostgresServer,
    server_factory: ServerFactory,
    new_account: Callable[..., Account],
) -> None:
    server = server_factory(postgres.new_database())
    account = new_account(server)
    assert server.ssh(account.key, "whoami").returncode == 0
    postgres.stop()
    try:
        for words in (("whoami",), ()):  # exec and shell both fail cleanly, status 1
            result = server.ssh(account.key, *words)
            assert (result.returncode, result.stdout, result.stderr) == (
                1,
                "",
                "database unavailable\n",
            )
        health = httpx.get(f"{server.http_url}/healthz", timeout=30)
        assert health.status_code == 503
        assert health.json() == {"status": "error", "error": "database unavailable"}
        assert server.running
    finally:
        postgres.start()
    assert wait_until(lambda: server.ssh(account.key, "whoami").returncode == 0, timeout=30)
    assert httpx.get(f"{server.http_url}/healthz").json() == {"status": "ok"}
    assert "Traceback" not in server.stderr


def test_spec_9_1_sigkill_during_key_adds_loses_no_acknowledged_key(
    server_factory: ServerFactory,
    new_account: Callable[..., Account],
    tmp_path: Path,
) -> None:
    database = tmp_path / "burst.db"
    server = server_factory(f"sqlite:///{database}")
    account = new_account(server)
    pending: queue.Queue[str] = queue.Queue()
    for _ in range(30):
        pending.put(fresh_public_key())
    acknowledged: list[str] = []
    lock = threading.Lock()

    def add_keys() -> None:
        while True:
            try:
                line = pending.get_nowait()
            except queue.Empty:
                return
            result = server.ssh(account.key, "ssh-key", "add", line)
            if result.returncode == 0:
                fingerprint = f"SHA256:{line_fingerprint(line)}"
                with lock:
                    acknowledged.append(fingerprint)

    workers = [threading.Thread(target=add_keys) for _ in range(4)]
    for worker in workers:
        worker.start()
    try:
        assert wait_until(lambda: len(acknowledged) >= 8, timeout=60)
    finally:
        server.kill()  # SIGKILL while adds are in flight
        for worker in workers:
            worker.join(60)
    assert pending.qsize() > 0 or len(acknowledged) < 30  # the kill interrupted the burst

    server.start()
    listed = server.ssh(account.key, "ssh-key", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    present = {k["fingerprint"] for k in json.loads(listed.stdout)["ssh_keys"]}
    assert set(acknowledged) <= present
    with sqlite3.connect(database) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]


def test_spec_6_4_unexpected_exception_is_internal_error_and_the_server_carries_on(
    server_factory: ServerFactory,
    new_account: Callable[..., Account],
    tmp_path: Path,
) -> None:
    server = server_factory(
        f"sqlite:///{tmp_path / 'f.db'}", preload="tests.support.preloads.failing_touch"
    )
    account = new_account(server)
    failed = server.ssh(account.key, "whoami")
    # Status 1 with a one-line message, not a dropped connection (255).
    assert (failed.returncode, failed.stdout, failed.stderr) == (1, "", "internal error\n")
    assert "injected failure" in server.stderr  # logged on the server side only
    assert server.ssh(account.key, "whoami").returncode == 0
