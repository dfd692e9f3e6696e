"""Every helper and fixture the tests share; the conftests only wire fixtures in.

Import each helper from its one module: ``from tests.support.harness import SSHMintServer``.

- ``harness``: the real ``sshmint serve`` process and the real OpenSSH client; ``preloads/``:
  modules a test server imports before it starts.
- ``server_fixtures``, ``http_fixtures``, ``client_fixtures``, ``store_fixtures``: the
  fixtures of servers and accounts, of the HTTP tests, of the client tests, of the store.
- ``postgres``: a private PostgreSQL cluster and the ``db_url`` of each backend.
- ``keys``: keys made by the real ssh-keygen, accounts, the documented token recipe.
- ``polling``: ``wait_until``, ``free_port``, ``port_accepts``; ``aio``: ``run_sync``.
- ``log_checks``: no token in a server's output (and the session-end check).
- ``http_support``, ``exec_support``, ``raw_http``, ``upstream_client_support``: curl and
  raw-socket clients, ``POST /exec`` checks, recording and scripted upstreams.
- ``client_support``, ``git_http``, ``ssh_agent``: the client tests' fakes, the real git and
  ``git http-backend``, a real ssh-agent.
- ``command_helpers``: the command layer driven in-process on a real store;
  ``extra_commands``: commands of the tests' own beside the product's (``register_command``).
- ``sk_helpers``: a software security key and ``ssh-keygen -Y`` wrappers.
"""
