"""Errors raised by the store.

::

    StoreError                  root (a ``SSHMintError``: ``.message`` is one line of text)
    ├── StoreUnavailable        the database cannot be reached, opened or migrated
    ├── InvalidDatabaseURL      the URL names no supported backend
    ├── EmailTaken              docs/accounts.md#uniqueness: an account with this email exists (``.email``)
    ├── KeyTaken                docs/accounts.md#uniqueness: the public key is registered (``.owner_user_id``)
    ├── NameTaken               docs/accounts.md#uniqueness: key name (per user) or VM name taken (``.name``)
    ├── AlreadyShared           docs/accounts.md#uniqueness: the VM is already shared with ``.email``
    ├── UserNotFound            the referenced user row does not exist (``.user_id``)
    └── VMNotFound              the referenced VM row does not exist (``.vm_id``)

Messages never contain SQL, bind parameters, passwords or tokens: callers may show them.
"""

from __future__ import annotations

from sshmint.errors import SSHMintError

__all__ = [
    "AlreadyShared",
    "EmailTaken",
    "InvalidDatabaseURL",
    "KeyTaken",
    "NameTaken",
    "StoreError",
    "StoreUnavailable",
    "UserNotFound",
    "VMNotFound",
]


class StoreError(SSHMintError):
    """Root of the store's errors."""


class StoreUnavailable(StoreError):
    """The database is unreachable or failing; the same ``Store`` recovers when it is back."""


class InvalidDatabaseURL(StoreError):
    """The database URL uses an unsupported scheme or form."""


class EmailTaken(StoreError):
    def __init__(self, email: str) -> None:
        super().__init__(f"an account with email {email} already exists")
        self.email = email


class KeyTaken(StoreError):
    def __init__(self, owner_user_id: str) -> None:
        super().__init__("this SSH key is already registered")
        self.owner_user_id = owner_user_id


class NameTaken(StoreError):
    def __init__(self, name: str) -> None:
        super().__init__(f"the name {name} is already taken")
        self.name = name


class AlreadyShared(StoreError):
    def __init__(self, vm_id: int, email: str) -> None:
        super().__init__(f"the VM is already shared with {email}")
        self.vm_id = vm_id
        self.email = email


class UserNotFound(StoreError):
    def __init__(self, user_id: str) -> None:
        super().__init__(f"user {user_id} not found")
        self.user_id = user_id


class VMNotFound(StoreError):
    def __init__(self, vm_id: int) -> None:
        super().__init__(f"VM {vm_id} not found")
        self.vm_id = vm_id
