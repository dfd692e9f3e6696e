"""The store's VMs and their shares (docs/accounts.md#vms, docs/ssh.md#share-add)."""

from __future__ import annotations

import json
from collections.abc import Iterable

import sqlalchemy as sa
import sqlalchemy.exc as sa_exc

from sshmint.server.store import queries as q
from sshmint.server.store.core import RowMemo, StoreCore, bounded, unclassified_conflict
from sshmint.server.store.errors import AlreadyShared, NameTaken, UserNotFound, VMNotFound
from sshmint.server.store.records import (
    VM,
    VM_COLUMNS,
    Share,
    User,
    share_from_row,
    user_from_row,
    vm_from_row,
)
from sshmint.server.store.schema import vm_shares, vms

__all__ = ["VM_SHARE_MODES", "VMs"]

VM_SHARE_MODES = frozenset({"private", "public"})

# The read of every proxied request (see RowMemo).
_proxy_records: RowMemo[tuple[VM, User | None]] = RowMemo(
    lambda row: (
        vm_from_row(row),
        None if row[VM_COLUMNS] is None else user_from_row(row, VM_COLUMNS),
    )
)


def _tags_text(tags: Iterable[str]) -> str:
    """docs/storage.md#schema: a sorted JSON array without duplicates, in compact form."""
    return json.dumps(sorted(set(tags)), separators=(",", ":"))


class VMs(StoreCore):
    """VM rows and the emails each is shared with (deleting a VM deletes its shares)."""

    @bounded
    async def create_vm(
        self, name: str, owner_user_id: str, upstream: str, tags: Iterable[str], now: int
    ) -> VM:
        """A private VM without shares; ``NameTaken`` (server-wide), ``UserNotFound``."""
        try:
            async with self._transaction(write=True) as conn:
                result = await conn.execute(
                    sa.insert(vms)
                    .values(
                        name=name,
                        owner_user_id=owner_user_id,
                        upstream=upstream,
                        share="private",
                        tags=_tags_text(tags),
                        created_at=now,
                    )
                    .returning(*vms.c)
                )
                return vm_from_row(result.one())
        except sa_exc.IntegrityError:
            if await self.vm_by_name(name) is not None:
                raise NameTaken(name) from None
            if not await self._read(q.USER_BY_ID, {"user_id": owner_user_id}):
                raise UserNotFound(owner_user_id) from None
            raise unclassified_conflict() from None

    async def vm_by_name(self, name: str) -> VM | None:
        rows = await self._read(q.VM_BY_NAME, {"name": name})
        return vm_from_row(rows[0]) if rows else None

    async def vm_by_id(self, vm_id: int) -> VM | None:
        rows = await self._read(q.VM_BY_ID, {"vm_id": vm_id})
        return vm_from_row(rows[0]) if rows else None

    async def proxy_lookup(self, name: str) -> tuple[VM, User | None] | None:
        """The VM named ``name`` and its owner, read together in one query (docs/proxy.md#unknown-vms: a
        missing VM or a locked-out owner is "VM not found"); ``None`` without such a VM,
        and a ``None`` user when the owner row is missing."""
        rows = await self._read(q.PROXY_LOOKUP, {"name": name})
        return _proxy_records(rows[0]) if rows else None

    async def vms_of_owner(self, user_id: str) -> list[VM]:
        """The user's VMs sorted by name (code-point order on both backends)."""
        return [vm_from_row(row) for row in await self._read(q.VMS_OF_OWNER, {"user_id": user_id})]

    @bounded
    async def delete_vm(self, vm_id: int) -> bool:
        """Delete the VM and (by cascade) its shares; False if it did not exist."""
        async with self._transaction(write=True) as conn:
            result = await conn.execute(sa.delete(vms).where(vms.c.id == vm_id).returning(vms.c.id))
            return result.first() is not None

    async def set_vm_upstream(self, vm_id: int, upstream: str) -> VM | None:
        return await self._update_vm(vm_id, upstream=upstream)

    async def set_vm_share(self, vm_id: int, share: str) -> VM | None:
        """``share`` is ``"private"`` or ``"public"`` (``ValueError`` otherwise)."""
        if share not in VM_SHARE_MODES:
            raise ValueError(f"share must be 'private' or 'public', not {share!r}")
        return await self._update_vm(vm_id, share=share)

    async def shares_of_vm(self, vm_id: int) -> list[Share]:
        """Ordered by creation time, then email (docs/ssh.md#share-show)."""
        return [share_from_row(row) for row in await self._read(q.SHARES_OF_VM, {"vm_id": vm_id})]

    @bounded
    async def add_share(
        self, vm_id: int, email: str, by_user_id: str, message: str | None, now: int
    ) -> Share:
        """Share a VM with an email (docs/ssh.md#share-add); ``AlreadyShared``, ``VMNotFound``,
        ``UserNotFound``."""
        try:
            async with self._transaction(write=True) as conn:
                result = await conn.execute(
                    sa.insert(vm_shares)
                    .values(
                        vm_id=vm_id,
                        email=email,
                        shared_by_user_id=by_user_id,
                        message=message,
                        created_at=now,
                    )
                    .returning(*vm_shares.c)
                )
                return share_from_row(result.one())
        except sa_exc.IntegrityError:
            if await self.is_shared_with(vm_id, email):
                raise AlreadyShared(vm_id, email) from None
            if await self.vm_by_id(vm_id) is None:
                raise VMNotFound(vm_id) from None
            if not await self._read(q.USER_BY_ID, {"user_id": by_user_id}):
                raise UserNotFound(by_user_id) from None
            raise unclassified_conflict() from None

    @bounded
    async def remove_share(self, vm_id: int, email: str) -> bool:
        async with self._transaction(write=True) as conn:
            result = await conn.execute(
                sa.delete(vm_shares)
                .where(vm_shares.c.vm_id == vm_id, vm_shares.c.email == email)
                .returning(vm_shares.c.id)
            )
            return result.first() is not None

    async def is_shared_with(self, vm_id: int, email: str) -> bool:
        return bool(await self._read(q.SHARE_EXISTS, {"vm_id": vm_id, "email": email}))

    @bounded
    async def _update_vm(self, vm_id: int, /, **values: str) -> VM | None:
        async with self._transaction(write=True) as conn:
            result = await conn.execute(
                sa.update(vms).where(vms.c.id == vm_id).values(**values).returning(*vms.c)
            )
            row = result.first()
        return None if row is None else vm_from_row(row)
