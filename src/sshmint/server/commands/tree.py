"""The command tree (docs/ssh.md#commands): nodes, flag declarations, handlers and the registry.

The product commands are added once by ``catalog`` (:func:`add_node`, which returns the
node's remover).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from sshmint.errors import SSHMintError
from sshmint.server.commands.context import CommandContext
from sshmint.valuetypes import value_type

__all__ = [
    "JSON_FLAG",
    "ROOT",
    "CommandError",
    "CommandNode",
    "FlagSpec",
    "Handler",
    "Invocation",
    "Output",
    "add_node",
    "find_node",
    "iter_nodes",
    "resolve_path",
]


class CommandError(SSHMintError):
    """A command failed with ``message`` (the exact documented text); exit status 1."""


@dataclass(frozen=True)
class FlagSpec:
    """A flag: boolean (no value, or ``=true``/``=false``) or taking a value.

    A repeatable value flag collects every value; otherwise the last one wins (docs/ssh.md#words-and-flags).
    """

    name: str
    description: str
    takes_value: bool = False
    repeatable: bool = False


JSON_FLAG = FlagSpec("json", "output in JSON format")
# -h, -help and --help (docs/ssh.md#words-and-flags); not listed in help output.
HELP_FLAG_NAMES = frozenset({"h", "help"})


@value_type
@dataclass(frozen=True, slots=True)
class Output:
    """A command's outcome: ``data`` is the JSON object, ``text`` the human form.

    ``errors`` are failure messages of a command that also produced output (``rm``):
    they go to stderr and make the exit status 1.
    """

    data: Mapping[str, object]
    text: str = ""
    errors: tuple[str, ...] = ()


@value_type
@dataclass(frozen=True, slots=True)
class Invocation:
    """One parsed call: positional words, flag values, and the output mode."""

    ctx: CommandContext
    node: CommandNode
    args: list[str]
    values: Mapping[str, str | bool | list[str]]
    json: bool

    def value(self, name: str) -> str | None:
        """The last value of a value flag, or ``None`` when not given."""
        v = self.values.get(name)
        if isinstance(v, list):
            return v[-1] if v else None
        return v if isinstance(v, str) else None

    def all_values(self, name: str) -> list[str]:
        v = self.values.get(name)
        if isinstance(v, list):
            return list(v)
        return [v] if isinstance(v, str) else []

    def flag(self, name: str) -> bool:
        return self.values.get(name) is True


Handler = Callable[[Invocation], Awaitable[Output]]


@dataclass(eq=False)
class CommandNode:
    """A command or subcommand. ``path`` is its words (``("ssh-key", "list")``)."""

    path: tuple[str, ...]
    description: str
    usage: str = ""
    flags: tuple[FlagSpec, ...] = ()
    examples: tuple[str, ...] = ()
    handler: Handler | None = None
    # Whether positional words are the command's business (else docs/ssh.md#words-and-flags's error applies).
    takes_args: bool = False
    # ``help``: every flag except --json is ignored (docs/ssh.md#help).
    lenient_flags: bool = False
    children: dict[str, CommandNode] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.path[-1] if self.path else ""

    @property
    def full_name(self) -> str:
        return " ".join(self.path)

    @property
    def all_flags(self) -> tuple[FlagSpec, ...]:
        """The declared flags plus ``--json`` (docs/ssh.md#commands: every command has it)."""
        return (*self.flags, JSON_FLAG)

    def flag_spec(self, name: str) -> FlagSpec | None:
        for spec in self.all_flags:
            if spec.name == name:
                return spec
        return None


ROOT = CommandNode(path=(), description="sshmint")


def iter_nodes(node: CommandNode = ROOT) -> Iterator[CommandNode]:
    """Every command below ``node``, depth first, in tree order."""
    for child in node.children.values():
        yield child
        yield from iter_nodes(child)


def resolve_path(words: Sequence[str]) -> CommandNode | None:
    """The longest prefix of ``words`` naming a command (docs/permissions.md#resolving-a-command-name), case-sensitively."""
    node = ROOT
    for word in words:
        child = node.children.get(word)
        if child is None:
            break
        node = child
    return None if node is ROOT else node


def find_node(path: Sequence[str]) -> CommandNode | None:
    """The command whose path is exactly ``path``."""
    node = ROOT
    for word in path:
        child = node.children.get(word)
        if child is None:
            return None
        node = child
    return None if node is ROOT else node


def add_node(node: CommandNode) -> Callable[[], None]:
    """Attach ``node`` under its parent (which must exist); return a remover."""
    parent = find_node(node.path[:-1]) if len(node.path) > 1 else ROOT
    if parent is None or not node.path:
        raise ValueError(f"no parent command for {node.full_name!r}")
    if node.name in parent.children:
        raise ValueError(f"command {node.full_name!r} already exists")
    parent.children[node.name] = node

    def remove() -> None:
        if parent.children.get(node.name) is node:
            del parent.children[node.name]

    return remove
