"""``ssh-key list|add|remove|rename`` (docs/ssh.md#ssh-key-list)."""

from __future__ import annotations

import json

from sshmint.errors import PublicKeyError
from sshmint.keys import format_fingerprint, parse_public_key_line
from sshmint.server.auth.permissions import PermissionsError, parse_key_permissions
from sshmint.server.commands.access import visible_keys
from sshmint.server.commands.render import rfc3339
from sshmint.server.commands.restrictions import restrictions_from_flags
from sshmint.server.commands.tree import CommandError, Invocation, Output
from sshmint.server.store import KeyTaken, NameTaken, SSHKeyRow
from sshmint.server.store.validation import sanitize_name
from sshmint.strictjson import quote

__all__ = [
    "MAX_STDIN_KEY_BYTES",
    "find_keys",
    "run_ssh_key_add",
    "run_ssh_key_list",
    "run_ssh_key_remove",
    "run_ssh_key_rename",
]

# docs/ssh.md#ssh-key-add: at most 16 KiB of public key on stdin.
MAX_STDIN_KEY_BYTES = 16 * 1024
_FINGERPRINT_CHARS = 43


def _listed_permissions(row: SSHKeyRow) -> dict[str, object] | None:
    """The key's restrictions as an object; ``None`` when unrestricted (docs/ssh.md#ssh-key-list).

    Unreadable stored text is shown as stored when it is a JSON object, so the owner can
    see (and remove) the key; it is never treated as unrestricted.
    """
    try:
        permissions = parse_key_permissions(row.permissions)
    except PermissionsError:
        try:
            raw = json.loads(row.permissions)
        except ValueError:
            return {}
        return raw if isinstance(raw, dict) else {}
    return None if permissions.unrestricted else permissions.to_object()


async def run_ssh_key_list(inv: Invocation) -> Output:
    ctx = inv.ctx
    keys = await visible_keys(ctx)
    entries: list[dict[str, object]] = []
    lines: list[str] = []
    for row in keys:
        entry: dict[str, object] = {
            "public_key": row.public_key,
            "fingerprint": format_fingerprint(row.fingerprint),
            "name": row.name,
            "added_at": rfc3339(row.added_at),
        }
        if row.last_used_at is not None:
            entry["last_used_at"] = rfc3339(row.last_used_at)
        entry["current"] = row.id == ctx.key.id
        if row.api_key_hint is not None:
            entry["api_key_hint"] = row.api_key_hint
        permissions = _listed_permissions(row)
        if permissions is not None:
            entry["permissions"] = permissions
        entries.append(entry)
        marker = "  (current)" if row.id == ctx.key.id else ""
        restricted = f"  {row.permissions}" if permissions is not None else ""
        lines.append(
            f"{row.name}  {format_fingerprint(row.fingerprint)}  added {rfc3339(row.added_at)}"
            f"{marker}{restricted}"
        )
    return Output({"ssh_keys": entries}, "\n".join(lines) or "No SSH keys.")


async def _key_text(inv: Invocation) -> str:
    """The positional words joined by spaces, else stdin in exec mode (docs/ssh.md#ssh-key-add)."""
    if inv.args:
        return " ".join(inv.args).strip()
    if inv.ctx.stdin is None:
        return ""
    data = await inv.ctx.stdin(MAX_STDIN_KEY_BYTES + 1)
    if len(data) > MAX_STDIN_KEY_BYTES:
        raise CommandError("public key on stdin exceeds 16 KiB")
    return data.decode("utf-8", "replace").strip()


async def run_ssh_key_add(inv: Invocation) -> Output:
    """Checks in the order of docs/ssh.md#ssh-key-add: restrictions and inheritance; missing key
    text; private key; parsing; already registered."""
    ctx = inv.ctx
    permissions, _vm = await restrictions_from_flags(inv)
    text = await _key_text(inv)
    if text == "":
        raise CommandError("please provide the SSH public key to add")
    try:
        public_key = parse_public_key_line(text)
    except PublicKeyError as exc:  # PrivateKeyGivenError included, checked first
        raise CommandError(exc.message) from None

    def taken(owner_user_id: str) -> CommandError:
        if owner_user_id == ctx.user.user_id:
            return CommandError("this SSH key is already associated with your account")
        return CommandError("this SSH key is already associated with another account")

    existing = await ctx.store.key_by_fingerprint(public_key.fingerprint)
    if existing is not None:
        raise taken(existing.user_id)
    try:
        row = await ctx.store.add_key(
            ctx.user.user_id,
            public_key,
            sanitize_name(public_key.comment),
            permissions.to_text(),
            ctx.now(),
        )
    except KeyTaken as exc:
        raise taken(exc.owner_user_id) from None
    data: dict[str, object] = {"public_key": row.public_key, "status": "added", "name": row.name}
    if not permissions.unrestricted:
        data["permissions"] = permissions.to_object()
    return Output(data, "Added SSH key.")


