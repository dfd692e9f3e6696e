"""The store's SSH keys (docs/accounts.md#ssh-keys): lookups for the token and login paths,
registration, renaming, removal, and the day of last use."""

from __future__ import annotations

import sqlalchemy as sa
import sqlalchemy.exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncConnection

from sshmint.server.store import queries as q
from sshmint.server.store.core import RowMemo, StoreCore, bounded, unclassified_conflict
from sshmint.server.store.errors import KeyTaken, NameTaken, UserNotFound
from sshmint.server.store.exe1_handles import put_exe1
from sshmint.server.store.records import (
    KEY_COLUMNS,
    USER_COLUMNS,
    KeyIdentity,
    SSHKeyRow,
    User,
    key_from_row,
    user_from_row,
)
from sshmint.server.store.schema import ssh_keys, users

__all__ = ["SSHKeys", "TokenKey", "insert_key", "raise_if_key_taken", "take_key_number"]

# The reads of every authenticated request (see RowMemo), and the keys of a user (whoami,
# ssh-key list).
_login_records: RowMemo[tuple[SSHKeyRow, User | None]] = RowMemo(
    lambda row: (
        key_from_row(row),
        None if row[KEY_COLUMNS] is None else user_from_row(row, KEY_COLUMNS),
    )
)
_REVOKED_AT = KEY_COLUMNS + USER_COLUMNS  # where the token lookups' revoked_at column is
_token_records: RowMemo[tuple[SSHKeyRow, User | None, int | None]] = RowMemo(
    lambda row: (
        *_login_records(row[:_REVOKED_AT]),
        None if row[_REVOKED_AT] is None else int(row[_REVOKED_AT]),
    )
)
_key_record: RowMemo[SSHKeyRow] = RowMemo(key_from_row)
_CALLER_PEER_AT = _REVOKED_AT + 1  # where CALLER_LOOKUP's "every key" columns start

# A token's signing key as the token path reads it: the key row, its owner (``None`` when
# the owner row is missing) and when this very token was revoked (``None``: it is not).
TokenKey = tuple[SSHKeyRow, User | None, int | None]


class SSHKeys(StoreCore):
    """Key rows; writes that add a key also count it (``key-<n>`` names)."""

    async def key_by_fingerprint(self, fingerprint: str) -> SSHKeyRow | None:
        rows = await self._read(q.KEY_BY_FINGERPRINT, {"fp": fingerprint})
        return key_from_row(rows[0]) if rows else None

    async def key_by_id(self, key_id: int) -> SSHKeyRow | None:
        rows = await self._read(q.KEY_BY_ID, {"key_id": key_id})
        return key_from_row(rows[0]) if rows else None

    async def login_lookup(self, fingerprint: str) -> tuple[SSHKeyRow, User | None] | None:
        """The key with ``fingerprint`` and its owner, read together in one query (SSH
        login, docs/ssh.md#connection-and-login); ``None`` when no key has the fingerprint,
        and a ``None`` user when the key's owner row is missing."""
        rows = await self._read(q.LOGIN_LOOKUP, {"fp": fingerprint})
        return _login_records(rows[0]) if rows else None

    async def token_lookup(self, fingerprint: str, token_hash: str) -> TokenKey | None:
        """A token's key, its owner and the token's revocation time, in one query
        (docs/tokens.md#validation steps 18-20, docs/lifecycle.md#revoking-one-token);
        ``token_hash`` is the lower-case hex SHA-256 of the exe0 string. ``None`` when
        no key has the fingerprint."""
        rows = await self._read(q.TOKEN_LOOKUP, {"fp": fingerprint, "token_hash": token_hash})
        return _token_records(rows[0]) if rows else None

    async def caller_lookup(
        self, fingerprint: str, token_hash: str
    ) -> tuple[SSHKeyRow, User | None, int | None, tuple[SSHKeyRow, ...]] | None:
        """``token_lookup`` plus every key of the same owner in insertion order, all read
        in one statement (one consistent snapshot, one round trip)."""
        rows = await self._read(q.CALLER_LOOKUP, {"fp": fingerprint, "token_hash": token_hash})
        if not rows:
            return None
        key, user, revoked_at = _token_records(rows[0][:_CALLER_PEER_AT])
        return key, user, revoked_at, tuple(_key_record(row[_CALLER_PEER_AT:]) for row in rows)

    async def keys_of_user(self, user_id: str) -> list[SSHKeyRow]:
        """The user's keys in insertion order."""
        return [_key_record(row) for row in await self._read(q.KEYS_OF_USER, {"user_id": user_id})]

    @bounded
    async def add_key(
        self, user_id: str, public_key: KeyIdentity, name: str, permissions: str, now: int
    ) -> SSHKeyRow:
        """Register a key (docs/accounts.md#name-sanitising, docs/ssh.md#ssh-key-add): the key counter is read and incremented in
        the same transaction, always; an empty ``name`` becomes ``key-<n>``. Names are not
        checked (docs/accounts.md#uniqueness). ``KeyTaken`` if any account has the key; ``UserNotFound``.
        """
        try:
            async with self._transaction(write=True) as conn:
                number = await take_key_number(conn, user_id)
                return await insert_key(
                    conn, user_id, public_key, name or f"key-{number}", permissions, None, now
                )
        except sa_exc.IntegrityError:
            await raise_if_key_taken(self, public_key)
            raise unclassified_conflict() from None

    @bounded
    async def add_generated_key(
        self,
        user_id: str,
        public_key: KeyIdentity,
        name: str,
        permissions: str,
        api_key_hint: str,
        exe1_hash: str,
        exe0_sealed: bytes,
        expires_at: int,
        now: int,
    ) -> SSHKeyRow:
        """docs/ssh.md#ssh-key-generate-api-key step 7: the key and its exe1 row in one transaction.

        ``NameTaken`` when a key of the user already has ``name``; ``KeyTaken``;
        ``UserNotFound``. The key counter is not used (the name is always given).
        """
        try:
            async with self._transaction(write=True) as conn:
                await _lock_user(conn, user_id)
                await _check_name_free(conn, user_id, name, except_key_id=None)
                key_row = await insert_key(
                    conn, user_id, public_key, name, permissions, api_key_hint, now
                )
                await put_exe1(conn, self.backend, exe1_hash, exe0_sealed, expires_at, now)
                return key_row
        except sa_exc.IntegrityError:
            await raise_if_key_taken(self, public_key)
            raise unclassified_conflict() from None

    @bounded
    async def delete_key(self, key_id: int) -> bool:
        """Delete the key row (docs/accounts.md#key-removal-and-revocation); False if it did not exist."""
        async with self._transaction(write=True) as conn:
            result = await conn.execute(
                sa.delete(ssh_keys).where(ssh_keys.c.id == key_id).returning(ssh_keys.c.id)
            )
            return result.first() is not None

    @bounded
    async def rename_key(self, key_id: int, new_name: str) -> SSHKeyRow | None:
        """Rename a key (docs/ssh.md#ssh-key-rename); ``NameTaken`` if another key of the same user has
        ``new_name``; ``None`` if the key does not exist (any more)."""
        async with self._transaction(write=True) as conn:
            result = await conn.execute(
                sa.select(ssh_keys.c.user_id).where(ssh_keys.c.id == key_id)
            )
            user_id = result.scalar()
            if user_id is None:
                return None
            await _lock_user(conn, user_id)
            await _check_name_free(conn, user_id, new_name, except_key_id=key_id)
            result = await conn.execute(
                sa.update(ssh_keys)
                .where(ssh_keys.c.id == key_id)
                .values(comment=new_name)
                .returning(*ssh_keys.c)
            )
            row = result.first()
        return None if row is None else key_from_row(row)

    @bounded
    async def touch_key_used(self, key_id: int, day_start: int) -> None:
        """Record use of a key on the UTC day starting at ``day_start`` (docs/accounts.md#ssh-keys).

        Only moves forward, and writes at most once per key and day: the common case
        (already recorded today) is a read and takes no write lock.
        """
        rows = await self._read(q.KEY_LAST_USED, {"key_id": key_id})
        if not rows or (rows[0][0] is not None and rows[0][0] >= day_start):
            return
        async with self._transaction(write=True) as conn:
            await conn.execute(
                sa.update(ssh_keys)
                .where(
                    ssh_keys.c.id == key_id,
                    sa.or_(ssh_keys.c.last_used_at.is_(None), ssh_keys.c.last_used_at < day_start),
                )
                .values(last_used_at=day_start)
            )


