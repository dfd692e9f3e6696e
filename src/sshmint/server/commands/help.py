"""``help [command [subcommand]]`` (docs/ssh.md#help)."""

from __future__ import annotations

from sshmint.server.commands.helptext import command_help, tree_help
from sshmint.server.commands.tree import CommandError, Invocation, Output, find_node

__all__ = ["run_help"]


async def run_help(inv: Invocation) -> Output:
    if not inv.args:
        return tree_help()
    node = find_node(inv.args)
    if node is None:
        path = " ".join(inv.args)
        if inv.json:
            raise CommandError(f"no help available for unrecognized command: {path}")
        return Output({}, f"No help available for unrecognized command: {path}")
    return command_help(node)
