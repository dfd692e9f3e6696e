"""Short runs of the permanent fuzz and differential harness (``fuzz/``; ``make fuzz`` runs
it long).

- docs/tokens.md#validation / docs/tokens.md#sshsig-blob / docs/security.md#key-limits: 10,000 mutated tokens through the library and the server's
  one authentication path (``authenticate`` as /exec and the proxy call it, and
  ``check_trade``, on a real SQLite store): nothing but a token error ever escapes,
  nothing verifies whose signed bytes changed, and library and server give the same
  answer.
- docs/tokens.md#signed-data / docs/tokens.md#key-and-signature-types: 500+ signatures over every key type compared with ``ssh-keygen -Y
  verify``: sshmint may only ever be stricter.

The seed is random per run and printed on failure (``SSHMINT_FUZZ_SEED=N`` fixes it);
``python -m fuzz --seed N --replay INDEX`` shows one case.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from fuzz.corpus import build_corpus
from fuzz.differential import VALID, compare, make_cases
from fuzz.engine import fuzz
from fuzz.mutate import Mutator
from sshmint import sshsig
from sshmint.keys import PublicKey

SHORT_RUN_TOKENS = 10_000  # every reachable step is hit from 5,000 on (20 seeds tried)
SIGNATURES_PER_KEY = 64  # 9 signers (RSA twice, with each format): 576 signatures
# Every step of docs/tokens.md#validation that can fail on its own (12 is caught by 9 first).
REACHABLE_STEPS = {*range(1, 12), *range(13, 20)}


@pytest.fixture
def seed() -> int:
    return int(os.environ.get("SSHMINT_FUZZ_SEED") or random.randrange(2**32))


def test_s21_mutated_tokens_raise_only_token_errors_and_never_verify_changed_bytes(
    seed: int, tmp_path: Path
) -> None:
    """docs/tokens.md#validation, docs/tokens.md#sshsig-blob, docs/security.md#key-limits: the library and Authenticator.authenticate on 10,000 mutated
    tokens (text, payload and SSHSIG mutations of tokens by all seven key types and by an
    RSA key outside the limits stored as an old version would have)."""
    report = fuzz(seed, tmp_path, SHORT_RUN_TOKENS)
    assert report.tokens == SHORT_RUN_TOKENS
    assert not report.findings, f"seed {seed}\n{report.summary()}"
    reached = {int(o.split()[1]) for o in report.outcomes if o.startswith("step ")}
    assert reached == REACHABLE_STEPS, f"seed {seed}: {sorted(reached)}"
    assert report.outcomes["accepted"] > 0, report.summary()


def test_fuzz_harness_reports_a_verifier_that_ignores_the_namespace_field(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The oracle can fail: with docs/tokens.md#signed-data rule 2 (namespace field) switched off, tokens whose
    namespace field was overridden verify, and the harness reports them, replayably.

    The server also compares the namespace field itself before verifying (the ``namespace``
    check of token explain), so that comparison is switched off too."""
    import sshmint.server.auth.authenticator as authenticator

    real_verify = sshsig.verify

    def without_rule_2(sig: sshsig.SSHSig, message: bytes, namespace: str, key: PublicKey) -> bool:
        genuine = sshsig.SSHSig(
            sig.public_key, namespace.encode(), sig.reserved, sig.hash_algorithm, sig.signature
        )
        return real_verify(genuine, message, namespace, key)

    monkeypatch.setattr(sshsig, "verify", without_rule_2)
    monkeypatch.setattr(authenticator, "_check_namespace", lambda parsed, namespace: None)
    report = fuzz(1, tmp_path, 3000)
    wheres = {f.where for f in report.findings if "never signed" in f.detail}
    assert wheres == {"library", "server", "trade"}, report.summary()
    assert all(f.mutator.startswith("sshsig.") for f in report.findings)
    assert "python -m fuzz --seed 1 --replay" in str(report.findings[0])


def test_fuzz_harness_reports_an_escaping_exception(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Any exception other than a TokenError is a finding, with its type and place."""
    import sshmint.token

    real_parse = sshsig.parse_sshsig  # the function sshmint.token imported

    def fragile(blob: bytes) -> sshsig.SSHSig:
        if len(blob) % 7 == 3:
            raise KeyError("boom")
        return real_parse(blob)

    monkeypatch.setattr(sshmint.token, "parse_sshsig", fragile)
    report = fuzz(2, tmp_path, 2000)
    crashes = [f for f in report.findings if f.detail.startswith("KeyError: 'boom'")]
    assert {f.where for f in crashes} == {"library", "server", "trade"}
    assert "test_fuzz.py" in crashes[0].detail


def test_fuzz_cases_are_replayable_from_seed_and_index() -> None:
    """A finding's (seed, index) rebuilds its case: the corpus is the same, and a case
    depends on its index alone, not on the cases checked before it."""
    first, second = build_corpus(5), build_corpus(5)
    assert [t.token for t in first.tokens] == [t.token for t in second.tokens]
    a, b = Mutator(first, 5), Mutator(second, 5)
    forward = [a.mutate(i) for i in (0, 17, 9999)]
    backward = [b.mutate(i) for i in (9999, 17, 0)][::-1]
    assert forward == backward and len(set(forward)) == 3


def test_s14_s15_sshmint_is_never_more_lenient_than_ssh_keygen(seed: int) -> None:
    """docs/tokens.md#signed-data/docs/tokens.md#key-and-signature-types against ``ssh-keygen -Y verify``: valid and mutated signatures by
    Ed25519, ECDSA P-256/384/521, RSA (rsa-sha2-256 and -512) and both sk types, plus
    the RSA key outside docs/security.md#key-limits, which only sshmint refuses."""
    cases = make_cases(seed, SIGNATURES_PER_KEY)
    usable = [c for c in cases if c.key.name != "rsa-exponent-outside-limits"]
    assert len(usable) >= 500
    assert {c.key.name for c in usable} >= {
        "ed25519",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "rsa-sha2-256",
        "rsa-sha2-512",
    }
    report = compare(cases)
    assert not report.findings, f"seed {seed}\n{report.summary()}"
    assert report.agree["both accept"] > 0 and report.agree["both refuse"] > 0, report.summary()
    legacy_valid = sum(
        1 for c in cases if c.key.name == "rsa-exponent-outside-limits" and c.mutation == VALID
    )
    assert legacy_valid > 0
    assert report.stricter[f"{VALID} (rsa-exponent-outside-limits)"] == legacy_valid
