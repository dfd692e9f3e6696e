"""Bodies stream through the proxy (docs/proxy.md#what-the-upstream-receives "no size limit, no full buffering"): a 1 GiB
upload leaves the server's peak memory within 64 MiB of where it started."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.exec_support import assert_ok, post_exec
from tests.support.harness import SSHMintServer
from tests.support.http_support import RecordingUpstream
from tests.support.keys import Account

GIB = 1024**3
MIB = 1024**2


@pytest.fixture(scope="module")
def live(sqlite_server: SSHMintServer) -> SSHMintServer:
    """SQLite only (overrides the two-backend fixture of conftest.py)."""
    return sqlite_server


@pytest.fixture(scope="module")
def upstream() -> Iterator[RecordingUpstream]:
    server = RecordingUpstream().start()
    yield server
    server.stop()


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"{field} missing from /proc/{pid}/status")


def test_s87_a_1_gib_upload_is_streamed_not_buffered(
    live: SSHMintServer, account: Account, upstream: RecordingUpstream
) -> None:
    assert live.proc is not None
    pid = live.proc.pid
    vm = "bulk" + uuid.uuid4().hex[:8]
    assert_ok(
        post_exec(
            live, f"new --name={vm} --upstream={upstream.url}".encode(), token=account.token()
        )
    )
    token = account.token(namespace=f"v0@{vm}.localhost")
    # Reset the peak-RSS mark so VmHWM measures this upload only.
    with open(f"/proc/{pid}/clear_refs", "w") as refs:
        refs.write("5")
    before = _status_kib(pid, "VmRSS") * 1024
    host = f"{vm}.localhost"
    command = (
        f"head -c {GIB} /dev/zero | curl -sS --fail --max-time 300 -T - "
        f"--resolve {host}:{live.http_port}:{live.http_host} "
        f"-H 'Authorization: Bearer {token}' http://{host}:{live.http_port}/sink"
    )
    result = subprocess.run(
        ["bash", "-o", "pipefail", "-c", command], capture_output=True, timeout=330
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == str(GIB).encode()
    assert upstream.sunk[-1] == GIB
    peak = _status_kib(pid, "VmHWM") * 1024
    print(f"server RSS {before / MIB:.1f} MiB, peak during the upload {peak / MIB:.1f} MiB")
    assert peak - before < 64 * MIB, f"RSS grew by {(peak - before) / MIB:.1f} MiB"
