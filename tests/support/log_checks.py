"""Checks that no token reaches a server's output (docs/security.md#secrets-never-logged).

- :func:`secret_windows` lists every 24-character window of a token's secret part (the
  signature part of an exe0, the body of an exe1); :func:`leaked` finds any of them in a
  text: for a test that knows the token it sent.
- :func:`assert_no_token_in_output`: no ``exe0.``/``exe1.`` prefix anywhere in a server's
  stdout and stderr. The session's shared servers run it when they stop at the end of the
  session (``server_fixtures.py``), so it covers every request every module sent them,
  whatever order the tests ran in; a failure is reported as an error at that teardown.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

__all__ = ["TOKEN_PREFIXES", "WINDOW", "assert_no_token_in_output", "leaked", "secret_windows"]

WINDOW = 24  # no 24 characters of a token's signature part or exe1 body
TOKEN_PREFIXES = ("exe0.", "exe1.")


class _HasOutput(Protocol):
    data_dir: Path

    @property
    def stdout(self) -> str: ...

    @property
    def stderr(self) -> str: ...


def secret_windows(token: str) -> set[str]:
    """Every 24-character window of the token's secret part."""
    secret = token.split(".")[2] if token.startswith("exe0.") else token.split(".", 1)[1]
    return {secret[i : i + WINDOW] for i in range(len(secret) - WINDOW + 1)}


def leaked(text: str | bytes, token: str) -> list[str]:
    """The windows of :func:`secret_windows` found in ``text`` (empty: nothing leaked)."""
    if isinstance(text, bytes):
        text = text.decode("latin-1")
    return sorted(window for window in secret_windows(token) if window in text)


def assert_no_token_in_output(server: _HasOutput) -> None:
    """Fail, quoting the lines, if a token prefix appears in the server's output."""
    lines = [
        line
        for line in (server.stdout + server.stderr).splitlines()
        if any(prefix in line for prefix in TOKEN_PREFIXES)
    ]
    assert not lines, f"a token reached the output of the server on {server.data_dir}: {lines[:5]}"
