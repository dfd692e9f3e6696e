"""``share show|port|set-public|set-private|add|remove`` (docs/ssh.md#share-show).

Owner only: a VM the caller does not own (or, for a tag-scoped key, that lacks the tag)
fails exactly like a missing one.
"""

from __future__ import annotations

import re

from sshmint.server.commands.access import owned_vm, reduce, vm_access_denied
from sshmint.server.commands.render import rfc3339, vm_url
from sshmint.server.commands.tree import CommandError, Invocation, Output
from sshmint.server.proxy.upstreams import Upstream, UpstreamError, parse_upstream, require_allowed
from sshmint.server.store import VM, AlreadyShared
from sshmint.server.store.validation import ValidationError, normalize_email
from sshmint.strictjson import quote

__all__ = [
    "run_share_add",
    "run_share_port",
    "run_share_remove",
    "run_share_set_private",
    "run_share_set_public",
    "run_share_show",
]

_PORT_DIGITS = re.compile(r"[0-9]{1,6}")


async def _owned(inv: Invocation, name: str) -> VM:
    reduced = reduce(inv.ctx, name)
    vm = await owned_vm(inv.ctx, reduced)
    if vm is None:
        raise CommandError(vm_access_denied(reduced))
    return vm


def _state(vm: VM, upstream: Upstream) -> dict[str, object]:
    return {"vm_name": vm.name, "port": upstream.port, "share": vm.share, "upstream": vm.upstream}


async def run_share_show(inv: Invocation) -> Output:
    if len(inv.args) != 1:
        raise CommandError("usage: share show <vm>")
    ctx = inv.ctx
    vm = await _owned(inv, inv.args[0])
    upstream = parse_upstream(vm.upstream)
    shares = await ctx.store.shares_of_vm(vm.id)  # by invited_at, then email
    with_accounts = await ctx.store.emails_with_accounts([s.email for s in shares])
    users = [
        {
            "email": s.email,
            "status": "active" if s.email in with_accounts else "pending",
            "invited_at": rfc3339(s.created_at),
        }
        for s in shares
    ]
    url = vm_url(ctx.settings, vm.name)
    data = {
        "vm_name": vm.name,
        "status": vm.share,
        "port": upstream.port,
        "url": url,
        "upstream": vm.upstream,
        "users": users,
    }
    lines = [f"{url}/ is {vm.share} (port {upstream.port}, upstream {vm.upstream})."]
    if users:
        lines.append("Shared with:")
        lines += [f"  {u['email']} ({u['status']}, invited {u['invited_at']})" for u in users]
    else:
        lines.append("Not shared with anyone.")
    return Output(data, "\n".join(lines))


async def run_share_port(inv: Invocation) -> Output:
    if not 1 <= len(inv.args) <= 2:
        raise CommandError("usage: share port <vm> [port]")
    ctx = inv.ctx
    vm = await _owned(inv, inv.args[0])
    upstream = parse_upstream(vm.upstream)
    url = vm_url(ctx.settings, vm.name)
    if len(inv.args) == 1:
        return Output(_state(vm, upstream), f"{url}/ points to port {upstream.port} ({vm.share}).")
    port_text = inv.args[1]
    if _PORT_DIGITS.fullmatch(port_text) is None or not 1 <= int(port_text) <= 65535:
        raise CommandError(f"port must be between 1 and 65535, got {quote(port_text)}")
    new_upstream = upstream.with_port(int(port_text))
    try:
        await require_allowed(new_upstream, ctx.settings.upstream_allow)
    except UpstreamError as exc:
        raise CommandError(exc.message) from None
    await ctx.store.set_vm_upstream(vm.id, new_upstream.url)
    data = {
        "vm_name": vm.name,
        "port": new_upstream.port,
        "share": vm.share,
        "upstream": new_upstream.url,
        "status": "updated",
    }
    return Output(data, f"{url}/ now points to port {new_upstream.port} ({vm.share}).")


async def _set_share(inv: Invocation, share: str) -> Output:
    if len(inv.args) != 1:
        raise CommandError(f"usage: share set-{share} <vm>")
    ctx = inv.ctx
    vm = await _owned(inv, inv.args[0])
    upstream = parse_upstream(vm.upstream)
    await ctx.store.set_vm_share(vm.id, share)
    data = {
        "vm_name": vm.name,
        "port": upstream.port,
        "share": share,
        "upstream": vm.upstream,
        "status": "updated",
    }
    url = vm_url(ctx.settings, vm.name)
    return Output(data, f"{url}/ is now {share} (port {upstream.port}).")


async def run_share_set_public(inv: Invocation) -> Output:
    return await _set_share(inv, "public")


async def run_share_set_private(inv: Invocation) -> Output:
    return await _set_share(inv, "private")


async def run_share_add(inv: Invocation) -> Output:
    if len(inv.args) != 2:
        raise CommandError("usage: share add <vm> <email> [--message='...']")
    ctx = inv.ctx
    vm = await _owned(inv, inv.args[0])
    try:
        email = normalize_email(inv.args[1])
    except ValidationError as exc:
        raise CommandError(exc.message) from None
    already = CommandError(f"{vm.name} is already shared with {email}")
    if await ctx.store.is_shared_with(vm.id, email):
        raise already
    # Stored only; NUL cannot be stored in PostgreSQL text, so it is dropped.
    message = inv.value("message")
    if message is not None:
        message = message.replace("\x00", "")
    try:
        await ctx.store.add_share(vm.id, email, ctx.user.user_id, message, ctx.now())
    except AlreadyShared:
        raise already from None
    data = {
        "status": "success",
        "vm_name": vm.name,
        "shared_with": email,
        "message": "Access granted",
    }
    return Output(data, f"Shared {vm.name} with {email}.")


async def run_share_remove(inv: Invocation) -> Output:
    if len(inv.args) != 2:
        raise CommandError("usage: share remove <vm> <email>")
    ctx = inv.ctx
    vm = await _owned(inv, inv.args[0])
    email = inv.args[1].strip().lower()
    removed = "\x00" not in email and await ctx.store.remove_share(vm.id, email)
    if not removed:
        raise CommandError(f"no share found for {email}")
    data = {"status": "success", "vm_name": vm.name, "message": f"Removed {email}'s access"}
    return Output(data, f"Removed {email}'s access to {vm.name}.")
