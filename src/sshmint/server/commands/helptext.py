"""Help output (docs/ssh.md#help): the whole tree, or one command (same as ``--help``)."""

from __future__ import annotations

from sshmint.server.commands.tree import ROOT, CommandNode, FlagSpec, Output

__all__ = ["command_help", "tree_help"]


def _entry(node: CommandNode) -> dict[str, object]:
    return {"name": node.name, "description": node.description}


def tree_help() -> Output:
    """All commands in tree order, subcommands nested (omitted when there are none)."""
    commands: list[dict[str, object]] = []
    lines = ["sshmint commands:", ""]
    names = [len(n) for n in ROOT.children]
    names += [len(c) + 2 for node in ROOT.children.values() for c in node.children]
    width = max(names, default=0) + 2
    for node in ROOT.children.values():
        entry = _entry(node)
        lines.append(f"  {node.name.ljust(width)}{node.description}")
        if node.children:
            entry["subcommands"] = [_entry(child) for child in node.children.values()]
            for child in node.children.values():
                lines.append(f"    {child.name.ljust(width - 2)}{child.description}")
        commands.append(entry)
    lines += ["", "Run 'help <command>' or '<command> --help' for details."]
    return Output({"commands": commands}, "\n".join(lines))


def _flag_label(spec: FlagSpec) -> str:
    dashes = "-" if len(spec.name) == 1 else "--"
    return f"{dashes}{spec.name}" + ("=VALUE" if spec.takes_value else "")


def command_help(node: CommandNode) -> Output:
    """One command: ``usage``, ``flags``, ``examples``, ``subcommands`` omitted when empty."""
    data: dict[str, object] = {"command": node.name, "description": node.description}
    lines = [node.description]
    if node.usage:
        data["usage"] = node.usage
        lines += ["", f"Usage: {node.usage}"]
    flags = node.all_flags
    data["flags"] = [{"name": f.name, "description": f.description} for f in flags]
    width = max(len(_flag_label(f)) for f in flags) + 2
    lines += ["", "Flags:"] + [f"  {_flag_label(f).ljust(width)}{f.description}" for f in flags]
    if node.examples:
        data["examples"] = list(node.examples)
        lines += ["", "Examples:"] + [f"  {example}" for example in node.examples]
    if node.children:
        data["subcommands"] = [_entry(child) for child in node.children.values()]
        sub_width = max(len(n) for n in node.children) + 2
        lines += ["", "Subcommands:"] + [
            f"  {child.name.ljust(sub_width)}{child.description}"
            for child in node.children.values()
        ]
    return Output(data, "\n".join(lines))
