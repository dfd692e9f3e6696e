"""Drive the real ``sshmint serve`` process with the real OpenSSH client and admin CLI.

Usage (the fixtures of ``tests/support/server_fixtures.py`` do this for you)::

    server = SSHMintServer(data_dir=tmp_path / "data", db_url=db_url).start()
    user_id = server.add_user("a@example.com", Path(f"{key_path}.pub"))  # in its database
    result = server.ssh(key_path, "whoami", "--json")      # a CompletedProcess[str]
    httpx.get(server.http_url + "/healthz")
    repl = server.interactive(key_path)                      # ssh -tt: send()/expect()/wait()
    server.stop()                                            # SIGTERM, returns the exit status

- The server listens on free ports (``127.0.0.1:0``; ``ssh_listen=None``/``http_listen=None``
  leave the flag out, for configuration tests); ``ssh_port``/``http_port`` are parsed
  from its ``... listening on HOST:PORT`` lines (docs/operations.md#sshmint-serve), and
  ``metrics_port`` too when ``extra_args`` turn the metrics listener on (its line comes
  before the HTTP one; ``metrics_url`` is its ``/metrics``). Its stdout and stderr go to files
  (``server.stdout`` / ``server.stderr`` read them), so a chatty server never blocks.
- ``extra_args`` are appended to ``sshmint serve``; ``env`` adds environment variables
  (inherited ``SSHMINT_*`` variables are dropped so the host cannot leak settings in).
- ``preload="module.name"`` starts the server through ``python -c`` after importing that
  module, e.g. one that calls ``tests.support.extra_commands.register_command(...)`` to add a
  test-only command. The module is looked up on ``PYTHONPATH`` = the repository root and
  ``pythonpath``: the preloads of ``tests/support/preloads/`` are named
  ``"tests.support.preloads.<module>"``; a module written to a directory ``d`` at run time
  is ``preload="<module>", pythonpath=[d]``.
- ``ssh(key, *words)`` joins ``words`` with spaces like the OpenSSH client does: quote a
  word yourself (``"'a b'"``) when the server must see it as one.

Import it as ``from tests.support.harness import SSHMintServer``.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, TypeVar

from tests.support.aio import run_sync

if TYPE_CHECKING:
    from sshmint.server.store import Store, User

__all__ = [
    "LISTENING_LINE",
    "SSHMINT",
    "SSH_OPTIONS",
    "InteractiveSession",
    "SSHMintServer",
    "ServerStartError",
    "client_environment",
    "host_keys",
    "run_sshmint",
    "ssh_argv",
]

_T = TypeVar("_T")

REPO_ROOT = Path(__file__).resolve().parents[2]
# The console script of the interpreter running the tests (there is no ``__main__``).
SSHMINT = Path(sys.executable).parent / "sshmint"
LISTENING_LINE = re.compile(r"^(ssh|http|metrics) listening on (\[[^\]]+\]|[^\s:]+):(\d+)$")

# The real OpenSSH client, isolated from the user's configuration, agent and known hosts.
SSH_OPTIONS: tuple[str, ...] = (
    "-F",
    "/dev/null",
    "-o",
    "IdentitiesOnly=yes",
    "-o",
    "StrictHostKeyChecking=no",
    "-o",
    "UserKnownHostsFile=/dev/null",
    "-o",
    "LogLevel=ERROR",
    "-o",
    "BatchMode=yes",
    "-o",
    "ConnectTimeout=10",
)

_PRELOAD = (
    "import importlib, sys; importlib.import_module(sys.argv[1]); "
    "from sshmint.cli import main; sys.argv = ['sshmint', *sys.argv[2:]]; main()"
)


class ServerStartError(RuntimeError):
    """The server exited or stayed silent instead of printing both listening lines."""


def client_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """``os.environ`` without ``SSHMINT_*`` and ssh-agent variables, plus ``extra``."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("SSHMINT_") and k != "SSH_AUTH_SOCK"
    }
    env.update(extra or {})
    return env


