"""Storage: SQLAlchemy 2 Core (async) over SQLite (aiosqlite) and PostgreSQL (asyncpg).

docs/accounts.md#accounts-keys-and-vms (accounts, keys, VMs) and docs/storage.md#storage (storage). ``Store.open(url)`` accepts
``sqlite:///PATH`` and ``postgresql://...`` (also ``postgres://``), migrates the schema to
the head Alembic revision and returns a store whose methods are all async. Nothing mutable
is cached, so changes made by other processes are visible to the next call (docs/storage.md#backends).

Records (frozen dataclasses, timestamps are int unix seconds):

- ``User(user_id, email, locked, created_at, next_ssh_key_number)``
- ``SSHKeyRow(id, user_id, public_key, fingerprint, name, permissions, api_key_hint, added_at,
  last_used_at)`` — ``public_key`` is ``"<type> <base64>"``, ``fingerprint`` has no prefix,
  ``permissions`` is ``""`` or a JSON object text (docs/permissions.md#key-restrictions).
- ``VM(id, name, owner_user_id, upstream, share, tags: tuple[str, ...], created_at)``
- ``Share(vm_id, email, shared_by_user_id, message, created_at)``

Errors (subclasses of ``StoreError``, itself an ``SSHMintError`` with a one-line
``message``): ``StoreUnavailable`` (database unreachable or failing: the caller turns it into
a one-line error / 500 / 503), ``EmailTaken``, ``KeyTaken`` (``.owner_user_id``),
``NameTaken`` (key name or VM name), ``AlreadyShared``, ``UserNotFound``, ``VMNotFound``,
``InvalidDatabaseURL``.

Keys are passed as any object with ``openssh`` and ``fingerprint`` (``KeyIdentity``; the
core's ``sshmint.keys.PublicKey`` fits).

``Store`` (all methods async; one instance per process):

- ``Store.open(url) -> Store`` (classmethod; migrates to head; ``InvalidDatabaseURL``,
  ``StoreUnavailable``); ``close()``; ``ping()`` raises ``StoreUnavailable``; properties
  ``backend`` (``"sqlite"``/``"postgresql"``) and ``description`` (path or host:port/db).
- users: ``create_user(email, now, key=None, key_name="", key_permissions="") ->
  tuple[User, SSHKeyRow | None]`` (one transaction; ``EmailTaken`` then ``KeyTaken``);
  ``get_user(user_id)``, ``get_user_by_email(email)`` (``User | None``);
  ``set_locked(email, locked) -> User | None``; ``list_users() -> list[tuple[User, int]]``
  (by email, with key count); ``emails_with_accounts(emails) -> set[str]``.
- keys: ``key_by_fingerprint(fp)``, ``key_by_id(id)``
  (``SSHKeyRow | None``); ``keys_of_user(user_id)`` (insertion order);
  ``add_key(user_id, public_key, name, permissions, now) -> SSHKeyRow`` (reads and
  increments the key counter in the same transaction, always; empty ``name`` becomes
  ``key-<n>``; names not checked; ``KeyTaken``, ``UserNotFound``);
  ``login_lookup(fp) -> tuple[SSHKeyRow, User | None] | None`` (the key and its owner in one
  query, for SSH login); ``token_lookup(fp, token_hash) -> tuple[SSHKeyRow, User | None,
  int | None] | None`` (the same plus the token's revocation time, in the same query, for
  the token path); ``caller_lookup(fp, token_hash)`` (the same plus every key of the owner,
  for ``/exec``); ``delete_key(id) -> bool``;
  ``rename_key(id, new_name) -> SSHKeyRow | None`` (``NameTaken`` if another key of the
  user has the name; ``None`` if the key is gone);
  ``touch_key_used(id, day_start) -> None`` (only moves forward);
  ``add_generated_key(user_id, public_key, name, permissions, api_key_hint, exe1_hash,
  exe0_sealed, expires_at, now) -> SSHKeyRow`` (key + exe1 row in one transaction;
  ``NameTaken``, ``KeyTaken``, ``UserNotFound``; the key counter is not used).
- exe1: ``exe1_secret() -> bytes``; ``exe1_lookup(exe1_hash, now) -> bytes | None`` (live
  rows only: ``expires_at >= now``); ``exe1_put(exe1_hash, exe0_sealed, expires_at, now)
  -> bool`` (insert, or replace an expired row with the same hash; a live row is kept and
  ``False`` returned); ``exe1_purge_expired(now) -> int``.
- revocations (docs/lifecycle.md#revoking-one-token): ``revoke_token(token_hash, user_id,
  fingerprint, exp, now) -> bool`` (idempotent); ``revocations_of_user(user_id, now) ->
  list[Revocation]`` (live ones, newest first); ``revocation_purge_expired(now) -> int``.
- vms: ``create_vm(name, owner_user_id, upstream, tags, now) -> VM`` (``NameTaken``,
  ``UserNotFound``); ``vm_by_name(name)``, ``vm_by_id(id)`` (``VM | None``);
  ``proxy_lookup(name) -> tuple[VM, User | None] | None`` (the VM and its owner in one query);
  ``vms_of_owner(user_id)`` (by name); ``delete_vm(id) -> bool`` (shares cascade);
  ``set_vm_upstream(id, upstream) -> VM | None``; ``set_vm_share(id, share) -> VM | None``
  (``ValueError`` unless ``"private"``/``"public"``); ``shares_of_vm(id)`` (by created_at,
  email); ``add_share(vm_id, email, by_user_id, message, now) -> Share`` (``AlreadyShared``,
  ``VMNotFound``, ``UserNotFound``); ``remove_share(vm_id, email) -> bool``;
  ``is_shared_with(vm_id, email) -> bool``.

Ordering is by code point on both backends (PostgreSQL columns use the ``"C"`` collation).
"""

from sshmint.server.store.errors import (
    AlreadyShared,
    EmailTaken,
    InvalidDatabaseURL,
    KeyTaken,
    NameTaken,
    StoreError,
    StoreUnavailable,
    UserNotFound,
    VMNotFound,
)
from sshmint.server.store.records import VM, KeyIdentity, Share, SSHKeyRow, User
from sshmint.server.store.revocations import Revocation
from sshmint.server.store.store import Store
from sshmint.server.store.users import new_user_id
from sshmint.server.store.vms import VM_SHARE_MODES

__all__ = [
    "VM",
    "VM_SHARE_MODES",
    "AlreadyShared",
    "EmailTaken",
    "InvalidDatabaseURL",
    "KeyIdentity",
    "KeyTaken",
    "NameTaken",
    "Revocation",
    "SSHKeyRow",
    "Share",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "User",
    "UserNotFound",
    "VMNotFound",
    "new_user_id",
]
