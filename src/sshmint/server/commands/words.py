"""Splitting a command line into words (SPEC §6.3)."""

from __future__ import annotations

import shlex

from sshmint.errors import SSHMintError

__all__ = ["INVALID_COMMAND_SYNTAX", "CommandSyntaxError", "split_command_line"]

INVALID_COMMAND_SYNTAX = "invalid command syntax"


class CommandSyntaxError(SSHMintError):
    """An unterminated quote or a trailing lone backslash (SPEC §6.3)."""

    def __init__(self) -> None:
        super().__init__(INVALID_COMMAND_SYNTAX)


def split_command_line(line: str) -> list[str]:
    """POSIX shell quoting without expansion; ``#`` is ordinary (SPEC §6.3)."""
    if not isinstance(line, str):  # shlex would read stdin for None
        raise TypeError("command line must be a str")
    try:
        return shlex.split(line, comments=False, posix=True)
    except ValueError:
        raise CommandSyntaxError() from None
