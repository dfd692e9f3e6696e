"""Restriction flags of ``ssh-key add`` and ``generate-api-key`` (docs/ssh.md#ssh-key-add, docs/ssh.md#ssh-key-generate-api-key)
and the inheritance that follows them (docs/permissions.md#inheritance)."""

from __future__ import annotations

from sshmint.duration import parse_duration
from sshmint.errors import DurationError
from sshmint.server.auth.permissions import InheritanceError, KeyPermissions, inherit
from sshmint.server.commands.access import accessible_vm, caller_permissions, reduce
from sshmint.server.commands.access import vm_access_denied as _vm_access_denied
from sshmint.server.commands.tree import CommandError, Invocation
from sshmint.server.store.validation import is_valid_tag
from sshmint.strictjson import quote

__all__ = ["EXP_TOO_FAR", "TOKEN_EXP_MAX", "restrictions_from_flags", "split_cmds"]

# docs/tokens.md#validation step 10: a signed exp beyond this could never be parsed again.
TOKEN_EXP_MAX = 4102444800
# Key expiry must stay a printable date (9999-12-31T23:59:59Z).
KEY_EXP_MAX = 253402300799
EXP_TOO_FAR = "--exp is too far in the future"


def split_cmds(text: str | None) -> tuple[str, ...] | None:
    """``--cmds``: split on ``,``, trim, drop empties; ``None`` when nothing remains."""
    if text is None:
        return None
    cmds = tuple(part.strip() for part in text.split(","))
    kept = tuple(c for c in cmds if c)
    return kept or None


async def restrictions_from_flags(
    inv: Invocation, *, exp_max: int = KEY_EXP_MAX
) -> tuple[KeyPermissions, str | None]:
    """Build the new key's restrictions from ``--vm``, ``--tag``, ``--cmds``, ``--exp``,
    then merge the calling key's (docs/permissions.md#inheritance). Returns the permissions and the reduced
    ``--vm`` name (``None`` without ``--vm``). Raises :class:`CommandError`."""
    ctx = inv.ctx
    vm_flag = inv.value("vm") or None
    tag = inv.value("tag") or None
    if vm_flag is not None and tag is not None:
        raise CommandError("--vm and --tag are mutually exclusive")
    vm_name: str | None = None
    if vm_flag is not None:
        vm_name = reduce(ctx, vm_flag)
        if await accessible_vm(ctx, vm_name) is None:
            raise CommandError(_vm_access_denied(vm_name))
    if tag is not None and not is_valid_tag(tag):
        raise CommandError(f"invalid tag name {quote(tag)}: must match [a-z][a-z0-9_-]*")
    exp: int | None = None
    exp_text = inv.value("exp")
    if exp_text is not None:
        try:
            seconds = parse_duration(exp_text)
        except DurationError as exc:
            raise CommandError(exc.message) from None
        if seconds is not None:
            exp = ctx.now() + seconds
    new = KeyPermissions(cmds=split_cmds(inv.value("cmds")), vm=vm_name, tag=tag, exp=exp)
    try:
        merged = inherit(new, caller_permissions(ctx))
    except InheritanceError as exc:
        raise CommandError(exc.message) from None
    if merged.exp is not None and merged.exp > exp_max:
        raise CommandError(EXP_TOO_FAR)
    return merged, vm_name
