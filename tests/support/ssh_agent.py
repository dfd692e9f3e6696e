"""A real ``ssh-agent`` for the tests that sign through one (core and client)."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from sshmint.keys import PublicKey, load_public_key_file
from tests.support.polling import wait_until

__all__ = ["Agent", "running_agent", "ssh_agent"]


@dataclass
class Agent:
    """A running agent: its socket, and the key files added through :meth:`add`."""

    sock: str
    key_files: list[Path] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        return {**os.environ, "SSH_AUTH_SOCK": self.sock}

    def add(self, *paths: Path) -> None:
        """``ssh-add`` each key (and a certificate beside it, as ssh-add does)."""
        for path in paths:
            subprocess.run(
                ["ssh-add", "-q", str(path)], env=self.env(), check=True, capture_output=True
            )
            self.key_files.append(path)

    def pub(self, index: int) -> PublicKey:
        """The public key of the ``index``-th key file added."""
        return load_public_key_file(f"{self.key_files[index]}.pub")


@contextlib.contextmanager
def running_agent(directory: Path) -> Iterator[Agent]:
    """A real ``ssh-agent -D`` on a socket in ``directory``; stopped on exit."""
    sock = directory / "agent.sock"
    proc = subprocess.Popen(
        ["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        assert wait_until(sock.exists), "ssh-agent did not create its socket"
        yield Agent(str(sock))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def ssh_agent(tmp_path: Path) -> Iterator[Agent]:
    """An empty agent for one test."""
    with running_agent(tmp_path) as agent:
        yield agent
