"""HTTP API and VM proxy throughput with ``wrk`` against a real ``sshmint serve`` (SQLite).

Cases (each ~5 s, 2 wrk threads, 16 connections, loopback only):

- ``GET /healthz`` — the baseline (one database round trip per request);
- ``POST /exec whoami`` with a repeated exe0 token per key (signature check memoised);
- ``POST /exec whoami`` with a fresh exe0 token on every request (full signature check);
- ``POST /exec whoami`` with exe1 handles (one extra lookup + unseal per request);
- the proxy: small responses direct to a trivial upstream vs through an authenticated
  private VM, at 16 connections (req/s) and at 1 connection (added p50 latency); and 1 MiB
  streamed responses (MB/s).

Rate limiting (SPEC §7: 60-request burst per signing key, then 1/s) would otherwise turn
nearly every /exec request into a 429 after the first 60. So the setup registers
``KEYS`` users with one key each and spreads the requests across them (at most about 50
requests per key in a run), and every response status is counted: 429s and other non-200
answers are reported separately, and /exec req/s counts 200 responses only.

Targets (printed next to the numbers, never asserted): /exec with a repeated token ≥ 0.5×
/healthz req/s; proxy ≥ 0.3× direct req/s, < 0.3 ms added p50, ≥ 0.5× direct throughput
on 1 MiB responses.
"""

from __future__ import annotations

import asyncio
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["main"]

DURATION = "5s"
THREADS = 2
CONNECTIONS = 16
KEYS = 400  # users, one key each: ~50 requests per key per run stays under the burst of 60
FRESH_TOKENS = 30_000  # unique exe0 tokens for the "fresh token" case
VM = "benchvm"
BIG = 1024 * 1024

_UPSTREAM = r"""
import sys
from aiohttp import web
BIG = b"x" * (1024 * 1024)
async def small(request): return web.Response(text="ok\n")
async def big(request):
    response = web.StreamResponse()
    response.content_length = len(BIG)
    await response.prepare(request)
    for start in range(0, len(BIG), 65536):
        await response.write(BIG[start:start + 65536])
    await response.write_eof()
    return response
app = web.Application()
app.router.add_get("/", small)
app.router.add_get("/big", big)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
"""

# Cycles through the tokens file (arg 1); thread k of n (arg 2) starts at k and steps by n,
# so no two threads send the same token until the file wraps around. Counts statuses.
_LUA = r"""
local threads = {}
local next_id = 0
function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end
function init(args)
  tokens = {}
  for line in io.lines(args[1]) do tokens[#tokens + 1] = line end
  n = #tokens
  step = tonumber(args[2])
  i = id
  ok, limited, other, sent = 0, 0, 0, 0
end
function request()
  local token = tokens[(i % #tokens) + 1]
  i = i + step
  sent = sent + 1
  return wrk.format("POST", "/exec", {["Authorization"] = "Bearer " .. token}, "whoami")
end
function response(status, headers, body)
  if status == 200 then ok = ok + 1
  elseif status == 429 then limited = limited + 1
  else other = other + 1 end
end
function done(summary, latency, requests)
  local a, b, c, s, n = 0, 0, 0, 0, 0
  for _, t in ipairs(threads) do
    a = a + t:get("ok"); b = b + t:get("limited"); c = c + t:get("other"); s = s + t:get("sent")
    n = t:get("n")
  end
  io.write(string.format("STATUS ok=%d limited=%d other=%d sent=%d tokens=%d\n", a, b, c, s, n))
end
"""


@dataclass
class Result:
    rps: float
    p50_ms: float
    p99_ms: float
    transfer_mb: float
    ok: int | None = None
    limited: int | None = None
    other: int | None = None
    sent: int | None = None
    tokens: int | None = None
    duration_s: float = 5.0

    @property
    def ok_rps(self) -> float:
        """Requests per second counting 200 responses only (when statuses were counted)."""
        if self.ok is None or self.sent is None or self.sent == 0:
            return self.rps
        return self.rps * self.ok / self.sent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    print("   installing wrk (apt-get install -y wrk)", flush=True)
    subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=True, capture_output=True)
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("wrk is not available")
    return found


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}
_SIZES = {"B": 1 / 1024**2, "KB": 1 / 1024, "MB": 1.0, "GB": 1024.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    assert match, text
    return float(match.group(1)) * _UNITS[match.group(2)]


def _parse(output: str) -> Result:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", output, re.M).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", output, re.M).group(1))  # type: ignore[union-attr]
    transfer = re.search(r"Transfer/sec:\s+([\d.]+)(\w+)", output)
    mb = float(transfer.group(1)) * _SIZES[transfer.group(2)] if transfer else 0.0
    result = Result(rps, p50, p99, mb)
    status = re.search(r"STATUS ok=(\d+) limited=(\d+) other=(\d+) sent=(\d+) tokens=(\d+)", output)
    if status:
        result.ok, result.limited, result.other, result.sent, result.tokens = map(
            int, status.groups()
        )
    return result


