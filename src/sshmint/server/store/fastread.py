"""Single-statement SQLite reads answered on the calling thread (the event loop's).

Why: every call through the async engine crosses to aiosqlite's worker thread and back
several times (pool checkout, ``BEGIN``, the query, ``COMMIT``), and each crossing costs a
thread wake-up — measured here at 1–4 ms per store call against ≈ 20 µs for the same
indexed lookup on a plain ``sqlite3`` connection (half of it SQLite's own read-transaction
start and end). The request hot paths (token authentication, VM lookup, share check,
``/healthz``) are such lookups.

Why it is safe (docs/storage.md#backends, "no cache may hide a change"):

- Each call runs its ``SELECT`` against the database file in autocommit mode: SQLite opens
  a read transaction for the statement, which sees every transaction committed before it
  started (by this process or any other, e.g. ``sshmint admin``), and ends it when the
  statement finishes. Rows are fetched to the end (``fetchall``), so no statement is left
  open pinning an old snapshot.
- Results may be answered again without re-running the ``SELECT``, but only while
  ``PRAGMA data_version`` (read first, on every call) is unchanged. SQLite documents that
  its value changes whenever any other connection has committed since the last time this
  connection read it; this connection never writes, so *every* commit anywhere changes
  it and empties the remembered results. A remembered answer is therefore exactly what
  re-running the statement would return: the change check itself is a read transaction
  against the file, taken after every commit that precedes the call. (The check costs
  about half of an indexed lookup: it skips the B-tree descents, not the transaction.)
- The connection cannot write: ``PRAGMA query_only``.

Why it is bounded (the event loop never waits on a lock):

- It is used only when the database is in WAL mode, where readers never wait for writers
  and writers never wait for readers.
- The busy timeout is 0: should SQLite ever report the database busy (WAL recovery after a
  crash, a connection in exclusive locking mode), or fail in any other way, :meth:`fetch`
  returns ``None`` at once and the caller repeats the read through the async engine (busy
  timeout of seconds, on its worker thread), which also turns real failures into the
  store's usual ``StoreUnavailable``.
- The statements are indexed lookups of one row, or of one user's keys, VMs or shares.
  With two other processes writing continuously, 136k reads took p50 15 µs, p99.9 0.1 ms
  (the rare slower ones were preemption on a busy 2-core machine) and none fell back.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Mapping
from typing import Any

__all__ = ["SQLiteFastReader"]

log = logging.getLogger("sshmint.store")

# Prepared statements kept per connection (the store has a few dozen distinct reads).
_STATEMENT_CACHE = 64
# Results remembered while the database is unchanged (one per distinct statement and
# parameters), and the rows they may hold in all; everything is dropped at once when
# either bound is reached, and whenever anything is committed.
_RESULTS_KEPT = 4096
_ROWS_KEPT = 65536
_DATA_VERSION = "PRAGMA data_version"


class SQLiteFastReader:
    """One read-only ``sqlite3`` connection used synchronously from one event loop.

    Calls never overlap: :meth:`fetch` runs to completion without yielding.
    """

    def __init__(
        self,
        connection: sqlite3.Connection,
        *,
        results_kept: int = _RESULTS_KEPT,
        rows_kept: int = _ROWS_KEPT,
    ) -> None:
        self._connection: sqlite3.Connection | None = connection
        self._results_kept = results_kept
        self._rows_kept = rows_kept
        self._rows_held = 0
        self.fallbacks = 0  # reads handed back to the async engine (for diagnostics)
        self.reused = 0  # answers given again because nothing was committed meanwhile
        self._results: dict[tuple[Any, ...], list[tuple[Any, ...]]] = {}
        self._data_version: object = None

    @classmethod
    def open(cls, path: str) -> SQLiteFastReader | None:
        """A reader for the database file at ``path``, or ``None`` unless it is in WAL mode.

        Open after the schema migration (which switches the file to WAL).
        """
        try:
            connection = sqlite3.connect(
                path,
                timeout=0,  # never wait on a lock: fall back to the async engine instead
                isolation_level=None,  # autocommit: one implicit read transaction per SELECT
                check_same_thread=False,  # opened by whichever thread runs Store.open
                cached_statements=_STATEMENT_CACHE,
            )
        except sqlite3.Error as exc:
            log.info("SQLite fast reads disabled: %s", exc)
            return None
        try:
            connection.execute("PRAGMA query_only = ON")
            mode = connection.execute("PRAGMA journal_mode").fetchall()
        except sqlite3.Error as exc:
            connection.close()
            log.info("SQLite fast reads disabled: %s", exc)
            return None
        if not mode or str(mode[0][0]).lower() != "wal":
            # Outside WAL a reader can be blocked by a writer: keep every read async.
            connection.close()
            return None
        return cls(connection)

    def fetch(
        self, sql: str, params: Mapping[str, Any], *, reuse: bool = False
    ) -> list[tuple[Any, ...]] | None:
        """Every row of one ``SELECT``; ``None`` when SQLite could not answer right away
        (the caller then repeats the read through the async engine).

        With ``reuse``, the answer of an earlier identical call is given again when no
        commit has happened since (see the module docstring). The list returned must not
        be modified.
        """
        connection = self._connection
        if connection is None:
            return None
        try:
            if not reuse:
                return _all_rows(connection, sql, params)
            version = _all_rows(connection, _DATA_VERSION, {})
            if version != self._data_version:
                self._forget()
                self._data_version = version
            key = (sql, *params.items())
            rows = self._results.get(key)
            if rows is not None:
                self.reused += 1
                return rows
            rows = _all_rows(connection, sql, params)
        except sqlite3.Error as exc:
            self.fallbacks += 1
            log.debug("SQLite fast read handed to the engine: %s", type(exc).__name__)
            return None
        if len(rows) > self._rows_kept:
            return rows  # too large to keep
        if (
            len(self._results) >= self._results_kept
            or self._rows_held + len(rows) > self._rows_kept
        ):
            self._forget()
        # Stored under the version read *before* the query: had a commit come in between,
        # the next check sees a newer version and drops this answer with the rest.
        self._results[key] = rows
        self._rows_held += len(rows)
        return rows

    def _forget(self) -> None:
        self._results.clear()
        self._rows_held = 0

    def close(self) -> None:
        connection, self._connection = self._connection, None
        self._forget()
        if connection is not None:
            connection.close()


def _all_rows(
    connection: sqlite3.Connection, sql: str, params: Mapping[str, Any]
) -> list[tuple[Any, ...]]:
    cursor = connection.execute(sql, params)
    try:
        return cursor.fetchall()
    finally:
        cursor.close()
