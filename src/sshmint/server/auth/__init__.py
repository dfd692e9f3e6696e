"""Who a request speaks for, and what it may do.

- ``authenticator.py``: the one authentication path for bearer tokens (``/exec``, the VM
  proxy, ``exe0-to-exe1``, ``token explain``): one ordered pipeline of checks — format
  (exe1 resolution, parse), claims, key, namespace, signature, owner, revoked, key
  restrictions, lifetime policy.
- ``permissions.py``: the restrictions stored on a key (``cmds``, ``vm``, ``tag``, ``exp``),
  the checks made with them and with a token's ``cmds``, and their inheritance
  (docs/permissions.md#key-restrictions).
- ``policy.py``: the server's lifetime policy (``--max-token-lifetime``).
- ``access.py``: who may use a VM (owner or shared).
- ``exe1.py``: exe1 handles: derivation, hashing, sealing of the exe0 at rest.

Token claims themselves are the pure core's (:mod:`sshmint.token`).

The package hands on each module's public names (its ``__all__``).
"""

from sshmint.server.auth import access, authenticator, exe1, permissions, policy
from sshmint.server.auth.access import *  # noqa: F403
from sshmint.server.auth.authenticator import *  # noqa: F403
from sshmint.server.auth.exe1 import *  # noqa: F403
from sshmint.server.auth.permissions import *  # noqa: F403
from sshmint.server.auth.policy import *  # noqa: F403

__all__ = [
    *access.__all__,
    *authenticator.__all__,
    *exe1.__all__,
    *permissions.__all__,
    *policy.__all__,
]
