"""The fuzz and differential harness for token validation (``python -m fuzz``).

- :mod:`fuzz.corpus`: keys of every docs/tokens.md#key-and-signature-types type (and one RSA key outside the docs/security.md#key-limits
  limits) and valid exe0 tokens, all derived from one seed;
- :mod:`fuzz.mutate`: text-, payload- and SSHSIG-level mutations, replayable by
  ``(seed, index)``;
- :mod:`fuzz.engine`: each mutated token through the library and the server's one
  authentication path on a real store; anything but a token error, an acceptance of
  bytes never signed, or a disagreement between the two is a finding;
- :mod:`fuzz.differential`: SSHSIG verification against ``ssh-keygen -Y verify``
  (sshmint may only ever be stricter).

``tests/core/test_fuzz.py`` runs it briefly in ``make test``; ``make fuzz`` runs it long.
"""
