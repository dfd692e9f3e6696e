"""A real PostgreSQL for the tests, and the parametrised database URL of both backends.

PostgreSQL: one private cluster per test session (``initdb`` as the ``postgres`` user in a
temporary directory, trust auth on loopback, a free port), so the suite needs no running
service. ``SSHMINT_TEST_PG_URL`` (a superuser URL) uses an existing server instead.

- ``postgres`` (session fixture): the :class:`PostgresServer`; ``new_database()`` makes an
  empty database, ``stop``/``start``/``frozen`` serve the fault tests.
- ``db_url``: a fresh, empty database URL, once per backend (sqlite, postgresql).
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.aio import run_sync
from tests.support.polling import free_port

__all__ = ["PostgresServer", "db_url", "postgres"]


@dataclass
class PostgresServer:
    host: str
    port: int
    user: str
    data_dir: str | None
    bin_dir: str | None
    _counter: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        out = subprocess.run(
            [
                "psql",
                "-X",
                "-q",
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                self.url(database),
                "-c",
                sql,
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        return out.stdout

    def execute(self, sql: str) -> None:
        """Run one statement as the superuser (asyncpg: much cheaper than spawning psql)."""
        import asyncpg

        async def run() -> None:
            conn = await asyncpg.connect(self.url(), timeout=10)
            try:
                await conn.execute(sql)
            finally:
                await conn.close()

        run_sync(run)

    def new_database(self) -> str:
        """Create an empty database and return its URL."""
        name = f"t{os.getpid()}_{next(self._counter)}"
        self.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def _as_postgres(self, args: list[str]) -> subprocess.CompletedProcess[str]:
        cmd = args if os.geteuid() != 0 else ["runuser", "-u", "postgres", "--", *args]
        return subprocess.run(cmd, check=True, capture_output=True, text=True)

    def stop(self) -> None:
        """Stop the private cluster (fault tests); ``start`` brings it back on the same port."""
        assert self.bin_dir and self.data_dir
        self._as_postgres(
            [f"{self.bin_dir}/pg_ctl", "-D", self.data_dir, "-m", "immediate", "-w", "stop"]
        )

    @contextlib.contextmanager
    def frozen(self) -> Iterator[None]:
        """Freeze the private cluster (SIGSTOP to the postmaster and every backend): its
        sockets stay open but nothing answers, as with a hung database host. Thawed on
        exit, whatever happens."""
        assert self.data_dir
        postmaster = int(Path(self.data_dir, "postmaster.pid").read_text().split()[0])
        pids = [postmaster, *_children(postmaster)]
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        try:
            yield
        finally:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)

    def start(self) -> None:
        assert self.bin_dir and self.data_dir
        opts = f"-c listen_addresses={self.host} -p {self.port} -c unix_socket_directories={self.data_dir} -c fsync=off -c max_connections=200"
        self._as_postgres(
            [
                f"{self.bin_dir}/pg_ctl",
                "-D",
                self.data_dir,
                "-o",
                opts,
                "-l",
                f"{self.data_dir}/log",
                "-w",
                "start",
            ]
        )


def _children(parent: int) -> list[int]:
    """Process ids whose parent is ``parent`` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            # "pid (comm) state ppid ...": comm may hold spaces, so split after the ")".
            if int(stat.read_text().rpartition(")")[2].split()[1]) == parent:
                found.append(int(stat.parent.name))
    return found


def _start_private_cluster() -> PostgresServer:
    initdbs = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not initdbs:
        raise RuntimeError(
            "PostgreSQL is not installed: run scripts/ensure-test-tools (make test does)"
        )
    bin_dir = os.path.dirname(initdbs[-1])
    data_dir = tempfile.mkdtemp(prefix="sshmint-pg-")
    if os.geteuid() == 0:
        pw = pwd.getpwnam("postgres")
        os.chown(data_dir, pw.pw_uid, pw.pw_gid)
        os.chmod(data_dir, 0o700)
    server = PostgresServer("127.0.0.1", free_port(), "postgres", data_dir, bin_dir)
    cmd = [
        f"{bin_dir}/initdb",
        "-D",
        data_dir,
        "-U",
        "postgres",
        "-A",
        "trust",
        "-E",
        "UTF8",
        "--no-sync",
    ]
    server._as_postgres(cmd)
    server.start()
    return server


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A running PostgreSQL server for this test session."""
    url = os.environ.get("SSHMINT_TEST_PG_URL")
    if url:
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        yield PostgresServer(
            parts.hostname or "127.0.0.1",
            parts.port or 5432,
            parts.username or "postgres",
            None,
            None,
        )
        return
    server = _start_private_cluster()
    try:
        yield server
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            server.stop()
        if server.data_dir:
            shutil.rmtree(server.data_dir, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database URL: every server-side rule runs on both backends (R146)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'sshmint.db'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres")
    url = server.new_database()
    yield url
    # Keep the private cluster small: drop each database when its test ends (a fault test
    # may have stopped the server; it restarts it, but never fail a test over clean-up).
    with contextlib.suppress(Exception):
        server.drop_database(url)
