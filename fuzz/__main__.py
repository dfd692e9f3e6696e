"""``python -m fuzz``: the long run behind ``make fuzz`` (the test suite runs a short one).

Options: ``--tokens N`` (default 1,000,000), ``--max-seconds S`` (default 1800: the run
stops by itself), ``--workers W`` (processes, default 2, each with its own SQLite store;
worker ``k`` checks indices ``k, k+W, ...``), ``--seed N`` (default: random, printed),
``--signatures-per-key K`` (differential cases per signer, default 256; 0 skips it),
``--replay INDEX`` (show one case of ``--seed`` in full). Exits 1 on any finding.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import random
import sys
import tempfile
import time
from pathlib import Path

from fuzz.differential import differential
from fuzz.engine import Harness, Report, run_fuzz


def _worker(seed: int, start: int, count: int, step: int, max_seconds: float) -> Report:
    def progress(report: Report) -> None:
        if report.tokens % 100_000 == 0:
            print(
                f"  worker {start}: {report.tokens:,} tokens, {report.rate:,.0f}/s, "
                f"{len(report.findings)} finding(s)",
                flush=True,
            )

    with tempfile.TemporaryDirectory(prefix="sshmint-fuzz-") as tmp:
        indices = range(start, count, step)
        return asyncio.run(
            run_fuzz(seed, Path(tmp), indices, max_seconds=max_seconds, progress=progress)
        )


def _fuzz(seed: int, tokens: int, workers: int, max_seconds: float) -> Report:
    total = Report(seed)
    started = time.perf_counter()
    with concurrent.futures.ProcessPoolExecutor(workers) as pool:
        futures = [
            pool.submit(_worker, seed, k, tokens, workers, max_seconds) for k in range(workers)
        ]
        for future in futures:
            total.merge(future.result())
    total.seconds = time.perf_counter() - started
    return total


async def _replay(seed: int, index: int) -> int:
    with tempfile.TemporaryDirectory(prefix="sshmint-fuzz-") as tmp:
        harness = await Harness.open(seed, Path(tmp))
        try:
            name, token = harness.mutator.mutate(index)
            print(f"seed {seed} index {index}: mutator {name}\ntoken {token!r}")
            _name, outcome, findings = await harness.check(index)
            print(f"library: {outcome}")
            for finding in findings:
                print(finding)
            return 1 if findings else 0
        finally:
            await harness.close()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m fuzz", description=__doc__)
    parser.add_argument("--tokens", type=int, default=1_000_000)
    parser.add_argument("--max-seconds", type=float, default=1800.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--signatures-per-key", type=int, default=256)
    parser.add_argument("--replay", type=int, default=None, metavar="INDEX")
    args = parser.parse_args(argv)
    seed = random.randrange(2**32) if args.seed is None else args.seed
    if args.replay is not None:
        return asyncio.run(_replay(seed, args.replay))
    print(
        f"fuzz: seed {seed}, {args.tokens:,} tokens, {args.workers} worker(s), "
        f"at most {args.max_seconds:.0f} s",
        flush=True,
    )
    report = _fuzz(seed, args.tokens, args.workers, args.max_seconds)
    print(report.summary(), flush=True)
    failed = bool(report.findings)
    if args.signatures_per_key > 0:
        started = time.perf_counter()
        diff = differential(seed, args.signatures_per_key)
        print(f"{diff.summary()}\n  ({time.perf_counter() - started:.1f} s)", flush=True)
        failed = failed or bool(diff.findings)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
