"""The store (docs/accounts.md#accounts-keys-and-vms, docs/storage.md#storage) on both backends: schema, rules, error mapping, concurrency, faults."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from sshmint.server.store import (
    AlreadyShared,
    EmailTaken,
    InvalidDatabaseURL,
    KeyTaken,
    NameTaken,
    Store,
    StoreUnavailable,
    UserNotFound,
    VMNotFound,
)
from sshmint.server.store.engine import (
    HEAD_REVISION,
    MIGRATIONS_DIR,
    create_engine,
    parse_database_url,
)
from sshmint.server.store.schema import metadata
from tests.support.keys import StoreKey
from tests.support.postgres import PostgresServer
from tests.support.store_audit import dump_tables, key_by_public_key

TABLES = {
    "users", "ssh_keys", "exe1_tokens", "server_secrets", "vms", "vm_shares",
    "token_revocations", "rate_limits",
}  # fmt: skip
NOW = 1_700_000_000


async def sql(db_url: str, statement: str) -> list[tuple[object, ...]]:
    """Run raw SQL on a separate connection made like the store's (pragmas included)."""
    engine = create_engine(parse_database_url(db_url))
    try:
        async with engine.begin() as conn:
            result = await conn.execute(sa.text(statement))
            return [tuple(row) for row in result] if result.returns_rows else []
    finally:
        await engine.dispose()


# -- schema and migrations (docs/storage.md#backends, docs/storage.md#schema) -------------------------------------------------


async def test_s9_1_open_creates_schema_and_records_version(store: Store) -> None:
    dump = await dump_tables(store)
    assert set(dump) == TABLES | {"alembic_version"}
    assert dump["alembic_version"] == [(HEAD_REVISION,)]
    assert all(dump[table] == [] for table in TABLES - {"server_secrets"})


async def test_s9_2_migrated_schema_matches_table_definitions(store: Store, db_url: str) -> None:
    engine = create_engine(parse_database_url(db_url))
    try:
        async with engine.connect() as conn:
            diff = await conn.run_sync(
                lambda sync: compare_metadata(
                    MigrationContext.configure(
                        sync, opts={"compare_type": True, "compare_server_default": True}
                    ),
                    metadata,
                )
            )
    finally:
        await engine.dispose()
    assert diff == []


def test_s9_1_head_revision_constant_is_the_newest_migration() -> None:
    # A database at HEAD_REVISION is opened without Alembic: a new migration must move it.
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    assert ScriptDirectory.from_config(config).get_heads() == [HEAD_REVISION]


_OPEN_AND_REPORT = """
import asyncio, sys
from sshmint.server.store import Store
async def main():
    store = await Store.open(sys.argv[1])
    await store.close()
asyncio.run(main())
print("alembic loaded" if "alembic" in sys.modules else "alembic not loaded")
"""


def test_s9_1_a_database_at_head_opens_without_loading_alembic(db_url: str) -> None:
    def open_in_new_process() -> str:
        result = subprocess.run(
            [sys.executable, "-c", _OPEN_AND_REPORT, db_url],
            capture_output=True, text=True, timeout=120, check=True,
        )  # fmt: skip
        return result.stdout.strip()

    assert open_in_new_process() == "alembic loaded"  # a new database is migrated
    assert open_in_new_process() == "alembic not loaded"  # then found at head


async def test_s9_3_first_migration_makes_one_32_byte_secret_stable_across_opens(
    db_url: str,
) -> None:
    first = await Store.open(db_url)
    secret = await first.exe1_secret()
    await first.close()
    second = await Store.open(db_url)
    try:
        assert await second.exe1_secret() == secret
        rows = (await dump_tables(second))["server_secrets"]
    finally:
        await second.close()
    assert len(secret) == 32
    assert [row[:2] for row in rows] == [("exe1-derivation", secret)]


async def test_s9_1_concurrent_opens_of_a_fresh_database_migrate_once(db_url: str) -> None:
    stores = await asyncio.gather(*(Store.open(db_url) for _ in range(3)))
    try:
        secrets = {await s.exe1_secret() for s in stores}
        dump = await dump_tables(stores[0])
    finally:
        for opened in stores:
            await opened.close()
    assert len(secrets) == 1
    assert len(dump["server_secrets"]) == 1
    assert dump["alembic_version"] == [(HEAD_REVISION,)]


