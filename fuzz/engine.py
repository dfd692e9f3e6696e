"""Feed mutated tokens through the library and the server's authentication path.

Each bearer string goes through two verifiers that must agree:

- the library: :func:`sshmint.token.verify_exe0` (parse, steps 1–15; claims, 16–17;
  key lookup and signature, 18–19) with the corpus keys as the key store;
- the server: :meth:`sshmint.server.auth.Authenticator.authenticate`, the one path
  ``POST /exec`` (even indices, with the user's keys read too) and the proxy (odd ones)
  use, against a real :class:`~sshmint.server.store.Store` (a SQLite file) where one
  user holds every corpus key — the RSA key outside the docs/security.md#key-limits limits included,
  written straight into the table as an older version would have stored it; and
  :meth:`~sshmint.server.auth.Authenticator.check_trade` (``exe0-to-exe1``, its own
  order of steps: only crashes and the oracle apply to it).

A *finding* is any of: an exception other than :class:`sshmint.errors.TokenError` from
either; a token accepted whose signed bytes (key, namespace, hash algorithm, payload)
are not ones the corpus really signed with a usable key; the two verifiers deciding
differently (step and message) on an exe0 string.
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from fuzz.corpus import EXPECTED_NAMESPACE, NOW, Corpus, build_corpus
from fuzz.mutate import Mutator
from sshmint.errors import TokenError
from sshmint.server.auth import Authenticator
from sshmint.server.store import Store
from sshmint.token import EXE1_PREFIX, ParsedToken, verify_exe0

__all__ = ["Finding", "Harness", "Report"]

ACCEPTED = "accepted"
_TOKEN_SHOWN = 400  # characters of a failing token in a report (test keys only)


@dataclass(frozen=True)
class Finding:
    seed: int
    index: int
    mutator: str
    where: str  # "library", "server", "trade" or "agreement"
    detail: str
    token: str

    def __str__(self) -> str:
        shown = self.token if len(self.token) <= _TOKEN_SHOWN else self.token[:_TOKEN_SHOWN] + "…"
        return (
            f"[{self.where}] seed={self.seed} index={self.index} mutator={self.mutator}: "
            f"{self.detail}\n    token={shown!r}\n"
            f"    replay: python -m fuzz --seed {self.seed} --replay {self.index}"
        )


@dataclass
class Report:
    seed: int
    tokens: int = 0
    seconds: float = 0.0
    outcomes: Counter[str] = field(default_factory=Counter)  # "accepted", "step 15", ...
    mutators: Counter[str] = field(default_factory=Counter)
    accepted: Counter[str] = field(default_factory=Counter)  # by mutator (oracle passed)
    findings: list[Finding] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0

    def merge(self, other: Report) -> None:
        self.tokens += other.tokens
        self.seconds = max(self.seconds, other.seconds)
        self.outcomes.update(other.outcomes)
        self.mutators.update(other.mutators)
        self.accepted.update(other.accepted)
        self.findings.extend(other.findings)

    def summary(self) -> str:
        outcomes = ", ".join(f"{k}: {v}" for k, v in sorted(self.outcomes.items(), key=_order))
        lines = [
            f"fuzz seed {self.seed}: {self.tokens:,} tokens in {self.seconds:.1f} s "
            f"({self.rate:,.0f} tokens/s), {len(self.findings)} finding(s)",
            f"  outcomes (library): {outcomes}",
            "  mutators: " + ", ".join(f"{k} {v}" for k, v in sorted(self.mutators.items())),
            "  accepted after mutation (same signed bytes): "
            + ", ".join(f"{k} {v}" for k, v in sorted(self.accepted.items())),
        ]
        lines += [str(f) for f in self.findings[:20]]
        return "\n".join(lines)


def _order(item: tuple[str, int]) -> tuple[int, str]:
    name = item[0]
    return (int(name.split()[1]), name) if name.startswith("step ") else (0, name)


def _quiet_logger() -> logging.Logger:
    logger = logging.getLogger("fuzz.server")
    logger.propagate = False
    logger.addHandler(logging.NullHandler())
    return logger


def _describe(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" at {frames[-1].filename}:{frames[-1].lineno}" if frames else ""
    return f"{type(exc).__name__}: {exc}"[:300] + where


class Harness:
    """One corpus, one mutator, one key store; :meth:`run` checks a range of indices."""

    def __init__(self, seed: int, corpus: Corpus, store: Store, user_id: str) -> None:
        self.seed = seed
        self.corpus = corpus
        self.user_id = user_id
        self.mutator = Mutator(corpus, seed)
        self.store = store
        self.authenticator = Authenticator(store, lambda: NOW, _quiet_logger())
        self._registered = corpus.registered

    @classmethod
    async def open(cls, seed: int, directory: Path) -> Harness:
        corpus = build_corpus(seed)
        store = await Store.open(f"sqlite:///{directory / f'fuzz-{seed}.db'}")
        keys = list(corpus.registered.values())  # one row per key (two RSA formats)
        user, _ = await store.create_user(f"fuzz-{seed}@example.com", NOW, keys[0])
        for key in keys[1:]:  # no validation on this path: the legacy key goes in as is
            await store.add_key(user.user_id, key, "", "", NOW)
        return cls(seed, corpus, store, user.user_id)

    async def close(self) -> None:
        await self.store.close()

    def _accepted_finding(self, parsed: ParsedToken) -> str | None:
        sig = parsed.sshsig
        signed = (sig.public_key, sig.namespace, sig.hash_algorithm, parsed.payload)
        if signed not in self.corpus.acceptable:
            return "accepted a token whose signed bytes were never signed by a usable key"
        return None

    def _library(self, token: str) -> tuple[str, str | None]:
        """``(outcome, finding detail)`` of verify_exe0."""
        try:
            parsed = verify_exe0(token, EXPECTED_NAMESPACE, self._registered.get, NOW)
        except TokenError as exc:
            return f"step {exc.step}: {exc.message}", None
        except Exception as exc:
            return "crash", _describe(exc)
        return ACCEPTED, self._accepted_finding(parsed)

    async def _server(self, token: str, index: int) -> tuple[str, str | None]:
        # /exec reads the user's keys with the signing key; the proxy does not.
        try:
            principal = await self.authenticator.authenticate(
                token, EXPECTED_NAMESPACE, with_user_keys=index % 2 == 0
            )
        except TokenError as exc:
            return f"step {exc.step}: {exc.message}", None
        except Exception as exc:
            return "crash", _describe(exc)
        return ACCEPTED, self._accepted_finding(principal.token)

    async def _trade(self, token: str) -> str | None:
        """``exe0-to-exe1``'s check (its own order; only crashes and the oracle count)."""
        try:
            parsed = await self.authenticator.check_trade(token, EXPECTED_NAMESPACE, self.user_id)
        except TokenError:
            return None
        except Exception as exc:
            return _describe(exc)
        return self._accepted_finding(parsed)

    async def check(self, index: int) -> tuple[str, str, list[Finding]]:
        """``(mutator, library outcome, findings)`` for the ``index``-th mutated token."""
        name, token = self.mutator.mutate(index)
        findings = []
        library, problem = self._library(token)
        if problem:
            findings.append(Finding(self.seed, index, name, "library", problem, token))
        server, problem = await self._server(token, index)
        if problem:
            findings.append(Finding(self.seed, index, name, "server", problem, token))
        problem = await self._trade(token)
        if problem:
            findings.append(Finding(self.seed, index, name, "trade", problem, token))
        # exe1 strings are resolved by the server only (docs/tokens.md#exe1-resolution).
        if library != server and not token.startswith(EXE1_PREFIX):
            detail = f"library {library!r} but server {server!r}"
            findings.append(Finding(self.seed, index, name, "agreement", detail, token))
        return name, library, findings

    async def run(
        self,
        indices: range,
        *,
        max_seconds: float | None = None,
        progress: Callable[[Report], None] | None = None,
    ) -> Report:
        report = Report(self.seed)
        started = time.perf_counter()
        for index in indices:
            name, outcome, findings = await self.check(index)
            report.tokens += 1
            report.mutators[name.split("+")[0]] += 1
            report.outcomes[outcome.split(":")[0]] += 1
            if outcome == ACCEPTED:
                report.accepted[name] += 1
            report.findings.extend(findings)
            if report.tokens % 5000 == 0:
                report.seconds = time.perf_counter() - started
                if progress is not None:
                    progress(report)
                if max_seconds is not None and report.seconds > max_seconds:
                    break
        report.seconds = time.perf_counter() - started
        return report


async def run_fuzz(
    seed: int,
    directory: Path,
    indices: range,
    *,
    max_seconds: float | None = None,
    progress: Callable[[Report], None] | None = None,
) -> Report:
    """Open a harness in ``directory``, check ``indices``, close it."""
    harness = await Harness.open(seed, directory)
    try:
        return await harness.run(indices, max_seconds=max_seconds, progress=progress)
    finally:
        await harness.close()


def fuzz(seed: int, directory: Path, count: int, max_seconds: float | None = None) -> Report:
    """Synchronous entry point: ``count`` tokens from index 0."""
    return asyncio.run(run_fuzz(seed, directory, range(count), max_seconds=max_seconds))
