"""One SSH session (docs/ssh.md#exec-mode-and-the-repl): an exec request (a command line
run once) or a REPL. Before every command the login key is re-read by id and the
key-level checks of docs/ssh.md#key-checks-before-every-command run, so removal, expiry and lock-out take effect immediately
(docs/accounts.md#key-removal-and-revocation, docs/storage.md#backends: no cache).

Instrumentation (docs/operations.md#metrics, docs/operations.md#logs): the session opens
a scope of transport ``ssh`` (so a token that ``exe0-to-exe1`` refuses is counted under
it), reports its login to the observer, accepted or refused, and every command line it
runs: counted, and one audit line with the user, key, command name, exit status and
duration — never the line's arguments.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

import asyncssh

from sshmint.keys import fingerprint
from sshmint.server.auth.permissions import (
    KEY_EXPIRED,
    KEY_NOT_ALLOWED,
    KEY_REVOKED,
    PermissionsError,
    key_permission_error,
)
from sshmint.server.commands import (
    DATABASE_UNAVAILABLE,
    INTERNAL_ERROR,
    INVALID_COMMAND_SYNTAX,
    CommandContext,
    CommandSyntaxError,
    resolve_command_name,
    run_words,
    split_command_line,
    wants_json,
)
from sshmint.server.commands.render import dump_json
from sshmint.server.infra.observe import open_scope
from sshmint.server.runtime import ServerRuntime
from sshmint.server.store import SSHKeyRow, StoreUnavailable, User

__all__ = ["Session"]

GREETING = "Welcome to sshmint, {email}. Type 'help' for commands, 'exit' to leave."
PROMPT = "sshmint> "
ACCOUNT_LOCKED = "sshmint: this account is locked"
# REPL lines that end the session (docs/ssh.md#exec-mode-and-the-repl).
LEAVE_WORDS = (["exit"], ["quit"])
# docs/ssh.md#key-checks-before-every-command failures after which the key can never run a command again in this session.
FATAL_KEY_ERRORS = frozenset({KEY_REVOKED, KEY_EXPIRED, ACCOUNT_LOCKED})

_log = logging.getLogger("sshmint.ssh")


class _SessionEnded(Exception):
    """The client went away; nothing more can be written."""


class Session:
    """One SSH session channel: an exec request or a REPL."""

    def __init__(
        self, runtime: ServerRuntime, process: asyncssh.SSHServerProcess[str], key_blob: bytes
    ) -> None:
        self._runtime = runtime
        self._process = process
        self._key_blob = key_blob
        self._pty = process.get_terminal_type() is not None
        self._key_id: int | None = None
        # Who logged in (for the audit lines), once known.
        self._user_id = ""
        self._fingerprint = ""

    def _line_editor(self) -> asyncssh.SSHLineEditorChannel | None:
        """asyncssh's line editor, active only when the client allocated a PTY."""
        channel = self._process.channel
        if self._pty and isinstance(channel, asyncssh.SSHLineEditorChannel):
            return channel
        return None

    # -- output ---------------------------------------------------------------------------

    def _write(self, text: str, *, stderr: bool = False) -> None:
        if not text:
            return
        try:
            if stderr:
                # The line editor turns "\n" into CRLF on stdout only (docs/ssh.md#exec-mode-and-the-repl: CRLF with a PTY).
                if self._pty:
                    text = text.replace("\r\n", "\n").replace("\n", "\r\n")
                self._process.stderr.write(text)
            else:
                self._process.stdout.write(text)
        except (BrokenPipeError, ConnectionError, asyncssh.Error) as exc:
            raise _SessionEnded from exc

    def _error(self, message: str) -> None:
        self._write(message + "\n", stderr=True)

    # -- lifecycle ------------------------------------------------------------------------

    async def run(self) -> None:
        open_scope("other", "ssh")
        status = 1
        try:
            status = await self._run()
        except _SessionEnded:
            return
        except StoreUnavailable as exc:
            _log.warning("database unavailable during SSH session: %s", exc)
            with contextlib.suppress(_SessionEnded):
                self._error(DATABASE_UNAVAILABLE)
        except (BrokenPipeError, ConnectionError, asyncssh.DisconnectError):
            return
        except Exception:
            # An exception escaping the handler would drop the connection (status 255).
            _log.exception("internal error in SSH session")
            with contextlib.suppress(_SessionEnded):
                self._error(INTERNAL_ERROR)
        with contextlib.suppress(BrokenPipeError, ConnectionError, asyncssh.Error, OSError):
            self._process.exit(status)

    async def _run(self) -> int:
        store = self._runtime.store
        fp = fingerprint(self._key_blob)
        found = await store.login_lookup(fp)  # the key and its owner in one query
        key, user = found if found is not None else (None, None)
        observer = self._runtime.observer
        if key is None or user is None:
            observer.ssh_session(False, "unknown_key")
            _log.info("SSH login with unregistered key SHA256:%s", fp)
            self._error(f"sshmint: SSH key SHA256:{fp} is not registered to any account")
            return 1
        if user.locked:
            observer.ssh_session(False, "locked")
            _log.info("SSH login refused for locked account %s", user.user_id)
            self._error(ACCOUNT_LOCKED)
            return 1
        observer.ssh_session(True)
        await self._runtime.authenticator.record_use(key, self._runtime.now())
        self._key_id = key.id
        self._user_id, self._fingerprint = user.user_id, fp
        _log.info("SSH session for %s with key SHA256:%s", user.user_id, fp)
        if self._process.subsystem is not None:
            self._error(f"sshmint: subsystem {self._process.subsystem!r} is not supported")
            return 1
        command = self._process.command
        if command is None:
            return await self._repl(user)
        # The rows just read are this command's "re-read" (docs/ssh.md#key-checks-before-every-command): nothing ran in between.
        return await self._exec(command, (key, user))

    # -- exec mode ------------------------------------------------------------------------

    async def _exec(self, command: str, login: tuple[SSHKeyRow, User]) -> int:
        try:
            words = split_command_line(command)
        except CommandSyntaxError:
            self._error(INVALID_COMMAND_SYNTAX)
            return 1
        if not words:
            return 0
        stdout, stderr, status, _ = await self._run_command(words, interactive=False, rows=login)
        self._write(stdout)
        self._write(stderr, stderr=True)
        return status

    async def _read_stdin(self, limit: int) -> bytes:
        """Read stdin to end-of-file, stopping once ``limit`` bytes are buffered."""
        chunks: list[bytes] = []
        size = 0
        while size < limit:
            try:
                data = await self._process.stdin.read(65536)
            except (asyncssh.BreakReceived, asyncssh.SignalReceived):
                break
            except asyncssh.TerminalSizeChanged:
                continue
            if not data:
                break
            chunk = data.encode("utf-8", "surrogateescape")
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)[:limit]

    # -- REPL -----------------------------------------------------------------------------

    async def _repl(self, user: User) -> int:
        self._write(GREETING.format(email=user.email) + "\n")
        prompt = True
        while True:
            if prompt:
                self._write(PROMPT)
            prompt = True
            try:
                line = await self._process.stdin.readline()
            except (asyncssh.BreakReceived, asyncssh.SignalReceived):
                # Ctrl-C: drop the partial line and show a fresh prompt.
                editor = self._line_editor()
                if editor is not None:
                    editor.clear_input()
                self._write("^C\n" if self._pty else "\n")
                continue
            except asyncssh.TerminalSizeChanged:
                prompt = False
                continue
            if not line:  # end of input
                self._write("\n")
                return 0
            try:
                words = split_command_line(line)
            except CommandSyntaxError:
                self._write(INVALID_COMMAND_SYNTAX + "\n")
                continue
            if not words:
                continue
            if words in LEAVE_WORDS:
                return 0
            stdout, stderr, status, fatal = await self._run_command(words, interactive=True)
            self._write(_repl_output(stdout, stderr))
            if fatal:
                return status

    # -- one command ----------------------------------------------------------------------

    async def _run_command(
        self,
        words: list[str],
        *,
        interactive: bool,
        rows: tuple[SSHKeyRow, User] | None = None,
    ) -> tuple[str, str, int, bool]:
        """Run one split command line: (stdout, stderr, exit status, session must end);
        reported to the observer once it has ended, however it ended."""
        name = resolve_command_name(words)
        started = time.perf_counter()
        status = 1
        try:
            outcome = await self._checked_command(words, name, interactive, rows)
            status = outcome[2]
            return outcome
        finally:
            self._runtime.observer.ssh_command(
                user_id=self._user_id,
                fingerprint=self._fingerprint,
                command=name,
                exit_status=status,
                seconds=time.perf_counter() - started,
                remote=self._remote(),
            )

    def _remote(self) -> str:
        peer = self._process.get_extra_info("peername")
        return str(peer[0]) if peer else "-"

    async def _checked_command(
        self,
        words: list[str],
        name: str | None,
        interactive: bool,
        rows: tuple[SSHKeyRow, User] | None,
    ) -> tuple[str, str, int, bool]:
        """The key checks, then the command named ``name`` (None: no command of the tree).

        ``rows`` are the login key and user when they were read just now; otherwise both
        are re-read (docs/ssh.md#key-checks-before-every-command, docs/storage.md#backends).
        """
        store = self._runtime.store
        now = self._runtime.now()
        assert self._key_id is not None
        key: SSHKeyRow | None = rows[0] if rows else await store.key_by_id(self._key_id)
        try:
            refusal = key_permission_error(key, name, now)
        except PermissionsError:  # unreadable stored permissions: refuse (fail closed)
            _log.warning("SSH key %s has unreadable permissions", self._key_id)
            refusal = KEY_NOT_ALLOWED
        user: User | None = None
        if key is not None and refusal is None:
            user = rows[1] if rows else await store.get_user(key.user_id)
        if refusal is None and (user is None or user.locked):
            refusal = ACCOUNT_LOCKED
        if refusal is not None:
            stdout, stderr = _failure(refusal, words, interactive)
            return stdout, stderr, 1, refusal in FATAL_KEY_ERRORS
        assert key is not None and user is not None
        stdin: Callable[[int], Awaitable[bytes]] | None = None if interactive else self._read_stdin
        ctx = CommandContext(
            store=store,
            settings=self._runtime.command_settings(),
            user=user,
            key=key,
            now=self._runtime.now,
            stdin=stdin,
            indent_json=interactive,
            authenticator=self._runtime.authenticator,
        )
        result = await run_words(ctx, words, force_json=False)
        return result.stdout, result.stderr, result.exit_status, False


def _failure(message: str, words: list[str], interactive: bool) -> tuple[str, str]:
    """stdout and stderr of a refused command (docs/ssh.md#output-and-exit-status): ``{"error":...}`` too under ``--json``."""
    if not wants_json(words):
        return "", message + "\n"
    return dump_json({"error": message}, indent=interactive), message + "\n"


def _repl_output(stdout: str, stderr: str) -> str:
    """In the REPL both streams go to the session output (docs/ssh.md#output-and-exit-status); a JSON result already
    carries its error, so the stderr copy is dropped there."""
    if stdout.lstrip().startswith("{"):
        return stdout
    return stdout + stderr