async def test_s9_1_sqlite_connections_use_wal_foreign_keys_and_busy_timeout(
    tmp_path: Path,
) -> None:
    path = tmp_path / "sshmint.db"
    url = f"sqlite:///{path}"
    opened = await Store.open(url)
    await opened.close()
    with sqlite3.connect(path) as plain:
        assert plain.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    for pragma, expected in (("foreign_keys", 1), ("journal_mode", "wal")):
        assert await sql(url, f"PRAGMA {pragma}") == [(expected,)]
    [(busy_timeout,)] = await sql(url, "PRAGMA busy_timeout")
    assert isinstance(busy_timeout, int) and busy_timeout >= 5000


@pytest.mark.parametrize(
    "url", ["mysql://u@h/db", "sqlite://", "sqlite:///:memory:", "not a url at all"]
)
async def test_s9_1_unsupported_database_urls_are_refused(url: str) -> None:
    with pytest.raises(InvalidDatabaseURL):
        await Store.open(url)


async def test_s9_1_postgres_scheme_alias_is_accepted(db_url: str) -> None:
    if not db_url.startswith("postgresql://"):
        # The alias exists only for PostgreSQL; SQLite's spelling is proven everywhere else.
        assert parse_database_url(db_url).backend == "sqlite"
        return
    opened = await Store.open("postgres://" + db_url.removeprefix("postgresql://"))
    try:
        await opened.ping()
        assert opened.backend == "postgresql"
    finally:
        await opened.close()


# -- users (docs/accounts.md#users, docs/operations.md#admin-commands) --------------------------------------------------------------------


async def test_s5_1_create_user_without_key(store: Store) -> None:
    user, key = await store.create_user("ann@example.test", NOW)
    assert key is None
    assert re.fullmatch(r"usr[0-9a-f]{16}", user.user_id)
    assert (user.email, user.locked, user.created_at, user.next_ssh_key_number) == (
        "ann@example.test",
        False,
        NOW,
        1,
    )
    assert await store.get_user(user.user_id) == user
    assert await store.get_user_by_email("ann@example.test") == user
    assert await store.get_user("usr0000000000000000") is None
    assert await store.get_user_by_email("nobody@example.test") is None


async def test_s5_3_create_user_with_key_uses_the_counter(
    store: Store, keys: list[StoreKey]
) -> None:
    user, key = await store.create_user("ann@example.test", NOW, keys[0])
    assert key is not None
    assert (key.user_id, key.public_key, key.fingerprint) == (
        user.user_id,
        keys[0].openssh,
        keys[0].fingerprint,
    )
    assert (key.name, key.permissions, key.api_key_hint, key.added_at, key.last_used_at) == (
        "key-1",
        "",
        None,
        NOW,
        None,
    )
    assert user.next_ssh_key_number == 2
    named, named_key = await store.create_user(
        "bob@example.test", NOW, keys[1], key_name="laptop", key_permissions='{"cmds":["ls"]}'
    )
    assert named_key is not None
    assert (named_key.name, named_key.permissions) == ("laptop", '{"cmds":["ls"]}')
    assert named.next_ssh_key_number == 2


async def test_s5_4_duplicate_email_is_email_taken_and_writes_nothing(
    store: Store, keys: list[StoreKey]
) -> None:
    await store.create_user("ann@example.test", NOW)
    before = await dump_tables(store)
    with pytest.raises(EmailTaken) as info:
        await store.create_user("ann@example.test", NOW + 1, keys[0])
    assert info.value.email == "ann@example.test"
    assert await dump_tables(store) == before


async def test_s5_4_create_user_with_a_registered_key_is_key_taken_and_creates_no_user(
    store: Store, keys: list[StoreKey]
) -> None:
    owner, _ = await store.create_user("ann@example.test", NOW, keys[0])
    with pytest.raises(KeyTaken) as info:
        await store.create_user("bob@example.test", NOW, keys[0])
    assert info.value.owner_user_id == owner.user_id
    assert await store.get_user_by_email("bob@example.test") is None


