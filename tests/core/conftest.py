"""Fixtures of the core tests (``tests/support/keys.py``): ``key_path``, one key of each type
sshmint signs with."""

from tests.support.keys import key_path  # noqa: F401
