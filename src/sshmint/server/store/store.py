"""The ``Store``: every read and write of sshmint's state (docs/accounts.md#accounts-keys-and-vms, docs/storage.md#storage).

One class, composed of one part per aggregate on a shared core:

- ``core.py`` (:class:`~.core.StoreCore`): opening, the deadline of every database call,
  the fast reads, transactions;
- ``users.py``: users; ``ssh_keys.py``: SSH keys; ``vms.py``: VMs and their shares;
  ``exe1_handles.py``: exe1 handles and the derivation secret; ``revocations.py``: revoked
  tokens; ``rate_limits.py``: the ``/exec`` token buckets shared by several nodes
  (PostgreSQL).

A transaction that writes into another aggregate's table uses that aggregate's statement
helpers (a new user's first key, a generated key's exe1 handle), so each rule about a
table is written once.
"""

from __future__ import annotations

from sshmint.server.store.exe1_handles import Exe1Handles
from sshmint.server.store.rate_limits import RateLimits
from sshmint.server.store.revocations import Revocations
from sshmint.server.store.ssh_keys import SSHKeys
from sshmint.server.store.users import Users
from sshmint.server.store.vms import VMs

__all__ = ["Store"]


class Store(Users, SSHKeys, VMs, Exe1Handles, Revocations, RateLimits):
    """Async access to the database. Use :meth:`open`; one instance per process."""