async def test_a2_set_locked_is_idempotent_and_none_for_unknown_email(store: Store) -> None:
    user, _ = await store.create_user("ann@example.test", NOW)
    locked = await store.set_locked("ann@example.test", True)
    assert locked is not None and locked.locked and locked.user_id == user.user_id
    again = await store.set_locked("ann@example.test", True)
    assert again is not None and again.locked
    unlocked = await store.set_locked("ann@example.test", False)
    assert unlocked is not None and not unlocked.locked
    assert await store.set_locked("nobody@example.test", True) is None


async def test_a2_list_users_by_email_code_point_order_with_key_counts(
    store: Store, keys: list[StoreKey]
) -> None:
    # "a.z" < "ab" by code point; a locale collation that skips punctuation says otherwise.
    emails = ["ab@x.test", "a.z@x.test", "a-b@x.test", "b@x.test", "a1@x.test"]
    ids = {}
    for index, email in enumerate(emails):
        user, _ = await store.create_user(email, NOW, keys[index] if index < 2 else None)
        ids[email] = user.user_id
    await store.add_key(ids["ab@x.test"], keys[5], "", "", NOW)
    listing = await store.list_users()
    assert [user.email for user, _ in listing] == sorted(emails)
    counts = {user.email: count for user, count in listing}
    assert counts == {
        "ab@x.test": 2,
        "a.z@x.test": 1,
        "a-b@x.test": 0,
        "b@x.test": 0,
        "a1@x.test": 0,
    }


async def test_s6_6_6_emails_with_accounts(store: Store) -> None:
    await store.create_user("ann@example.test", NOW)
    await store.create_user("bob@example.test", NOW)
    found = await store.emails_with_accounts(["ann@example.test", "eve@example.test"])
    assert found == {"ann@example.test"}
    assert await store.emails_with_accounts([]) == set()


# -- keys (docs/accounts.md#ssh-keys to docs/accounts.md#key-removal-and-revocation) -----------


async def test_s5_3_key_counter_increments_on_every_add_even_with_a_name(
    store: Store, keys: list[StoreKey]
) -> None:
    user, _ = await store.create_user("ann@example.test", NOW, keys[0])  # key-1
    named = await store.add_key(user.user_id, keys[1], "laptop", "", NOW)  # uses 2
    unnamed = await store.add_key(user.user_id, keys[2], "", "", NOW)  # uses 3
    assert (named.name, unnamed.name) == ("laptop", "key-3")
    refreshed = await store.get_user(user.user_id)
    assert refreshed is not None and refreshed.next_ssh_key_number == 4


async def test_s5_4_add_key_of_any_account_is_key_taken_with_owner_and_keeps_counter(
    store: Store, keys: list[StoreKey]
) -> None:
    ann, _ = await store.create_user("ann@example.test", NOW, keys[0])
    bob, _ = await store.create_user("bob@example.test", NOW)
    for caller in (ann, bob):
        with pytest.raises(KeyTaken) as info:
            await store.add_key(caller.user_id, keys[0], "", "", NOW)
        assert info.value.owner_user_id == ann.user_id
    for caller in (ann, bob):
        refreshed = await store.get_user(caller.user_id)
        assert refreshed is not None
        assert refreshed.next_ssh_key_number == caller.next_ssh_key_number
    assert len(await store.keys_of_user(bob.user_id)) == 0


async def test_add_key_for_unknown_user_is_user_not_found(
    store: Store, keys: list[StoreKey]
) -> None:
    with pytest.raises(UserNotFound):
        await store.add_key("usr0000000000000000", keys[0], "", "", NOW)
    assert (await dump_tables(store))["ssh_keys"] == []


async def test_s5_4_add_key_does_not_check_names(store: Store, keys: list[StoreKey]) -> None:
    user, _ = await store.create_user("ann@example.test", NOW)
    first = await store.add_key(user.user_id, keys[0], "laptop", "", NOW)
    second = await store.add_key(user.user_id, keys[1], "laptop", "", NOW)
    assert first.id != second.id and first.name == second.name == "laptop"


