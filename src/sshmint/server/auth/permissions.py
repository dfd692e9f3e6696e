"""Key-level permissions (docs/permissions.md#key-restrictions): parsing, checks and inheritance.

The stored form is ``""`` (unrestricted) or a JSON object with the members ``cmds``,
``vm``, ``tag`` and ``exp``. Text that cannot be read raises :class:`PermissionsError`;
every caller treats that as "deny" (fail closed).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Protocol

from sshmint.errors import SSHMintError
from sshmint.strictjson import quote
from sshmint.valuetypes import value_type

__all__ = [
    "KEY_EXPIRED",
    "KEY_NOT_ALLOWED",
    "KEY_REVOKED",
    "NOT_TAG_SAFE",
    "UNRESTRICTED",
    "InheritanceError",
    "KeyPermissions",
    "KeyRowLike",
    "PermissionsError",
    "VMLike",
    "cmds_allow",
    "inherit",
    "key_permission_error",
    "key_restriction_error",
    "parse_key_permissions",
]

KEY_REVOKED = "SSH key has been revoked"
KEY_EXPIRED = "SSH key has expired"
KEY_NOT_ALLOWED = "command not allowed by SSH key permissions"
# docs/permissions.md#how-they-combine / docs/permissions.md#tag-scope: the only command a tag-scoped key may not run.
NOT_TAG_SAFE = frozenset({"exe0-to-exe1"})


class PermissionsError(SSHMintError):
    """Stored permissions text is not a readable permissions object (fail closed)."""


class InheritanceError(SSHMintError):
    """docs/permissions.md#inheritance: the new key would be less restricted than the calling key."""


class KeyRowLike(Protocol):
    """What the checks need from a stored key row (``store.SSHKeyRow``)."""

    @property
    def permissions(self) -> str: ...


class VMLike(Protocol):
    """What :meth:`KeyPermissions.allows_vm` needs from a VM (``store.VM``)."""

    @property
    def name(self) -> str: ...

    @property
    def tags(self) -> tuple[str, ...]: ...


@value_type
@dataclass(frozen=True, slots=True)
class KeyPermissions:
    """docs/permissions.md#key-restrictions. ``None`` means "member absent"."""

    cmds: tuple[str, ...] | None = None
    vm: str | None = None
    tag: str | None = None
    exp: int | None = None

    @property
    def unrestricted(self) -> bool:
        return self.cmds is None and self.vm is None and self.tag is None and self.exp is None

    def to_object(self) -> dict[str, object]:
        """The JSON object with only the members that are set."""
        obj: dict[str, object] = {}
        if self.cmds is not None:
            obj["cmds"] = list(self.cmds)
        if self.vm is not None:
            obj["vm"] = self.vm
        if self.tag is not None:
            obj["tag"] = self.tag
        if self.exp is not None:
            obj["exp"] = self.exp
        return obj

    def to_text(self) -> str:
        """The stored form: ``""`` when unrestricted, else compact JSON."""
        if self.unrestricted:
            return ""
        return json.dumps(self.to_object(), ensure_ascii=False, separators=(",", ":"))

    def expired(self, now: int) -> bool:
        """docs/permissions.md#key-expiry: expired iff ``now > exp``."""
        return self.exp is not None and now > self.exp

    def allows(self, name: str) -> bool:
        """Key ``cmds`` under the parent-prefix rule (docs/permissions.md#key-restrictions); no ``cmds`` allows all."""
        return self.cmds is None or cmds_allow(self.cmds, name)

    def allows_vm(self, vm: VMLike) -> bool:
        """May this key use ``vm``: a ``vm`` key serves only that VM, a ``tag`` key only the
        VMs carrying its tag (docs/permissions.md#key-restrictions, docs/permissions.md#tag-scope;
        at the proxy, docs/proxy.md#token-validation-at-the-proxy)."""
        return (self.vm is None or self.vm == vm.name) and (self.tag is None or self.tag in vm.tags)


UNRESTRICTED = KeyPermissions()


def cmds_allow(cmds: Iterable[str], name: str) -> bool:
    """docs/permissions.md#key-restrictions: ``name == entry`` or ``name`` starts with ``entry + " "``."""
    return any(name == entry or name.startswith(entry + " ") for entry in cmds)


def _reject_constant(value: str) -> object:
    raise ValueError(f"non-standard JSON constant {value}")


