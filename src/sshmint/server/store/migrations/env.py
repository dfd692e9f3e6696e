"""Alembic environment: migrations run on a connection handed over by the store.

The store opens the connection, starts the (locking) transaction and passes the connection
as ``config.attributes["connection"]``; Alembic then runs inside that transaction, so
concurrent openers are serialized and see either no schema or the complete head revision.
There is no offline (SQL script) mode and no ``alembic.ini``.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from sshmint.server.store.schema import metadata


def run_migrations() -> None:
    connection = context.config.attributes.get("connection")
    if not isinstance(connection, Connection) or context.is_offline_mode():
        raise RuntimeError("sshmint migrations run only through Store.open()")
    context.configure(connection=connection, target_metadata=metadata)
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
