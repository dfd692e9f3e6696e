"""Fixtures of the server tests (``tests/support/store_fixtures.py``): a ``Store`` on a
fresh database of each backend (``store``) and keys in the shape it takes (``keys``)."""

from tests.support.store_fixtures import *  # noqa: F403
