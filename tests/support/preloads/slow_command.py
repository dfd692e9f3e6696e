"""A test-only command for the server process: ``sleepy`` never finishes by itself.

Loaded with ``SSHMintServer(preload="tests.support.preloads.slow_command")``; the
product's command tree never contains it.
"""

from __future__ import annotations

import asyncio

from sshmint.server.commands import Invocation, Output
from tests.support.extra_commands import register_command


async def _sleep_forever(_invocation: Invocation) -> Output:
    await asyncio.sleep(3600)
    return Output({"slept": True})


register_command(("sleepy",), _sleep_forever, "sleep for an hour (tests only)", takes_args=False)
