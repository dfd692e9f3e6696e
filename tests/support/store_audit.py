"""What the tests read from a store's database beyond its API: every row of every table,
and a key looked up by its public key text (the server itself never needs either)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sshmint.server.store import SSHKeyRow, Store
from sshmint.server.store.records import key_from_row
from sshmint.server.store.schema import ssh_keys

__all__ = ["dump_tables", "key_by_public_key"]


def _table_names(conn: Connection) -> list[str]:
    return sorted(sa.inspect(conn).get_table_names())


async def dump_tables(store: Store) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every table in the store's database, Alembic's version table included
    (docs/storage.md#nothing-usable-at-rest), read in one transaction."""
    async with store._engine.begin() as conn:
        names = await conn.run_sync(_table_names)
        quote = conn.dialect.identifier_preparer.quote
        dump: dict[str, list[tuple[object, ...]]] = {}
        for name in names:
            result = await conn.execute(sa.text(f"SELECT * FROM {quote(name)}"))
            dump[name] = [tuple(row) for row in result]
    return dump


async def key_by_public_key(store: Store, openssh: str) -> SSHKeyRow | None:
    """The key row whose stored ``public_key`` is exactly ``openssh``, or None."""
    async with store._engine.connect() as conn:
        result = await conn.execute(sa.select(ssh_keys).where(ssh_keys.c.public_key == openssh))
        row = result.first()
    return None if row is None else key_from_row(row)