def _by_fingerprint(keys: list[SSHKeyRow], text: str) -> list[SSHKeyRow] | None:
    """Keys whose fingerprint is ``text`` (``SHA256:`` optional), or ``None`` when the
    text does not look like a fingerprint."""
    fp = text
    for prefix in ("SHA256:", "sha256:"):
        if fp.startswith(prefix):
            fp = fp[len(prefix) :]
            break
    if len(fp) != _FINGERPRINT_CHARS or " " in fp:
        return None
    return [row for row in keys if row.fingerprint == fp]


def find_keys(keys: list[SSHKeyRow], text: str) -> list[SSHKeyRow]:
    """Resolve ``ssh-key remove``'s argument (docs/ssh.md#ssh-key-remove): a public key line, else a
    fingerprint that finds a key, else an exact name."""
    try:
        public_key = parse_public_key_line(text)
    except PublicKeyError:
        public_key = None
    if public_key is not None:
        return [row for row in keys if row.fingerprint == public_key.fingerprint]
    # A key stored before a limit existed no longer parses (docs/security.md#key-limits):
    # its line still names it, by the "<type> <base64>" text it is stored as.
    words = text.split(maxsplit=2)
    if len(words) >= 2:
        stored = f"{words[0]} {words[1]}"
        by_text = [row for row in keys if row.public_key == stored]
        if by_text:
            return by_text
    by_fp = _by_fingerprint(keys, text)
    if by_fp:
        return by_fp
    return [row for row in keys if row.name == text]


def _single(matches: list[SSHKeyRow], text: str) -> SSHKeyRow:
    if not matches:
        raise CommandError(f"no matching SSH key found for {quote(text)}")
    if len(matches) > 1:
        lines = ["multiple keys match, please specify by fingerprint:"]
        lines += [f"  {format_fingerprint(row.fingerprint)} ({row.name})" for row in matches]
        raise CommandError("\n".join(lines))
    return matches[0]


async def run_ssh_key_remove(inv: Invocation) -> Output:
    ctx = inv.ctx
    text = " ".join(inv.args).strip()
    if text == "":
        raise CommandError("please specify a key to remove (name, fingerprint, or full public key)")
    row = _single(find_keys(await visible_keys(ctx), text), text)
    if not await ctx.store.delete_key(row.id):
        raise CommandError(f"no matching SSH key found for {quote(text)}")
    fingerprint = format_fingerprint(row.fingerprint)
    data = {
        "public_key": row.public_key,
        "fingerprint": fingerprint,
        "name": row.name,
        "status": "deleted",
    }
    return Output(data, f"Deleted SSH key {row.name} ({fingerprint}).")


async def run_ssh_key_rename(inv: Invocation) -> Output:
    ctx = inv.ctx
    if len(inv.args) != 2:
        raise CommandError("usage: ssh-key rename <old-name> <new-name>")
    old_text = inv.args[0].strip()
    new_text = inv.args[1].strip()
    if old_text == "":
        raise CommandError("old name cannot be empty")
    if new_text == "":
        raise CommandError("new name cannot be empty")
    keys = await visible_keys(ctx)
    matches = None
    if old_text.startswith(("SHA256:", "sha256:")):
        matches = _by_fingerprint(keys, old_text) or None
    if matches is None:
        matches = [row for row in keys if row.name == old_text]
    row = _single(matches, old_text)
    new_name = sanitize_name(new_text)
    if new_name == "":
        raise CommandError("new name is empty (special characters like ; | $ are removed)")
    taken = CommandError(f"a key named {quote(new_name)} already exists")
    if new_name != row.name:
        all_keys = await ctx.store.keys_of_user(ctx.user.user_id)
        if any(other.name == new_name and other.id != row.id for other in all_keys):
            raise taken
        try:
            await ctx.store.rename_key(row.id, new_name)
        except NameTaken:
            raise taken from None
    data = {
        "public_key": row.public_key,
        "fingerprint": format_fingerprint(row.fingerprint),
        "old_name": row.name,
        "new_name": new_name,
        "status": "renamed",
    }
    return Output(data, f"Renamed SSH key {row.name} to {new_name}.")
