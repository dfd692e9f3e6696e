"""Who a request speaks for, and what it may do.

- ``authenticator.py``: the one authentication path for bearer tokens (``/exec``, the VM
  proxy, ``exe0-to-exe1``): exe1 resolution, parse, claims, key, signature, lock-out.
- ``permissions.py``: the restrictions stored on a key (``cmds``, ``vm``, ``tag``, ``exp``),
  the checks made with them and their inheritance (docs/permissions.md#key-restrictions).
- ``exe1.py``: exe1 handles: derivation, hashing, sealing of the exe0 at rest.

Token claims themselves are the pure core's (:mod:`sshmint.token`).
"""

from sshmint.server.auth.authenticator import (
    Authenticator,
    KeyPermissionsError,
    Presented,
    Principal,
)
from sshmint.server.auth.exe1 import (
    DEFAULT_EXE1_EXPIRY,
    EXE1_BODY_LENGTH,
    SEAL_INFO,
    derive_exe1,
    exe1_hash,
    seal,
    unseal,
)
from sshmint.server.auth.permissions import (
    KEY_EXPIRED,
    KEY_NOT_ALLOWED,
    KEY_REVOKED,
    NOT_TAG_SAFE,
    UNRESTRICTED,
    InheritanceError,
    KeyPermissions,
    KeyRowLike,
    PermissionsError,
    cmds_allow,
    inherit,
    key_permission_error,
    key_restriction_error,
    parse_key_permissions,
)

__all__ = [
    "DEFAULT_EXE1_EXPIRY",
    "EXE1_BODY_LENGTH",
    "KEY_EXPIRED",
    "KEY_NOT_ALLOWED",
    "KEY_REVOKED",
    "NOT_TAG_SAFE",
    "SEAL_INFO",
    "UNRESTRICTED",
    "Authenticator",
    "InheritanceError",
    "KeyPermissions",
    "KeyPermissionsError",
    "KeyRowLike",
    "PermissionsError",
    "Presented",
    "Principal",
    "cmds_allow",
    "derive_exe1",
    "exe1_hash",
    "inherit",
    "key_permission_error",
    "key_restriction_error",
    "parse_key_permissions",
    "seal",
    "unseal",
]