async def test_s5_2_key_lookups_and_insertion_order(store: Store, keys: list[StoreKey]) -> None:
    user, _ = await store.create_user("ann@example.test", NOW)
    added = [
        await store.add_key(user.user_id, keys[i], name, perm, NOW + i)
        for i, (name, perm) in enumerate([("zeta", ""), ("alpha", '{"tag":"t"}'), ("mid", "")])
    ]
    assert await store.keys_of_user(user.user_id) == added
    assert await store.key_by_fingerprint(keys[1].fingerprint) == added[1]
    assert await key_by_public_key(store, keys[2].openssh) == added[2]
    assert await store.key_by_id(added[0].id) == added[0]
    assert added[1].permissions == '{"tag":"t"}'
    assert await store.key_by_fingerprint(keys[9].fingerprint) is None
    assert await key_by_public_key(store, keys[9].openssh) is None
    assert await store.key_by_id(added[2].id + 100) is None


async def test_s5_5_delete_key(store: Store, keys: list[StoreKey]) -> None:
    user, key = await store.create_user("ann@example.test", NOW, keys[0])
    assert key is not None
    assert await store.delete_key(key.id) is True
    assert await store.delete_key(key.id) is False
    assert await store.key_by_fingerprint(keys[0].fingerprint) is None
    # docs/accounts.md#key-removal-and-revocation: re-registering the identical key works again.
    again = await store.add_key(user.user_id, keys[0], "", "", NOW)
    assert again.fingerprint == keys[0].fingerprint


async def test_s6_6_15_rename_key_and_name_taken_by_another_key(
    store: Store, keys: list[StoreKey]
) -> None:
    ann, _ = await store.create_user("ann@example.test", NOW)
    bob, _ = await store.create_user("bob@example.test", NOW)
    laptop = await store.add_key(ann.user_id, keys[0], "laptop", "", NOW)
    desk = await store.add_key(ann.user_id, keys[1], "desk", "", NOW)
    bobs = await store.add_key(bob.user_id, keys[2], "server", "", NOW)
    renamed = await store.rename_key(laptop.id, "travel")
    assert renamed is not None and renamed.name == "travel" and renamed.id == laptop.id
    with pytest.raises(NameTaken) as info:
        await store.rename_key(laptop.id, "desk")
    assert info.value.name == "desk"
    # Its own name and another user's key name are not conflicts.
    assert (await store.rename_key(desk.id, "desk")) is not None
    assert (await store.rename_key(laptop.id, "server")) is not None
    assert await store.key_by_id(bobs.id) == bobs
    assert await store.rename_key(desk.id + 100, "x") is None


async def test_s5_2_touch_key_used_moves_forward_only(store: Store, keys: list[StoreKey]) -> None:
    _, key = await store.create_user("ann@example.test", NOW, keys[0])
    assert key is not None
    day = 1_699_920_000
    await store.touch_key_used(key.id, day)
    assert await store.key_by_id(key.id) == dataclasses.replace(key, last_used_at=day)
    await store.touch_key_used(key.id, day - 86400)
    stored = await store.key_by_id(key.id)
    assert stored is not None and stored.last_used_at == day
    await store.touch_key_used(key.id, day + 86400)
    stored = await store.key_by_id(key.id)
    assert stored is not None and stored.last_used_at == day + 86400
    await store.touch_key_used(key.id + 100, day)  # a removed key is not an error


