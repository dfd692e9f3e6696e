"""``ls``, ``new`` and ``rm`` (docs/ssh.md#ls)."""

from __future__ import annotations

from dataclasses import dataclass

from sshmint.server.commands.access import caller_permissions, owned_vm, reduce
from sshmint.server.commands.globs import BadPattern, Glob, compile_glob, is_glob
from sshmint.server.commands.render import rfc3339, vm_url
from sshmint.server.commands.tree import CommandError, Invocation, Output
from sshmint.server.proxy.upstreams import UpstreamError, check_upstream
from sshmint.server.store import VM, NameTaken
from sshmint.server.store.validation import INVALID_VM_NAME, is_valid_tag, is_valid_vm_name
from sshmint.strictjson import quote

__all__ = ["run_ls", "run_new", "run_rm"]

NO_VMS = "No VMs found. Create one with 'new'."


def _vm_entry(inv: Invocation, vm: VM) -> dict[str, object]:
    entry: dict[str, object] = {
        "vm_name": vm.name,
        "upstream": vm.upstream,
        "share": vm.share,
        "https_url": vm_url(inv.ctx.settings, vm.name),
    }
    if vm.tags:
        entry["tags"] = list(vm.tags)
    entry["created_at"] = rfc3339(vm.created_at)
    return entry


@dataclass(frozen=True)
class _Filter:
    """One ``ls`` argument: a literal name or tag, or a glob over the name and each tag."""

    literal: str | None
    glob: Glob | None

    def matches(self, vm: VM) -> bool:
        if self.glob is not None:
            glob = self.glob
            return glob.matches(vm.name) or any(glob.matches(t) for t in vm.tags)
        return vm.name == self.literal or self.literal in vm.tags


def _filter(inv: Invocation, arg: str) -> _Filter:
    if is_glob(arg):
        try:
            return _Filter(None, compile_glob(arg))
        except BadPattern:
            raise CommandError(f"invalid pattern {quote(arg)}") from None
    return _Filter(reduce(inv.ctx, arg), None)


async def run_ls(inv: Invocation) -> Output:
    """Owned VMs sorted by name, filtered by names, tags or globs (docs/ssh.md#ls)."""
    ctx = inv.ctx
    filters = [_filter(inv, arg) for arg in inv.args]  # a bad pattern fails first
    vms = list(await ctx.store.vms_of_owner(ctx.user.user_id))
    perms = caller_permissions(ctx)
    vms = [vm for vm in vms if perms.allows_vm(vm)]  # docs/permissions.md#tag-scope
    if filters:
        vms = [vm for vm in vms if any(f.matches(vm) for f in filters)]
    vms.sort(key=lambda vm: vm.name)
    entries = [_vm_entry(inv, vm) for vm in vms]
    if not vms:
        text = NO_VMS
    elif inv.flag("l"):
        text = "\n".join(
            f"{vm.name}\t{vm.share}\t{vm.upstream}\t{vm_url(ctx.settings, vm.name)}"
            f"\ttags={','.join(vm.tags) or '-'}\tcreated={rfc3339(vm.created_at)}"
            for vm in vms
        )
    else:
        text = "\n".join(f"{vm.name}\t{vm_url(ctx.settings, vm.name)}" for vm in vms)
    return Output({"vms": entries}, text)


async def run_new(inv: Invocation) -> Output:
    """Create a VM; errors in the order of docs/ssh.md#new."""
    ctx = inv.ctx
    raw_name = inv.value("name") or ""
    if raw_name == "":
        raise CommandError("--name is required")
    name = reduce(ctx, raw_name)
    if not is_valid_vm_name(name):
        raise CommandError(INVALID_VM_NAME)
    upstream_text = inv.value("upstream") or ""
    if upstream_text == "":
        raise CommandError("--upstream is required")
    try:
        upstream = await check_upstream(upstream_text, ctx.settings.upstream_allow)
    except UpstreamError as exc:
        raise CommandError(exc.message) from None
    tags: set[str] = set()
    tag_given = False
    for value in inv.all_values("tag"):
        tag_given = True
        for element in value.split(","):
            element = element.strip()
            if element == "":
                raise CommandError("--tag contains an empty tag")
            if not is_valid_tag(element):
                raise CommandError(
                    f"--tag invalid tag name {quote(element)}: must match [a-z][a-z0-9_-]*"
                )
            tags.add(element)
    scope = caller_permissions(ctx).tag
    if scope is not None:  # docs/permissions.md#tag-scope
        if not tag_given:
            tags = {scope}
        elif tags != {scope}:
            raise CommandError(
                f"--tag SSH key scoped to tag {quote(scope)} can only use --tag={scope}"
            )
    taken = CommandError(f"VM name {quote(name)} is not available")
    if await ctx.store.vm_by_name(name) is not None:
        raise taken
    try:
        vm = await ctx.store.create_vm(
            name, ctx.user.user_id, upstream.url, sorted(tags), ctx.now()
        )
    except NameTaken:
        raise taken from None
    url = vm_url(ctx.settings, vm.name)
    data = {
        "vm_name": vm.name,
        "upstream": vm.upstream,
        "share": vm.share,
        "https_url": url,
        "tags": list(vm.tags),
    }
    return Output(data, f"Created VM {vm.name}: {url} -> {vm.upstream} ({vm.share})")


async def run_rm(inv: Invocation) -> Output:
    """Delete owned VMs; each other name fails with ``VM %q not found`` (docs/ssh.md#rm)."""
    ctx = inv.ctx
    if not inv.args:
        raise CommandError("please specify at least one VM name to delete")
    names = list(dict.fromkeys(reduce(ctx, arg) for arg in inv.args))
    deleted: list[str] = []
    failed: list[str] = []
    errors: list[str] = []
    for name in names:
        vm = await owned_vm(ctx, name)
        if vm is None:
            failed.append(name)
            errors.append(f"VM {quote(name)} not found")
            continue
        await ctx.store.delete_vm(vm.id)
        deleted.append(name)
    data: dict[str, object] = {"deleted": deleted, "failed": failed}
    if errors:
        data["error"] = errors[0]
    text = "\n".join(f"Deleted VM {name}." for name in deleted)
    return Output(data, text, tuple(errors))
