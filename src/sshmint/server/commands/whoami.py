"""``whoami`` (docs/ssh.md#whoami)."""

from __future__ import annotations

from sshmint.keys import format_fingerprint
from sshmint.server.commands.access import visible_keys
from sshmint.server.commands.tree import Invocation, Output

__all__ = ["run_whoami"]


async def run_whoami(inv: Invocation) -> Output:
    ctx = inv.ctx
    keys = await visible_keys(ctx)
    # The calling key first, the others in insertion order.
    keys.sort(key=lambda row: row.id != ctx.key.id)
    entries = [
        {
            "public_key": row.public_key,
            "fingerprint": format_fingerprint(row.fingerprint),
            "name": row.name,
            "current": row.id == ctx.key.id,
        }
        for row in keys
    ]
    lines = [f"User ID: {ctx.user.user_id}", f"Email:   {ctx.user.email}", "SSH keys:"]
    for row in keys:
        marker = "  (current)" if row.id == ctx.key.id else ""
        lines.append(f"  {row.name}  {format_fingerprint(row.fingerprint)}{marker}")
    data = {"user_id": ctx.user.user_id, "email": ctx.user.email, "ssh_keys": entries}
    return Output(data, "\n".join(lines))
