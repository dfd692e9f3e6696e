"""The first SSH session start raises an unexpected exception
(``tests/server/test_faults.py``); later ones work."""

from __future__ import annotations

from sshmint.server.store import Store
from sshmint.server.store.ssh_keys import SSHKeys

_original = Store.touch_key_used
_calls: list[int] = []


async def touch_key_used(self: SSHKeys, key_id: int, day_start: int) -> None:
    _calls.append(key_id)
    if len(_calls) == 1:
        raise RuntimeError("injected failure")
    return await _original(self, key_id, day_start)


Store.touch_key_used = touch_key_used  # type: ignore[method-assign]
