"""What a transport hands to the command layer, and what it gets back."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sshmint.server.config import IPNetwork
from sshmint.server.store import SSHKeyRow, Store, User
from sshmint.valuetypes import value_type

if TYPE_CHECKING:
    from sshmint.server.auth import Authenticator

__all__ = ["CommandContext", "CommandResult", "CommandSettings", "StdinReader"]

# ``stdin(limit)`` reads up to ``limit`` bytes, to end-of-file (SSH exec mode only).
StdinReader = Callable[[int], Awaitable[bytes]]


@dataclass(frozen=True)
class CommandSettings:
    """Server options the commands need (docs/operations.md#sshmint-serve)."""

    web_host: str = "localhost"
    vm_host: str = "localhost"
    # The port the HTTP listener is bound to: VM URLs name it (docs/accounts.md#vms).
    http_port: int = 8080
    upstream_allow: tuple[IPNetwork, ...] = field(default_factory=tuple)


@value_type
@dataclass(frozen=True, slots=True)
class CommandContext:
    """One caller: ``key`` is the calling key (the SSH login key, or the key that signed
    the ``/exec`` token), re-read by the transport just before the command runs. Built
    once per command (a value type, docs/performance.md#value-types)."""

    store: Store
    settings: CommandSettings
    user: User
    key: SSHKeyRow
    now: Callable[[], int]
    # The server's one authentication path (``exe0-to-exe1`` validates through it).
    authenticator: Authenticator
    stdin: StdinReader | None = None
    # Indented JSON (the REPL); compact otherwise (docs/ssh.md#output-and-exit-status).
    indent_json: bool = False
    # The user's keys as read together with ``key`` (``/exec``); None: read when needed.
    user_keys: Sequence[SSHKeyRow] | None = None


@value_type
@dataclass(frozen=True, slots=True)
class CommandResult:
    stdout: str
    stderr: str
    exit_status: int
