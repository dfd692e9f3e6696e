"""sshmint's SSHSIG verification against the real ``ssh-keygen -Y verify``.

Random signatures over random messages, by every corpus key (Ed25519, ECDSA P-256/384/
521, RSA with ``rsa-sha2-256`` and ``rsa-sha2-512``, both sk types, and the RSA key
outside the docs/security.md#key-limits limits), some left valid and most mutated with the fuzzer's blob
mutations, a tampered message or a wrong expected namespace. Each case is checked by
:func:`sshmint.sshsig.parse_sshsig` + :func:`sshmint.sshsig.verify` against the signer's
registered key, and by ``ssh-keygen -Y verify`` with an allowed_signers file naming the
same key (run in parallel threads: each call is a process).

The rule: sshmint may only ever be stricter. A case sshmint accepts and ssh-keygen
refuses is a finding, and so is a valid, unmutated signature by a usable key that
sshmint refuses. Cases where only ssh-keygen accepts are counted by mutation (libsodium's
stricter Ed25519 rules, version 0 blobs, keys outside the limits, ...).
"""

from __future__ import annotations

import concurrent.futures
import os
import random
import subprocess
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from fuzz.corpus import EXPECTED_NAMESPACE, OTHER_NAMESPACES, CorpusKey, build_corpus
from fuzz.mutate import Pools, mutate_blob
from sshmint.errors import MalformedSignatureError
from sshmint.keys import limit_violation
from sshmint.sshsig import SSHSig, armor, encode_sshsig, parse_sshsig, signed_data, verify

__all__ = ["Case", "DifferentialReport", "differential"]

VALID = "valid"


@dataclass(frozen=True)
class Case:
    key: CorpusKey
    mutation: str  # VALID, a blob mutation name, "message" or "namespace"
    message: bytes
    namespace: str  # the namespace the verifiers expect
    blob: bytes

    def sshmint_accepts(self) -> bool:
        try:
            sig = parse_sshsig(self.blob)
        except MalformedSignatureError:
            return False
        return verify(sig, self.message, self.namespace, self.key.public_key)


@dataclass
class DifferentialReport:
    cases: int = 0
    agree: Counter[str] = field(default_factory=Counter)  # by outcome: "both accept", ...
    stricter: Counter[str] = field(default_factory=Counter)  # only ssh-keygen accepts
    findings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [
            f"differential: {self.cases} signatures, {len(self.findings)} finding(s); "
            + ", ".join(f"{k}: {v}" for k, v in sorted(self.agree.items())),
            "  only ssh-keygen accepts (sshmint stricter): "
            + (", ".join(f"{k} {v}" for k, v in sorted(self.stricter.items())) or "none"),
        ]
        return "\n".join(lines + self.findings[:20])


def make_cases(seed: int, per_key: int) -> list[Case]:
    """``per_key`` cases for every distinct signer of the corpus keys."""
    corpus = build_corpus(seed)
    keys, pools = corpus.keys, Pools.of(corpus)
    rng = random.Random(f"differential:{seed}")
    cases = []
    for key in keys:
        for _ in range(per_key):
            message = rng.randbytes(rng.choice((0, 1, 17, 300)))
            hash_algorithm = rng.choice(("sha256", "sha512"))
            ns = EXPECTED_NAMESPACE.encode()
            signature = key.sign(signed_data(ns, hash_algorithm, message))
            blob = encode_sshsig(SSHSig(key.public_key.blob, ns, b"", hash_algorithm, signature))
            roll = rng.random()
            namespace, mutation = EXPECTED_NAMESPACE, VALID
            if roll < 0.15:
                mutation = "message"
                message = message + b"\0" if not message else bytes([message[0] ^ 1]) + message[1:]
            elif roll < 0.2:
                mutation, namespace = "namespace", rng.choice(OTHER_NAMESPACES)
            elif roll < 0.75:
                mutation, blob = mutate_blob(pools, rng, blob)
            cases.append(Case(key, mutation, message, namespace, blob))
    return cases


def _keygen_accepts(case: Case, directory: Path, index: int, allowed: Path) -> bool:
    sig_file = directory / f"{index}.sig"
    sig_file.write_text(armor(case.blob))
    result = subprocess.run(
        [
            *("ssh-keygen", "-Y", "verify", "-f", str(allowed)),
            *("-I", _principal(case.key), "-n", case.namespace, "-s", str(sig_file)),
        ],
        input=case.message,
        capture_output=True,
        timeout=60,
    )
    return result.returncode == 0


def _principal(key: CorpusKey) -> str:
    return f"{key.public_key.fingerprint[:12]}@fuzz"


def compare(cases: list[Case], workers: int | None = None) -> DifferentialReport:
    report = DifferentialReport()
    with tempfile.TemporaryDirectory(prefix="sshmint-differential-") as tmp:
        directory = Path(tmp)
        allowed = directory / "allowed_signers"
        lines = {f"{_principal(c.key)} {c.key.public_key.openssh}" for c in cases}
        allowed.write_text("\n".join(sorted(lines)) + "\n")
        with concurrent.futures.ThreadPoolExecutor(workers or 2 * (os.cpu_count() or 2)) as pool:
            verdicts = list(
                pool.map(
                    lambda ic: _keygen_accepts(ic[1], directory, ic[0], allowed),
                    enumerate(cases),
                )
            )
    for index, (case, keygen) in enumerate(zip(cases, verdicts, strict=True)):
        ours = case.sshmint_accepts()
        report.cases += 1
        label = f"case {index} ({case.key.name}, {case.mutation})"
        if ours and not keygen:
            report.findings.append(f"{label}: sshmint accepts what ssh-keygen refuses")
        elif keygen and not ours:
            usable = limit_violation(case.key.public_key.blob) is None
            if case.mutation == VALID and usable:
                report.findings.append(f"{label}: sshmint refuses a valid signature")
            report.stricter[f"{case.mutation} ({case.key.name})"] += 1
        else:
            report.agree["both accept" if ours else "both refuse"] += 1
    return report


def differential(seed: int, per_key: int = 64) -> DifferentialReport:
    return compare(make_cases(seed, per_key))
