"""HTTP API and VM proxy throughput with ``wrk`` against a real ``sshmint serve`` (SQLite).

Cases (each ``DURATION``, 2 wrk threads, 16 connections unless noted, loopback only):

- ``GET /healthz`` — the baseline (one database query per request);
- ``POST /exec whoami`` with a repeated exe0 token per key (signature check memoised);
- ``POST /exec whoami`` with a fresh exe0 token on every request (full signature check);
- ``POST /exec whoami`` with exe1 handles (one extra lookup per request);
- the proxy: small responses direct to a trivial upstream vs through an authenticated
  private VM, at 16 connections (req/s) and at 1 connection (added p50 latency); and 1 MiB
  streamed responses (MB/s, 4 connections);
- the point of reference the targets were set against: a naive aiohttp streaming proxy
  (``ClientSession`` behind ``web.Application``, no authentication, no database, no log)
  in front of the same upstream, through the same three proxy cases. Printed for
  information: it shows what this machine makes of the targets (a proxy that does no
  work of its own is not free here either);
- observability (docs/operations.md#metrics, docs/operations.md#logs): a second server on
  the same database with ``--metrics-listen 127.0.0.1:0 --log-format json``, through the
  /exec (repeated token, keys of its own) and proxy cases, each run right after the same
  case on the first server (text access log, no metrics). Target: within 5 % of it. The
  run ends by checking that its metrics counted every request sent to it and that every
  line of its log is JSON.
- token lifecycle (docs/lifecycle.md): a third server on the same database with
  ``--max-token-lifetime 1y``, whose keys of its own have ``REVOCATIONS`` revoked tokens
  among them, through the /exec repeated-token case with tokens that expire within the
  policy, right after the same case on the first server. Target: within 3 % of it (the
  revocation check rides on the key lookup: no round trip of its own).
- the access line's cost (docs/performance.md#cheap-access-log): a fourth server with
  ``--log-level warning`` (no access lines) through the /exec repeated-token case, right
  after the same case on the first server; printed for information: the CPU per request
  the line adds.

The machine is shared (2 cores; wrk, the upstream and the server compete for them, and so
may other work), so every case runs ``ROUNDS`` times, interleaved, and the report gives
each run and the range; ratios are taken within a round (a case against its baseline
measured seconds before). Each line also gives the CPU time the sshmint process (and, for
proxy cases, the upstream) spent per request, which varies less than req/s with other
load on the machine; the summary repeats the main ratios computed from it.

Rate limiting (docs/http-api.md#post-exec: 60-request burst per signing key, then 1/s) would otherwise turn
nearly every /exec request into a 429. Each /exec case gets its own ``KEYS_PER_CASE``
users with one key each and spreads its requests across them; every response status is
counted, 429s and other non-200 answers are reported, and /exec req/s counts 200s only.

The database is filled with one SQLite transaction (schema of docs/storage.md#schema, after
``Store.open`` migrated it), and every key's ``last_used_at`` is already today: the
measured requests are the steady state, not the once-a-day ``last_used_at`` write.

Event loop: the server runs asyncio's, as ``sshmint serve`` does; ``SSHMINT_BENCH_LOOP=uvloop``
(when uvloop is installed) measures uvloop instead, set by a launcher before the CLI runs
``asyncio.run`` (the splice relay needs asyncio's selector loop, so large bodies are then
copied). Targets (printed next to the numbers, never asserted): /exec
with a repeated token ≥ 0.5× /healthz req/s; proxy ≥ 0.3× direct req/s, < 0.3 ms added
p50, ≥ 0.5× direct throughput on 1 MiB responses.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.wrk import CONNECTIONS, DURATION, THREADS, Result, ratio_text, span
from bench.wrk import EXEC_LUA as _LUA
from bench.wrk import cpu_seconds as _cpu_seconds
from bench.wrk import ensure_wrk as _ensure_wrk
from bench.wrk import free_port as _free_port
from bench.wrk import run_wrk as _wrk

__all__ = ["main"]

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "2"))  # more rounds: steadier ranges
KEYS_PER_CASE = 400  # per /exec case: ~25 requests per key and round stays under the burst
FRESH_TOKENS = 30_000  # unique exe0 tokens for the "fresh token" case
REVOCATIONS = 20_000  # revoked tokens of the lifecycle case's keys
EXEC_CASES = ("repeated", "fresh", "exe1", "observed", "lifecycle")
VM = "benchvm"

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

# The point of reference, measured in the same run: a naive streaming reverse proxy
# on aiohttp (web.Application in front, ClientSession behind, no authentication, no
# database, no log) in front of the same upstream. Args: its port, the upstream's port.
_NAIVE_PROXY = r"""
import sys
import aiohttp
from aiohttp import web
UPSTREAM = f"http://127.0.0.1:{sys.argv[2]}"
HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
       "proxy-connection", "proxy-authenticate", "proxy-authorization", "host"}
