"""What the stored records' names may be (docs/accounts.md): emails, key names, VM names,
tags. Shared by the commands, the admin CLI and the proxy (a Host label that cannot name a
VM is not looked up).

Each rule cites the section of docs/ it implements. Validators return the normalised value or
raise :class:`ValidationError`, whose ``message`` is the exact user-facing text.
"""

from __future__ import annotations

import re
import unicodedata

from sshmint.errors import SSHMintError
from sshmint.strictjson import quote

__all__ = [
    "INVALID_VM_NAME",
    "MAX_EMAIL_BYTES",
    "MAX_NAME_CHARS",
    "TAG_PATTERN",
    "VM_NAME_PATTERN",
    "ValidationError",
    "is_valid_tag",
    "is_valid_vm_name",
    "normalize_email",
    "reduce_vm_name",
    "sanitize_name",
]


class ValidationError(SSHMintError):
    """A value failed validation; ``message`` is the exact text to show."""


# docs/accounts.md#users: at most 254 bytes after trimming and lower-casing.
MAX_EMAIL_BYTES = 254


def normalize_email(text: str) -> str:
    """Trim and lower-case an email and check it (docs/accounts.md#users).

    Raises ``ValidationError("invalid email address: %q")`` quoting the text as given.
    """
    email = text.strip().lower()
    local, at, domain = email.partition("@")
    valid = (
        len(email.encode("utf-8", "surrogatepass")) <= MAX_EMAIL_BYTES
        and at == "@"
        and local != ""
        and domain != ""
        and "@" not in domain
        and not any(ch.isspace() or unicodedata.category(ch) == "Cc" for ch in email)
    )
    if not valid:
        raise ValidationError(f"invalid email address: {quote(text)}")
    return email


# docs/accounts.md#name-sanitising step 1: characters removed from key names and labels.
_NAME_REMOVED = frozenset("|&;$`\\\"'<>(){}[]!#*?~/") | frozenset(chr(c) for c in range(0x20))
# docs/accounts.md#name-sanitising step 4.
MAX_NAME_CHARS = 64


def sanitize_name(text: str) -> str:
    """Sanitise a key comment, ``--label`` or new key name (docs/accounts.md#name-sanitising, steps 1–4)."""
    kept = "".join(ch for ch in text if ch not in _NAME_REMOVED)  # step 1
    joined = "-".join(kept.split())  # step 2: str.split() splits on Unicode whitespace
    return joined.lstrip("-")[:MAX_NAME_CHARS]  # steps 3 and 4


# docs/accounts.md#vms: VM names are 1–52 characters.
VM_NAME_PATTERN = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
_MAX_VM_NAME_CHARS = 52
INVALID_VM_NAME = (
    "invalid VM name, must be 1-52 characters: start with a lowercase letter, then lowercase"
    " letters or digits, with optional single hyphen separators (e.g., a-vm-name)"
)

# docs/permissions.md#key-restrictions / docs/accounts.md#vms: tags.
TAG_PATTERN = re.compile(r"[a-z][a-z0-9_-]*")


def is_valid_vm_name(name: str) -> bool:
    """docs/accounts.md#vms: ``^[a-z][a-z0-9]*(-[a-z0-9]+)*$``, 1–52 characters."""
    return len(name) <= _MAX_VM_NAME_CHARS and VM_NAME_PATTERN.fullmatch(name) is not None


def is_valid_tag(tag: str) -> bool:
    """docs/permissions.md#key-restrictions: ``^[a-z][a-z0-9_-]*$``."""
    return TAG_PATTERN.fullmatch(tag) is not None


def reduce_vm_name(name: str, vm_host: str) -> str:
    """Reduce a full host name ``<name>.<vm-host>`` to ``<name>`` (docs/accounts.md#vms).

    Host names compare case-insensitively; anything else is returned unchanged (and is
    then judged by :func:`is_valid_vm_name`).
    """
    suffix = "." + vm_host
    if len(name) > len(suffix) and name[-len(suffix) :].lower() == suffix.lower():
        return name[: -len(suffix)]
    return name
