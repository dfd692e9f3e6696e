"""``ssh-key generate-api-key`` (docs/ssh.md#ssh-key-generate-api-key): a server-made key and its exe1 token."""

from __future__ import annotations

import json

from sshmint.errors import TokenFormatError
from sshmint.keys import format_fingerprint
from sshmint.server.auth.exe1 import DEFAULT_EXE1_EXPIRY, derive_exe1, exe1_hash, seal
from sshmint.server.auth.permissions import KeyPermissions
from sshmint.server.commands.render import rfc3339
from sshmint.server.commands.restrictions import TOKEN_EXP_MAX, restrictions_from_flags
from sshmint.server.commands.tree import CommandError, Invocation, Output
from sshmint.server.store import NameTaken
from sshmint.server.store.validation import sanitize_name
from sshmint.signing import generate_ed25519
from sshmint.strictjson import quote
from sshmint.token import mint_exe0

__all__ = ["lifetime_refusal", "run_generate_api_key", "signed_payload"]


def signed_payload(permissions: KeyPermissions) -> bytes:
    """Step 4: compact JSON of ``cmds`` then ``exp``, each only when set; ``{}`` otherwise.
    ``tag`` and ``vm`` are never signed."""
    payload: dict[str, object] = {}
    if permissions.cmds is not None:
        payload["cmds"] = list(permissions.cmds)
    if permissions.exp is not None:
        payload["exp"] = permissions.exp
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


async def run_generate_api_key(inv: Invocation) -> Output:
    ctx = inv.ctx
    # Steps 1-3: --vm/--tag exclusion, VM access, restrictions and inheritance.
    permissions, vm_name = await restrictions_from_flags(inv, exp_max=TOKEN_EXP_MAX)
    _check_lifetime(inv, permissions.exp)
    settings = ctx.settings
    if vm_name is not None:
        namespace = f"v0@{vm_name}.{settings.vm_host}"
    else:
        namespace = f"v0@{settings.web_host}"
    payload = signed_payload(permissions)  # step 4
    label = _label(inv, vm_name)  # step 5
    taken = CommandError(f"a key named {quote(label)} already exists; use a different --label")
    if any(row.name == label for row in await ctx.store.keys_of_user(ctx.user.user_id)):
        raise taken
    # Step 6: a fresh key signs the payload once; its private half is never kept.
    signer = generate_ed25519()
    public_key = signer.public_key
    try:
        exe0 = mint_exe0(payload, signer, namespace)
    except TokenFormatError as exc:  # e.g. a --cmds list too long for one token
        raise CommandError(exc.message) from None
    del signer
    # Step 7: key row and exe1 handle in one transaction; only hash and sealed exe0 stored.
    exe1 = derive_exe1(await ctx.store.exe1_secret(), exe0)
    hint = exe1.removeprefix("exe1.")[:4]
    expires_at = DEFAULT_EXE1_EXPIRY if permissions.exp is None else permissions.exp
    try:
        row = await ctx.store.add_generated_key(
            ctx.user.user_id,
            public_key,
            label,
            permissions.to_text(),
            hint,
            exe1_hash(exe1),
            seal(exe1, exe0),
            expires_at,
            ctx.now(),
        )
    except NameTaken:
        raise taken from None
    fingerprint = format_fingerprint(row.fingerprint)
    data: dict[str, object] = {
        "label": label,
        "token": exe1,
        "namespace": namespace,
        "fingerprint": fingerprint,
    }
    lines = [f"Generated API key {quote(label)} ({fingerprint}) for {namespace}."]
    if permissions.exp is not None:
        data["expires_at"] = rfc3339(permissions.exp)
        lines.append(f"It expires at {rfc3339(permissions.exp)}.")
    lines += ["Token (shown once, store it safely):", exe1]
    return Output(data, "\n".join(lines))


def lifetime_refusal(maximum: str) -> str:
    """docs/ssh.md#ssh-key-generate-api-key: the handle would outlive ``--max-token-lifetime``."""
    return (
        f"token lifetime exceeds this server's maximum of {maximum}: pass --exp={maximum} or less"
    )


def _check_lifetime(inv: Invocation, exp: int | None) -> None:
    """No exe1 handle outlives the server's lifetime policy (docs/lifecycle.md#lifetime-policy)."""
    policy = inv.ctx.authenticator.policy
    if policy.refuses(exp, inv.ctx.now()):
        raise CommandError(lifetime_refusal(policy.text))


def _label(inv: Invocation, vm_name: str | None) -> str:
    """Step 5: ``--label``, or ``api-key``/``api-key-<vm>``, sanitised and not empty."""
    label_flag = inv.value("label")
    if label_flag is not None:
        raw_label = label_flag
    else:
        raw_label = "api-key" if vm_name is None else f"api-key-{vm_name}"
    label = sanitize_name(raw_label)
    if label == "":
        raise CommandError("--label is empty after removing special characters")
    return label
