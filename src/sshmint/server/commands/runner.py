"""Running one already split command line (docs/ssh.md#words-and-flags).

Transports call :func:`run_words`; it never raises for user errors, turns a database
outage into ``database unavailable`` and any other surprise into ``internal error``
(logged without the command's words, which may hold tokens).
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Sequence

from sshmint.server.commands.context import CommandContext, CommandResult
from sshmint.server.commands.flags import parse_flags, wants_json
from sshmint.server.commands.helptext import command_help
from sshmint.server.commands.render import dump_json
from sshmint.server.commands.tree import CommandError, Invocation, Output, resolve_path
from sshmint.server.store import StoreUnavailable
from sshmint.strictjson import quote

__all__ = [
    "DATABASE_UNAVAILABLE",
    "INTERNAL_ERROR",
    "resolve_command_name",
    "run_words",
    "unknown_command_message",
]

log = logging.getLogger("sshmint.commands")

DATABASE_UNAVAILABLE = "database unavailable"
INTERNAL_ERROR = "internal error"


def resolve_command_name(words: Sequence[str]) -> str | None:
    """docs/permissions.md#resolving-a-command-name: the longest prefix of ``words`` naming a command, joined by spaces."""
    node = resolve_path(words)
    return None if node is None else node.full_name


def unknown_command_message(words: Sequence[str]) -> str:
    """docs/ssh.md#words-and-flags: ``command not found: %q`` of the whole line's words."""
    return f"command not found: {quote(' '.join(words))}"


def _success(ctx: CommandContext, output: Output, json_mode: bool) -> CommandResult:
    stderr = "".join(f"{message}\n" for message in output.errors)
    status = 1 if output.errors else 0
    if json_mode:
        return CommandResult(dump_json(output.data, indent=ctx.indent_json), stderr, status)
    text = output.text
    if text and not text.endswith("\n"):
        text += "\n"
    return CommandResult(text, stderr, status)


def _failure(ctx: CommandContext, message: str, json_mode: bool) -> CommandResult:
    """docs/ssh.md#output-and-exit-status: text mode → stderr; JSON → ``{"error": ...}`` on stdout and stderr."""
    if json_mode:
        return CommandResult(
            dump_json({"error": message}, indent=ctx.indent_json), f"{message}\n", 1
        )
    return CommandResult("", f"{message}\n", 1)


def _positional_error(inv: Invocation) -> str | None:
    node = inv.node
    if not inv.args or node.takes_args:
        return None
    if node.children:
        valid = ", ".join(node.children)
        return (
            f"{quote(node.name)} subcommand {quote(inv.args[0])} not found, "
            f"valid {quote(node.name)} subcommands are: {valid}"
        )
    return f"{quote(node.name)} command has no subcommands and does not take positional arguments"


async def run_words(ctx: CommandContext, words: list[str], *, force_json: bool) -> CommandResult:
    """Run one command line (docs/ssh.md#words-and-flags). ``force_json`` is ``/exec``'s mode."""
    if not words:
        return CommandResult("", "", 0)
    node = resolve_path(words)
    if node is None:
        return _failure(ctx, unknown_command_message(words), force_json or wants_json(words))
    parsed = parse_flags(node, words[len(node.path) :])
    json_mode = force_json or parsed.json
    if parsed.help:
        return _success(ctx, command_help(node), json_mode)
    if parsed.error is not None:
        return _failure(ctx, parsed.error, json_mode)
    inv = Invocation(ctx=ctx, node=node, args=parsed.args, values=parsed.values, json=json_mode)
    positional_error = _positional_error(inv)
    if positional_error is not None:
        return _failure(ctx, positional_error, json_mode)
    if node.handler is None:  # a command group alone prints its help (docs/ssh.md#commands)
        return _success(ctx, command_help(node), json_mode)
    try:
        output = await node.handler(inv)
    except CommandError as exc:
        return _failure(ctx, exc.message, json_mode)
    except StoreUnavailable:
        log.warning("command %r: database unavailable", node.full_name)
        return _failure(ctx, DATABASE_UNAVAILABLE, json_mode)
    except Exception as exc:
        # The exception text may quote user input (tokens): log its type and frames only.
        frames = "".join(traceback.format_tb(exc.__traceback__))
        log.error("command %r failed: %s\n%s", node.full_name, type(exc).__name__, frames.rstrip())
        return _failure(ctx, INTERNAL_ERROR, json_mode)
    return _success(ctx, output, json_mode)
