"""Two ``sshmint serve`` nodes on one PostgreSQL database, as docs/operations.md#several-nodes
describes them, and the example balancers in front of them.

- ``cluster`` (session): :class:`Cluster` — nodes A and B on free ports chosen up front (a
  node that a test stopped restarts on the same ports, where the balancers expect it),
  sharing one database and copies of one SSH host key: A is given its copy with
  ``--host-key``, B with ``SSHMINT_HOST_KEY``. Both open at most :data:`POOL_SIZE`
  database connections (``--db-pool-size``). Tests that stop or freeze a node bring it
  back; every other test calls ``cluster.ensure_running()`` (the fixtures below do).
- ``nginx_lb`` / ``haproxy_lb`` (session): :class:`~tests.support.balancers.Balancer`
  running ``examples/nginx.conf`` / ``examples/haproxy.cfg`` against the two nodes.
- ``member``: a new user of the cluster with a fresh key (its own rate-limit bucket).

Helpers: :func:`exec_on` (``POST /exec`` with httpx), :func:`ssh_via` (the real ``ssh``
with strict host-key checking against the cluster's one key), :func:`carrier_of` (which
node process holds a connection to a port).
"""

from __future__ import annotations

import shutil
import subprocess
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.balancers import Balancer, NodePorts, haproxy, nginx
from tests.support.harness import SSH_OPTIONS, SSHMintServer, client_environment
from tests.support.keys import Account, AccountFactory
from tests.support.polling import free_port
from tests.support.postgres import PostgresServer

__all__ = [
    "POOL_SIZE",
    "Cluster",
    "carrier_of",
    "cluster",
    "exec_on",
    "haproxy_lb",
    "member",
    "nginx_lb",
    "ssh_via",
]

POOL_SIZE = 4  # each node's --db-pool-size


@dataclass
class Cluster:
    postgres: PostgresServer
    db_url: str
    host_key: Path  # the one key file the nodes were given copies of
    nodes: tuple[SSHMintServer, SSHMintServer]
    ports: tuple[NodePorts, NodePorts]

    @property
    def a(self) -> SSHMintServer:
        return self.nodes[0]

    @property
    def b(self) -> SSHMintServer:
        return self.nodes[1]

    @property
    def host_public_key(self) -> str:
        """``<type> <base64>`` of the shared host key."""
        kind, blob = self.host_key.with_name(self.host_key.name + ".pub").read_text().split()[:2]
        return f"{kind} {blob}"

    def ensure_running(self) -> None:
        start_all([node for node in self.nodes if not node.running])


def start_all(servers: Sequence[SSHMintServer]) -> None:
    """Start servers at once (each waits for its listening lines in a thread of its own)."""
    errors: list[BaseException] = []

    def start(server: SSHMintServer) -> None:
        try:
            server.start()
        except BaseException as exc:  # reported in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(server,)) for server in servers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


@pytest.fixture(scope="session")
def cluster(
    postgres: PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    base = tmp_path_factory.mktemp("cluster")
    host_key = base / "ssh_host_ed25519_key"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "cluster", "-f", str(host_key)],
        check=True,
    )
    db_url = postgres.new_database()
    nodes: list[SSHMintServer] = []
    ports: list[NodePorts] = []
    for name in ("a", "b"):
        copy = base / f"keys-{name}" / "host_key"
        copy.parent.mkdir()
        shutil.copy2(host_key, copy)  # mode 0600 kept
        port = NodePorts(http=free_port(), ssh=free_port())
        given = (
            (["--host-key", str(copy)], {})
            if name == "a"
            else ([], {"SSHMINT_HOST_KEY": str(copy)})
        )
        nodes.append(
            SSHMintServer(
                base / f"node-{name}" / "data",
                db_url,
                extra_args=[*given[0], "--db-pool-size", str(POOL_SIZE)],
                env=given[1],
                ssh_listen=f"127.0.0.1:{port.ssh}",
                http_listen=f"127.0.0.1:{port.http}",
            )
        )
        ports.append(port)
    group = Cluster(postgres, db_url, host_key, (nodes[0], nodes[1]), (ports[0], ports[1]))
    try:
        start_all(nodes)  # both on an empty database at once: exactly one migrates it
        yield group
    finally:
        for node in nodes:
            node.stop()


def _balancer(make: object, cluster: Cluster, run: Path) -> Iterator[Balancer]:
    assert callable(make)
    balancer: Balancer = make(cluster.ports, run)
    balancer.start()
    try:
        yield balancer
    finally:
        balancer.stop()


@pytest.fixture(scope="session")
def nginx_lb(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Balancer]:
    yield from _balancer(nginx, cluster, tmp_path_factory.mktemp("nginx"))


@pytest.fixture(scope="session")
def haproxy_lb(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Balancer]:
    yield from _balancer(haproxy, cluster, tmp_path_factory.mktemp("haproxy"))


@pytest.fixture
def member(cluster: Cluster, new_account: AccountFactory) -> Account:
    """A new user of the cluster (both nodes running)."""
    cluster.ensure_running()
    return new_account(cluster.a)


def exec_on(url: str, token: str, command: str = "whoami", timeout: float = 10) -> httpx.Response:
    """``POST <url>/exec`` with ``command`` as a bearer of ``token``."""
    return httpx.post(
        f"{url}/exec",
        headers={"Authorization": f"Bearer {token}"},
        content=command,
        timeout=timeout,
    )


def ssh_via(
    port: int, account: Account, known_hosts: Path, *words: str, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    """One ``ssh`` session to 127.0.0.1:``port`` that accepts only the host keys listed
    in ``known_hosts`` (strict checking); ``subprocess.TimeoutExpired`` after ``timeout``."""
    strict = [
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        f"UserKnownHostsFile={known_hosts}",
        "-o",
        "GlobalKnownHostsFile=/dev/null",
    ]
    # ssh keeps the first value given for an option: the strict ones come first.
    argv = ["ssh", *strict, *SSH_OPTIONS, "-T", "-i", str(account.key), "-p", str(port)]
    return subprocess.run(
        [*argv, "sshmint@127.0.0.1", *words],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=client_environment(),
    )


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    for fd in fd_dir.iterdir():
        try:
            target = fd.readlink().name
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def carrier_of(nodes: Sequence[SSHMintServer], remote_port: int) -> SSHMintServer | None:
    """The node whose process holds an established TCP connection to ``remote_port``
    (from /proc: its socket descriptors and the kernel's connection table)."""
    wanted = f"{remote_port:04X}"
    established = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[2].rsplit(":", 1)[1] == wanted and fields[3] == "01":
                established.add(fields[9])
    for node in nodes:
        if node.proc is not None and node.running and _socket_inodes(node.proc.pid) & established:
            return node
    return None
