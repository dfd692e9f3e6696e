"""Revocations in the store (docs/lifecycle.md#revoking-one-token): honoured at once by
every node, and checked without a round trip of their own — the key lookup carries them.

Proof by counting: on PostgreSQL the round trips the store sends (a relay reading the wire
protocol, :class:`PostgresRoundTrips`), on SQLite the statements it runs
(:class:`SQLiteStatements`). Authenticating an exe0 token costs exactly one, whether or not
any token is revoked, and a revoked token is refused by that same one.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from pathlib import Path

import pytest

from sshmint.errors import TokenVerificationError
from sshmint.server.auth import Authenticator, token_digest
from sshmint.server.auth.exe1 import derive_exe1, exe1_hash, seal
from sshmint.server.store import Store
from sshmint.signing import generate_ed25519
from sshmint.token import mint_exe0
from tests.support.postgres import PostgresServer
from tests.support.round_trips import PostgresRoundTrips, SQLiteStatements

NOW = 1_900_000_000
API = "v0@localhost"


@pytest.fixture
async def stores(db_url: str) -> AsyncIterator[tuple[Store, Store]]:
    """Two stores on one database: two nodes (or a node and ``sshmint admin``)."""
    first, second = await Store.open(db_url), await Store.open(db_url)
    try:
        yield first, second
    finally:
        await first.close()
        await second.close()


async def _user_with_tokens(store: Store, count: int) -> tuple[str, str, list[str]]:
    """A user with one key; ``count`` exe0 tokens of that key. Returns (user, fp, tokens)."""
    signer = generate_ed25519()
    user, key = await store.create_user(
        f"u{signer.public_key.fingerprint[:8]}@example.test", NOW, key=signer.public_key
    )
    assert key is not None
    tokens = [mint_exe0(f'{{"exp":{NOW + 3600 + i}}}'.encode(), signer, API) for i in range(count)]
    return user.user_id, key.fingerprint, tokens


async def test_s14_1_every_node_sees_a_revocation_at_once(stores: tuple[Store, Store]) -> None:
    """Node B reads the token (SQLite: its fast reader may give the answer again), node A
    revokes it, and B's next read says so: any commit drops every remembered answer."""
    node_a, node_b = stores
    user_id, fingerprint, (token, other) = await _user_with_tokens(node_a, 2)
    digest = token_digest(token)
    for _ in range(2):
        found = await node_b.token_lookup(fingerprint, digest)
        assert found is not None and found[2] is None
        caller = await node_b.caller_lookup(fingerprint, digest)
        assert caller is not None and caller[2] is None
    assert await node_a.revoke_token(digest, user_id, fingerprint, NOW + 3600, NOW + 7)
    assert not await node_a.revoke_token(digest, user_id, fingerprint, NOW + 3600, NOW + 9)
    found = await node_b.token_lookup(fingerprint, digest)
    assert found is not None and found[2] == NOW + 7
    caller = await node_b.caller_lookup(fingerprint, digest)
    assert caller is not None and caller[2] == NOW + 7
    # The key and its other tokens are untouched.
    untouched = await node_b.token_lookup(fingerprint, token_digest(other))
    assert untouched is not None and untouched[2] is None
    # Through the whole path on node B, exe0 and an exe1 for it alike.
    secret = await node_a.exe1_secret()
    exe1 = derive_exe1(secret, token)
    assert await node_a.exe1_put(exe1_hash(exe1), seal(exe1, token), NOW + 3600, NOW)
    auth = Authenticator(node_b, lambda: NOW, logging.getLogger("test"))
    for bearer in (token, exe1):
        with pytest.raises(TokenVerificationError) as info:
            await auth.authenticate(bearer, API, with_user_keys=bearer is token)
        assert info.value.cause == "revoked"
    assert (await auth.authenticate(other, API)).user.user_id == user_id


async def test_s14_1_purge_deletes_only_revocations_of_expired_tokens(
    stores: tuple[Store, Store],
) -> None:
    store, _ = stores
    user_id, fingerprint, tokens = await _user_with_tokens(store, 3)
    for token, exp in zip(tokens, (NOW - 1, NOW, None), strict=True):
        await store.revoke_token(token_digest(token), user_id, fingerprint, exp, NOW - 100)
    assert await store.revocation_purge_expired(NOW) == 1
    kept = await store.revocations_of_user(user_id, NOW)
    assert {r.exp for r in kept} == {NOW, None}


Measure = Callable[[Callable[[], Awaitable[object]]], Awaitable[int]]


async def _check_one_read_per_token(store: Store, measure: Measure) -> None:
    """The counts every backend must show (``measure(call)`` is what ``call`` cost)."""
    user_id, fingerprint, (token, revoked, spare) = await _user_with_tokens(store, 3)
    auth = Authenticator(store, lambda: NOW, logging.getLogger("test"))
    secret = await store.exe1_secret()
    exe1 = derive_exe1(secret, spare)
    await store.exe1_put(exe1_hash(exe1), seal(exe1, spare), NOW + 3600, NOW)

    async def exec_path(bearer: str) -> object:
        return await auth.authenticate(bearer, API, with_user_keys=True)

    async def proxy_path(bearer: str) -> object:
        return await auth.authenticate(bearer, API)

    for path in (exec_path, proxy_path):  # warm up: last_used_at, prepared statements
        await path(token)
        await path(exe1)
    before = [await measure(partial(path, token)) for path in (exec_path, proxy_path)]
    assert before == [1, 1]
    assert await measure(lambda: exec_path(exe1)) == 2  # the handle, then the key
    await store.revoke_token(token_digest(revoked), user_id, fingerprint, None, NOW)

    async def refused(bearer: str) -> object:
        with pytest.raises(TokenVerificationError) as info:
            await exec_path(bearer)
        return info.value.cause

    # With a revocation in the table: still one, for a valid token and a revoked one.
    assert [await measure(partial(path, token)) for path in (exec_path, proxy_path)] == before
    assert await measure(lambda: refused(revoked)) == 1
    assert await refused(revoked) == "revoked"


async def test_s14_1_revocation_check_costs_no_round_trip_postgresql(
    postgres: PostgresServer,
) -> None:
    async with PostgresRoundTrips(postgres.new_database()) as relay:
        store = await Store.open(relay.url)
        try:

            async def round_trips(call: Callable[[], Awaitable[object]]) -> int:
                start = relay.count
                await call()
                return relay.count - start

            await _check_one_read_per_token(store, round_trips)
        finally:
            await store.close()


async def test_s14_1_revocation_check_costs_no_statement_sqlite(tmp_path: Path) -> None:
    store = await Store.open(f"sqlite:///{tmp_path}/sshmint.db")
    try:
        counter = SQLiteStatements(store)
        await store.create_user("bystander@example.test", NOW)
        flips = iter(range(1_000_000))

        async def reads(call: Callable[[], Awaitable[object]]) -> int:
            # Each call reads afresh: commit a change first (the fast reader then drops
            # every remembered answer, fastread.py), as any write by any node would.
            await store.set_locked("bystander@example.test", next(flips) % 2 == 0)
            async with counter.attached():
                start = len(counter.reads())
                await call()
                made = counter.reads()[start:]
            assert all("token_revocations" in s or "exe1_tokens" in s for s in made), made
            return len(made)

        await _check_one_read_per_token(store, reads)
    finally:
        await store.close()
