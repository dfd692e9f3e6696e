"""The authentication path in process, without HTTP: what the token lifecycle's checks add
to every request (docs/lifecycle.md, docs/performance.md#revocation-on-the-key-lookup).

``Authenticator.authenticate`` (as ``/exec`` calls it: the key, its owner and the owner's
keys in one read) on a SQLite store, for a repeated token (signature memoised, the steady
state of a client reusing its token), in two set-ups measured in interleaved rounds:

- ``off``: no lifetime policy, a token without ``exp``, no revocation of its key;
- ``on``: ``--max-token-lifetime 1y``, a token expiring within it, and ``REVOCATIONS``
  revoked tokens of the same key in ``token_revocations``.

The revocation check is a join in the key lookup in both set-ups (it is always on); what
differs is the policy check, a populated revocations table and an ``exp`` claim. CPU
time per call (``time.process_time``) over ``CALLS`` calls a round; the median of the
rounds and their ratio are printed. Target (printed, never asserted): on / off ≤ 1.03.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from bench.wrk import ratio_text

__all__ = ["main"]

ROUNDS = 9
CALLS = 5000
REVOCATIONS = 20_000
NAMESPACE = "v0@localhost"
YEAR = 365 * 86400


async def _measure() -> tuple[list[float], list[float]]:
    from sshmint.server.auth import Authenticator, LifetimePolicy
    from sshmint.server.store import Store
    from sshmint.signing import generate_ed25519
    from sshmint.token import mint_exe0

    workdir = Path(tempfile.mkdtemp(prefix="sshmint-bench-auth-"))
    store = await Store.open(f"sqlite:///{workdir / 'sshmint.db'}")
    try:
        now = int(time.time())
        plain, revoked = generate_ed25519(), generate_ed25519()
        await store.create_user("off@example.com", now, plain.public_key)
        user, _ = await store.create_user("on@example.com", now, revoked.public_key)
        rows = [
            (hashlib.sha256(os.urandom(32)).hexdigest(), user.user_id,
             revoked.public_key.fingerprint, now, now + 180 * 86400)
            for _ in range(REVOCATIONS)
        ]  # fmt: skip
        with sqlite3.connect(workdir / "sshmint.db") as db:
            db.executemany("INSERT INTO token_revocations VALUES (?, ?, ?, ?, ?)", rows)
        logger = logging.getLogger("bench.auth")
        clock = lambda: int(time.time())  # noqa: E731
        cases = (
            (Authenticator(store, clock, logger), mint_exe0(b"{}", plain, NAMESPACE)),
            (
                Authenticator(store, clock, logger, policy=LifetimePolicy(YEAR)),
                mint_exe0(f'{{"exp":{now + 180 * 86400}}}'.encode(), revoked, NAMESPACE),
            ),
        )
        for auth, token in cases:  # warm the memos and the page cache
            for _ in range(CALLS // 5):
                await auth.authenticate(token, NAMESPACE, with_user_keys=True)
        off: list[float] = []
        on: list[float] = []
        for _ in range(ROUNDS):
            for (auth, token), out in zip(cases, (off, on), strict=True):
                started = time.process_time()
                for _ in range(CALLS):
                    await auth.authenticate(token, NAMESPACE, with_user_keys=True)
                out.append((time.process_time() - started) / CALLS * 1e6)
        return off, on
    finally:
        await store.close()


def main() -> None:
    off, on = asyncio.run(_measure())
    print(f"   {ROUNDS} rounds × {CALLS} calls, interleaved; CPU µs per call (median, range)")
    for label, values in (
        ("off: no policy, no revocations", off),
        ("on: policy 1y, 20,000 revocations", on),
    ):
        print(
            f"   {label:<40} {statistics.median(values):7.1f}"
            f"  ({min(values):.1f}–{max(values):.1f})",
            flush=True,
        )
    ratios = [b / a for a, b in zip(off, on, strict=True)]
    print(f"   {'on / off, CPU per call':<40} {ratio_text(ratios, 1.03, higher=False)}")
