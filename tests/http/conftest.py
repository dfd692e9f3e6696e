"""Fixtures of the HTTP tests (``tests/support/http_fixtures.py``): ``live``, the shared
server of each backend, its main user ``owner``, and ``account``, a fresh key of that user."""

from tests.support.http_fixtures import *  # noqa: F403