def _wrk(
    wrk: str,
    url: str,
    *,
    headers: tuple[str, ...] = (),
    script: Path | None = None,
    script_args: tuple[str, ...] = (),
    threads: int = THREADS,
    connections: int = CONNECTIONS,
    duration: str = DURATION,
) -> Result:
    cmd = [
        wrk,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration}",
        "--latency",
        "--timeout",
        "10s",
    ]
    for header in headers:
        cmd += ["-H", header]
    if script is not None:
        cmd += ["-s", str(script)]
    cmd.append(url)
    if script_args:
        cmd += ["--", *script_args]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if run.returncode != 0:
        raise SystemExit(
            f"wrk failed ({run.returncode}): {run.stdout[-1500:]} {run.stderr[-1500:]}"
        )
    return _parse(run.stdout)


async def _populate(db_url: str, upstream_port: int, workdir: Path) -> dict[str, Path | str]:
    """Users, keys, tokens, exe1 handles and the VM, written straight into the store."""
    from sshmint.keys import generate_ed25519
    from sshmint.server.exe1 import derive_exe1, exe1_hash, seal
    from sshmint.server.store import Store
    from sshmint.token import mint_exe0

    now = int(time.time())
    store = await Store.open(db_url)
    try:
        secret = await store.exe1_secret()
        signers = [generate_ed25519() for _ in range(KEYS)]
        users = []
        repeated, handles = [], []
        for index, signer in enumerate(signers):
            user, _ = await store.create_user(
                f"bench{index}@example.com", now, key=signer.public_key
            )
            users.append(user)
            exe0 = mint_exe0(b"{}", signer, "v0@localhost")
            repeated.append(exe0)
            exe1 = derive_exe1(secret, exe0)
            await store.exe1_put(exe1_hash(exe1), seal(exe1, exe0), now + 86400, now)
            handles.append(exe1)
        # Every fresh token is unique (its own exp), spread evenly across the keys.
        fresh = [
            mint_exe0(f'{{"exp":{now + 86400 + n}}}'.encode(), signers[n % KEYS], "v0@localhost")
            for n in range(FRESH_TOKENS)
        ]
        vm = await store.create_vm(
            VM, users[0].user_id, f"http://127.0.0.1:{upstream_port}", (), now
        )
        assert vm.name == VM
        vm_token = mint_exe0(b"{}", signers[0], f"v0@{VM}.localhost")
    finally:
        await store.close()
    files: dict[str, Path | str] = {"vm_token": vm_token}
    for name, tokens in (("repeated", repeated), ("fresh", fresh), ("exe1", handles)):
        path = workdir / f"{name}.txt"
        path.write_text("\n".join(tokens) + "\n")
        files[name] = path
    return files


def _start_server(workdir: Path, db_url: str) -> tuple[subprocess.Popen[bytes], int, Path]:
    out_path, err_path = workdir / "serve.out", workdir / "serve.err"
    sshmint = Path(sys.executable).parent / "sshmint"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SSHMINT_")}
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen(
            [
                str(sshmint), "serve", "--data-dir", str(workdir / "data"), "--db", db_url,
                "--http-listen", "127.0.0.1:0", "--ssh-listen", "127.0.0.1:0",
            ],
            stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env,
        )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        match = re.search(r"^http listening on 127\.0\.0\.1:(\d+)$", out_path.read_text(), re.M)
        if match:
            return proc, int(match.group(1)), err_path
        if proc.poll() is not None:
            raise SystemExit(f"sshmint serve exited: {err_path.read_text()[-2000:]}")
        time.sleep(0.05)
    proc.kill()
    raise SystemExit("sshmint serve did not start")