def host_keys(host: str, port: int, timeout: float = 10.0) -> set[str]:
    """The ``<type> <base64>`` host keys a server offers, as seen by the real ``ssh-keyscan``."""
    result = subprocess.run(
        ["ssh-keyscan", "-T", str(int(timeout)), "-p", str(port), host.strip("[]")],
        capture_output=True,
        text=True,
        timeout=timeout + 5,
    )
    keys = set()
    for line in result.stdout.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        _, key_type, blob = line.split()[:3]
        keys.add(f"{key_type} {blob}")
    return keys


def run_sshmint(
    *args: str,
    env: Mapping[str, str] | None = None,
    input: str | None = None,
    timeout: float = 60.0,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the real ``sshmint`` CLI and capture its output (no check of the exit status)."""
    return subprocess.run(
        [str(SSHMINT), *args],
        env=client_environment(env),
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        stdin=None if input is not None else subprocess.DEVNULL,
    )


def ssh_argv(
    host: str, port: int, key_path: Path, *words: str, user: str = "sshmint", tty: bool = False
) -> list[str]:
    """The ``ssh`` command line for one session (``-tt`` forces a PTY, else none)."""
    target = f"{user}@{host.strip('[]')}"
    pty = ["-tt"] if tty else ["-T"]
    return ["ssh", *SSH_OPTIONS, *pty, "-i", str(key_path), "-p", str(port), target, *words]


class InteractiveSession:
    """A long-lived ``ssh`` session (REPL), driven like ``expect``: ``send`` and ``expect``.

    Output is collected by background threads; ``expect`` waits for a pattern after the
    point the previous ``expect`` stopped. With ``tty=True`` the client forces a PTY
    (``-tt``) although its own stdin is a pipe, so the server's line editor is active.
    """

    def __init__(self, argv: list[str], env: Mapping[str, str]) -> None:
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(env),
        )
        self._out = bytearray()
        self._err = bytearray()
        self._cond = threading.Condition()
        self._pos = 0
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self._threads = [
            threading.Thread(target=self._pump, args=(self.proc.stdout, self._out), daemon=True),
            threading.Thread(target=self._pump, args=(self.proc.stderr, self._err), daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _pump(self, stream: IO[bytes], sink: bytearray) -> None:
        fd = stream.fileno()
        while True:
            chunk = os.read(fd, 65536)
            with self._cond:
                if not chunk:
                    self._cond.notify_all()
                    return
                sink.extend(chunk)
                self._cond.notify_all()

    def send(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text.encode())
        self.proc.stdin.flush()

    def close_stdin(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()

    def expect(self, pattern: str | re.Pattern[str], timeout: float = 20.0) -> str:
        """Wait for ``pattern`` (a literal or compiled regex) in new stdout; return the text
        from the previous position to the end of the match."""
        regex = pattern if isinstance(pattern, re.Pattern) else re.compile(re.escape(pattern))
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                text = self._out[self._pos :].decode("utf-8", "replace")
                match = regex.search(text)
                if match:
                    consumed = text[: match.end()]
                    self._pos += len(consumed.encode("utf-8"))
                    return consumed
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.proc.poll() is not None and not self._alive()):
                    raise AssertionError(
                        f"{regex.pattern!r} not seen; stdout so far: {text!r}; "
                        f"stderr: {self.stderr!r}"
                    )
                self._cond.wait(min(remaining, 0.2))

    def _alive(self) -> bool:
        return any(thread.is_alive() for thread in self._threads)

    def wait(self, timeout: float = 20.0) -> int:
        code = self.proc.wait(timeout)
        for thread in self._threads:
            thread.join(timeout)
        return code

    def kill(self) -> None:
        """End the client if it still runs and release its pipes (safe to call twice)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            self.proc.stdin.close()
        for thread in self._threads:
            thread.join(5)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()

    @property
    def stdout(self) -> str:
        with self._cond:
            return self._out.decode("utf-8", "replace")

    @property
    def stderr(self) -> str:
        with self._cond:
            return self._err.decode("utf-8", "replace")


class SSHMintServer:
    """One ``sshmint serve`` subprocess on a data directory and a database URL."""

    def __init__(
        self,
        data_dir: Path,
        db_url: str,
        *,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        preload: str | None = None,
        pythonpath: Sequence[Path] = (),
        ssh_listen: str | None = "127.0.0.1:0",
        http_listen: str | None = "127.0.0.1:0",
    ) -> None:
        self.data_dir = Path(data_dir)
        self.db_url = db_url
        self.extra_args = list(extra_args)
        self.env = dict(env or {})
        self.preload = preload
        self.pythonpath = list(pythonpath)
        self.ssh_listen = ssh_listen
        self.http_listen = http_listen
        self.proc: subprocess.Popen[bytes] | None = None
        self.ssh_host = ""
        self.ssh_port = 0
        self.http_host = ""
        self.http_port = 0
        self.metrics_port = 0
        self._runs = 0
        self._out_path = self.data_dir.parent / f"{self.data_dir.name}-serve.out"
        self._err_path = self.data_dir.parent / f"{self.data_dir.name}-serve.err"

    # -- process ---------------------------------------------------------------------------

    def command(self) -> list[str]:
        args = ["serve", "--data-dir", str(self.data_dir), "--db", self.db_url]
        if self.ssh_listen is not None:
            args += ["--ssh-listen", self.ssh_listen]
        if self.http_listen is not None:
            args += ["--http-listen", self.http_listen]
        args += self.extra_args
        if self.preload:
            return [sys.executable, "-c", _PRELOAD, self.preload, *args]
        return [str(SSHMINT), *args]

    def _environment(self) -> dict[str, str]:
        env = client_environment(self.env)
        if self.preload:
            paths = [REPO_ROOT, *self.pythonpath]
            existing = env.get("PYTHONPATH")
            env["PYTHONPATH"] = os.pathsep.join(
                [str(p) for p in paths] + ([existing] if existing else [])
            )
        return env

    def start(self, timeout: float = 30.0) -> SSHMintServer:
        """Start and wait for both listening lines; raises ``ServerStartError`` otherwise."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self._runs += 1
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        with open(self._out_path, "wb") as out, open(self._err_path, "wb") as err:
            self.proc = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=self._environment(),
                cwd=self.data_dir.parent,
            )
        deadline = time.monotonic() + timeout
        while True:
            found = self._listening()
            if "ssh" in found and "http" in found:
                (self.ssh_host, self.ssh_port), (self.http_host, self.http_port) = (
                    found["ssh"],
                    found["http"],
                )
                self.metrics_port = found["metrics"][1] if "metrics" in found else 0
                return self
            if self.proc.poll() is not None:
                raise ServerStartError(
                    f"sshmint serve exited with {self.proc.returncode}: {self.stderr.strip()}"
                )
            if time.monotonic() > deadline:
                self.kill()
                raise ServerStartError(f"sshmint serve did not start: {self.stderr.strip()}")
            time.sleep(0.02)

    def _listening(self) -> dict[str, tuple[str, int]]:
        found: dict[str, tuple[str, int]] = {}
        for line in self.stdout.splitlines():
            match = LISTENING_LINE.match(line)
            if match:
                found[match.group(1)] = (match.group(2), int(match.group(3)))
        return found

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        """Send ``sig`` and wait; SIGKILL after ``timeout``. Returns the exit status."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def kill(self) -> int:
        """SIGKILL (crash simulation)."""
        return self.stop(signal.SIGKILL)

    def restart(self, timeout: float = 30.0) -> SSHMintServer:
        self.stop()
        return self.start(timeout)

    @property
    def stdout(self) -> str:
        return self._out_path.read_text(errors="replace") if self._out_path.exists() else ""

    @property
    def stderr(self) -> str:
        return self._err_path.read_text(errors="replace") if self._err_path.exists() else ""

    # -- clients ---------------------------------------------------------------------------

    @property
    def http_url(self) -> str:
        host = f"[{self.http_host.strip('[]')}]" if ":" in self.http_host else self.http_host
        return f"http://{host}:{self.http_port}"

    @property
    def metrics_url(self) -> str:
        assert self.metrics_port, "the server was started without --metrics-listen"
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def admin(
        self, *args: str, env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``sshmint admin ARGS --data-dir D --db URL`` against this server's database."""
        return run_sshmint(
            "admin", *args, "--data-dir", str(self.data_dir), "--db", self.db_url, env=env
        )

    def add_user(self, email: str, pubkey_path: Path | None = None) -> str:
        """Create a user (and its first key, named from the key's comment) in this server's
        database, as ``sshmint admin add-user`` does; returns its ``user_id``.

        In-process through ``Store``, not through the CLI (a process costs most of a second
        in imports): tests of the CLI itself call :meth:`admin`.
        """
        from sshmint.keys import parse_public_key_line
        from sshmint.server.runtime import unix_now
        from sshmint.server.store.validation import normalize_email, sanitize_name

        key = None if pubkey_path is None else parse_public_key_line(pubkey_path.read_text())

        async def create(store: Store) -> str:
            name = sanitize_name(key.comment) if key is not None else ""
            user, _ = await store.create_user(
                normalize_email(email), unix_now(), key=key, key_name=name
            )
            return user.user_id

        return self.with_store(create)

    def set_locked(self, email: str, locked: bool) -> None:
        """Lock or unlock a user in this server's database (``sshmint admin lock-user``)."""

        async def update(store: Store) -> None:
            assert await store.set_locked(email.strip().lower(), locked) is not None, email

        self.with_store(update)

    def stored_users(self) -> dict[str, User]:
        """Every user in this server's database by email, read in-process."""

        async def read(store: Store) -> dict[str, User]:
            return {user.email: user for user, _ in await store.list_users()}

        return self.with_store(read)

    def with_store(self, action: Callable[[Store], Awaitable[_T]]) -> _T:
        """Open a ``Store`` on this server's database, run ``action(store)``, close it."""
        from sshmint.server.store import Store

        async def run() -> _T:
            store = await Store.open(self.db_url)
            try:
                return await action(store)
            finally:
                await store.close()

        return run_sync(run)

    def ssh_argv(
        self, key_path: Path, *words: str, user: str = "sshmint", tty: bool = False
    ) -> list[str]:
        return ssh_argv(self.ssh_host, self.ssh_port, key_path, *words, user=user, tty=tty)

    def interactive(
        self, key_path: Path, *words: str, tty: bool = True, user: str = "sshmint"
    ) -> InteractiveSession:
        """Open a session (the REPL when no words) to drive with ``send``/``expect``."""
        argv = self.ssh_argv(key_path, *words, user=user, tty=tty)
        argv.insert(1, "-e")
        argv.insert(2, "none")  # no "~." escapes: input is data
        return InteractiveSession(argv, client_environment())

    def ssh(
        self,
        key_path: Path,
        *words: str,
        stdin: str | bytes | None = None,
        user: str = "sshmint",
        tty: bool = False,
        timeout: float = 60.0,
    ) -> subprocess.CompletedProcess[str]:
        """One session with the real OpenSSH client; no words opens the REPL (docs/ssh.md#exec-mode-and-the-repl)."""
        data = stdin.encode() if isinstance(stdin, str) else stdin
        result = subprocess.run(
            self.ssh_argv(key_path, *words, user=user, tty=tty),
            input=data,
            stdin=subprocess.DEVNULL if data is None else None,
            capture_output=True,
            timeout=timeout,
            env=client_environment(),
        )
        return subprocess.CompletedProcess(
            result.args,
            result.returncode,
            result.stdout.decode("utf-8", "replace"),
            result.stderr.decode("utf-8", "replace"),
        )
