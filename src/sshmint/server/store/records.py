"""Immutable snapshots of stored rows (timestamps are int unix seconds, UTC)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

__all__ = ["VM", "KeyIdentity", "SSHKeyRow", "Share", "User"]


class KeyIdentity(Protocol):
    """What the store needs from a public key (``sshmint.keys.PublicKey`` satisfies it)."""

    @property
    def openssh(self) -> str:
        """Canonical ``"<type> <base64>"`` form (docs/accounts.md#ssh-keys)."""
        ...

    @property
    def fingerprint(self) -> str:
        """Unpadded base64 SHA-256 of the blob, without ``SHA256:`` (docs/tokens.md#fingerprints)."""
        ...


@dataclass(frozen=True, slots=True)
class User:
    """docs/accounts.md#users; ``next_ssh_key_number`` is the key counter used for ``key-<n>`` names."""

    user_id: str
    email: str
    locked: bool
    created_at: int
    next_ssh_key_number: int


@dataclass(frozen=True, slots=True)
class SSHKeyRow:
    """docs/accounts.md#ssh-keys. ``permissions`` is the raw stored text: ``""`` or a JSON object (docs/permissions.md#key-restrictions)."""

    id: int
    user_id: str
    public_key: str
    fingerprint: str
    name: str
    permissions: str
    api_key_hint: str | None
    added_at: int
    last_used_at: int | None


@dataclass(frozen=True, slots=True)
class VM:
    """docs/accounts.md#vms. ``share`` is ``"private"`` or ``"public"``; ``tags`` are sorted, unique."""

    id: int
    name: str
    owner_user_id: str
    upstream: str
    share: str
    tags: tuple[str, ...]
    created_at: int


@dataclass(frozen=True, slots=True)
class Share:
    """One email a VM is shared with (docs/accounts.md#vms, docs/ssh.md#share-add)."""

    vm_id: int
    email: str
    shared_by_user_id: str
    message: str | None
    created_at: int
