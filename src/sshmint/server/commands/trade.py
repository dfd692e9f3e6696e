"""``exe0-to-exe1`` (docs/ssh.md#exe0-to-exe1): trade an exe0 token for a short opaque handle."""

from __future__ import annotations

from sshmint.errors import (
    INVALID_TOKEN,
    TokenExpiredError,
    TokenFormatError,
    TokenPolicyError,
    TokenVerificationError,
)
from sshmint.server.auth.exe1 import DEFAULT_EXE1_EXPIRY, derive_exe1, exe1_hash, seal
from sshmint.server.commands.access import accessible_vm, reduce, vm_access_denied
from sshmint.server.commands.tree import CommandError, Invocation, Output

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
    # Steps 2-5 through the server's one authentication path; the messages are docs/tokens.md#who-sees-which-message's:
    # parse failures are shown (prefixed), key, signature and revocation failures are not.
    # A token outliving the lifetime policy gets no handle (docs/lifecycle.md#lifetime-policy).
    try:
        parsed = await ctx.authenticator.check_trade(token, namespace, ctx.user.user_id)
    except TokenFormatError as exc:
        raise CommandError(f"invalid token: {exc.message}") from None
    except TokenVerificationError:
        raise CommandError(INVALID_TOKEN) from None
    except TokenExpiredError:
        raise CommandError("token has expired") from None
    except TokenPolicyError as exc:
        raise CommandError(exc.message) from None
    # Steps 6-7: the derived handle is stable, so a live row means "already traded".
    now = ctx.now()
    exe1 = derive_exe1(await ctx.store.exe1_secret(), token)
    digest = exe1_hash(exe1)
    if await ctx.store.exe1_lookup(digest, now) is None:
        exp = parsed.permissions.exp
        expires_at = DEFAULT_EXE1_EXPIRY if exp is None else exp
        await ctx.store.exe1_put(digest, seal(exe1, token), expires_at, now)
    return Output({"token": exe1}, exe1)