def _wait_port(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise SystemExit(f"nothing listens on port {port}")


def _warm_up(port: int, tokens_file: Path | str) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        for token in Path(tokens_file).read_text().split():
            connection.request(
                "POST", "/exec", body=b"whoami", headers={"Authorization": f"Bearer {token}"}
            )
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                raise SystemExit(f"warm-up request failed: {response.status}")
    finally:
        connection.close()


def _line(name: str, result: Result, base: Result | None = None) -> None:
    ratio = f"  {result.ok_rps / base.rps:5.2f}× req/s" if base else ""
    lat = ""
    if base:
        lat = f"  p50 {result.p50_ms / base.p50_ms:4.1f}×  p99 {result.p99_ms / base.p99_ms:4.1f}×"
    statuses = ""
    if result.ok is not None:
        statuses = (
            f"  [200: {result.ok}, 429: {result.limited}, other: {result.other};"
            f" {result.tokens} distinct tokens]"
        )
    print(
        f"   {name:<34} {result.ok_rps:9.0f} req/s  p50 {result.p50_ms:6.2f} ms"
        f"  p99 {result.p99_ms:7.2f} ms{ratio}{lat}{statuses}",
        flush=True,
    )


def _verdict(label: str, value: float, target: float, higher_is_better: bool = True) -> None:
    met = value >= target if higher_is_better else value < target
    sign = "≥" if higher_is_better else "<"
    print(f"   {label:<44} {value:7.3f}  (target {sign} {target}: {'met' if met else 'NOT met'})")


def main() -> None:
    wrk = _ensure_wrk()
    workdir = Path(tempfile.mkdtemp(prefix="sshmint-bench-http-"))
    db_url = f"sqlite:///{workdir / 'sshmint.db'}"
    (workdir / "data").mkdir()
    upstream_port = _free_port()
    upstream = subprocess.Popen(
        [sys.executable, "-c", _UPSTREAM, str(upstream_port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    server: subprocess.Popen[bytes] | None = None
    try:
        print(
            f"   setup: {KEYS} users/keys, {FRESH_TOKENS} fresh tokens, exe1 handles, VM",
            flush=True,
        )
        files = asyncio.run(_populate(db_url, upstream_port, workdir))
        server, port, err_path = _start_server(workdir, db_url)
        _wait_port(upstream_port)
        api = f"http://127.0.0.1:{port}"
        script = workdir / "tokens.lua"
        script.write_text(_LUA)
        threads = str(THREADS)

        print(
            f"   wrk -t{THREADS} -c{CONNECTIONS} -d{DURATION}; /exec counts 200s only", flush=True
        )
        healthz = _wrk(wrk, f"{api}/healthz")
        _line("GET /healthz", healthz)
        repeated = _wrk(wrk, api, script=script, script_args=(str(files["repeated"]), threads))
        _line("/exec whoami, repeated exe0", repeated, healthz)
        fresh = _wrk(wrk, api, script=script, script_args=(str(files["fresh"]), threads))
        _line("/exec whoami, fresh exe0 each", fresh, healthz)
        exe1 = _wrk(wrk, api, script=script, script_args=(str(files["exe1"]), threads))
        _line("/exec whoami, exe1", exe1, healthz)

        vm_headers = (f"Host: {VM}.localhost", f"Authorization: Bearer {files['vm_token']}")
        direct = _wrk(wrk, f"http://127.0.0.1:{upstream_port}/")
        _line("direct GET / (trivial upstream)", direct)
        proxied = _wrk(wrk, f"{api}/", headers=vm_headers)
        _line("proxied GET / (private VM, token)", proxied, direct)
        direct_1 = _wrk(wrk, f"http://127.0.0.1:{upstream_port}/", threads=1, connections=1)
        proxied_1 = _wrk(wrk, f"{api}/", headers=vm_headers, threads=1, connections=1)
        _line("direct GET /, 1 connection", direct_1)
        _line("proxied GET /, 1 connection", proxied_1, direct_1)
        direct_big = _wrk(wrk, f"http://127.0.0.1:{upstream_port}/big", connections=4)
        proxied_big = _wrk(wrk, f"{api}/big", headers=vm_headers, connections=4)
        print(
            f"   direct 1 MiB responses             {direct_big.transfer_mb:9.0f} MB/s", flush=True
        )
        print(
            f"   proxied 1 MiB responses            {proxied_big.transfer_mb:9.0f} MB/s", flush=True
        )

        print("   summary:")
        _verdict("/exec repeated token / healthz req/s", repeated.ok_rps / healthz.rps, 0.5)
        _verdict("/exec fresh token / healthz req/s", fresh.ok_rps / healthz.rps, 0.0)
        _verdict("/exec exe1 / healthz req/s", exe1.ok_rps / healthz.rps, 0.0)
        _verdict("proxy / direct req/s (16 connections)", proxied.rps / direct.rps, 0.3)
        _verdict(
            "proxy added p50 at 1 connection, ms", proxied_1.p50_ms - direct_1.p50_ms, 0.3, False
        )
        _verdict(
            "proxy added p50 at 16 connections, ms", proxied.p50_ms - direct.p50_ms, 0.3, False
        )
        _verdict(
            "proxy / direct MB/s (1 MiB responses)",
            proxied_big.transfer_mb / direct_big.transfer_mb,
            0.5,
        )
        if "exe0." in err_path.read_text() or "exe1." in err_path.read_text():
            print("   WARNING: a token appeared in the server log")
    finally:
        for proc in (server, upstream):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
