"""What the caller may see: tag scope (docs/permissions.md#tag-scope), VM ownership and access (docs/accounts.md#vms)."""

from __future__ import annotations

from sshmint.server.auth.access import has_vm_access
from sshmint.server.auth.permissions import KeyPermissions, PermissionsError, parse_key_permissions
from sshmint.server.commands.context import CommandContext
from sshmint.server.store import VM, SSHKeyRow
from sshmint.server.store.validation import is_valid_vm_name, reduce_vm_name
from sshmint.strictjson import quote

__all__ = [
    "accessible_vm",
    "caller_permissions",
    "key_tag",
    "owned_vm",
    "reduce",
    "visible_keys",
    "vm_access_denied",
]


def caller_permissions(ctx: CommandContext) -> KeyPermissions:
    """The calling key's restrictions; unreadable text raises (the command then fails)."""
    return parse_key_permissions(ctx.key.permissions)


def key_tag(row: SSHKeyRow) -> str | None:
    """A listed key's own tag; an unreadable one matches no tag (hidden from scoped callers)."""
    try:
        return parse_key_permissions(row.permissions).tag
    except PermissionsError:
        return None


async def visible_keys(ctx: CommandContext) -> list[SSHKeyRow]:
    """The caller's keys in insertion order; a tag-scoped caller sees only keys with its
    tag (docs/permissions.md#tag-scope)."""
    keys = ctx.user_keys
    if keys is None:
        keys = await ctx.store.keys_of_user(ctx.user.user_id)
    tag = caller_permissions(ctx).tag
    if tag is None:
        return list(keys)
    return [row for row in keys if key_tag(row) == tag]


def reduce(ctx: CommandContext, name: str) -> str:
    """docs/accounts.md#vms: ``<name>.<vm-host>`` → ``<name>``."""
    return reduce_vm_name(name, ctx.settings.vm_host)


async def owned_vm(ctx: CommandContext, name: str) -> VM | None:
    """The VM named ``name`` (already reduced) if the caller owns it and, for a tag-scoped
    caller, it carries the tag; otherwise ``None``, exactly as for a missing VM."""
    if not is_valid_vm_name(name):
        return None
    vm = await ctx.store.vm_by_name(name)
    if vm is None or vm.owner_user_id != ctx.user.user_id:
        return None
    return vm if caller_permissions(ctx).allows_vm(vm) else None


async def accessible_vm(ctx: CommandContext, name: str) -> VM | None:
    """docs/accounts.md#vms access for ``--vm`` flags: owned, or shared with the caller's email."""
    if not is_valid_vm_name(name):
        return None
    vm = await ctx.store.vm_by_name(name)
    if vm is None:
        return None
    return vm if await has_vm_access(ctx.store, vm, ctx.user) else None


def vm_access_denied(name: str) -> str:
    return f"VM {quote(name)} not found or access denied"
