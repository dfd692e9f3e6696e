"""``exe0-to-exe1`` (SPEC §6.6.17): trade an exe0 token for a short opaque handle."""

from __future__ import annotations

from sshmint.errors import INVALID_TOKEN, PublicKeyError, TokenExpiredError, TokenFormatError
from sshmint.keys import parse_public_key_line
from sshmint.server.commands.access import accessible_vm, reduce, vm_access_denied
from sshmint.server.commands.tree import CommandError, Invocation, Output
from sshmint.server.exe1 import DEFAULT_EXE1_EXPIRY, derive_exe1, exe1_hash, seal
from sshmint.token import check_claims, parse_exe0, verify_signature

__all__ = ["run_exe0_to_exe1"]

USAGE = "usage: exe0-to-exe1 [--vm=VMNAME] <exe0-token>"


async def run_exe0_to_exe1(inv: Invocation) -> Output:
    ctx = inv.ctx
    if len(inv.args) != 1:
        raise CommandError(USAGE)
    token = inv.args[0]
    # Step 1: the namespace, and access to the VM it names.
    vm_flag = inv.value("vm") or None
    if vm_flag is None:
        namespace = f"v0@{ctx.settings.web_host}"
    else:
        vm_name = reduce(ctx, vm_flag)
        if await accessible_vm(ctx, vm_name) is None:
            raise CommandError(vm_access_denied(vm_name))
        namespace = f"v0@{vm_name}.{ctx.settings.vm_host}"
    # Step 2: parse (SPEC §2.1 steps 1-15); the reason is shown, prefixed (§2.4).
    try:
        parsed = parse_exe0(token)
    except TokenFormatError as exc:
        raise CommandError(f"invalid token: {exc.message}") from None
    # Steps 3-4: the caller's own registered key, and a signature under the namespace.
    row = await ctx.store.key_by_fingerprint(parsed.fingerprint)
    if row is None or row.user_id != ctx.user.user_id:
        raise CommandError(INVALID_TOKEN)
    try:
        registered = parse_public_key_line(row.public_key)
    except PublicKeyError:
        raise CommandError(INVALID_TOKEN) from None
    if not verify_signature(parsed, registered, namespace):
        raise CommandError(INVALID_TOKEN)
    # Step 5: exp only; a future nbf may be traded (SPEC §3, trade exception).
    now = ctx.now()
    try:
        check_claims(parsed.permissions, now, check_nbf=False)
    except TokenExpiredError:
        raise CommandError("token has expired") from None
    # Steps 6-7: the derived handle is stable, so a live row means "already traded".
    exe1 = derive_exe1(await ctx.store.exe1_secret(), token)
    digest = exe1_hash(exe1)
    if await ctx.store.exe1_lookup(digest, now) is None:
        exp = parsed.permissions.exp
        expires_at = DEFAULT_EXE1_EXPIRY if exp is None else exp
        await ctx.store.exe1_put(digest, seal(exe1, token), expires_at, now)
    return Output({"token": exe1}, exe1)
