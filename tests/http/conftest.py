"""Fixtures of the HTTP tests (``tests/support/http_fixtures.py``): ``owner``, the main user
of ``live`` (the shared server of each backend), and ``account``, a fresh key of that user."""

from tests.support.http_fixtures import *  # noqa: F403
