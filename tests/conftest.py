"""Fixtures for every test directory; the code is in ``tests/support/``:

- ``postgres.py``: ``postgres`` (a private PostgreSQL cluster) and ``db_url`` (a fresh
  database of each backend);
- ``keys.py``: ``ssh_keygen_key`` and ``fresh_key`` (keys made by the real ssh-keygen);
- ``server_fixtures.py``: real ``sshmint serve`` processes (``server``, ``server_factory``,
  the session's ``sqlite_server``/``postgresql_server`` and ``live``) and accounts
  on them (``new_account``, ``owner_of``);
- ``logging_state.py``: ``configured`` (logging's global state put back after a test).
"""

from tests.support.keys import *  # noqa: F403
from tests.support.logging_state import *  # noqa: F403
from tests.support.postgres import *  # noqa: F403
from tests.support.server_fixtures import *  # noqa: F403
