"""Who a request speaks for, and what it may do.

- ``authenticator.py``: the one authentication path for bearer tokens (``/exec``, the VM
  proxy, ``exe0-to-exe1``): exe1 resolution, parse, claims, key, signature, lock-out.
- ``permissions.py``: the restrictions stored on a key (``cmds``, ``vm``, ``tag``, ``exp``),
  the checks made with them and their inheritance (docs/permissions.md#key-restrictions).
- ``exe1.py``: exe1 handles: derivation, hashing, sealing of the exe0 at rest.

Token claims themselves are the pure core's (:mod:`sshmint.token`).

The package hands on each module's public names (its ``__all__``).
"""

from sshmint.server.auth import authenticator, exe1, permissions
from sshmint.server.auth.authenticator import *  # noqa: F403
from sshmint.server.auth.exe1 import *  # noqa: F403
from sshmint.server.auth.permissions import *  # noqa: F403

__all__ = [*authenticator.__all__, *exe1.__all__, *permissions.__all__]
