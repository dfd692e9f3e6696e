"""Human-readable rendering of a command's JSON result (``sshmint exec --pretty``).

``POST /exec`` always answers JSON (docs/http-api.md#post-exec step 17), whatever the command; the text forms
of the SSH interface are the server's. This renders any such document generically, so it
needs no knowledge of each command:

- a member with a scalar value is one ``name: value`` line, names aligned; ``true`` and
  ``false`` read ``yes`` and ``no``, ``null`` reads ``-``;
- a list of scalars is one line, ``a, b, c``; an empty list or object reads ``(none)``;
- an object, or a list holding objects, is a ``name:`` line followed by its members
  indented by two spaces, one block per element, blocks separated by a blank line.

Every string is shown as it is when printable, else JSON-quoted: values such as a VM's
upstream or a share message come from other users and must not reach a terminal as
control sequences.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

__all__ = ["printable", "render"]

_INDENT = "  "


def printable(text: str) -> str:
    """``text`` itself when every character is printable, else quoted with every
    non-printable character escaped (``"a\\u001bb"``), format and bidirectional
    controls such as U+202E included."""
    if text.isprintable():
        return text
    return '"' + "".join(_escaped(c) for c in text) + '"'


def _escaped(char: str) -> str:
    if char in '"\\':
        return "\\" + char
    if char.isprintable():
        return char
    code = ord(char)
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def render(document: object) -> str:
    """The lines for ``document`` (parsed JSON), without a final newline."""
    if not isinstance(document, Mapping):
        return _inline(document) if _is_inline(document) else json.dumps(document)
    lines: list[str] = []
    _members(document, "", lines)
    return "\n".join(lines)


def _is_scalar(value: object) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _is_inline(value: object) -> bool:
    if _is_scalar(value):
        return True
    if isinstance(value, Mapping):
        return not value
    if isinstance(value, Sequence):
        return all(_is_scalar(item) for item in value)
    return True


def _inline(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, int | float):
        return json.dumps(value)
    if isinstance(value, Mapping | Sequence):
        return ", ".join(_inline(item) for item in value) or "(none)"
    return printable(str(value))


def _members(document: Mapping[str, object], indent: str, lines: list[str]) -> None:
    names = {key: printable(key) + ":" for key in document}
    width = max((len(names[k]) for k, v in document.items() if _is_inline(v)), default=0)
    for key, value in document.items():
        if _is_inline(value):
            lines.append(f"{indent}{names[key]:<{width}} {_inline(value)}".rstrip())
            continue
        lines.append(f"{indent}{names[key]}")
        items = [value] if isinstance(value, Mapping) else list(value)  # type: ignore[call-overload]
        for number, item in enumerate(items):
            if number:
                lines.append("")
            if isinstance(item, Mapping):
                _members(item, indent + _INDENT, lines)
            else:
                lines.append(
                    indent + _INDENT + (_inline(item) if _is_inline(item) else render(item))
                )
