"""What the wrk benchmarks share: running ``wrk`` (installing it if need be), parsing its
report, counting ``/exec`` statuses with a Lua script, CPU time from /proc, and how a
series of rounds is printed (the range, and the median of a ratio)."""

from __future__ import annotations

import os
import re
import shutil
import socket
import statistics
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "CONNECTIONS",
    "DURATION",
    "EXEC_LUA",
    "THREADS",
    "WRK_TIMEOUT_S",
    "Result",
    "cpu_seconds",
    "ensure_wrk",
    "free_port",
    "parse",
    "ratio_text",
    "run_wrk",
    "span",
]

DURATION = "4s"
THREADS = 2
CONNECTIONS = 16
WRK_TIMEOUT_S = 120

# Cycles through the tokens file (arg 1); thread k of n (arg 2) starts at k and steps by n,
# so no two threads send the same token until the file wraps around. Counts statuses.
EXEC_LUA = r"""
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
    requests: int = 0
    server_cpu_us: float = 0.0  # CPU time of the sshmint process per request
    upstream_cpu_us: float = 0.0  # ... and of the upstream process
    ok: int | None = None
    limited: int | None = None
    other: int | None = None
    sent: int | None = None
    tokens: int | None = None

    @property
    def ok_rps(self) -> float:
        """Requests per second counting 200 responses only (when statuses were counted)."""
        if self.ok is None or self.sent is None or self.sent == 0:
            return self.rps
        return self.rps * self.ok / self.sent


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ensure_wrk() -> str:
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


def _field(pattern: str, output: str) -> str:
    """The first group of ``pattern`` (multi-line) in wrk's ``output``, which must have it."""
    match = re.search(pattern, output, re.M)
    assert match, output
    return match.group(1)


def parse(output: str) -> Result:
    rps = float(_field(r"Requests/sec:\s+([\d.]+)", output))
    p50 = _ms(_field(r"^\s+50%\s+(\S+)", output))
    p99 = _ms(_field(r"^\s+99%\s+(\S+)", output))
    transfer = re.search(r"Transfer/sec:\s+([\d.]+)(\w+)", output)
    mb = float(transfer.group(1)) * _SIZES[transfer.group(2)] if transfer else 0.0
    total = re.search(r"(\d+) requests in", output)
    result = Result(rps, p50, p99, mb, int(total.group(1)) if total else 0)
    status = re.search(r"STATUS ok=(\d+) limited=(\d+) other=(\d+) sent=(\d+) tokens=(\d+)", output)
    if status:
        result.ok, result.limited, result.other, result.sent, result.tokens = map(
            int, status.groups()
        )
    return result


def run_wrk(
    wrk: str,
    url: str,
    *,
    headers: tuple[str, ...] = (),
    script: Path | None = None,
    script_args: tuple[str, ...] = (),
    threads: int = THREADS,
    connections: int = CONNECTIONS,
) -> Result:
    cmd = [wrk, f"-t{threads}", f"-c{connections}", f"-d{DURATION}", "--latency"]
    cmd += ["--timeout", "10s"]
    for header in headers:
        cmd += ["-H", header]
    if script is not None:
        cmd += ["-s", str(script)]
    cmd.append(url)
    if script_args:
        cmd += ["--", *script_args]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=WRK_TIMEOUT_S)
    if run.returncode != 0:
        raise SystemExit(
            f"wrk failed ({run.returncode}): {run.stdout[-1500:]} {run.stderr[-1500:]}"
        )
    return parse(run.stdout)


def span(values: Sequence[float], fmt: str) -> str:
    """``low–high`` of a series of rounds (one number when they agree)."""
    low, high = min(values), max(values)
    if f"{low:{fmt}}" == f"{high:{fmt}}":
        return f"{low:{fmt}}"
    return f"{low:{fmt}}–{high:{fmt}}"


def ratio_text(values: Sequence[float], target: float | None = None, higher: bool = True) -> str:
    """A ratio's rounds as ``low–high  median m``, and against ``target`` when there is
    one: met in every round, in some, or in none (the median says where most rounds
    fell on a machine whose load varies)."""
    text = f"{span(values, '.3f'):>13}  median {statistics.median(values):.3f}"
    if target is None:
        return text
    met = [v >= target if higher else v < target for v in values]
    verdict = "met" if all(met) else ("NOT met" if not any(met) else "met in some runs")
    return f"{text}  (target {'≥' if higher else '<'} {target}: {verdict})"
