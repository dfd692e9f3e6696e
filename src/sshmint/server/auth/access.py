"""Who may use a VM (docs/accounts.md#vms, docs/proxy.md#access-rules): its owner, and every
user it is shared with. Asked by the proxy for a private VM, by the commands' ``--vm``
flags, and by ``token explain --vm``."""

from __future__ import annotations

from sshmint.server.store import VM, Store, User

__all__ = ["has_vm_access"]


async def has_vm_access(store: Store, vm: VM, user: User) -> bool:
    """``user`` owns ``vm`` or it is shared with their email (a database read only in the
    second case). Raises ``StoreError`` when the database fails."""
    return user.user_id == vm.owner_user_id or await store.is_shared_with(vm.id, user.email)