async def test_s6_6_16_add_generated_key_writes_key_and_handle_in_one_transaction(
    store: Store, keys: list[StoreKey]
) -> None:
    user, _ = await store.create_user("ann@example.test", NOW)
    row = await store.add_generated_key(
        user.user_id, keys[0], "api-key", '{"cmds":["ls"]}', "ABCD", "aa" * 32, b"s1", NOW + 60, NOW
    )
    assert (row.name, row.permissions, row.api_key_hint) == ("api-key", '{"cmds":["ls"]}', "ABCD")
    assert await store.exe1_lookup("aa" * 32, NOW) == b"s1"
    # The generated key does not use the key counter.
    refreshed = await store.get_user(user.user_id)
    assert refreshed is not None and refreshed.next_ssh_key_number == 1

    before = await dump_tables(store)
    with pytest.raises(NameTaken):
        await store.add_generated_key(
            user.user_id, keys[1], "api-key", "", "WXYZ", "bb" * 32, b"s2", NOW + 60, NOW
        )
    with pytest.raises(KeyTaken) as info:
        await store.add_generated_key(
            user.user_id, keys[0], "other", "", "WXYZ", "cc" * 32, b"s3", NOW + 60, NOW
        )
    assert info.value.owner_user_id == user.user_id
    with pytest.raises(UserNotFound):
        await store.add_generated_key(
            "usr0000000000000000", keys[2], "x", "", "WXYZ", "dd" * 32, b"s4", NOW + 60, NOW
        )
    assert await dump_tables(store) == before


# -- exe1 handles (docs/tokens.md#exe1-tokens, docs/tokens.md#exe1-resolution, docs/storage.md#nothing-usable-at-rest) ------------------------------------------------------


async def test_s1_9_exe1_lookup_is_live_while_now_le_expires_at(store: Store) -> None:
    assert await store.exe1_put("ab" * 32, b"sealed", NOW, NOW - 10) is True
    assert await store.exe1_lookup("ab" * 32, NOW - 1) == b"sealed"
    assert await store.exe1_lookup("ab" * 32, NOW) == b"sealed"
    assert await store.exe1_lookup("ab" * 32, NOW + 1) is None
    assert await store.exe1_lookup("cd" * 32, NOW) is None


async def test_s9_2_exe1_put_replaces_only_an_expired_row(store: Store) -> None:
    assert await store.exe1_put("ab" * 32, b"old", NOW, NOW - 10)
    # Live (expires_at == now): kept.
    assert await store.exe1_put("ab" * 32, b"new", NOW + 100, NOW) is False
    assert await store.exe1_lookup("ab" * 32, NOW) == b"old"
    # Expired: replaced.
    assert await store.exe1_put("ab" * 32, b"new", NOW + 100, NOW + 1) is True
    assert await store.exe1_lookup("ab" * 32, NOW + 50) == b"new"
    rows = (await dump_tables(store))["exe1_tokens"]
    assert rows == [("ab" * 32, b"new", NOW + 100, NOW + 1)]


async def test_s9_2_exe1_purge_expired(store: Store) -> None:
    await store.exe1_put("ab" * 32, b"a", NOW - 1, NOW - 10)
    await store.exe1_put("cd" * 32, b"b", NOW, NOW - 10)
    assert await store.exe1_purge_expired(NOW) == 1
    assert await store.exe1_lookup("cd" * 32, NOW) == b"b"
    assert len((await dump_tables(store))["exe1_tokens"]) == 1


# -- VMs and shares (docs/accounts.md#vms, docs/ssh.md#ls to docs/ssh.md#share-remove) --------


async def test_s5_6_create_vm_and_lookups(store: Store) -> None:
    ann, _ = await store.create_user("ann@example.test", NOW)
    vm = await store.create_vm("web", ann.user_id, "http://127.0.0.1:8000", ["b", "a", "b"], NOW)
    assert (vm.name, vm.owner_user_id, vm.upstream, vm.share, vm.tags, vm.created_at) == (
        "web",
        ann.user_id,
        "http://127.0.0.1:8000",
        "private",
        ("a", "b"),
        NOW,
    )
    assert await store.vm_by_name("web") == vm
    assert await store.vm_by_id(vm.id) == vm
    assert await store.vm_by_name("nope") is None
    plain = await store.create_vm("plain", ann.user_id, "http://127.0.0.1", [], NOW)
    assert plain.tags == ()
    # docs/storage.md#schema: tags stored as a sorted compact JSON array.
    stored = {row[1]: row[5] for row in (await dump_tables(store))["vms"]}
    assert stored == {"web": '["a","b"]', "plain": "[]"}


