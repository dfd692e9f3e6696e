"""``/exec`` on PostgreSQL against SQLite, the shared rate limit's cost, and two nodes on
one PostgreSQL database against one (docs/operations.md#several-nodes), with ``wrk``
against real ``sshmint serve`` processes.

A private PostgreSQL cluster is started for the run (``initdb`` + ``pg_ctl`` in a
temporary directory, as the ``postgres`` user when run as root; free port; stopped at the
end), next to a SQLite database holding the same users and keys.

Cases, each ``DURATION``, two ``wrk`` processes of one thread and 8 connections each
(16 connections in all), ``POST /exec whoami`` with one repeated exe0 token per key, each
``wrk`` process cycling through the keys from its own offset:

- ``sqlite``: one node on SQLite (the baseline);
- ``postgresql``: one node on PostgreSQL, the rate limit's buckets in the database;
- ``postgresql, in-process buckets``: the same with the buckets kept in the node's memory,
  as on SQLite (a launcher swaps the limiter before the server starts): the difference is
  the cost of the shared rate limit, one upsert per request;
- ``2 nodes``: both ``wrk`` processes, one per node, against two nodes on the database.

Every case has its own ``KEYS_PER_CASE`` users with one key each and spreads its requests
over them, so that no key exhausts its 60-request burst (429s are counted and reported;
req/s counts 200s only). Each line gives the CPU time per request of the sshmint
process(es) and of PostgreSQL (all its processes), which varies less than req/s while
wrk, PostgreSQL and the nodes share two cores. Every case runs ``ROUNDS`` times,
interleaved; ratios are taken within a round. Target (printed, never asserted):
PostgreSQL ≥ 0.5× SQLite req/s.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import pwd
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.wrk import EXEC_LUA, Result, cpu_seconds, ensure_wrk, free_port, parse, ratio_text, span

__all__ = ["main"]

DURATION = "4s"
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "2"))  # more rounds: steadier ranges
WRK_PROCESSES = 2
CONNECTIONS_EACH = 8
KEYS_PER_CASE = 1000  # ≤ 25 requests per key and round: below the burst
CASES = ("sqlite", "postgresql", "postgresql_local", "two_nodes")

# `sshmint serve ARGS`; with SSHMINT_BENCH_BUCKETS=local the /exec limiter is the
# in-process one whatever the backend (to measure what the shared buckets cost).
_LAUNCHER = r"""
import os, sys
if os.environ.get("SSHMINT_BENCH_BUCKETS") == "local":
    from sshmint.server.http import api, ratelimit
    api.rate_limiter_for = lambda store: ratelimit.RateLimiter()
