"""Flag parsing after the command path (docs/ssh.md#words-and-flags).

Words beginning with ``-`` (except ``-`` alone and words beginning with ``-----``, such
as a pasted private key's armour) are flags and may appear anywhere among the positional
words; ``--`` ends flag parsing. One or two dashes; ``--name=value`` or ``--name value``.

The parser reads every word even after a problem, so ``--json`` is known when the
error is reported; the first problem (or the first help request) decides the outcome.

Whether a line asked for JSON is decided here alone (:func:`wants_json`), for the command
layer and for the refusals a transport makes before a command runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sshmint.server.commands.tree import HELP_FLAG_NAMES, ROOT, CommandNode, resolve_path
from sshmint.strictjson import quote

__all__ = ["ParsedFlags", "is_flag_word", "parse_flags", "wants_json"]

# Go's strconv.ParseBool spellings; docs/ssh.md names =true and =false.
_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


@dataclass
class ParsedFlags:
    args: list[str] = field(default_factory=list)
    values: dict[str, str | bool | list[str]] = field(default_factory=dict)
    json: bool = False
    help: bool = False
    # The first problem, or None; help wins only when requested before any problem.
    error: str | None = None


def is_flag_word(word: str) -> bool:
    return word.startswith("-") and word != "-" and not word.startswith("-----")


def _parse_bool(text: str) -> bool | None:
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    return None


def parse_flags(node: CommandNode, words: list[str]) -> ParsedFlags:
    """Split ``words`` (the words after the command path) into flags and positionals."""
    out = ParsedFlags()
    i = 0
    only_positional = False

    def fail(message: str) -> None:
        if out.error is None and not out.help:
            out.error = f"flag parsing error: {message}"

    while i < len(words):
        word = words[i]
        i += 1
        if only_positional or not is_flag_word(word):
            out.args.append(word)
            continue
        if word == "--":
            only_positional = True
            continue
        body = word[2:] if word.startswith("--") else word[1:]
        name, has_value, value = body.partition("=")
        if node.lenient_flags and name != "json":
            continue
        if name in HELP_FLAG_NAMES and node.flag_spec(name) is None:
            wanted = True if not has_value else _parse_bool(value)
            if wanted is None:
                fail(f"invalid boolean value {quote(value)} for --{name}")
            elif wanted and out.error is None:
                out.help = True
            continue
        spec = node.flag_spec(name)
        if spec is None:
            fail(f"unknown flag --{name}")
            continue
        if not spec.takes_value:
            flag_value = True if not has_value else _parse_bool(value)
            if flag_value is None:
                fail(f"invalid boolean value {quote(value)} for --{name}")
                continue
            out.values[name] = flag_value
            if name == "json":
                out.json = flag_value
            continue
        if not has_value:
            if i >= len(words):
                fail(f"flag needs an argument: --{name}")
                continue
            value = words[i]
            i += 1
        if spec.repeatable:
            previous = out.values.get(name)
            collected = previous if isinstance(previous, list) else []
            out.values[name] = [*collected, value]
        else:
            out.values[name] = value
    return out


def wants_json(words: Sequence[str]) -> bool:
    """Whether the command line ``words`` asks for JSON output (docs/ssh.md#output-and-exit-status):
    what :func:`parse_flags` makes of ``--json`` after the command path, or, when no
    command resolves, of every word (no path; every flag but ``--json`` unknown)."""
    node = resolve_path(words)
    if node is None:
        return parse_flags(ROOT, list(words)).json
    return parse_flags(node, list(words[len(node.path) :])).json
