"""Immutable snapshots of stored rows (timestamps are int unix seconds, UTC), and how a
whole-table row becomes one (the decoders read columns by position: see ``queries.py``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sshmint.server.store.schema import ssh_keys, users, vm_shares, vms
from sshmint.valuetypes import value_type

__all__ = [
    "KEY_COLUMNS",
    "USER_COLUMNS",
    "VM",
    "VM_COLUMNS",
    "KeyIdentity",
    "Row",
    "SSHKeyRow",
    "Share",
    "User",
    "key_from_row",
    "share_from_row",
    "user_from_row",
    "vm_from_row",
]


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


@value_type
@dataclass(frozen=True, slots=True)
class User:
    """docs/accounts.md#users; ``next_ssh_key_number`` is the key counter used for ``key-<n>`` names."""

    user_id: str
    email: str
    locked: bool
    created_at: int
    next_ssh_key_number: int


@value_type
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


@value_type
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


@value_type
@dataclass(frozen=True, slots=True)
class Share:
    """One email a VM is shared with (docs/accounts.md#vms, docs/ssh.md#share-add)."""

    vm_id: int
    email: str
    shared_by_user_id: str
    message: str | None
    created_at: int


Row = Sequence[Any]

# Positions of columns in whole-table rows (a select of the table, or RETURNING *table.c).
USER_COLUMNS = len(users.c)
KEY_COLUMNS = len(ssh_keys.c)
VM_COLUMNS = len(vms.c)


def user_from_row(row: Row, at: int = 0) -> User:
    return User(
        user_id=row[at],
        email=row[at + 1],
        locked=bool(row[at + 2]),
        next_ssh_key_number=int(row[at + 3]),
        created_at=int(row[at + 4]),
    )


def key_from_row(row: Row, at: int = 0) -> SSHKeyRow:
    last_used = row[at + 8]
    return SSHKeyRow(
        id=int(row[at]),
        user_id=row[at + 1],
        public_key=row[at + 2],
        fingerprint=row[at + 3],
        name=row[at + 4],
        permissions=row[at + 5],
        api_key_hint=row[at + 6],
        added_at=int(row[at + 7]),
        last_used_at=None if last_used is None else int(last_used),
    )


def vm_from_row(row: Row, at: int = 0) -> VM:
    tags = json.loads(row[at + 5])
    return VM(
        id=int(row[at]),
        name=row[at + 1],
        owner_user_id=row[at + 2],
        upstream=row[at + 3],
        share=row[at + 4],
        tags=tuple(str(tag) for tag in tags),
        created_at=int(row[at + 6]),
    )


def share_from_row(row: Row) -> Share:
    return Share(
        vm_id=int(row[1]),
        email=row[2],
        shared_by_user_id=row[3],
        message=row[4],
        created_at=int(row[5]),
    )


def _check_column_order() -> None:
    """The decoders above read whole-table rows by position: pin the order they assume."""
    expected = {
        users: ["user_id", "email", "is_locked_out", "next_ssh_key_number", "created_at"],
        ssh_keys: [
            "id", "user_id", "public_key", "fingerprint", "comment", "permissions",
            "api_key_hint", "added_at", "last_used_at",
        ],
        vms: ["id", "name", "owner_user_id", "upstream", "share", "tags", "created_at"],
        vm_shares: ["id", "vm_id", "email", "shared_by_user_id", "message", "created_at"],
    }  # fmt: skip
    for table, names in expected.items():
        if [column.name for column in table.c] != names:
            raise RuntimeError(f"unexpected column order in table {table.name}")


_check_column_order()
