"""Periodic clean-up of rows nobody can use any more (docs/storage.md#housekeeping).

Every running server deletes expired exe1 handles, and the revocations of tokens whose
``exp`` has passed (docs/lifecycle.md#revoking-one-token), once at start and then every
``PURGE_INTERVAL_S`` seconds; on PostgreSQL also the rate-limit buckets that have filled up
again (a full bucket is the same as none, see rate_limits.py). Several nodes sharing one
database may purge at the same time: each purge is one ``DELETE ... WHERE <expiry> < now``
statement per table, which concurrent transactions can run together without error (the
rows one deletes, the other no longer finds). A purge that fails (database unavailable)
is logged and tried again at the next
interval; it never stops the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from sshmint.server.store.errors import StoreError
from sshmint.server.store.store import Store

__all__ = ["PURGE_INTERVAL_S", "Housekeeping"]

PURGE_INTERVAL_S = 3600.0

_log = logging.getLogger("sshmint.housekeeping")


class Housekeeping:
    """The purge loop of one server process: :meth:`start`, later :meth:`close`."""

    def __init__(
        self,
        store: Store,
        now: Callable[[], int],
        interval: float = PURGE_INTERVAL_S,
        *,
        rate_limit_burst: int | None = None,
    ) -> None:
        self._store = store
        self._now = now
        self._interval = interval
        # The size of a full rate-limit bucket; None: leave the buckets alone.
        self._burst = rate_limit_burst
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="sshmint housekeeping")

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def purge_once(self) -> int:
        """Delete what has expired by now; the number of rows deleted."""
        handles, revocations = await self._purge()
        return handles + revocations

    async def _purge(self) -> tuple[int, int]:
        now = self._now()
        handles = await self._store.exe1_purge_expired(now)
        revocations = await self._store.revocation_purge_expired(now)
        return handles, revocations

    async def _run(self) -> None:
        while True:
            try:
                handles, revocations = await self._purge()
            except StoreError as exc:
                _log.warning("purge of expired rows failed: %s", exc.message)
            else:
                if handles:
                    _log.info("purged %d expired exe1 handle(s)", handles)
                if revocations:
                    _log.info("purged %d revocation(s) of expired tokens", revocations)
            if self._burst is not None:
                try:
                    await self._store.purge_full_rate_buckets(self._burst)
                except StoreError as exc:
                    _log.warning("purge of full rate-limit buckets failed: %s", exc.message)
            await asyncio.sleep(self._interval)
