"""The store's users (docs/accounts.md#users): creation (with a first key), lookups, the
lock-out flag, and the account list of ``sshmint admin``."""

from __future__ import annotations

import secrets
from collections.abc import Iterable

import sqlalchemy as sa
import sqlalchemy.exc as sa_exc

from sshmint.server.store import queries as q
from sshmint.server.store.core import StoreCore, bounded, unclassified_conflict
from sshmint.server.store.errors import EmailTaken
from sshmint.server.store.records import USER_COLUMNS, KeyIdentity, SSHKeyRow, User, user_from_row
from sshmint.server.store.schema import ssh_keys, users
from sshmint.server.store.ssh_keys import insert_key, raise_if_key_taken, take_key_number

__all__ = ["Users", "new_user_id"]


def new_user_id() -> str:
    """docs/accounts.md#users: ``usr`` followed by 16 lowercase hexadecimal characters."""
    return "usr" + secrets.token_hex(8)


class Users(StoreCore):
    """User rows; a new user's first key is written in the same transaction."""

    @bounded
    async def create_user(
        self,
        email: str,
        now: int,
        key: KeyIdentity | None = None,
        key_name: str = "",
        key_permissions: str = "",
    ) -> tuple[User, SSHKeyRow | None]:
        """Create a user and, optionally, its first key in one transaction (docs/operations.md#admin-commands).

        ``EmailTaken`` first, then ``KeyTaken``. An empty ``key_name`` becomes ``key-1``.
        """
        user_id = new_user_id()
        try:
            async with self._transaction(write=True) as conn:
                await conn.execute(
                    sa.insert(users).values(
                        user_id=user_id,
                        email=email,
                        is_locked_out=0,
                        next_ssh_key_number=1,
                        created_at=now,
                    )
                )
                key_row = None
                if key is not None:
                    number = await take_key_number(conn, user_id)
                    key_row = await insert_key(
                        conn, user_id, key, key_name or f"key-{number}", key_permissions, None, now
                    )
                result = await conn.execute(sa.select(users).where(users.c.user_id == user_id))
                user = user_from_row(result.one())
        except sa_exc.IntegrityError:
            if await self.get_user_by_email(email) is not None:
                raise EmailTaken(email) from None
            if key is not None:
                await raise_if_key_taken(self, key)
            raise unclassified_conflict() from None
        return user, key_row

    async def get_user(self, user_id: str) -> User | None:
        rows = await self._read(q.USER_BY_ID, {"user_id": user_id})
        return user_from_row(rows[0]) if rows else None

    async def get_user_by_email(self, email: str) -> User | None:
        rows = await self._read(q.USER_BY_EMAIL, {"email": email})
        return user_from_row(rows[0]) if rows else None

    @bounded
    async def set_locked(self, email: str, locked: bool) -> User | None:
        """Set or clear the locked-out flag (idempotent); ``None`` for an unknown email."""
        async with self._transaction(write=True) as conn:
            result = await conn.execute(
                sa.update(users)
                .where(users.c.email == email)
                .values(is_locked_out=1 if locked else 0)
                .returning(*users.c)
            )
            row = result.first()
        return None if row is None else user_from_row(row)

    @bounded
    async def list_users(self) -> list[tuple[User, int]]:
        """Every user with its number of keys, ordered by email (docs/operations.md#admin-commands)."""
        key_count = (
            sa.select(sa.func.count())
            .where(ssh_keys.c.user_id == users.c.user_id)
            .scalar_subquery()
            .label("key_count")
        )
        async with self._transaction() as conn:
            result = await conn.execute(sa.select(users, key_count).order_by(users.c.email))
            rows = result.all()
        return [(user_from_row(row), int(row[USER_COLUMNS])) for row in rows]

    @bounded
    async def emails_with_accounts(self, emails: Iterable[str]) -> set[str]:
        """The subset of ``emails`` that belong to an account (share status, docs/ssh.md#share-show)."""
        wanted = sorted(set(emails))
        if not wanted:
            return set()
        async with self._transaction() as conn:
            result = await conn.execute(sa.select(users.c.email).where(users.c.email.in_(wanted)))
            return {str(email) for email in result.scalars()}
