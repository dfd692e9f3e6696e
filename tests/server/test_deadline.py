"""The shared deadline watch behind /exec's 30-second limit (docs/http-api.md#post-exec step 17).

The 504 itself is proved end to end with a real 30-second wait in
``tests/http/test_http_timeout.py``; these tests use short limits to pin down the
watch's own rules: cancel exactly the tasks that outlive the limit, never early, and
never swallow a cancellation that came from elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from sshmint.server.deadline import DeadlineWatch

LIMIT = 0.2


async def _watched(watch: DeadlineWatch, work: float) -> tuple[str, float]:
    """Runs ``work`` seconds under the watch; reports how it ended and when."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    deadline = watch.start()
    try:
        await asyncio.sleep(work)
    except asyncio.CancelledError:
        if deadline.close() and not deadline.cancelled_by_others():
            return "expired", loop.time() - started
        raise
    return ("expired-late" if deadline.close() else "finished"), loop.time() - started


async def test_r122_only_tasks_outliving_the_limit_are_cancelled_and_never_early() -> None:
    watch = DeadlineWatch(LIMIT)
    try:
        results = await asyncio.gather(
            _watched(watch, 0.01),
            _watched(watch, 5),
            _watched(watch, 0.05),
            _watched(watch, 5),
        )
    finally:
        watch.close()
    assert [outcome for outcome, _ in results] == ["finished", "expired", "finished", "expired"]
    for outcome, elapsed in results:
        if outcome == "expired":
            assert LIMIT <= elapsed < 5


async def test_r122_each_task_gets_the_limit_from_its_own_start() -> None:
    watch = DeadlineWatch(LIMIT)
    try:
        first = asyncio.ensure_future(_watched(watch, 5))
        await asyncio.sleep(LIMIT / 2)
        second = asyncio.ensure_future(_watched(watch, 5))
        (first_outcome, first_elapsed), (second_outcome, second_elapsed) = await asyncio.gather(
            first, second
        )
    finally:
        watch.close()
    assert first_outcome == second_outcome == "expired"
    assert first_elapsed >= LIMIT and second_elapsed >= LIMIT


async def test_r122_a_cancellation_from_elsewhere_still_propagates() -> None:
    watch = DeadlineWatch(5)
    try:
        task = asyncio.ensure_future(_watched(watch, 5))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        watch.close()


async def test_r122_a_cancellation_from_elsewhere_during_expiry_still_propagates() -> None:
    # Both the watch and the client cancel: the task must still end cancelled.
    watch = DeadlineWatch(0.05)
    loop = asyncio.get_running_loop()
    try:
        task = asyncio.ensure_future(_watched(watch, 5))
        loop.call_later(0.05, task.cancel)
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        watch.close()
    assert task.cancelled()


async def test_r122_a_task_that_absorbs_the_cancellation_learns_it_expired() -> None:
    watch = DeadlineWatch(0.05)

    async def stubborn() -> bool:
        deadline = watch.start()
        with contextlib.suppress(asyncio.CancelledError):  # finishes its work anyway
            await asyncio.sleep(5)
        expired = deadline.close()
        # The watch's request was withdrawn: later awaits are not cancelled.
        await asyncio.sleep(0.01)
        return expired

    try:
        assert await stubborn() is True
    finally:
        watch.close()


async def test_r122_the_queue_holds_only_unfinished_work() -> None:
    watch = DeadlineWatch(60)
    try:
        for _ in range(1000):
            await _watched(watch, 0)
        assert len(watch._queue) <= 1
    finally:
        watch.close()
    assert watch._timer is None


async def test_r122_start_outside_a_task_is_refused() -> None:
    watch = DeadlineWatch(1)
    loop = asyncio.get_running_loop()
    result: list[BaseException] = []

    def from_callback() -> None:
        try:
            watch.start()
        except RuntimeError as exc:
            result.append(exc)

    loop.call_soon(from_callback)
    await asyncio.sleep(0.01)
    assert len(result) == 1
