"""Strict JSON for token payloads (docs/tokens.md#strict-json, RFC 8259).

The payload of an exe0 token must be exactly one JSON object with no duplicate member
names at any depth (compared after decoding escapes), no ``NaN``/``Infinity`` and nothing
after the value. Besides the decoded value of each top-level member we keep its raw text,
because the proxy forwards the ``ctx`` member byte for byte (docs/proxy.md#what-the-upstream-receives).

Only the top level is walked in Python; every name and value is handed to the C scanner
of :mod:`json` (``scan_once``), which returns ``(value, end)`` so the raw text of a value is
the slice between the two offsets. Nesting depth is bounded by the interpreter's recursion
limit, as RFC 8259 §9 allows.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from json.decoder import scanstring  # type: ignore[attr-defined]  # the C scanner, untyped
from typing import Any, NoReturn

__all__ = [
    "INVALID_JSON",
    "WHITESPACE",
    "WHITESPACE_UTF8",
    "StrictJSONError",
    "dumps",
    "parse_object",
    "parse_object_members",
    "parse_value",
    "quote",
]

INVALID_JSON = "invalid token: invalid JSON"

# docs/tokens.md#strict-json "Whitespace (step 5)": Go's unicode.IsSpace set.
WHITESPACE = (
    " \t\n\x0b\x0c\r\u0085\u00a0\u1680"
    "\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)
# The same characters as UTF-8 byte strings, for checks made before decoding (step 5
# precedes the UTF-8 rule of step 9).
WHITESPACE_UTF8: tuple[bytes, ...] = tuple(ch.encode("utf-8") for ch in WHITESPACE)

# RFC 8259 §2: insignificant whitespace between tokens.
_JSON_WS = " \t\n\r"

_SURROGATE = re.compile("[\ud800-\udfff]")


class StrictJSONError(Exception):
    """The text is not one strict JSON value; ``message`` is the docs/tokens.md#validation step-9 text."""

    def __init__(self, message: str = INVALID_JSON) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class _DuplicateName(ValueError):
    pass


def _unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # docs/tokens.md#strict-json "Duplicate member names": names compare after escape decoding, which the
    # scanner has already done.
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise _DuplicateName
    return obj


def _reject_constant(name: str) -> NoReturn:
    # RFC 8259 §6: NaN and Infinity are not JSON numbers.
    raise ValueError(name)


_DECODER = json.JSONDecoder(object_pairs_hook=_unique_object, parse_constant=_reject_constant)
_scan_once: Callable[[str, int], tuple[Any, int]] = _DECODER.scan_once  # type: ignore[attr-defined]
# Errors the C scanner raises for bad input: StopIteration (no value at idx), ValueError
# (incl. JSONDecodeError, duplicates, constants, over-long integers), RecursionError (depth).
_SCAN_ERRORS = (StopIteration, ValueError, RecursionError)


def _skip_ws(text: str, idx: int) -> int:
    end = len(text)
    while idx < end and text[idx] in _JSON_WS:
        idx += 1
    return idx


def parse_value(text: str) -> Any:
    """Parse exactly one strict JSON value (surrounding JSON whitespace allowed)."""
    idx = _skip_ws(text, 0)
    try:
        value, end = _scan_once(text, idx)
    except _SCAN_ERRORS:
        raise StrictJSONError from None
    if _skip_ws(text, end) != len(text):
        raise StrictJSONError  # nothing may follow the value
    return value


def parse_object(text: str) -> dict[str, Any]:
    """Parse exactly one strict JSON object (the whole document in the C scanner).

    The same rules as :func:`parse_object_members`, without the raw member texts: the
    fast path for payloads whose raw texts are not needed.
    """
    # Token payloads start with "{" and end without whitespace (docs/tokens.md#validation steps 5, 8), so
    # the whitespace walks are skipped unless there is whitespace to walk over.
    idx = 0 if text[:1] == "{" else _skip_ws(text, 0)
    if text[idx : idx + 1] != "{":
        raise StrictJSONError
    try:
        obj, end = _scan_once(text, idx)
    except _SCAN_ERRORS:
        raise StrictJSONError from None
    if end != len(text) and _skip_ws(text, end) != len(text):
        raise StrictJSONError
    return obj  # type: ignore[no-any-return]


def parse_object_members(text: str) -> list[tuple[str, Any, str]]:
    """Parse exactly one strict JSON object and return its members in document order.

    Each member is ``(name, value, raw_value_text)``: ``raw_value_text`` is the value exactly
    as written, without the whitespace around it. Raises :class:`StrictJSONError`.
    """
    members: list[tuple[str, Any, str]] = []
    seen: set[str] = set()
    try:
        idx = _skip_ws(text, 0)
        if text[idx : idx + 1] != "{":
            raise StrictJSONError
        idx = _skip_ws(text, idx + 1)
        if text[idx : idx + 1] == "}":
            idx += 1
        else:
            while True:
                if text[idx : idx + 1] != '"':
                    raise StrictJSONError
                name, idx = scanstring(text, idx + 1, True)
                if name in seen:
                    raise StrictJSONError
                seen.add(name)
                idx = _skip_ws(text, idx)
                if text[idx : idx + 1] != ":":
                    raise StrictJSONError
                start = _skip_ws(text, idx + 1)
                value, idx = _scan_once(text, start)
                members.append((name, value, text[start:idx]))
                idx = _skip_ws(text, idx)
                sep = text[idx : idx + 1]
                idx += 1
                if sep == "}":
                    break
                if sep != ",":
                    raise StrictJSONError
                idx = _skip_ws(text, idx)
    except _SCAN_ERRORS:
        raise StrictJSONError from None
    if _skip_ws(text, idx) != len(text):
        raise StrictJSONError
    return members


def _escape_surrogate(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def dumps(value: Any, *, indent: int | None = None) -> str:
    """JSON text that is valid UTF-8 once encoded: not ASCII-escaped, not HTML-escaped.

    Compact unless ``indent`` is given. Lone surrogates (legal as ``\\uD800`` escapes in
    the input) are written back as escapes, the only way to keep them encodable.
    """
    separators = (",", ":") if indent is None else (",", ": ")
    text = json.dumps(value, ensure_ascii=False, separators=separators, indent=indent)
    return _SURROGATE.sub(_escape_surrogate, text)


def quote(text: str) -> str:
    """docs/README.md#conventions ``%q``: ``text`` as a double-quoted string with JSON-style escaping."""
    return dumps(text)
