"""Glob patterns for ``ls`` (docs/ssh.md#ls), with the syntax of Go's ``path.Match``.

``*`` any run of characters, ``?`` one character, ``[...]`` a class (``^`` or ``!``
negates, ``a-z`` ranges), ``\\`` escapes. Malformed patterns (an unclosed class, an
empty class, a dangling ``-`` or trailing ``\\``) raise :class:`BadPattern`.

Matching backtracks only to the most recent ``*`` (O(pattern × text)), so a pattern such
as ``*a*a*a*a*b`` cannot stall the server the way a backtracking regex could.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["GLOB_CHARS", "BadPattern", "Glob", "compile_glob", "is_glob"]

GLOB_CHARS = frozenset("*?[\\")


class BadPattern(ValueError):
    pass


def is_glob(text: str) -> bool:
    return any(ch in GLOB_CHARS for ch in text)


@dataclass(frozen=True)
class _Star:
    pass


@dataclass(frozen=True)
class _AnyChar:
    pass


@dataclass(frozen=True)
class _Literal:
    char: str


@dataclass(frozen=True)
class _Class:
    negate: bool
    ranges: tuple[tuple[str, str], ...]

    def matches(self, ch: str) -> bool:
        # An inverted range (z-a) matches nothing, as in Go.
        return any(lo <= ch <= hi for lo, hi in self.ranges) != self.negate


_Token = _Star | _AnyChar | _Literal | _Class
_STAR = _Star()


def _class_char(pattern: str, i: int) -> tuple[str, int]:
    """One possibly escaped character of a class (Go's ``getEsc``)."""
    if i >= len(pattern) or pattern[i] in "-]":
        raise BadPattern(pattern)
    if pattern[i] == "\\":
        i += 1
        if i >= len(pattern):
            raise BadPattern(pattern)
    return pattern[i], i + 1


def _class(pattern: str, i: int) -> tuple[_Class, int]:
    """Parse a class starting after ``[``; return it and the index after ``]``."""
    negate = i < len(pattern) and pattern[i] in "^!"
    if negate:
        i += 1
    ranges: list[tuple[str, str]] = []
    while True:
        if i < len(pattern) and pattern[i] == "]" and ranges:
            return _Class(negate, tuple(ranges)), i + 1
        lo, i = _class_char(pattern, i)
        hi = lo
        if i < len(pattern) and pattern[i] == "-":
            hi, i = _class_char(pattern, i + 1)
        ranges.append((lo, hi))


@dataclass(frozen=True)
class Glob:
    tokens: tuple[_Token, ...]

    def _one(self, token: _Token, ch: str) -> bool:
        if isinstance(token, _AnyChar):
            return True
        if isinstance(token, _Literal):
            return token.char == ch
        return isinstance(token, _Class) and token.matches(ch)

    def matches(self, text: str) -> bool:
        """Whether the whole of ``text`` matches."""
        tokens = self.tokens
        p = i = 0
        star_p = -1
        star_i = 0
        while i < len(text):
            if p < len(tokens) and tokens[p] is _STAR:
                star_p, star_i = p, i
                p += 1
            elif p < len(tokens) and self._one(tokens[p], text[i]):
                p += 1
                i += 1
            elif star_p >= 0:  # let the last * swallow one more character
                star_i += 1
                p, i = star_p + 1, star_i
            else:
                return False
        while p < len(tokens) and tokens[p] is _STAR:
            p += 1
        return p == len(tokens)


def compile_glob(pattern: str) -> Glob:
    """Parse ``pattern`` (raising :class:`BadPattern`) into a matcher for whole names."""
    tokens: list[_Token] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "*":
            if not tokens or tokens[-1] is not _STAR:
                tokens.append(_STAR)
            i += 1
        elif ch == "?":
            tokens.append(_AnyChar())
            i += 1
        elif ch == "\\":
            if i + 1 >= len(pattern):
                raise BadPattern(pattern)
            tokens.append(_Literal(pattern[i + 1]))
            i += 2
        elif ch == "[":
            cls, i = _class(pattern, i + 1)
            tokens.append(cls)
        else:
            tokens.append(_Literal(ch))
            i += 1
    return Glob(tuple(tokens))
