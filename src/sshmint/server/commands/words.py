"""Splitting a command line into words (docs/ssh.md#words-and-flags)."""

from __future__ import annotations

import re
import shlex

from sshmint.errors import SSHMintError

__all__ = ["INVALID_COMMAND_SYNTAX", "CommandSyntaxError", "split_command_line"]

INVALID_COMMAND_SYNTAX = "invalid command syntax"


class CommandSyntaxError(SSHMintError):
    """An unterminated quote or a trailing lone backslash (docs/ssh.md#words-and-flags)."""

    def __init__(self) -> None:
        super().__init__(INVALID_COMMAND_SYNTAX)


# shlex's word separators (posix mode), and the characters that make quoting matter.
_SEPARATORS = re.compile(r"[ \t\r\n]+")
_QUOTING = re.compile(r"['\"\\]")


def split_command_line(line: str) -> list[str]:
    """POSIX shell quoting without expansion; ``#`` is ordinary (docs/ssh.md#words-and-flags)."""
    if not isinstance(line, str):  # shlex would read stdin for None
        raise TypeError("command line must be a str")
    if _QUOTING.search(line) is None:
        # Without quotes or backslashes shlex only splits on its separators: same words,
        # a tenth of the cost (every /exec request and SSH command passes here).
        return [word for word in _SEPARATORS.split(line) if word]
    try:
        return shlex.split(line, comments=False, posix=True)
    except ValueError:
        raise CommandSyntaxError() from None