async def take_key_number(conn: AsyncConnection, user_id: str) -> int:
    """Read and increment the key counter atomically (docs/storage.md#schema).

    ``UPDATE ... RETURNING`` holds the row lock on PostgreSQL until commit; on SQLite
    the transaction already owns the write lock (``BEGIN IMMEDIATE``).
    """
    result = await conn.execute(
        sa.update(users)
        .where(users.c.user_id == user_id)
        .values(next_ssh_key_number=users.c.next_ssh_key_number + 1)
        .returning(users.c.next_ssh_key_number)
    )
    after = result.scalar()
    if after is None:
        raise UserNotFound(user_id)
    return int(after) - 1


async def _lock_user(conn: AsyncConnection, user_id: str) -> None:
    """Serialize name checks of one user (``FOR UPDATE``; SQLite holds the write lock)."""
    result = await conn.execute(
        sa.select(users.c.user_id).where(users.c.user_id == user_id).with_for_update()
    )
    if result.first() is None:
        raise UserNotFound(user_id)


async def _check_name_free(
    conn: AsyncConnection, user_id: str, name: str, except_key_id: int | None
) -> None:
    query = sa.select(ssh_keys.c.id).where(
        ssh_keys.c.user_id == user_id, ssh_keys.c.comment == name
    )
    if except_key_id is not None:
        query = query.where(ssh_keys.c.id != except_key_id)
    result = await conn.execute(query.limit(1))
    if result.first() is not None:
        raise NameTaken(name)


async def insert_key(
    conn: AsyncConnection,
    user_id: str,
    key: KeyIdentity,
    name: str,
    permissions: str,
    api_key_hint: str | None,
    now: int,
) -> SSHKeyRow:
    result = await conn.execute(
        sa.insert(ssh_keys)
        .values(
            user_id=user_id,
            public_key=key.openssh,
            fingerprint=key.fingerprint,
            comment=name,
            permissions=permissions,
            api_key_hint=api_key_hint,
            added_at=now,
            last_used_at=None,
        )
        .returning(*ssh_keys.c)
    )
    return key_from_row(result.one())


async def raise_if_key_taken(store: StoreCore, key: KeyIdentity) -> None:
    """After a unique violation: raise ``KeyTaken`` if the key (or its fingerprint) is
    registered; otherwise return and let the caller re-raise."""
    rows = await store._read(q.KEY_OWNER_BY_KEY, {"openssh": key.openssh, "fp": key.fingerprint})
    if rows:
        raise KeyTaken(str(rows[0][0]))
