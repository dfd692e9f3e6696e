"""Counting what a store sends to its database, to prove a check costs no round trip.

- :class:`PostgresRoundTrips`: a TCP relay between a client and PostgreSQL that reads the
  client's side of the wire protocol and counts its round trips: every ``Sync`` message
  (which ends an extended-protocol exchange: parse, bind, execute) and every simple
  ``Query``. It counts what reaches the server whatever the client library, so it holds
  for SQLAlchemy, asyncpg or anything else the store may use.
- :class:`SQLiteStatements`: every statement a SQLite store runs, on its fast reader's
  connection (``sqlite3`` trace callback) and through its async engine (SQLAlchemy
  events).

Both are for tests only and reach into the store's private parts to attach themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import sqlalchemy as sa

from sshmint.server.store import Store

__all__ = ["PostgresRoundTrips", "SQLiteStatements"]

# Startup-phase request codes that carry no message type byte (PostgreSQL protocol 3.0).
_SSL_REQUEST, _GSSENC_REQUEST = 80877103, 80877104
_ROUND_TRIP_ENDS = (b"S", b"Q")  # Sync, simple Query


class PostgresRoundTrips:
    """``async with PostgresRoundTrips(url) as relay``: ``relay.url`` reaches the same
    database through the relay; ``relay.count`` is the round trips sent so far."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        assert parts.hostname and parts.port, url
        self._target = (parts.hostname, parts.port)
        self._parts = parts
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.count = 0
        self.url = ""

    async def __aenter__(self) -> PostgresRoundTrips:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        user = f"{self._parts.username}@" if self._parts.username else ""
        self.url = urlunsplit(self._parts._replace(netloc=f"{user}127.0.0.1:{port}"))
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 5)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self._target)
        for task in (
            asyncio.create_task(self._client_side(reader, up_writer)),
            asyncio.create_task(_pipe(up_reader, writer)),
        ):
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _client_side(self, reader: asyncio.StreamReader, up: asyncio.StreamWriter) -> None:
        """Relay the client's bytes message by message, counting the round trips."""
        try:
            while True:  # startup: length-prefixed messages without a type byte
                head = await reader.readexactly(8)
                length, code = struct.unpack("!II", head)
                up.write(head + await reader.readexactly(length - 8))
                await up.drain()
                if code not in (_SSL_REQUEST, _GSSENC_REQUEST):
                    break
            while True:
                head = await reader.readexactly(5)
                kind, length = head[:1], struct.unpack("!I", head[1:])[0]
                up.write(head + await reader.readexactly(length - 4))
                if kind in _ROUND_TRIP_ENDS:
                    self.count += 1
                    await up.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            up.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


class SQLiteStatements:
    """Every statement a SQLite store runs while attached (``statements``)."""

    def __init__(self, store: Store) -> None:
        reader = store._fast_reader
        assert reader is not None and reader._connection is not None, "no fast reader"
        self._connection = reader._connection
        self._engine = store._engine.sync_engine
        self.statements: list[str] = []

    def _engine_statement(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        self.statements.append(statement)

    @contextlib.asynccontextmanager
    async def attached(self) -> AsyncIterator[SQLiteStatements]:
        self._connection.set_trace_callback(self.statements.append)
        sa.event.listen(self._engine, "before_cursor_execute", self._engine_statement)
        try:
            yield self
        finally:
            self._connection.set_trace_callback(None)
            sa.event.remove(self._engine, "before_cursor_execute", self._engine_statement)

    def reads(self) -> list[str]:
        """The ``SELECT`` statements (not the fast reader's ``PRAGMA data_version``)."""
        return [s for s in self.statements if s.lstrip().upper().startswith("SELECT")]
