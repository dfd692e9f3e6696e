"""A small synchronous ssh-agent client (draft-miller-ssh-agent) over ``SSH_AUTH_SOCK``.

Synchronous on purpose: one short request/response on a local UNIX socket, usable from
the CLI and from sync or async HTTP client auth hooks alike. Each operation opens its
own connection, so one :class:`AgentSigner` can be shared between threads.
"""

from __future__ import annotations

import os
import socket

from sshmint.errors import AgentError, PublicKeyError
from sshmint.keys import PublicKey, format_fingerprint, public_key_from_blob
from sshmint.keytypes import RSA
from sshmint.wire import (
    WireError,
    expect_end,
    read_string,
    read_uint32,
    write_string,
    write_uint32,
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "MAX_MESSAGE_BYTES",
    "AgentSigner",
    "agent_identities",
    "agent_signer",
]

# draft-miller-ssh-agent §5.1 message numbers
SSH_AGENT_FAILURE = 5
SSH2_AGENTC_REQUEST_IDENTITIES = 11
SSH2_AGENT_IDENTITIES_ANSWER = 12
SSH2_AGENTC_SIGN_REQUEST = 13
SSH2_AGENT_SIGN_RESPONSE = 14
SSH_AGENT_EXTENDED_FAILURE = 30
# draft-miller-ssh-agent §5.3 signature flags
SSH_AGENT_RSA_SHA2_512 = 4

#: Upper bound on one agent reply; an identities list is a few KiB at most.
MAX_MESSAGE_BYTES = 256 * 1024
#: Seconds to wait on the agent. Generous: a security key waits for a touch and
#: ``ssh-add -c`` keys for a confirmation.
DEFAULT_TIMEOUT = 60.0


def _socket_path(sock: str | None) -> str:
    path = sock if sock is not None else os.environ.get("SSH_AUTH_SOCK")
    if not path:
        raise AgentError("no ssh-agent: SSH_AUTH_SOCK is not set")
    return path


def _recv_exact(conn: socket.socket, size: int) -> bytes:
    chunks: list[bytes] = []
    remaining = size
    while remaining:
        chunk = conn.recv(min(remaining, 65536))
        if not chunk:
            raise AgentError("ssh-agent closed the connection mid-reply")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _request(path: str, message_type: int, payload: bytes, timeout: float) -> tuple[int, bytes]:
    """Send one message, return ``(reply type, reply payload)`` (draft §3)."""
    request = bytes((message_type,)) + payload
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(timeout)
            try:
                conn.connect(path)
            except OSError as exc:
                reason = exc.strerror or type(exc).__name__
                raise AgentError(f"cannot connect to ssh-agent at {path}: {reason}") from None
            conn.sendall(write_uint32(len(request)) + request)
            length = int.from_bytes(_recv_exact(conn, 4), "big")
            if not 1 <= length <= MAX_MESSAGE_BYTES:
                raise AgentError(f"ssh-agent sent a reply of invalid length {length}")
            reply = _recv_exact(conn, length)
    except TimeoutError:
        raise AgentError(f"ssh-agent at {path} did not answer within {timeout:g} s") from None
    except AgentError:
        raise
    except OSError as exc:
        raise AgentError(f"ssh-agent at {path}: {exc.strerror or exc}") from None
    return reply[0], reply[1:]


def agent_identities(sock: str | None = None, timeout: float = DEFAULT_TIMEOUT) -> list[PublicKey]:
    """The agent's identities of docs/tokens.md#key-and-signature-types types, in agent order (others are skipped)."""
    path = _socket_path(sock)
    reply_type, payload = _request(path, SSH2_AGENTC_REQUEST_IDENTITIES, b"", timeout)
    if reply_type != SSH2_AGENT_IDENTITIES_ANSWER:
        raise AgentError(f"ssh-agent refused to list identities (reply {reply_type})")
    keys: list[PublicKey] = []
    try:
        count, pos = read_uint32(payload)
        for _ in range(count):  # bounded: every identity consumes at least 8 bytes
            blob, pos = read_string(payload, pos)
            comment, pos = read_string(payload, pos)
            try:
                key = public_key_from_blob(blob)
            except PublicKeyError:
                continue  # e.g. ssh-dss or a certificate: not usable for SSHSIG here
            keys.append(PublicKey(key.key_type, key.blob, comment.decode("utf-8", "replace")))
        expect_end(payload, pos, "the identities")
    except WireError as exc:
        raise AgentError(f"malformed identities answer from ssh-agent: {exc}") from None
    return keys


class AgentSigner:
    """A ``keys.Signer`` whose private key lives in ssh-agent."""

    __slots__ = ("_public_key", "sock", "timeout")

    def __init__(self, public_key: PublicKey, sock: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        self._public_key = public_key
        self.sock = sock
        self.timeout = timeout

    @property
    def public_key(self) -> PublicKey:
        return self._public_key

    def sign(self, data: bytes) -> bytes:
        """An SSH signature over ``data`` (RSA: ``rsa-sha2-512``; sk keys: with flags/counter)."""
        key = self._public_key
        is_rsa = key.key_type == RSA
        flags = SSH_AGENT_RSA_SHA2_512 if is_rsa else 0
        request = write_string(key.blob) + write_string(data) + write_uint32(flags)
        reply_type, payload = _request(self.sock, SSH2_AGENTC_SIGN_REQUEST, request, self.timeout)
        shown = format_fingerprint(key.fingerprint)
        if reply_type in (SSH_AGENT_FAILURE, SSH_AGENT_EXTENDED_FAILURE):
            raise AgentError(f"ssh-agent refused to sign with {shown}")
        if reply_type != SSH2_AGENT_SIGN_RESPONSE:
            raise AgentError(f"unexpected reply {reply_type} from ssh-agent")
        try:
            signature, pos = read_string(payload)
            expect_end(payload, pos, "the signature response")
            fmt, _ = read_string(signature)
        except WireError as exc:
            raise AgentError(f"malformed signature from ssh-agent: {exc}") from None
        # An agent that ignores the flag answers with SHA-1 `ssh-rsa`, which SSHSIG
        # verifiers refuse (docs/tokens.md#sshsig-blob): better to fail here than mint a dead token.
        if is_rsa and fmt != b"rsa-sha2-512":
            raise AgentError(
                f"ssh-agent signed with {fmt.decode('ascii', 'replace')!r} instead of rsa-sha2-512"
            )
        return signature


def agent_signer(
    public_key: PublicKey | None = None,
    sock: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> AgentSigner:
    """The agent identity equal to ``public_key`` (same blob), or the first identity."""
    wanted = format_fingerprint(public_key.fingerprint) if public_key is not None else None
    try:
        path = _socket_path(sock)
        identities = agent_identities(path, timeout)
    except AgentError as exc:
        if wanted is None:
            raise
        raise AgentError(f"cannot use {wanted}: {exc}") from None
    if public_key is None:
        if not identities:
            raise AgentError("ssh-agent has no usable identities")
        return AgentSigner(identities[0], path, timeout)
    for identity in identities:
        if identity.blob == public_key.blob:
            return AgentSigner(identity, path, timeout)
    raise AgentError(f"no identity {wanted} in ssh-agent")
