"""Two nodes on one PostgreSQL database agree on every change at once, and present one SSH
host key (docs/operations.md#several-nodes, R164, R166)."""

from __future__ import annotations

import httpx

from tests.support.cluster import Cluster, exec_on
from tests.support.harness import host_keys
from tests.support.keys import Account, KeyFactory
from tests.support.postgres import PostgresServer


def test_s12_nodes_started_at_once_on_an_empty_database_both_serve(
    cluster: Cluster, postgres: PostgresServer
) -> None:
    """The fixture starts both nodes together on an empty database: both come up, and the
    database records one schema version (the concurrent migration itself is
    tests/server/test_store.py's)."""
    cluster.ensure_running()
    for node in cluster.nodes:
        assert httpx.get(f"{node.http_url}/healthz", timeout=10).json() == {"status": "ok"}
    database = cluster.db_url.rsplit("/", 1)[1]
    assert postgres.psql("SELECT version_num FROM alembic_version", database).split() == ["0002"]


def test_r164_a_key_added_through_one_node_works_on_the_other_until_removed(
    cluster: Cluster, member: Account, fresh_key: KeyFactory
) -> None:
    """R164: a key added through node A authenticates on node B at once; after
    ``ssh-key remove`` through A, B refuses its exe0 token and the exe1 handle traded for
    it (through A) on the very next request."""
    key = fresh_key(comment="multi")
    pub = key.with_name(key.name + ".pub").read_text().strip()
    added = cluster.a.ssh(member.key, "ssh-key", "add", pub)
    assert added.returncode == 0, added.stderr
    signer = Account(member.email, key, member.user_id)
    exe0 = signer.token()
    assert exe_ok(cluster.b.http_url, exe0)["email"] == member.email
    traded = cluster.a.ssh(signer.key, "exe0-to-exe1", exe0)
    assert traded.returncode == 0, traded.stderr
    exe1 = traded.stdout.strip()
    assert exe_ok(cluster.b.http_url, exe1)["email"] == member.email

    removed = cluster.a.ssh(member.key, "ssh-key", "remove", "multi")
    assert removed.returncode == 0, removed.stderr
    for token in (exe0, exe1):
        refused = exec_on(cluster.b.http_url, token)
        assert refused.status_code == 401, refused.text
        assert refused.json()["error"].startswith("invalid token")


def test_s12_a_lock_made_through_one_node_holds_on_the_other(
    cluster: Cluster, member: Account
) -> None:
    token = member.token()
    assert exec_on(cluster.b.http_url, token).status_code == 200
    cluster.a.set_locked(member.email, True)  # as `sshmint admin lock-user` does
    try:
        assert exec_on(cluster.b.http_url, token).status_code == 401
    finally:
        cluster.a.set_locked(member.email, False)
    assert exec_on(cluster.b.http_url, token).status_code == 200


def test_r166_nodes_given_copies_of_one_key_present_one_host_key(cluster: Cluster) -> None:
    """R166: node A got its copy through ``--host-key``, node B through
    ``SSHMINT_HOST_KEY``; ``ssh-keyscan`` sees the shared key on both, and neither made a
    key of its own in its data directory."""
    cluster.ensure_running()
    shared = cluster.host_public_key
    for node in cluster.nodes:
        assert host_keys("127.0.0.1", node.ssh_port) == {shared}
        assert not (node.data_dir / "ssh_host_ed25519_key").exists()


def exe_ok(url: str, token: str) -> dict[str, object]:
    reply = exec_on(url, token)
    assert reply.status_code == 200, reply.text
    data = reply.json()
    assert isinstance(data, dict)
    return data