async def test_s5_4_vm_names_are_unique_across_owners(store: Store) -> None:
    ann, _ = await store.create_user("ann@example.test", NOW)
    bob, _ = await store.create_user("bob@example.test", NOW)
    await store.create_vm("web", ann.user_id, "http://127.0.0.1", [], NOW)
    with pytest.raises(NameTaken) as info:
        await store.create_vm("web", bob.user_id, "http://127.0.0.1", [], NOW)
    assert info.value.name == "web"
    with pytest.raises(UserNotFound):
        await store.create_vm("other", "usr0000000000000000", "http://127.0.0.1", [], NOW)
    assert [vm.name for vm in await store.vms_of_owner(bob.user_id)] == []


async def test_s6_6_3_vms_of_owner_sorted_by_name_code_point_order(store: Store) -> None:
    ann, _ = await store.create_user("ann@example.test", NOW)
    bob, _ = await store.create_user("bob@example.test", NOW)
    names = ["ab", "a-c", "a1", "b", "a-b"]
    for name in names:
        await store.create_vm(name, ann.user_id, "http://127.0.0.1", [], NOW)
    await store.create_vm("zz", bob.user_id, "http://127.0.0.1", [], NOW)
    assert [vm.name for vm in await store.vms_of_owner(ann.user_id)] == sorted(names)


async def test_s6_6_7_set_upstream_and_share_mode(store: Store) -> None:
    ann, _ = await store.create_user("ann@example.test", NOW)
    vm = await store.create_vm("web", ann.user_id, "http://127.0.0.1", [], NOW)
    moved = await store.set_vm_upstream(vm.id, "http://127.0.0.1:9000")
    assert moved is not None and moved.upstream == "http://127.0.0.1:9000"
    public = await store.set_vm_share(vm.id, "public")
    assert public is not None and public.share == "public"
    assert (await store.set_vm_share(vm.id, "public")) == public
    with pytest.raises(ValueError):
        await store.set_vm_share(vm.id, "shared")
    assert await store.set_vm_upstream(vm.id + 100, "http://127.0.0.1") is None
    assert await store.set_vm_share(vm.id + 100, "private") is None


async def test_s6_6_10_shares_order_duplicates_and_removal(store: Store) -> None:
    ann, _ = await store.create_user("ann@example.test", NOW)
    vm = await store.create_vm("web", ann.user_id, "http://127.0.0.1", [], NOW)
    other = await store.create_vm("other", ann.user_id, "http://127.0.0.1", [], NOW)
    first = await store.add_share(vm.id, "zed@example.test", ann.user_id, "hi", NOW)
    await store.add_share(vm.id, "bob@example.test", ann.user_id, None, NOW + 5)
    await store.add_share(vm.id, "amy@example.test", ann.user_id, None, NOW + 5)
    assert (first.vm_id, first.email, first.shared_by_user_id, first.message, first.created_at) == (
        vm.id,
        "zed@example.test",
        ann.user_id,
        "hi",
        NOW,
    )
    shares = await store.shares_of_vm(vm.id)
    assert [s.email for s in shares] == ["zed@example.test", "amy@example.test", "bob@example.test"]
    assert shares[0] == first
    with pytest.raises(AlreadyShared) as info:
        await store.add_share(vm.id, "bob@example.test", ann.user_id, "again", NOW + 9)
    assert (info.value.vm_id, info.value.email) == (vm.id, "bob@example.test")
    with pytest.raises(VMNotFound):
        await store.add_share(vm.id + 100, "bob@example.test", ann.user_id, None, NOW)
    # The same email on another VM is a different share.
    await store.add_share(other.id, "bob@example.test", ann.user_id, None, NOW)
    assert await store.is_shared_with(vm.id, "bob@example.test")
    assert await store.remove_share(vm.id, "bob@example.test") is True
    assert await store.remove_share(vm.id, "bob@example.test") is False
    assert not await store.is_shared_with(vm.id, "bob@example.test")
    assert await store.is_shared_with(other.id, "bob@example.test")