from sshmint.cli import main
sys.argv = ["sshmint", *sys.argv[1:]]
main()
"""


# --- a private PostgreSQL cluster -----------------------------------------------------------


@dataclass
class Cluster:
    bin_dir: str
    data_dir: str
    port: int

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def postmaster(self) -> int:
        return int(Path(self.data_dir, "postmaster.pid").read_text().split()[0])


def _as_postgres(args: list[str]) -> None:
    cmd = args if os.geteuid() != 0 else ["runuser", "-u", "postgres", "--", *args]
    subprocess.run(cmd, check=True, capture_output=True, text=True)


@contextlib.contextmanager
def _private_cluster() -> Iterator[Cluster]:
    initdbs = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not initdbs:
        raise SystemExit("PostgreSQL is not installed: run scripts/ensure-test-tools")
    bin_dir = os.path.dirname(initdbs[-1])
    data_dir = tempfile.mkdtemp(prefix="sshmint-bench-pg-")
    if os.geteuid() == 0:
        entry = pwd.getpwnam("postgres")
        os.chown(data_dir, entry.pw_uid, entry.pw_gid)
    cluster = Cluster(bin_dir, data_dir, free_port())
    opts = (
        f"-c listen_addresses=127.0.0.1 -p {cluster.port} -c unix_socket_directories={data_dir}"
        " -c max_connections=100"
    )
    pg_ctl = f"{bin_dir}/pg_ctl"
    _as_postgres(
        [f"{bin_dir}/initdb", "-D", data_dir, "-U", "postgres", "-A", "trust", "--no-sync"]
    )
    _as_postgres([pg_ctl, "-D", data_dir, "-o", opts, "-l", f"{data_dir}/log", "-w", "start"])
    try:
        yield cluster
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            _as_postgres([pg_ctl, "-D", data_dir, "-m", "fast", "-w", "stop"])
        shutil.rmtree(data_dir, ignore_errors=True)


def _tree_cpu_seconds(root: int) -> float:
    """CPU time of ``root`` and its children (PostgreSQL: the postmaster and backends)."""
    total = cpu_seconds(root)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            if int(stat.read_text().rpartition(")")[2].split()[1]) == root:
                total += cpu_seconds(int(stat.parent.name))
    return total


# --- data ---------------------------------------------------------------------------------


@dataclass
class Dataset:
    users: list[tuple[object, ...]]
    keys: list[tuple[object, ...]]
    tokens: dict[str, list[str]]


def _dataset() -> Dataset:
    from sshmint.server.store import new_user_id
    from sshmint.signing import generate_ed25519
    from sshmint.token import mint_exe0

    now = int(time.time())
    today = now - now % 86400  # last_used_at already today: no write on the measured path
    data = Dataset([], [], {})
    for case in CASES:
        data.tokens[case] = []
        for index in range(KEYS_PER_CASE):
            signer = generate_ed25519()
            user_id = new_user_id()
            public = signer.public_key
            data.users.append((user_id, f"{case}{index}@example.com", 0, 2, now))
            data.keys.append((user_id, public.openssh, public.fingerprint, "key-1", "", now, today))
            data.tokens[case].append(mint_exe0(b"{}", signer, "v0@localhost"))
    return data


_INSERT_USER = (
    "INSERT INTO users (user_id, email, is_locked_out, next_ssh_key_number, created_at) VALUES ({})"
)
_INSERT_KEY = (
    "INSERT INTO ssh_keys (user_id, public_key, fingerprint, comment, permissions, added_at,"
    " last_used_at) VALUES ({})"
)


async def _migrate(url: str) -> None:
    from sshmint.server.store import Store

    store = await Store.open(url)
    await store.close()


def _fill_sqlite(path: Path, data: Dataset) -> None:
    asyncio.run(_migrate(f"sqlite:///{path}"))
    with sqlite3.connect(path) as db:
        db.executemany(_INSERT_USER.format(", ".join("?" * 5)), data.users)
        db.executemany(_INSERT_KEY.format(", ".join("?" * 7)), data.keys)


def _fill_postgresql(url: str, data: Dataset) -> None:
    import asyncpg

    async def fill() -> None:
        await _migrate(url)
        conn = await asyncpg.connect(url)
        try:
            await conn.executemany(_INSERT_USER.format("$1, $2, $3, $4, $5"), data.users)
            await conn.executemany(_INSERT_KEY.format("$1, $2, $3, $4, $5, $6, $7"), data.keys)
        finally:
            await conn.close()

    asyncio.run(fill())


# --- servers and load ---------------------------------------------------------------------


@dataclass
class Node:
    proc: subprocess.Popen[bytes]
    url: str
    err_path: Path


def _start_node(workdir: Path, name: str, db_url: str, *, local_buckets: bool = False) -> Node:
    out_path, err_path = workdir / f"{name}.out", workdir / f"{name}.err"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SSHMINT_")}
    if local_buckets:
        env["SSHMINT_BENCH_BUCKETS"] = "local"
    args = [
        "serve", "--data-dir", str(workdir / f"{name}-data"), "--db", db_url,
        "--http-listen", "127.0.0.1:0", "--ssh-listen", "127.0.0.1:0",
    ]  # fmt: skip
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-c", _LAUNCHER, *args],
            stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env,
        )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = re.search(r"^http listening on 127\.0\.0\.1:(\d+)$", out_path.read_text(), re.M)
        if found:
            return Node(proc, f"http://127.0.0.1:{found.group(1)}", err_path)
        if proc.poll() is not None:
            raise SystemExit(f"sshmint serve exited: {err_path.read_text()[-2000:]}")
        time.sleep(0.05)
    proc.kill()
    raise SystemExit("sshmint serve did not start")


def _token_files(workdir: Path, case: str, tokens: list[str]) -> list[Path]:
    """One file per wrk process, each the case's tokens starting at another offset: the
    processes cycle through the keys apart, never sending one key's token at the same
    moment (which would measure two requests queueing on one bucket row, not the load)."""
    files = []
    for index in range(WRK_PROCESSES):
        start = index * len(tokens) // WRK_PROCESSES
        path = workdir / f"{case}-{index}.txt"
        path.write_text("\n".join(tokens[start:] + tokens[:start]) + "\n")
        files.append(path)
    return files


@dataclass
class Run:
    """One case in one round: both wrk reports merged, CPU per request."""

    ok: int
    limited: int
    other: int
    requests: int
    rps: float  # 200s per second
    p50_ms: float
    p99_ms: float
    server_cpu_us: float = 0.0
    postgres_cpu_us: float = 0.0


def _load(wrk: str, urls: Sequence[str], tokens: Sequence[Path], script: Path) -> Run:
    """One wrk process per URL, all at once, each with its own token file; their results
    merged."""
    argv = [wrk, "-t1", f"-c{CONNECTIONS_EACH}", f"-d{DURATION}", "--latency", "--timeout", "10s"]
    procs = [
        subprocess.Popen(
            [*argv, "-s", str(script), url, "--", str(token_file), "1"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for url, token_file in zip(urls, tokens, strict=True)
    ]
    results: list[Result] = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        if proc.returncode != 0:
            raise SystemExit(f"wrk failed: {out[-1000:]} {err[-1000:]}")
        results.append(parse(out))
    ok = sum(r.ok or 0 for r in results)
    sent = sum(r.sent or 0 for r in results)
    return Run(
        ok=ok,
        limited=sum(r.limited or 0 for r in results),
        other=sum(r.other or 0 for r in results),
        requests=sent,
        rps=sum(r.rps for r in results) * (ok / sent if sent else 0),
        p50_ms=max(r.p50_ms for r in results),
        p99_ms=max(r.p99_ms for r in results),
    )


def _line(name: str, runs: Sequence[Run]) -> None:
    statuses = (
        f"200: {sum(r.ok for r in runs)}, 429: {sum(r.limited for r in runs)},"
        f" other: {sum(r.other for r in runs)}"
    )
    postgres = ""
    if any(r.postgres_cpu_us >= 1 for r in runs):
        postgres = f" + postgres {span([r.postgres_cpu_us for r in runs], '.0f')}"
    print(
        f"   {name:<40} {span([r.rps for r in runs], '.0f'):>11} req/s"
        f"  p50 {span([r.p50_ms for r in runs], '.2f'):>11} ms"
        f"  cpu/req sshmint {span([r.server_cpu_us for r in runs], '.0f'):>9} µs{postgres}"
        f"  [{statuses}]",
        flush=True,
    )


def _ratio(label: str, values: Sequence[float], target: float | None = None) -> None:
    print(f"   {label:<52} {ratio_text(values, target)}", flush=True)


def _stop(procs: Sequence[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()


def main() -> None:
    wrk = ensure_wrk()
    workdir = Path(tempfile.mkdtemp(prefix="sshmint-bench-nodes-"))
    nodes: list[Node] = []
    print(
        f"   {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start;"
        f" setup: {len(CASES)} × {KEYS_PER_CASE} users/keys on SQLite and PostgreSQL",
        flush=True,
    )
    try:
        with _private_cluster() as cluster:
            data = _dataset()
            sqlite_path = workdir / "sshmint.db"
            _fill_sqlite(sqlite_path, data)
            pg_url = cluster.url()
            _fill_postgresql(pg_url, data)
            script = workdir / "exec.lua"
            script.write_text(EXEC_LUA)
            token_files = {case: _token_files(workdir, case, t) for case, t in data.tokens.items()}
            sqlite_node = _start_node(workdir, "sqlite", f"sqlite:///{sqlite_path}")
            pg_a = _start_node(workdir, "pg-a", pg_url)
            pg_b = _start_node(workdir, "pg-b", pg_url)
            pg_local = _start_node(workdir, "pg-local", pg_url, local_buckets=True)
            nodes += [sqlite_node, pg_a, pg_b, pg_local]
            targets: dict[str, tuple[list[Node], bool]] = {
                "sqlite": ([sqlite_node, sqlite_node], False),
                "postgresql": ([pg_a, pg_a], True),
                "postgresql_local": ([pg_local, pg_local], True),
                "two_nodes": ([pg_a, pg_b], True),
            }
            print(
                f"   {WRK_PROCESSES} wrk processes × -t1 -c{CONNECTIONS_EACH} -d{DURATION},"
                f" {ROUNDS} rounds (ranges are min–max over rounds); 200s only",
                flush=True,
            )
            runs: dict[str, list[Run]] = {case: [] for case in CASES}
            for _ in range(ROUNDS):
                for case in CASES:
                    servers, uses_pg = targets[case]
                    pids = sorted({node.proc.pid for node in servers})
                    before = sum(cpu_seconds(pid) for pid in pids)
                    pg_before = _tree_cpu_seconds(cluster.postmaster())
                    run = _load(wrk, [n.url for n in servers], token_files[case], script)
                    if run.requests:
                        per = 1e6 / run.requests
                        run.server_cpu_us = (sum(cpu_seconds(p) for p in pids) - before) * per
                        if uses_pg:
                            pg_cpu = _tree_cpu_seconds(cluster.postmaster()) - pg_before
                            run.postgres_cpu_us = pg_cpu * per
                    runs[case].append(run)
            _report(runs)
            for node in nodes:
                log = node.err_path.read_text()
                if "exe0." in log or "exe1." in log:
                    print("   WARNING: a token appeared in a server log")
            _stop([node.proc for node in nodes])
    finally:
        _stop([node.proc for node in nodes])
        shutil.rmtree(workdir, ignore_errors=True)


def _report(runs: dict[str, list[Run]]) -> None:
    _line("/exec whoami, SQLite, 1 node", runs["sqlite"])
    _line("/exec whoami, PostgreSQL, 1 node", runs["postgresql"])
    _line("  same, buckets in the node's memory", runs["postgresql_local"])
    _line("/exec whoami, PostgreSQL, 2 nodes", runs["two_nodes"])

    def ratios(case: str, base: str, get: Callable[[Run], float]) -> list[float]:
        return [get(a) / get(b) for a, b in zip(runs[case], runs[base], strict=True)]

    def differences(case: str, base: str, get: Callable[[Run], float]) -> list[float]:
        return [get(a) - get(b) for a, b in zip(runs[case], runs[base], strict=True)]

    def total_cpu(run: Run) -> float:
        return run.server_cpu_us + run.postgres_cpu_us

    print("   summary (per round):")
    _ratio("PostgreSQL / SQLite req/s", ratios("postgresql", "sqlite", lambda r: r.rps), 0.5)
    _ratio(
        "  sshmint CPU per request, PostgreSQL / SQLite",
        ratios("postgresql", "sqlite", lambda r: r.server_cpu_us),
    )
    _ratio(
        "shared rate limit: req/s with it / without",
        ratios("postgresql", "postgresql_local", lambda r: r.rps),
    )
    _ratio(
        "  its sshmint CPU per request, µs",
        differences("postgresql", "postgresql_local", lambda r: r.server_cpu_us),
    )
    _ratio(
        "  its sshmint + PostgreSQL CPU per request, µs",
        differences("postgresql", "postgresql_local", total_cpu),
    )
    _ratio(
        "2 nodes / 1 node req/s (one PostgreSQL)",
        ratios("two_nodes", "postgresql", lambda r: r.rps),
    )


if __name__ == "__main__":
    main()
