"""Commands of the tests' own, added to the command tree beside the product's
(src/sshmint/server/commands/tree.py): :func:`register_command` adds one and returns the
callable that removes it again. The product tree (``COMMAND_NAMES``) never contains them.
"""

from __future__ import annotations

from collections.abc import Callable

from sshmint.server.commands.tree import CommandNode, FlagSpec, Handler, add_node

__all__ = ["register_command"]


def register_command(
    path: tuple[str, ...],
    handler: Handler,
    description: str,
    *,
    usage: str = "",
    flags: tuple[FlagSpec, ...] = (),
    takes_args: bool = True,
) -> Callable[[], None]:
    """Add the command ``path`` (a slow one, one that fails a given way); the remover.
    ``handler(inv: Invocation) -> Output`` (async) raises ``CommandError`` to fail."""
    node = CommandNode(
        path=path,
        description=description,
        usage=usage,
        flags=flags,
        handler=handler,
        takes_args=takes_args,
    )
    return add_node(node)