async def forward(request):
    session = request.app["session"]
    headers = [(n, v) for n, v in request.headers.items() if n.lower() not in HOP]
    async with session.request(request.method, UPSTREAM + request.raw_path, headers=headers,
                               data=request.content if request.body_exists else None,
                               auto_decompress=False) as upstream:
        response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
        for name, value in upstream.headers.items():
            if name.lower() not in HOP:
                response.headers.add(name, value)
        await response.prepare(request)
        async for chunk in upstream.content.iter_any():
            await response.write(chunk)
        await response.write_eof()
        return response
async def session_context(app):
    app["session"] = aiohttp.ClientSession(auto_decompress=False)
    yield
    await app["session"].close()
app = web.Application()
app.cleanup_ctx.append(session_context)
app.router.add_route("*", "/{tail:.*}", forward)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
"""

# Runs `sshmint serve ...` (its arguments) with the event loop named by
# SSHMINT_BENCH_LOOP, whose policy is set before the CLI's asyncio.run() creates the loop.
_LAUNCHER = r"""
import asyncio, os, sys
if os.environ["SSHMINT_BENCH_LOOP"] == "uvloop":
    import uvloop
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
from sshmint.cli import main
sys.argv = ["sshmint", *sys.argv[1:]]
main()
"""


@dataclass
class Fixtures:
    vm_token: str
    token_files: dict[str, Path]


async def _prepare_store(db_url: str) -> bytes:
    """Create and migrate the database; return the exe1 derivation secret."""
    from sshmint.server.store import Store

    store = await Store.open(db_url)
    try:
        return await store.exe1_secret()
    finally:
        await store.close()


def _populate(db_path: Path, db_url: str, upstream_port: int, workdir: Path) -> Fixtures:
    """Users, keys, tokens, exe1 handles and the VM, in one SQLite transaction."""
    from sshmint.server.auth.exe1 import derive_exe1, exe1_hash, seal
    from sshmint.server.store import new_user_id
    from sshmint.signing import generate_ed25519
    from sshmint.token import mint_exe0

    secret = asyncio.run(_prepare_store(db_url))
    now = int(time.time())
    today = now - now % 86400
    namespace = "v0@localhost"
    users: list[tuple[object, ...]] = []
    keys: list[tuple[object, ...]] = []
    handles: list[tuple[object, ...]] = []
    token_files: dict[str, Path] = {}
    signers_by_case = {}
    for case in EXEC_CASES:
        signers = [generate_ed25519() for _ in range(KEYS_PER_CASE)]
        signers_by_case[case] = signers
        for index, signer in enumerate(signers):
            user_id = new_user_id()
            users.append((user_id, f"{case}{index}@example.com", 0, 2, now))
            public = signer.public_key
            keys.append((user_id, public.openssh, public.fingerprint, "key-1", "", now, today))
    owner_id = str(users[0][0])
    tokens: dict[str, list[str]] = {"repeated": [], "exe1": [], "observed": [], "lifecycle": []}
    for case in ("repeated", "observed"):
        for signer in signers_by_case[case]:
            tokens[case].append(mint_exe0(b"{}", signer, namespace))
    within_policy = f'{{"exp":{now + 180 * 86400}}}'.encode()
    for signer in signers_by_case["lifecycle"]:
        tokens["lifecycle"].append(mint_exe0(within_policy, signer, namespace))
    revocations = _revocations(users[-KEYS_PER_CASE:], keys[-KEYS_PER_CASE:], now)
    for signer in signers_by_case["exe1"]:
        exe0 = mint_exe0(b"{}", signer, namespace)
        exe1 = derive_exe1(secret, exe0)
        handles.append((exe1_hash(exe1), seal(exe1, exe0), now + 86400, now))
        tokens["exe1"].append(exe1)
    # Every fresh token is unique (its own exp), spread evenly across the case's keys.
    fresh_signers = signers_by_case["fresh"]
    tokens["fresh"] = [
        mint_exe0(f'{{"exp":{now + 86400 + n}}}'.encode(), fresh_signers[n % KEYS_PER_CASE], namespace)
        for n in range(FRESH_TOKENS)
    ]  # fmt: skip
    vm_token = mint_exe0(b"{}", signers_by_case["repeated"][0], f"v0@{VM}.localhost")
    with sqlite3.connect(db_path) as db:
        db.execute("PRAGMA foreign_keys = ON")
        db.executemany(
            "INSERT INTO users (user_id, email, is_locked_out, next_ssh_key_number, created_at)"
            " VALUES (?, ?, ?, ?, ?)",
            users,
        )
        db.executemany(
            "INSERT INTO ssh_keys (user_id, public_key, fingerprint, comment, permissions,"
            " added_at, last_used_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            keys,
        )
        db.executemany(
            "INSERT INTO exe1_tokens (exe1_hash, exe0_sealed, expires_at, created_at)"
            " VALUES (?, ?, ?, ?)",
            handles,
        )
        db.executemany(
            "INSERT INTO token_revocations (token_hash, user_id, fingerprint, revoked_at, exp)"
            " VALUES (?, ?, ?, ?, ?)",
            revocations,
        )
        db.execute(
            "INSERT INTO vms (name, owner_user_id, upstream, share, tags, created_at)"
            " VALUES (?, ?, ?, 'private', '[]', ?)",
            (VM, owner_id, f"http://127.0.0.1:{upstream_port}", now),
        )
    for name, lines in tokens.items():
        path = workdir / f"{name}.txt"
        path.write_text("\n".join(lines) + "\n")
        token_files[name] = path
    return Fixtures(vm_token, token_files)


def _revocations(
    users: Sequence[tuple[object, ...]], keys: Sequence[tuple[object, ...]], now: int
) -> list[tuple[object, ...]]:
    """``REVOCATIONS`` rows for other tokens of the given users' keys (hashes of random
    bytes: no token of the run is among them), live for 180 days."""
    import hashlib

    rows: list[tuple[object, ...]] = []
    for n in range(REVOCATIONS):
        user, key = users[n % len(users)], keys[n % len(keys)]
        digest = hashlib.sha256(os.urandom(32)).hexdigest()
        rows.append((digest, user[0], key[2], now, now + 180 * 86400))
    return rows


@dataclass
class Served:
    """A running ``sshmint serve``: its process, its ports (0: no metrics listener) and
    its stderr file."""

    proc: subprocess.Popen[bytes]
    port: int
    metrics_port: int
    err_path: Path


def _start_server(
    workdir: Path, db_url: str, loop: str, name: str = "serve", extra: tuple[str, ...] = ()
) -> Served:
    out_path, err_path = workdir / f"{name}.out", workdir / f"{name}.err"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SSHMINT_")}
    env["SSHMINT_BENCH_LOOP"] = loop
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen(
            [
                sys.executable, "-c", _LAUNCHER,
                "serve", "--data-dir", str(workdir / "data"), "--db", db_url,
                "--http-listen", "127.0.0.1:0", "--ssh-listen", "127.0.0.1:0", *extra,
            ],
            stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env,
        )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        text = out_path.read_text()
        match = re.search(r"^http listening on 127\.0\.0\.1:(\d+)$", text, re.M)
        if match:
            metrics = re.search(r"^metrics listening on 127\.0\.0\.1:(\d+)$", text, re.M)
            metrics_port = int(metrics.group(1)) if metrics else 0
            return Served(proc, int(match.group(1)), metrics_port, err_path)
        if proc.poll() is not None:
            raise SystemExit(f"sshmint serve exited: {err_path.read_text()[-2000:]}")
        time.sleep(0.05)
    proc.kill()
    raise SystemExit("sshmint serve did not start")


def _counted_requests(metrics_port: int) -> float:
    """The sum of ``sshmint_http_requests_total`` on a metrics listener."""
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("sshmint_http_requests_total{")
    )


def _json_lines(path: Path) -> tuple[int, int]:
    """(lines, lines that are not one JSON object) of a log file."""
    import json

    total = bad = 0
    for line in path.read_text().splitlines():
        total += 1
        try:
            if not isinstance(json.loads(line), dict):
                bad += 1
        except ValueError:
            bad += 1
    return total, bad


def _wait_port(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise SystemExit(f"nothing listens on port {port}")


def _event_loop() -> str:
    wanted = os.environ.get("SSHMINT_BENCH_LOOP", "")
    if wanted in ("asyncio", "uvloop"):
        if wanted == "uvloop" and importlib.util.find_spec("uvloop") is None:
            raise SystemExit("SSHMINT_BENCH_LOOP=uvloop but uvloop is not installed")
        return wanted
    return "asyncio"  # what `sshmint serve` runs


def _statuses(results: Sequence[Result]) -> str:
    if results[0].ok is None:
        return ""
    ok = sum(r.ok or 0 for r in results)
    limited = sum(r.limited or 0 for r in results)
    other = sum(r.other or 0 for r in results)
    return f"  [200: {ok}, 429: {limited}, other: {other}; {results[0].tokens} tokens]"


def _line(name: str, results: Sequence[Result], *, mb: bool = False) -> None:
    if mb:
        value = f"{span([r.transfer_mb for r in results], '.0f'):>11} MB/s"
    else:
        value = f"{span([r.ok_rps for r in results], '.0f'):>11} req/s"
    p50 = span([r.p50_ms for r in results], ".2f")
    p99 = span([r.p99_ms for r in results], ".2f")
    cpu = f"  cpu/req {span([r.server_cpu_us for r in results], '.0f'):>9} µs"
    if any(r.upstream_cpu_us >= 1 for r in results):
        cpu += f" (+ upstream {span([r.upstream_cpu_us for r in results], '.0f')})"
    print(
        f"   {name:<36} {value}  p50 {p50:>11} ms  p99 {p99:>13} ms{cpu}{_statuses(results)}",
        flush=True,
    )


def _verdict(label: str, values: Sequence[float], target: float, higher: bool = True) -> None:
    print(f"   {label:<46} {ratio_text(values, target, higher)}", flush=True)


def _info(label: str, values: Sequence[float]) -> None:
    print(f"   {label:<46} {ratio_text(values)}", flush=True)


def main() -> None:
    wrk = _ensure_wrk()
    loop = _event_loop()
    workdir = Path(tempfile.mkdtemp(prefix="sshmint-bench-http-"))
    db_path = workdir / "sshmint.db"
    db_url = f"sqlite:///{db_path}"
    (workdir / "data").mkdir()
    upstream_port = _free_port()
    upstream = subprocess.Popen(
        [sys.executable, "-c", _UPSTREAM, str(upstream_port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    naive_port = _free_port()
    naive = subprocess.Popen(
        [sys.executable, "-c", _NAIVE_PROXY, str(naive_port), str(upstream_port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    servers: list[Served] = []
    try:
        print(
            f"   backend: SQLite (WAL); server event loop: {loop};"
            f" {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start",
            flush=True,
        )
        print(
            f"   setup: {len(EXEC_CASES) * KEYS_PER_CASE} users/keys, {FRESH_TOKENS} fresh"
            f" tokens, exe1 handles, VM, {REVOCATIONS} revocations",
            flush=True,
        )
        fixtures = _populate(db_path, db_url, upstream_port, workdir)
        base = _start_server(workdir, db_url, loop)
        servers.append(base)
        observed = _start_server(
            workdir, db_url, loop, "observed",
            ("--metrics-listen", "127.0.0.1:0", "--log-format", "json"),
        )  # fmt: skip
        servers.append(observed)
        lifecycle = _start_server(
            workdir, db_url, loop, "lifecycle", ("--max-token-lifetime", "1y")
        )  # fmt: skip
        servers.append(lifecycle)
        quiet = _start_server(workdir, db_url, loop, "quiet", ("--log-level", "warning"))
        servers.append(quiet)
        _wait_port(upstream_port)
        _wait_port(naive_port)
        api = f"http://127.0.0.1:{base.port}"
        api_obs = f"http://127.0.0.1:{observed.port}"
        direct = f"http://127.0.0.1:{upstream_port}"
        reference = f"http://127.0.0.1:{naive_port}"
        script = workdir / "tokens.lua"
        script.write_text(_LUA)
        threads = str(THREADS)
        vm_headers = (f"Host: {VM}.localhost", f"Authorization: Bearer {fixtures.vm_token}")

        def exec_case(name: str, url: str = api) -> Callable[[], Result]:
            args = (str(fixtures.token_files[name]), threads)
            return lambda: _wrk(wrk, url, script=script, script_args=args)

        # Each *_obs case runs right after its base case, on the observed server.
        cases: dict[str, Callable[[], Result]] = {
            "healthz": lambda: _wrk(wrk, f"{api}/healthz"),
            "repeated": exec_case("repeated"),
            "repeated_obs": exec_case("observed", api_obs),
            "repeated_life": exec_case("lifecycle", f"http://127.0.0.1:{lifecycle.port}"),
            "repeated_quiet": exec_case("repeated", f"http://127.0.0.1:{quiet.port}"),
            "fresh": exec_case("fresh"),
            "exe1": exec_case("exe1"),
            "direct": lambda: _wrk(wrk, f"{direct}/"),
            "proxied": lambda: _wrk(wrk, f"{api}/", headers=vm_headers),
            "proxied_obs": lambda: _wrk(wrk, f"{api_obs}/", headers=vm_headers),
            "direct_1": lambda: _wrk(wrk, f"{direct}/", threads=1, connections=1),
            "proxied_1": lambda: _wrk(wrk, f"{api}/", headers=vm_headers, threads=1, connections=1),
            "proxied_1_obs": lambda: _wrk(
                wrk, f"{api_obs}/", headers=vm_headers, threads=1, connections=1
            ),
            "direct_big": lambda: _wrk(wrk, f"{direct}/big", connections=4),
            "proxied_big": lambda: _wrk(wrk, f"{api}/big", headers=vm_headers, connections=4),
            "naive": lambda: _wrk(wrk, f"{reference}/"),
            "naive_1": lambda: _wrk(wrk, f"{reference}/", threads=1, connections=1),
            "naive_big": lambda: _wrk(wrk, f"{reference}/big", connections=4),
        }
        # Whose CPU the "cpu/req" column shows: sshmint's, or the reference proxy's.
        proxy_pid = {name: naive.pid for name in ("naive", "naive_1", "naive_big")}
        proxy_pid.update(
            {name: observed.proc.pid for name in ("repeated_obs", "proxied_obs", "proxied_1_obs")}
        )
        proxy_pid["repeated_life"] = lifecycle.proc.pid
        proxy_pid["repeated_quiet"] = quiet.proc.pid
        print(
            f"   wrk -t{THREADS} -c{CONNECTIONS} -d{DURATION}, {ROUNDS} rounds (ranges are"
            " min–max over rounds); /exec counts 200s only",
            flush=True,
        )
        runs: dict[str, list[Result]] = {name: [] for name in cases}
        for _ in range(ROUNDS):
            for name, run in cases.items():
                pid = proxy_pid.get(name, base.proc.pid)
                server_cpu, upstream_cpu = _cpu_seconds(pid), _cpu_seconds(upstream.pid)
                result = run()
                if result.requests:
                    per_request = 1e6 / result.requests
                    result.server_cpu_us = (_cpu_seconds(pid) - server_cpu) * per_request
                    result.upstream_cpu_us = (
                        _cpu_seconds(upstream.pid) - upstream_cpu
                    ) * per_request
                runs[name].append(result)

        _line("GET /healthz", runs["healthz"])
        _line("/exec whoami, repeated exe0", runs["repeated"])
        _line("/exec whoami, fresh exe0 each", runs["fresh"])
        _line("/exec whoami, exe1", runs["exe1"])
        _line("direct GET / (trivial upstream)", runs["direct"])
        _line("proxied GET / (private VM, token)", runs["proxied"])
        _line("direct GET /, 1 connection", runs["direct_1"])
        _line("proxied GET /, 1 connection", runs["proxied_1"])
        _line("direct 1 MiB responses, 4 conns", runs["direct_big"], mb=True)
        _line("proxied 1 MiB responses, 4 conns", runs["proxied_big"], mb=True)
        _line("naive aiohttp proxy GET /", runs["naive"])
        _line("naive aiohttp proxy GET /, 1 conn", runs["naive_1"])
        _line("naive aiohttp proxy 1 MiB, 4 conns", runs["naive_big"], mb=True)
        _line("/exec whoami, repeated, observed", runs["repeated_obs"])
        _line("proxied GET /, observed", runs["proxied_obs"])
        _line("proxied GET /, 1 conn, observed", runs["proxied_1_obs"])
        _line("/exec whoami, repeated, lifecycle", runs["repeated_life"])
        _line("/exec whoami, repeated, no access log", runs["repeated_quiet"])

        def ratios(name: str, base: str, get: Callable[[Result], float]) -> list[float]:
            return [get(a) / get(b) for a, b in zip(runs[name], runs[base], strict=True)]

        def added_p50(name: str, base: str) -> list[float]:
            return [a.p50_ms - b.p50_ms for a, b in zip(runs[name], runs[base], strict=True)]

        print("   summary (per round: each case against its baseline of the same round):")

        def rps(result: Result) -> float:
            return result.ok_rps

        _verdict("/exec repeated token / healthz req/s", ratios("repeated", "healthz", rps), 0.5)
        _info(
            "  same, by sshmint CPU per request",
            ratios("healthz", "repeated", lambda r: r.server_cpu_us),
        )
        _verdict("/exec fresh token / healthz req/s", ratios("fresh", "healthz", rps), 0.0)
        _verdict("/exec exe1 / healthz req/s", ratios("exe1", "healthz", rps), 0.0)
        _verdict("proxy / direct req/s (16 connections)", ratios("proxied", "direct", rps), 0.3)
        _info(
            "  direct upstream CPU / (proxy + upstream CPU)",
            [
                d.upstream_cpu_us / (p.server_cpu_us + p.upstream_cpu_us)
                for p, d in zip(runs["proxied"], runs["direct"], strict=True)
            ],
        )
        added_1, added_16 = added_p50("proxied_1", "direct_1"), added_p50("proxied", "direct")
        _verdict("proxy added p50 at 1 connection, ms", added_1, 0.3, higher=False)
        # At 16 connections the proxy runs at full load: p50 is mostly queueing, shown for
        # information (the latency target is judged one request at a time).
        _info("  same at 16 connections (queueing), ms", added_16)
        _verdict(
            "proxy / direct MB/s (1 MiB responses)",
            ratios("proxied_big", "direct_big", lambda r: r.transfer_mb),
            0.5,
        )
        print(
            "   point of reference: a naive aiohttp streaming proxy (no authentication) in"
            " front of the same upstream"
        )
        _info("  naive proxy / direct req/s (16 connections)", ratios("naive", "direct", rps))
        _info("  naive proxy added p50 at 1 connection, ms", added_p50("naive_1", "direct_1"))
        _info(
            "  naive proxy / direct MB/s (1 MiB responses)",
            ratios("naive_big", "direct_big", lambda r: r.transfer_mb),
        )
        _info("  sshmint proxy / naive proxy req/s", ratios("proxied", "naive", rps))
        _info("  sshmint added p50 − naive added p50, ms", added_p50("proxied_1", "naive_1"))
        print(
            "   observability: --metrics-listen and --log-format json, against the same"
            " case without them in the same round"
        )
        _verdict(
            "  /exec repeated token req/s, on / off", ratios("repeated_obs", "repeated", rps), 0.95
        )
        _info(
            "  same, by sshmint CPU per request (off / on)",
            ratios("repeated", "repeated_obs", lambda r: r.server_cpu_us),
        )
        _verdict(
            "  proxy req/s (16 connections), on / off", ratios("proxied_obs", "proxied", rps), 0.95
        )
        _info(
            "  same, by sshmint CPU per request (off / on)",
            ratios("proxied", "proxied_obs", lambda r: r.server_cpu_us),
        )
        _info("  proxy p50 at 1 connection, on − off, ms", added_p50("proxied_1_obs", "proxied_1"))
        sent = sum(
            r.requests
            for name in ("repeated_obs", "proxied_obs", "proxied_1_obs")
            for r in runs[name]
        )
        print(
            f"   token lifecycle: --max-token-lifetime 1y and {REVOCATIONS} revocations of"
            " the case's keys, against the same case without them in the same round"
        )
        _verdict(
            "  /exec repeated token req/s, on / off",
            ratios("repeated_life", "repeated", rps),
            0.97,
        )
        _info(
            "  same, by sshmint CPU per request (off / on)",
            ratios("repeated", "repeated_life", lambda r: r.server_cpu_us),
        )
        print(
            "   access log: the same case on a server with --log-level warning (no access"
            " lines), in the same round"
        )
        _info(
            "  /exec sshmint CPU per request, lines off / on",
            ratios("repeated_quiet", "repeated", lambda r: r.server_cpu_us),
        )
        _info(
            "  same, µs of CPU an access line adds",
            [
                on.server_cpu_us - off.server_cpu_us
                for on, off in zip(runs["repeated"], runs["repeated_quiet"], strict=True)
            ],
        )
        counted = _counted_requests(observed.metrics_port)
        lines, bad = _json_lines(observed.err_path)
        verdict = "every one counted" if counted >= sent else "NOT all counted"
        print(
            f"   observed server: metrics counted {counted:.0f} requests, wrk completed {sent}"
            f" ({verdict}); {lines} log lines, {bad} not JSON",
            flush=True,
        )
        for served in servers:
            log = served.err_path.read_text()
            if "exe0." in log or "exe1." in log:
                print(f"   WARNING: a token appeared in the log {served.err_path.name}")
    finally:
        for proc in (*(s.proc for s in servers), upstream, naive):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
