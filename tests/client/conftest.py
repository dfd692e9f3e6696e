"""Fixtures of the client tests (``tests/support/client_fixtures.py``, ``ssh_agent.py``): a
fake clock, loopback HTTP servers, a real ``git http-backend`` and ssh-agent, and accounts on
the session's shared SQLite server."""

from tests.support.client_fixtures import *  # noqa: F403
from tests.support.ssh_agent import *  # noqa: F403
