"""The first SSH session start raises an unexpected exception
(``tests/server/test_faults.py``); later ones work."""

from __future__ import annotations

from typing import Any

from sshmint.server.store import Store

_original = Store.touch_key_used
_calls: list[Any] = []


async def touch_key_used(self: Store, key_id: Any, day_start: Any) -> Any:
    _calls.append(key_id)
    if len(_calls) == 1:
        raise RuntimeError("injected failure")
    return await _original(self, key_id, day_start)


Store.touch_key_used = touch_key_used  # type: ignore[method-assign]
