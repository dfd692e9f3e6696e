"""One timer for many tasks that share a fixed time limit: ``/exec``'s 30 s
(docs/http-api.md#post-exec) and the ``--db-timeout`` of PostgreSQL's fast path
(``store/pgfast.py``).

``asyncio.timeout`` arms and disarms a timer per use (a ``TimerHandle`` pushed on the
loop's heap, its cancellation, the context manager protocol); measured on ``/exec whoami``
that was about 6% of the instructions of the whole request. With one limit for every
task, deadlines expire in the order the tasks started, so a queue in start order and a
single timer aimed at its oldest unfinished entry serve them all: a request pays an
append and a flag.

Semantics follow ``asyncio.timeout``: at the deadline the task is cancelled; the
cancellation it then sees is turned back into an ordinary result by :meth:`Deadline.close`
(``uncancel``), while a cancellation from anyone else still propagates.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Final

__all__ = ["Deadline", "DeadlineWatch"]


class Deadline:
    """One task's limit: :attr:`expired` once the watch has cancelled it."""

    __slots__ = ("_cancelling", "_task", "at", "expired", "finished")

    def __init__(self, task: asyncio.Task[object], at: float) -> None:
        self._task: Final = task
        self._cancelling: Final = task.cancelling()
        self.at: Final = at
        self.expired = False
        self.finished = False

    def expire(self) -> None:
        """The deadline has passed: cancel the task (the watch calls this)."""
        self.expired = True
        self._task.cancel()

    def close(self) -> bool:
        """End the watch over this task; True when its deadline passed.

        Call it exactly once, from the task itself, whatever happened. After an expiry it
        withdraws the watch's cancellation request; a ``CancelledError`` caught in the
        task is then the watch's own exactly when this returns True and
        :meth:`cancelled_by_others` is False.
        """
        self.finished = True
        if self.expired:
            self._task.uncancel()
        return self.expired

    def cancelled_by_others(self) -> bool:
        """True when someone besides the watch asked the task to cancel (call after
        :meth:`close`; such a cancellation must propagate)."""
        return self._task.cancelling() > self._cancelling


class DeadlineWatch:
    """Cancels each watched task ``seconds`` after :meth:`start` unless it finished."""

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self._queue: deque[Deadline] = deque()
        self._timer: asyncio.TimerHandle | None = None

    def start(self) -> Deadline:
        """Watch the current task from now on."""
        loop = asyncio.get_running_loop()
        task = asyncio.current_task(loop)
        if task is None:
            raise RuntimeError("DeadlineWatch.start must be called from a task")
        queue = self._queue
        while queue and queue[0].finished:  # keeps the queue as short as the work in flight
            queue.popleft()
        deadline = Deadline(task, loop.time() + self._seconds)
        queue.append(deadline)
        if self._timer is None:
            self._timer = loop.call_at(queue[0].at, self._expire, loop)
        return deadline

    def _expire(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        queue = self._queue
        now = loop.time()
        while queue and (queue[0].finished or queue[0].at <= now):
            deadline = queue.popleft()
            if not deadline.finished:
                deadline.expire()
        if queue:
            self._timer = loop.call_at(queue[0].at, self._expire, loop)

    def close(self) -> None:
        """Stop the timer (tasks still watched are left alone)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._queue.clear()
