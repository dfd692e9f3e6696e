"""The load-balancer examples of the README ("Run several nodes"), run as they are shipped
(``examples/nginx.conf``, ``examples/haproxy.cfg``; only addresses, ports and file paths
replaced) in front of two real nodes (docs/operations.md#several-nodes)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.balancers import Balancer
from tests.support.cluster import Cluster, carrier_of, exec_on, ssh_via
from tests.support.http_support import RecordingUpstream
from tests.support.keys import Account
from tests.support.polling import wait_until


@pytest.fixture(scope="module")
def upstream() -> Iterator[RecordingUpstream]:
    backend = RecordingUpstream().start()
    try:
        yield backend
    finally:
        backend.stop()


def _vm(cluster: Cluster, member: Account, upstream: RecordingUpstream) -> str:
    """A private VM of ``member`` on ``upstream``, made through node A."""
    name = f"vm{uuid.uuid4().hex[:8]}"
    made = cluster.a.ssh(member.key, "new", f"--name={name}", f"--upstream={upstream.url}")
    assert made.returncode == 0, made.stderr
    return name


def _proxied(balancer: Balancer, member: Account, vm: str, path: str) -> httpx.Response:
    token = member.token(namespace=f"v0@{vm}.localhost")
    return httpx.get(
        f"{balancer.http_url}{path}",
        headers={
            "Host": f"{vm}.localhost:{balancer.http_port}",
            "Authorization": f"Bearer {token}",
        },
        timeout=10,
    )


def _known_hosts(cluster: Cluster, balancer: Balancer, directory: Path) -> Path:
    """The one host key, pinned for the balancer's SSH port."""
    path = directory / "known_hosts"
    path.write_text(f"[127.0.0.1]:{balancer.ssh_port} {cluster.host_public_key}\n")
    return path


def _ssh_answers(port: int, member: Account, known_hosts: Path) -> bool:
    """One SSH command answers within 3 seconds (a hung node never would)."""
    try:
        return ssh_via(port, member, known_hosts, "whoami", timeout=3).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def _served_through(
    cluster: Cluster, balancer: Balancer, member: Account, vm: str, known_hosts: Path
) -> None:
    """/healthz, /exec, a proxied VM request and an SSH command, each twice (a round-robin
    balancer sends the second of each to the other node while both are up)."""
    for _ in range(2):
        health = httpx.get(f"{balancer.http_url}/healthz", timeout=10)
        assert (health.status_code, health.json()) == (200, {"status": "ok"})
        executed = exec_on(balancer.http_url, member.token())
        assert executed.status_code == 200, executed.text
        assert executed.json()["email"] == member.email
        proxied = _proxied(balancer, member, vm, "/hello")
        assert (proxied.status_code, proxied.text) == (200, "upstream saw GET /hello")
        # Strict host-key checking against the one pinned key: any node may answer.
        ssh = ssh_via(balancer.ssh_port, member, known_hosts, "whoami")
        assert ssh.returncode == 0, ssh.stderr
        assert member.email in ssh.stdout


def test_s12_nginx_example_serves_exec_vms_healthz_and_ssh_from_both_nodes(
    cluster: Cluster,
    nginx_lb: Balancer,
    member: Account,
    upstream: RecordingUpstream,
    tmp_path: Path,
) -> None:
    vm = _vm(cluster, member, upstream)
    _served_through(cluster, nginx_lb, member, vm, _known_hosts(cluster, nginx_lb, tmp_path))
    assert "[emerg]" not in nginx_lb.log()


def test_s12_nginx_a_node_killed_mid_stream_leaves_later_requests_to_the_other(
    cluster: Cluster, nginx_lb: Balancer, member: Account, tmp_path: Path
) -> None:
    """A response streams from a VM through nginx and one node; that node is killed
    (SIGKILL) in the middle: the stream ends unfinished, and every later request — the
    API, the VM, /healthz, SSH through the stream module — is served by the other node."""
    # An upstream of its own: the one connection to it is the stream's.
    upstream = RecordingUpstream().start()
    try:
        _killed_mid_stream(cluster, nginx_lb, member, upstream, tmp_path)
    finally:
        upstream.stop()


def _killed_mid_stream(
    cluster: Cluster,
    nginx_lb: Balancer,
    member: Account,
    upstream: RecordingUpstream,
    tmp_path: Path,
) -> None:
    vm = _vm(cluster, member, upstream)
    known_hosts = _known_hosts(cluster, nginx_lb, tmp_path)
    token = member.token(namespace=f"v0@{vm}.localhost")
    headers = {"Host": f"{vm}.localhost:{nginx_lb.http_port}", "Authorization": f"Bearer {token}"}
    received = b""
    try:
        with (
            httpx.Client(timeout=10) as client,
            client.stream("GET", f"{nginx_lb.http_url}/stream", headers=headers) as response,
        ):
            assert response.status_code == 200
            chunks = response.iter_raw()
            received = next(chunks)
            assert received.startswith(b"first chunk")
            assert upstream.server is not None
            port = upstream.server.port
            assert wait_until(lambda: carrier_of(cluster.nodes, port) is not None, timeout=5)
            carrier = carrier_of(cluster.nodes, port)
            assert carrier is not None
            carrier.kill()
            upstream.release()  # too late: the node relaying it is gone
            with contextlib.suppress(httpx.HTTPError):
                for chunk in chunks:
                    received += chunk
    finally:
        upstream.release()
    assert b"second chunk" not in received
    survivor = cluster.b if carrier is cluster.a else cluster.a
    assert survivor.running and not carrier.running
    _served_through(cluster, nginx_lb, member, vm, known_hosts)


@pytest.mark.timeout(60)
def test_s12_haproxy_example_takes_a_hung_node_out_by_its_healthz(
    cluster: Cluster,
    haproxy_lb: Balancer,
    member: Account,
    upstream: RecordingUpstream,
    tmp_path: Path,
) -> None:
    """docs/http-api.md#get-healthz as the balancer's check: node A stops answering
    (SIGSTOP: a hung host, its sockets open). HAProxy's active check of /healthz takes it
    out within seconds, after which every request — HTTP and SSH — is served by node B
    without waiting. Round robin without the check would send every other one to A, to
    hang there."""
    vm = _vm(cluster, member, upstream)
    known_hosts = _known_hosts(cluster, haproxy_lb, tmp_path)
    hung = cluster.a
    assert hung.proc is not None
    os.kill(hung.proc.pid, signal.SIGSTOP)
    try:
        streak: list[float] = []

        def answered_in_time() -> bool:
            started = time.monotonic()
            try:
                ok = httpx.get(f"{haproxy_lb.http_url}/healthz", timeout=1).status_code == 200
            except httpx.TimeoutException:
                ok = False
            streak[:] = [*streak, time.monotonic() - started] if ok else []
            return len(streak) >= 6

        assert wait_until(answered_in_time, timeout=15, interval=0.01), haproxy_lb.log()
        assert wait_until(
            lambda: _ssh_answers(haproxy_lb.ssh_port, member, known_hosts), timeout=15
        )
        _served_through(cluster, haproxy_lb, member, vm, known_hosts)
    finally:
        os.kill(hung.proc.pid, signal.SIGCONT)
