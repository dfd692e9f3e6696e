"""``token revoke|revocations|explain`` (docs/ssh.md#token-revoke, docs/lifecycle.md).

``token revoke`` ends one token without touching its key; ``token revocations`` lists what
the caller has revoked; ``token explain`` says why a token does or does not work
(:mod:`.explain`). None of them is in a token's default ``cmds``.
"""

from __future__ import annotations

from sshmint.errors import TokenError
from sshmint.keys import format_fingerprint
from sshmint.server.auth.authenticator import token_digest
from sshmint.server.commands.access import caller_permissions, visible_keys
from sshmint.server.commands.context import CommandContext
from sshmint.server.commands.explain import explain_token
from sshmint.server.commands.render import rfc3339
from sshmint.server.commands.tree import CommandError, Invocation, Output
from sshmint.server.store import SSHKeyRow
from sshmint.token import ParsedToken

__all__ = [
    "EXPLAIN_USAGE",
    "REVOKE_USAGE",
    "TOKEN_NOT_FOUND",
    "run_token_explain",
    "run_token_revocations",
    "run_token_revoke",
]

# docs/lifecycle.md#revoking-one-token: one message for every refusal, so that revoking
# says nothing about other users' tokens.
TOKEN_NOT_FOUND = "token not found"
REVOKE_USAGE = "usage: token revoke TOKEN"
EXPLAIN_USAGE = "usage: token explain TOKEN [--vm NAME] [--command 'CMD LINE']"
# The first characters of a revoked token's SHA-256 that name it in listings.
_ID_CHARS = 12


async def _own_token(ctx: CommandContext, bearer: str) -> tuple[ParsedToken, SSHKeyRow] | None:
    """The token (an exe1 resolved to its exe0) and its signing key, iff it parses and the
    key is one the caller sees (their own; a tag-scoped caller's tag only)."""
    try:
        parsed = await ctx.authenticator.read_token(bearer)
    except TokenError:
        return None
    for row in await visible_keys(ctx):
        if row.fingerprint == parsed.fingerprint:
            return parsed, row
    return None


async def run_token_revoke(inv: Invocation) -> Output:
    """docs/ssh.md#token-revoke."""
    ctx = inv.ctx
    if len(inv.args) != 1:
        raise CommandError(REVOKE_USAGE)
    found = await _own_token(ctx, inv.args[0])
    if found is None:
        raise CommandError(TOKEN_NOT_FOUND)
    parsed, row = found
    exp = parsed.permissions.exp
    await ctx.store.revoke_token(
        token_digest(parsed.token), ctx.user.user_id, row.fingerprint, exp, ctx.now()
    )
    fingerprint = format_fingerprint(row.fingerprint)
    expires = "never" if exp is None else rfc3339(exp)
    data = {
        "revoked": True,
        "fingerprint": fingerprint,
        "key_name": row.name,
        "exp": None if exp is None else rfc3339(exp),
    }
    return Output(data, f"revoked token signed by {row.name} ({fingerprint}), expires {expires}")


async def run_token_revocations(inv: Invocation) -> Output:
    """docs/ssh.md#token-revocations: the caller's live revocations, newest first; a
    tag-scoped caller sees those of keys carrying its tag only."""
    ctx = inv.ctx
    revocations = await ctx.store.revocations_of_user(ctx.user.user_id, ctx.now())
    if caller_permissions(ctx).tag is not None:
        seen = {row.fingerprint for row in await visible_keys(ctx)}
        revocations = [r for r in revocations if r.fingerprint in seen]
    entries: list[dict[str, object]] = []
    lines: list[str] = []
    for revocation in revocations:
        fingerprint = format_fingerprint(revocation.fingerprint)
        exp = None if revocation.exp is None else rfc3339(revocation.exp)
        entry: dict[str, object] = {
            "fingerprint": fingerprint,
            "key_name": revocation.key_name,
            "revoked_at": rfc3339(revocation.revoked_at),
            "exp": exp,
            "id": revocation.token_hash[:_ID_CHARS],
        }
        entries.append(entry)
        name = revocation.key_name if revocation.key_name is not None else "(key removed)"
        lines.append(
            f"{entry['id']}  revoked {entry['revoked_at']}  {name} ({fingerprint})"
            f"  expires {exp or 'never'}"
        )
    return Output({"revocations": entries}, "\n".join(lines) or "No revoked tokens.")


async def run_token_explain(inv: Invocation) -> Output:
    """docs/ssh.md#token-explain."""
    if len(inv.args) != 1:
        raise CommandError(EXPLAIN_USAGE)
    vm = inv.value("vm") or None
    command = inv.value("command")
    if vm is not None and command is not None:
        raise CommandError("--vm and --command cannot be combined: a VM's proxy runs no commands")
    return await explain_token(inv.ctx, inv.args[0], vm=vm, command=command)