async def test_s6_6_5_delete_vm_deletes_its_shares(store: Store) -> None:
    ann, _ = await store.create_user("ann@example.test", NOW)
    vm = await store.create_vm("web", ann.user_id, "http://127.0.0.1", [], NOW)
    await store.add_share(vm.id, "bob@example.test", ann.user_id, None, NOW)
    assert await store.delete_vm(vm.id) is True
    assert await store.delete_vm(vm.id) is False
    assert await store.vm_by_name("web") is None
    assert (await dump_tables(store))["vm_shares"] == []
    # docs/ssh.md#rm: the name can be taken again, by anyone.
    again = await store.create_vm("web", ann.user_id, "http://127.0.0.1", [], NOW)
    assert await store.shares_of_vm(again.id) == []


async def test_s9_2_deleting_a_user_cascades_to_keys_vms_and_shares(
    store: Store, db_url: str, keys: list[StoreKey]
) -> None:
    ann, _ = await store.create_user("ann@example.test", NOW, keys[0])
    bob, _ = await store.create_user("bob@example.test", NOW, keys[1])
    vm = await store.create_vm("web", ann.user_id, "http://127.0.0.1", [], NOW)
    bobs_vm = await store.create_vm("bobs", bob.user_id, "http://127.0.0.1", [], NOW)
    await store.add_share(vm.id, "bob@example.test", ann.user_id, None, NOW)
    await store.add_share(bobs_vm.id, "carl@example.test", ann.user_id, None, NOW)
    await sql(db_url, f"DELETE FROM users WHERE user_id = '{ann.user_id}'")
    dump = await dump_tables(store)
    assert [row[1] for row in dump["ssh_keys"]] == [bob.user_id]
    assert [row[1] for row in dump["vms"]] == ["bobs"]
    # Both shares made by ann are gone: one with her VM, one through shared_by_user_id.
    assert dump["vm_shares"] == []


# -- concurrency (docs/storage.md#schema: read-then-increment in one transaction) -------------------------


async def test_s9_2_concurrent_add_key_on_one_store_gets_distinct_numbers(
    store: Store, keys: list[StoreKey]
) -> None:
    user, _ = await store.create_user("ann@example.test", NOW)
    added = await asyncio.gather(
        *(store.add_key(user.user_id, key, "", "", NOW) for key in keys[:20])
    )
    assert sorted(int(row.name.removeprefix("key-")) for row in added) == list(range(1, 21))
    refreshed = await store.get_user(user.user_id)
    assert refreshed is not None and refreshed.next_ssh_key_number == 21


async def test_s9_1_sqlite_two_stores_on_one_file_add_keys_concurrently(
    tmp_path: Path, keys: list[StoreKey]
) -> None:
    url = f"sqlite:///{tmp_path / 'sshmint.db'}"
    first, second = await Store.open(url), await Store.open(url)
    try:
        user, _ = await first.create_user("ann@example.test", NOW)
        added = await asyncio.gather(
            *(
                (first if index % 2 else second).add_key(user.user_id, key, "", "", NOW)
                for index, key in enumerate(keys[:20])
            )
        )
    finally:
        await first.close()
        await second.close()
    assert sorted(int(row.name.removeprefix("key-")) for row in added) == list(range(1, 21))


async def test_s9_2_sqlite_write_transactions_take_the_write_lock_before_reading(
    tmp_path: Path, keys: list[StoreKey]
) -> None:
    # A deferred transaction that reads and then writes fails with "database is locked"
    # when another connection commits in between; BEGIN IMMEDIATE rules that out.
    store = await Store.open(f"sqlite:///{tmp_path / 'sshmint.db'}")
    begins: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_rest: object) -> None:
        if statement.upper().startswith("BEGIN"):
            begins.append(statement)

    sa.event.listen(store._engine.sync_engine, "before_cursor_execute", record)
    try:
        user, key = await store.create_user("ann@example.test", NOW, keys[0])
        assert key is not None
        await store.get_user(user.user_id)
        await store.rename_key(key.id, "laptop")
    finally:
        await store.close()
    # Writes take the write lock up front; single-statement reads open no engine transaction.
    assert begins == ["BEGIN IMMEDIATE", "BEGIN IMMEDIATE"]


