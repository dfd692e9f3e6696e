"""Sequential ``ssh HOST whoami`` round trips per second with the real OpenSSH client.

Starts its own ``sshmint serve`` (SQLite, free ports, a temporary data directory), registers
one Ed25519 key through ``sshmint admin``, then runs ``ssh ... whoami`` back to back for about
ten seconds (at most 2000 sessions) and prints the rate and its ratio to the 50/s target.
Each round trip is a full connection: TCP, key exchange, public-key auth, one exec request.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["main"]

TARGET_PER_SECOND = 50.0
DURATION_SECONDS = 10.0
MAX_SESSIONS = 2000
SSHMINT = Path(sys.executable).parent / "sshmint"
SSH_OPTIONS = [
    "-F", "/dev/null",
    "-o", "IdentitiesOnly=yes",
    "-o", "StrictHostKeyChecking=no",
    "-o", "UserKnownHostsFile=/dev/null",
    "-o", "LogLevel=ERROR",
    "-o", "BatchMode=yes",
]  # fmt: skip


def _start_server(data_dir: Path, log: Path) -> tuple[subprocess.Popen[bytes], int]:
    out_path = data_dir.parent / "serve.out"
    with open(out_path, "wb") as out, open(log, "wb") as err:
        proc = subprocess.Popen(
            [str(SSHMINT), "serve", "--data-dir", str(data_dir),
             "--ssh-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"],
            stdout=out, stderr=err, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        match = re.search(r"^ssh listening on \S+:(\d+)$", out_path.read_text(), re.M)
        if match and "http listening" in out_path.read_text():
            return proc, int(match.group(1))
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"server did not start: {log.read_text()[-2000:]}")


def main() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SSHMINT_")}
    env.pop("SSH_AUTH_SOCK", None)
    with tempfile.TemporaryDirectory(prefix="sshmint-bench-") as tmp:
        base = Path(tmp)
        key = base / "id_ed25519"
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "bench", "-f", str(key)],
            check=True,
        )
        data_dir = base / "data"
        subprocess.run(
            [str(SSHMINT), "admin", "add-user", "bench@example.com",
             "--key-file", f"{key}.pub", "--data-dir", str(data_dir)],
            check=True, capture_output=True, env=env,
        )  # fmt: skip
        proc, port = _start_server(data_dir, base / "serve.err")
        argv = ["ssh", *SSH_OPTIONS, "-i", str(key), "-p", str(port), "bench@127.0.0.1", "whoami"]
        try:
            for _ in range(3):  # warm-up: imports, first database connection
                subprocess.run(argv, check=True, capture_output=True, env=env)
            count = 0
            started = time.perf_counter()
            while count < MAX_SESSIONS and time.perf_counter() - started < DURATION_SECONDS:
                subprocess.run(argv, check=True, capture_output=True, env=env, timeout=30)
                count += 1
            elapsed = time.perf_counter() - started
        finally:
            proc.terminate()
            proc.wait(30)
    rate = count / elapsed
    print(f"   ssh whoami round trips: {count} in {elapsed:.1f} s = {rate:.1f}/s")
    print(f"   ratio to target {TARGET_PER_SECOND:.0f}/s: {rate / TARGET_PER_SECOND:.2f}x")


if __name__ == "__main__":
    main()
