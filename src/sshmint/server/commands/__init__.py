"""The one command tree, shared by the SSH interface and ``POST /exec`` (docs/ssh.md#commands).

No transport code lives here: a transport builds a :class:`CommandContext` and calls
:func:`run_words`.

- ``CommandSettings(web_host, vm_host, http_port, upstream_allow)`` — frozen dataclass.
- ``CommandContext(store, settings, user, key, now, authenticator, stdin, indent_json)`` —
  ``key`` is the calling key (SSH login key, or the key that signed the ``/exec`` token),
  re-read by the transport; ``authenticator`` is the server's one authentication path; ``stdin(limit)`` reads up to ``limit`` bytes to EOF (SSH exec mode only, else
  ``None``); ``indent_json`` selects two-space JSON (the REPL); ``user_keys``, when given,
  are the user's keys read together with ``key`` (``/exec``), else commands read them.
- ``CommandResult(stdout, stderr, exit_status)``.
- ``COMMAND_NAMES: frozenset[str]`` — every resolvable name of the product tree.
- ``resolve_command_name(words) -> str | None`` — docs/permissions.md#resolving-a-command-name (also finds test commands).
- ``run_words(ctx, words, *, force_json) -> CommandResult`` (async) — one split command line
  per docs/ssh.md#words-and-flags: ``command not found: %q`` for an unknown first word, flag parsing, ``--help``,
  ``--json`` or ``force_json`` (``/exec``). Never raises for user errors; ``StoreUnavailable``
  becomes ``database unavailable`` and any other exception ``internal error`` (exit 1, logged
  without the command's words).
- ``split_command_line(line) -> list[str]`` raising ``CommandSyntaxError`` (docs/ssh.md#words-and-flags).
- ``unknown_command_message(words) -> str`` — ``command not found: %q`` (SSH).
- ``wants_json(words) -> bool`` — whether a line asked for ``--json``, the one answer for
  the command layer and for a transport's refusals made before a command runs.
- ``key_permission_error(key_row | None, name | None, now) -> str | None`` — the SSH
  pre-command checks of docs/ssh.md#key-checks-before-every-command in order (revoked, expired, vm, cmds, tag);
  ``key_restriction_error(permissions_or_key_row, name) -> str | None`` — the ``/exec`` subset
  of docs/permissions.md#how-they-combine (vm, cmds, tag). Both raise ``PermissionsError`` for unreadable stored permissions:
  refuse the command (fail closed).
"""

from __future__ import annotations

from sshmint.server.auth.permissions import (
    PermissionsError,
    key_permission_error,
    key_restriction_error,
)
from sshmint.server.commands.catalog import COMMAND_NAMES
from sshmint.server.commands.context import (
    CommandContext,
    CommandResult,
    CommandSettings,
    StdinReader,
)
from sshmint.server.commands.flags import wants_json
from sshmint.server.commands.runner import (
    DATABASE_UNAVAILABLE,
    INTERNAL_ERROR,
    resolve_command_name,
    run_words,
    unknown_command_message,
)
from sshmint.server.commands.tree import (
    CommandError,
    FlagSpec,
    Handler,
    Invocation,
    Output,
)
from sshmint.server.commands.words import (
    INVALID_COMMAND_SYNTAX,
    CommandSyntaxError,
    split_command_line,
)

__all__ = [
    "COMMAND_NAMES",
    "DATABASE_UNAVAILABLE",
    "INTERNAL_ERROR",
    "INVALID_COMMAND_SYNTAX",
    "CommandContext",
    "CommandError",
    "CommandResult",
    "CommandSettings",
    "CommandSyntaxError",
    "FlagSpec",
    "Handler",
    "Invocation",
    "Output",
    "PermissionsError",
    "StdinReader",
    "key_permission_error",
    "key_restriction_error",
    "resolve_command_name",
    "run_words",
    "split_command_line",
    "unknown_command_message",
    "wants_json",
]
