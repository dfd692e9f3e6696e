"""Sequential ``ssh HOST whoami`` round trips per second with the real OpenSSH client.

Each round trip is a whole ``ssh`` run: process start, TCP, key exchange, public-key auth,
one exec request. Two servers are measured back to back for about ten seconds each (at most
2000 sessions):

- the baseline: a bare asyncssh server in this interpreter's environment that accepts any
  key and answers every exec with one line (with the same ``TCP_QUICKACK`` re-arming as
  sshmint), i.e. the cost of the SSH transport and the client alone;
- ``sshmint serve`` on SQLite with one registered Ed25519 key, running ``whoami`` (key and
  user lookups, last-used day, the command itself).

It prints both rates, sshmint's ratio to the baseline, and its ratio to the 50/s target.
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
    "-T",
]  # fmt: skip

BASELINE_SERVER = """
import asyncio, socket, sys
import asyncssh

class Server(asyncssh.SSHServer):
    def connection_made(self, conn):
        sock = conn.get_extra_info("socket")
        original = conn.data_received
        def data_received(data, datatype=None):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
            original(data, datatype)
        conn.data_received = data_received
    def begin_auth(self, username):
        return True
    def public_key_auth_supported(self):
        return True
    def validate_public_key(self, username, key):
        return True

async def handle(process):
    process.stdout.write("baseline\\n")
    process.exit(0)

async def main():
    key = asyncssh.generate_private_key("ssh-ed25519")
    server = await asyncssh.listen("127.0.0.1", 0, server_host_keys=[key],
                                   server_factory=Server, process_factory=handle)
    print(f"ssh listening on 127.0.0.1:{server.sockets[0].getsockname()[1]}", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


def _wait_for_port(proc: subprocess.Popen[bytes], out_path: Path, err_path: Path) -> int:
    """The port of the ``ssh listening on HOST:PORT`` line, once every listener is up."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        text = out_path.read_text()
        match = re.search(r"^ssh listening on \S+:(\d+)$", text, re.M)
        if match and (
            (isinstance(proc.args, list) and proc.args[0] == sys.executable)
            or "http listening" in text
        ):
            return int(match.group(1))
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"server did not start: {err_path.read_text()[-2000:]}")


def _start(
    argv: list[str], base: Path, name: str, env: dict[str, str]
) -> tuple[subprocess.Popen[bytes], int]:
    out_path, err_path = base / f"{name}.out", base / f"{name}.err"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env)
    return proc, _wait_for_port(proc, out_path, err_path)


def _rate(argv: list[str], env: dict[str, str]) -> tuple[int, float]:
    for _ in range(3):  # warm-up: imports, first database connection
        subprocess.run(argv, check=True, capture_output=True, env=env)
    count = 0
    started = time.perf_counter()
    while count < MAX_SESSIONS and time.perf_counter() - started < DURATION_SECONDS:
        subprocess.run(argv, check=True, capture_output=True, env=env, timeout=30)
        count += 1
    return count, time.perf_counter() - started


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
        servers = {
            "baseline": [sys.executable, "-c", BASELINE_SERVER],
            "sshmint": [str(SSHMINT), "serve", "--data-dir", str(data_dir),
                        "--ssh-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"],
        }  # fmt: skip
        rates: dict[str, float] = {}
        for name, server_argv in servers.items():
            proc, port = _start(server_argv, base, name, env)
            try:
                ssh = ["ssh", *SSH_OPTIONS, "-i", str(key), "-p", str(port), "bench@127.0.0.1"]
                count, elapsed = _rate([*ssh, "whoami"], env)
            finally:
                proc.terminate()
                proc.wait(30)
            rates[name] = count / elapsed
            print(f"   {name:8} ssh whoami: {count} in {elapsed:.1f} s = {rates[name]:.1f}/s")
    print(f"   sshmint / bare asyncssh baseline: {rates['sshmint'] / rates['baseline']:.2f}x")
    print(
        f"   sshmint / target {TARGET_PER_SECOND:.0f}/s: "
        f"{rates['sshmint'] / TARGET_PER_SECOND:.2f}x"
    )


if __name__ == "__main__":
    main()