def parse_key_permissions(text: str) -> KeyPermissions:
    """Read stored permissions (docs/permissions.md#key-restrictions), raising :class:`PermissionsError`.

    ``""`` and objects without known members are unrestricted; other members are
    ignored. A known member of the wrong type makes the whole text unreadable, so the
    caller refuses instead of guessing. A stored ``"cmds": []`` allows nothing.
    """
    if text == "":
        return UNRESTRICTED
    try:
        obj = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise PermissionsError("stored key permissions are not valid JSON") from exc
    if not isinstance(obj, dict):
        raise PermissionsError("stored key permissions are not a JSON object")
    cmds = obj.get("cmds")
    vm = obj.get("vm")
    tag = obj.get("tag")
    exp = obj.get("exp")
    if cmds is not None and not (isinstance(cmds, list) and all(isinstance(c, str) for c in cmds)):
        raise PermissionsError("stored key permissions: cmds is not a list of strings")
    if vm is not None and not isinstance(vm, str):
        raise PermissionsError("stored key permissions: vm is not a string")
    if tag is not None and not isinstance(tag, str):
        raise PermissionsError("stored key permissions: tag is not a string")
    if exp is not None and (not isinstance(exp, int) or isinstance(exp, bool)):
        raise PermissionsError("stored key permissions: exp is not an integer")
    return KeyPermissions(
        cmds=None if cmds is None else tuple(cmds),
        vm=vm,
        tag=tag,
        exp=exp,
    )


def key_restriction_error(key: KeyPermissions | KeyRowLike, name: str | None) -> str | None:
    """The key checks that ``/exec`` applies after token ``cmds`` (docs/permissions.md#how-they-combine, step 16).

    ``key`` is parsed permissions or a key row (whose text is parsed here and may raise
    :class:`PermissionsError`). ``name`` is the resolved command name; ``None`` (an
    unresolvable line) is never allowed by a ``cmds`` list. Returns the refusal message
    or ``None``. Expiry is not checked here (``/exec`` does it earlier, step 6).
    """
    perms = key if isinstance(key, KeyPermissions) else parse_key_permissions(key.permissions)
    if perms.vm is not None:
        return KEY_NOT_ALLOWED
    if perms.cmds is not None and (name is None or not cmds_allow(perms.cmds, name)):
        return KEY_NOT_ALLOWED
    if perms.tag is not None and name in NOT_TAG_SAFE:
        return KEY_NOT_ALLOWED
    return None


def key_permission_error(key: KeyRowLike | None, name: str | None, now: int) -> str | None:
    """The checks before every SSH command (docs/ssh.md#key-checks-before-every-command), in order: revoked, expired, vm,
    cmds, tag. ``key`` is the freshly re-read login key row (``None`` when it is gone).

    Raises :class:`PermissionsError` for unreadable stored permissions (refuse the command).
    """
    if key is None:
        return KEY_REVOKED
    perms = parse_key_permissions(key.permissions)
    if perms.expired(now):
        return KEY_EXPIRED
    return key_restriction_error(perms, name)


def inherit(new: KeyPermissions, caller: KeyPermissions) -> KeyPermissions:
    """Merge the calling key's restrictions into a new key's (docs/permissions.md#inheritance, rules 1–4 in
    order), so the new key is never less restricted. Raises :class:`InheritanceError`."""
    merged = new
    if caller.tag is not None:  # rule 1
        if merged.tag is None:
            merged = replace(merged, tag=caller.tag)
        elif merged.tag != caller.tag:
            raise InheritanceError(
                f"calling key is scoped to tag {quote(caller.tag)}; "
                f"cannot create key with tag {quote(merged.tag)}"
            )
    if caller.vm is not None:  # rule 2
        if merged.vm is None:
            merged = replace(merged, vm=caller.vm)
        elif merged.vm != caller.vm:
            raise InheritanceError(
                f"calling key is scoped to VM {quote(caller.vm)}; "
                f"cannot create key with VM {quote(merged.vm)}"
            )
    if caller.exp is not None and (merged.exp is None or merged.exp > caller.exp):  # rule 3
        merged = replace(merged, exp=caller.exp)
    if caller.cmds is not None:  # rule 4
        if merged.cmds is None:
            merged = replace(merged, cmds=caller.cmds)
        else:
            for cmd in merged.cmds:
                if not cmds_allow(caller.cmds, cmd):
                    raise InheritanceError(
                        f"calling key does not allow command {quote(cmd)}; "
                        "cannot grant it to new key"
                    )
    return merged