_WRITER = """
import asyncio, json, sys
from sshmint.server.store import Store

class Key:
    def __init__(self, openssh, fingerprint):
        self.openssh, self.fingerprint = openssh, fingerprint

async def main():
    url, user_id, key_list = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    store = await Store.open(url)
    print("ready", flush=True)
    sys.stdin.readline()
    rows = await asyncio.gather(*(store.add_key(user_id, Key(*k), "", "", 1) for k in key_list))
    await store.close()
    print(json.dumps([row.name for row in rows]), flush=True)

asyncio.run(main())
"""


async def test_s9_1_sqlite_two_processes_write_concurrently_without_lock_errors(
    tmp_path: Path, keys: list[StoreKey]
) -> None:
    url = f"sqlite:///{tmp_path / 'sshmint.db'}"
    store = await Store.open(url)
    try:
        user, _ = await store.create_user("ann@example.test", NOW)
        theirs = [[key.openssh, key.fingerprint] for key in keys[10:20]]
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _WRITER,
            url,
            user.user_id,
            json.dumps(theirs),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert proc.stdin is not None and proc.stdout is not None
        try:
            assert await asyncio.wait_for(proc.stdout.readline(), 60) == b"ready\n"
            proc.stdin.write(b"go\n")
            await proc.stdin.drain()
            ours = await asyncio.gather(
                *(store.add_key(user.user_id, key, "", "", NOW) for key in keys[:10])
            )
            out, err = await asyncio.wait_for(proc.communicate(), 60)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        assert proc.returncode == 0, err.decode()
        names = [row.name for row in ours] + json.loads(out)
        assert sorted(int(name.removeprefix("key-")) for name in names) == list(range(1, 21))
    finally:
        await store.close()


# -- faults (StoreUnavailable) -------------------------------------------------------------------


async def test_s9_sqlite_open_in_missing_directory_is_store_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "missing" / "sshmint.db"
    with pytest.raises(StoreUnavailable) as info:
        await Store.open(f"sqlite:///{path}")
    message = str(info.value)
    assert str(path) in message and "No such file or directory" in message
    assert "\n" not in message
    assert not path.parent.exists()


def test_s9_sqlite_failed_open_leaves_no_thread_behind_its_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A failed open ends with nothing still due on the event loop: each short-lived loop
    # here (as in one `sshmint admin` run) closes right after the error, and no worker
    # thread may then try to report to it ("Event loop is closed", seen in 4 of 100 runs
    # before the path was opened up front).
    errors: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: errors.append(args.exc_value))
    path = tmp_path / "missing" / "sshmint.db"

    async def open_once() -> None:
        with pytest.raises(StoreUnavailable):
            await Store.open(f"sqlite:///{path}")

    for _ in range(50):
        asyncio.run(open_once())
    time.sleep(0.5)  # a straggling thread would report by now
    assert errors == []


async def test_s9_postgres_down_is_store_unavailable_and_the_store_recovers(
    postgres: PostgresServer, keys: list[StoreKey]
) -> None:
    server = postgres
    if server.data_dir is None:
        pytest.skip("an external PostgreSQL server (SSHMINT_TEST_PG_URL) cannot be stopped here")
    url = server.new_database()
    store = await Store.open(url)
    try:
        user, _ = await store.create_user("ann@example.test", NOW)
        server.stop()
        try:
            with pytest.raises(StoreUnavailable) as info:
                await store.get_user(user.user_id)
            message = str(info.value)
            assert message.startswith("database unavailable (PostgreSQL ")
            assert "\n" not in message and "SELECT" not in message
            with pytest.raises(StoreUnavailable):
                await store.add_key(user.user_id, keys[0], "", "", NOW)
            with pytest.raises(StoreUnavailable):
                await store.ping()
            with pytest.raises(StoreUnavailable):
                await Store.open(url)
        finally:
            server.start()
        await store.ping()
        assert await store.get_user(user.user_id) == user
        added = await store.add_key(user.user_id, keys[0], "", "", NOW)
        assert added.name == "key-1"
    finally:
        await store.close()
