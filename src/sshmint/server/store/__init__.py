"""Storage: SQLAlchemy 2 Core (async) over SQLite (aiosqlite) and PostgreSQL (asyncpg).

CONTRACT STUB — the store's owner replaces this with the implementation, keeping these names.

Records (frozen dataclasses, timestamps are int unix seconds):

- ``User(user_id, email, locked, created_at, next_ssh_key_number)``
- ``SSHKeyRow(id, user_id, public_key, fingerprint, name, permissions, api_key_hint, added_at,
  last_used_at)`` — ``public_key`` is ``"<type> <base64>"``, ``fingerprint`` has no prefix,
  ``permissions`` is ``""`` or a JSON object text (SPEC §4.3).
- ``VM(id, name, owner_user_id, upstream, share, tags: tuple[str, ...], created_at)``
- ``Share(vm_id, email, shared_by_user_id, message, created_at)``

Errors (subclasses of ``StoreError``): ``StoreUnavailable`` (database unreachable or failing:
the caller turns it into a one-line error / 500 / 503), ``EmailTaken``, ``KeyTaken``
(``.owner_user_id``), ``NameTaken`` (key name or VM name), ``AlreadyShared``.

``Store`` (all methods async; one instance per process; no caching of mutable rows, SPEC §9.1):

- ``Store.open(url: str) -> Store`` (classmethod; ``sqlite:///path`` or ``postgresql://...``;
  runs Alembic migrations to head; SQLite in WAL mode, foreign keys on, busy timeout ≥ 5 s);
  ``close()``; ``ping()`` raises ``StoreUnavailable``.
- users: ``create_user(email, now, key=None, key_name="", key_permissions="") -> tuple[User,
  SSHKeyRow | None]`` (one transaction); ``get_user(user_id)``, ``get_user_by_email(email)``,
  ``set_locked(email, locked) -> User | None``, ``list_users() -> list[tuple[User, int]]``
  (ordered by email, with key count), ``emails_with_accounts(emails) -> set[str]``.
- keys: ``key_by_fingerprint(fp)``, ``key_by_public_key(openssh)``, ``key_by_id(id)``,
  ``keys_of_user(user_id)`` (insertion order); ``add_key(user_id, public_key: PublicKey,
  name: str, permissions: str, now) -> SSHKeyRow`` (reads and increments the user's key counter
  in the same transaction; an empty ``name`` becomes ``key-<n>``); ``delete_key(id) -> bool``;
  ``rename_key(id, new_name)`` (``NameTaken`` if another key of the user has it);
  ``touch_key_used(id, day_start: int)``; ``add_generated_key(user_id, public_key, name,
  permissions, api_key_hint, exe1_hash, exe0_sealed, expires_at, now) -> SSHKeyRow`` (key + exe1
  row in one transaction; ``NameTaken`` when the user has a key of that name).
- exe1: ``exe1_secret() -> bytes`` (the ``exe1-derivation`` row, made by the first migration);
  ``exe1_lookup(exe1_hash, now) -> bytes | None`` (sealed exe0 of a live row,
  ``expires_at >= now``); ``exe1_put(exe1_hash, exe0_sealed, expires_at, now)`` (insert, or
  replace an expired row with the same hash).
- vms: ``create_vm(name, owner_user_id, upstream, tags, now) -> VM`` (``NameTaken``);
  ``vm_by_name(name)``; ``vms_of_owner(user_id)`` (sorted by name); ``delete_vm(id)``;
  ``set_vm_upstream(id, upstream)``; ``set_vm_share(id, share)``; ``shares_of_vm(id)`` (by
  created_at, email); ``add_share(vm_id, email, by_user_id, message, now)`` (``AlreadyShared``);
  ``remove_share(vm_id, email) -> bool``; ``is_shared_with(vm_id, email) -> bool``.
- tests: ``dump_tables() -> dict[str, list[tuple[object, ...]]]`` (every row of every table).
"""
