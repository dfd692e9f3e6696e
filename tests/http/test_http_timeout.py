"""R122: a command still running at the ``/exec`` time limit is answered 504 (docs/http-api.md#post-exec step
17); the limit is ``--exec-timeout``, 30 seconds by default (docs/security.md#slow-and-idle-clients).

The server loads a test-only ``sleepy`` command (``tests/support/preloads/slow_command.py``)
through the harness's ``preload`` and runs with a 1-second limit, so the test takes seconds; the default
is checked on the configuration.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sshmint.server.config import load_config
from tests.support.exec_support import assert_error, assert_ok, post_exec
from tests.support.harness import SSHMintServer
from tests.support.keys import new_key, recipe_token
from tests.support.server_fixtures import served

LIMIT = 1.0


@pytest.fixture(scope="module")
def slow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SSHMintServer]:
    yield from served(
        tmp_path_factory.mktemp("slow"),
        extra_args=["--exec-timeout", f"{LIMIT:.0f}s"],
        preload="tests.support.preloads.slow_command",
    )


def test_r122_the_exec_time_limit_is_30_seconds_by_default() -> None:
    assert load_config({}, environ={}).exec_timeout == 30.0


def test_r122_a_command_running_past_the_limit_is_504(
    slow_server: SSHMintServer, tmp_path: Path
) -> None:
    key = new_key(tmp_path / "key")
    slow_server.add_user("slow@example.com", key.with_name("key.pub"))
    started = time.monotonic()
    reply = post_exec(slow_server, b"sleepy", token=recipe_token(key, '{"cmds":["sleepy"]}'))
    assert_error(reply, 504, "command timed out")
    elapsed = time.monotonic() - started
    assert LIMIT <= elapsed < LIMIT + 5, elapsed  # never earlier than the limit
    # The server is not stuck: the next command runs normally.
    assert_ok(post_exec(slow_server, b"whoami", token=recipe_token(key)))
