"""docs/security.md#secrets-never-logged, SSH side: a token given to ``exe0-to-exe1`` or to any command appears in no
log line, even with asyncssh logging at DEBUG (it logs every exec command line at INFO and
every environment variable at DEBUG).

The server is started with a preload that turns asyncssh's logger up after
``configure_logging`` (as an operator chasing a problem would); the test checks that
asyncssh's lines did reach the output — so the scrubbing is what keeps the tokens out —
and that no 24-character window of a token's signature part or exe1 body is there.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.harness import client_environment, run_sshmint
from tests.support.keys import Account
from tests.support.polling import wait_until
from tests.support.server_fixtures import ServerFactory

pytestmark = pytest.mark.slow


def windows(secret: str) -> set[str]:
    return {secret[i : i + 24] for i in range(len(secret) - 23)}


def test_r156_ssh_command_lines_and_environment_never_log_a_token(
    server_factory: ServerFactory,
    new_account: Callable[..., Account],
    tmp_path: Path,
) -> None:
    server = server_factory(
        f"sqlite:///{tmp_path / 's.db'}", preload="tests.support.preloads.asyncssh_debug"
    )
    account = new_account(server)
    minted = run_sshmint("mint", "--key", str(account.key), "--exp", "1h")
    assert minted.returncode == 0, minted.stderr
    exe0 = minted.stdout.strip()

    traded = server.ssh(account.key, "exe0-to-exe1", exe0)
    assert traded.returncode == 0, traded.stderr
    exe1 = traded.stdout.strip()
    assert exe1.startswith("exe1.")
    # A token where no command expects one, and both as usage errors.
    assert server.ssh(account.key, "whoami", exe0).returncode != 0
    assert server.ssh(account.key, "ssh-key", "list", exe1).returncode != 0
    assert server.ssh(account.key, "exe0-to-exe1", exe1).returncode != 0
    # In the environment of the session (asyncssh logs each variable at DEBUG).
    argv = server.ssh_argv(account.key, "whoami")
    argv[1:1] = ["-o", f"SetEnv=SSHMINT_TOKEN={exe0} SSHMINT_EXE1={exe1}"]
    env_run = subprocess.run(
        argv, capture_output=True, text=True, timeout=60, env=client_environment()
    )
    assert env_run.returncode == 0, env_run.stderr

    # asyncssh did log the command lines and the environment: the filter scrubbed them.
    # (DEBUG and INFO lines reach stderr in batches: wait for the last session's.)
    assert wait_until(lambda: "Env: SSHMINT_EXE1=" in server.stderr), server.stderr[-3000:]
    output = server.stdout + server.stderr
    assert "Command: exe0-to-exe1 <redacted token>" in output
    assert "Env: SSHMINT_TOKEN=<redacted token>" in output
    signature = exe0.split(".")[2]
    assert not [w for w in windows(signature) if w in output]
    assert not [w for w in windows(exe1.split(".", 1)[1]) if w in output]
