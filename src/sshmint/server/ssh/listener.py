"""The SSH listener (asyncssh): public-key login, then one session per channel.

Authentication accepts any key whose possession the client proves; the account is decided
afterwards, per session, from that key (docs/ssh.md#connection-and-login; see :mod:`.session`).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any

import asyncssh

from sshmint.keys import limit_violation
from sshmint.server.runtime import ServerRuntime
from sshmint.server.ssh.session import Session

__all__ = ["SSHListener", "start_ssh_server"]

# How long shutdown waits for open sessions to close after being told to.
CLOSE_TIMEOUT = 5.0


def _enable_quickack(conn: asyncssh.SSHServerConnection) -> None:
    """Set ``TCP_QUICKACK`` before every received chunk.

    Linux leaves quick-ACK mode after a few segments, and the request/response pattern of an
    SSH handshake then waits out two ~40 ms delayed ACKs per connection; re-arming the flag
    after each chunk (i.e. before the next one arrives) removes those stalls (2.5–4× more
    sequential ``ssh HOST cmd`` round trips, see bench/bench_ssh.py). Setting it once at
    connect is not enough.
    """
    quickack = getattr(socket, "TCP_QUICKACK", None)
    sock = conn.get_extra_info("socket")
    if quickack is None or sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    original = conn.data_received

    def data_received(data: bytes, datatype: Any = None) -> None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, quickack, 1)
        original(data, datatype)

    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, quickack, 1)
    # The asyncio transport looks the method up on every chunk, so an instance attribute works.
    conn.data_received = data_received  # type: ignore[method-assign]


class _ConnectionTracker:
    """Open connections, so shutdown can close them instead of waiting for clients."""

    def __init__(self) -> None:
        self.connections: set[asyncssh.SSHServerConnection] = set()

    async def close_all(self) -> None:
        conns = list(self.connections)
        for conn in conns:
            conn.close()
        if conns:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.gather(*(c.wait_closed() for c in conns), return_exceptions=True),
                    CLOSE_TIMEOUT,
                )


class _AuthServer(asyncssh.SSHServer):
    """Per-connection authentication: public keys only, any proven key (docs/ssh.md#connection-and-login)."""

    def __init__(self, tracker: _ConnectionTracker) -> None:
        self._tracker = tracker
        self._conn: asyncssh.SSHServerConnection | None = None
        self._offered_blob: bytes | None = None
        self.login_key_blob: bytes | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn
        self._tracker.connections.add(conn)
        _enable_quickack(conn)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._conn is not None:
            self._tracker.connections.discard(self._conn)

    def begin_auth(self, username: str) -> bool:
        return True  # authentication is always required; the user name is ignored (docs/ssh.md#connection-and-login)

    def password_auth_supported(self) -> bool:
        return False

    def kbdint_auth_supported(self) -> bool:
        return False

    def host_based_auth_supported(self) -> bool:
        return False

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        # asyncssh verifies the signature right after this returns True, and calls this for
        # every offered key, so the last key seen before auth_completed() is the one proven.
        # The wire blob is kept as sent: it is what fingerprints are computed from (docs/tokens.md#fingerprints).
        blob = bytes(key.public_data)
        if limit_violation(blob) is not None:
            # docs/security.md#key-limits: such a key is never registered (an old row holding one counts as not
            # registered), and checking a signature with a huge RSA exponent costs
            # milliseconds: refuse it before asyncssh does any work.
            return False
        self._offered_blob = blob
        return True

    def auth_completed(self) -> None:
        self.login_key_blob = self._offered_blob


class SSHListener:
    """The running SSH server: one asyncssh acceptor per bound socket."""

    def __init__(self, acceptors: list[asyncssh.SSHAcceptor], tracker: _ConnectionTracker) -> None:
        self._acceptors = acceptors
        self._tracker = tracker

    async def close(self) -> None:
        """Stop accepting, then close every open session."""
        for acceptor in self._acceptors:
            acceptor.close()
        for acceptor in self._acceptors:
            with contextlib.suppress(Exception):
                await acceptor.wait_closed()
        await self._tracker.close_all()


async def start_ssh_server(
    runtime: ServerRuntime, sockets: list[socket.socket], host_key: asyncssh.SSHKey
) -> SSHListener:
    """Serve SSH on already bound, listening sockets."""
    tracker = _ConnectionTracker()

    async def handle(process: asyncssh.SSHServerProcess[str]) -> None:
        owner = process.channel.get_connection().get_owner()
        blob = owner.login_key_blob if isinstance(owner, _AuthServer) else None
        if blob is None:  # cannot happen after public-key auth; fail closed
            process.exit(1)
            return
        await Session(runtime, process, blob).run()

    acceptors: list[asyncssh.SSHAcceptor] = []
    for sock in sockets:
        acceptor = await asyncssh.listen(
            sock=sock,
            server_factory=lambda: _AuthServer(tracker),
            server_host_keys=[host_key],
            process_factory=handle,
            encoding="utf-8",
            errors="replace",
            public_key_auth=True,
            password_auth=False,
            kbdint_auth=False,
            host_based_auth=False,
            gss_host=None,
            agent_forwarding=False,
            x11_forwarding=False,
            allow_scp=False,
            line_editor=True,
            line_history=100,
            max_line_length=16384,
        )
        acceptors.append(acceptor)
    return SSHListener(acceptors, tracker)
