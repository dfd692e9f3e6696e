"""Key-level permissions (docs/permissions.md#key-restrictions): parsing, checks and inheritance.

The stored form is ``""`` (unrestricted) or a JSON object with the members ``cmds``,
``vm``, ``tag`` and ``exp``. Text that cannot be read raises :class:`PermissionsError`;
every caller treats that as "deny" (fail closed).

Each check returns a :class:`Refusal`: the message the transport answers with, and the
specific reason ``token explain`` reports (docs/lifecycle.md#explaining-a-token). The
real path and the explanation ask the same function, so the two cannot disagree.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Protocol

from sshmint.duration import rfc3339
from sshmint.errors import SSHMintError
from sshmint.strictjson import quote
from sshmint.valuetypes import value_type

if TYPE_CHECKING:
    from sshmint.token import Permissions

__all__ = [
    "KEY_EXPIRED",
    "KEY_NOT_ALLOWED",
    "KEY_REVOKED",
    "NOT_TAG_SAFE",
    "TOKEN_NOT_ALLOWED",
    "UNRESTRICTED",
    "InheritanceError",
    "KeyPermissions",
    "KeyRestrictionError",
    "KeyRowLike",
    "PermissionsError",
    "Refusal",
    "VMLike",
    "cmds_allow",
    "command_refusal",
    "inherit",
    "key_permission_error",
    "key_restriction_error",
    "key_restriction_refusal",
    "key_use_refusal",
    "parse_key_permissions",
]

KEY_REVOKED = "SSH key has been revoked"
KEY_EXPIRED = "SSH key has expired"
KEY_NOT_ALLOWED = "command not allowed by SSH key permissions"
TOKEN_NOT_ALLOWED = "command not allowed by token permissions"
# docs/permissions.md#how-they-combine / docs/permissions.md#tag-scope: the only command a tag-scoped key may not run.
NOT_TAG_SAFE = frozenset({"exe0-to-exe1"})


class PermissionsError(SSHMintError):
    """Stored permissions text is not a readable permissions object (fail closed)."""


class KeyRestrictionError(SSHMintError):
    """The signing key's own restrictions refuse a valid token (docs/permissions.md#key-expiry,
    docs/proxy.md#token-validation-at-the-proxy): ``message`` is the transport's answer
    (``/exec``: 403 with it; the proxy: not authenticated), ``detail`` the specific reason."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.message)
        self.detail = refusal.detail


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


@value_type
@dataclass(frozen=True, slots=True)
class Refusal:
    """A check said no: ``message`` is what the transport answers (the documented text),
    ``detail`` the specific reason, for the key's owner only (``token explain``)."""

    message: str
    detail: str


def _names(cmds: Iterable[str]) -> str:
    return ", ".join(cmds) or "none"


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


def key_restriction_refusal(perms: KeyPermissions, name: str | None) -> Refusal | None:
    """The key checks that ``/exec`` applies after token ``cmds`` (docs/permissions.md#how-they-combine, step 16).

    ``name`` is the resolved command name; ``None`` (an unresolvable line) is never allowed
    by a ``cmds`` list. Expiry is not checked here (``/exec`` does it earlier, step 6).
    """
    if perms.vm is not None:
        detail = f"the key is restricted to VM {quote(perms.vm)} and may run no command"
        return Refusal(KEY_NOT_ALLOWED, detail)
    if perms.cmds is not None and (name is None or not cmds_allow(perms.cmds, name)):
        shown = "the command line" if name is None else f"command {quote(name)}"
        detail = f"{shown} is not in the key's cmds ({_names(perms.cmds)})"
        return Refusal(KEY_NOT_ALLOWED, detail)
    if perms.tag is not None and name in NOT_TAG_SAFE:
        detail = f"the key is scoped to tag {quote(perms.tag)}, which may not run {name}"
        return Refusal(KEY_NOT_ALLOWED, detail)
    return None


def key_restriction_error(key: KeyPermissions | KeyRowLike, name: str | None) -> str | None:
    """:func:`key_restriction_refusal`'s message, or ``None``. ``key`` is parsed permissions
    or a key row (whose text is parsed here and may raise :class:`PermissionsError`)."""
    perms = key if isinstance(key, KeyPermissions) else parse_key_permissions(key.permissions)
    refusal = key_restriction_refusal(perms, name)
    return None if refusal is None else refusal.message


def command_refusal(token: Permissions, key: KeyPermissions, name: str) -> Refusal | None:
    """Whether a token may run the resolved command ``name`` (docs/permissions.md#how-they-combine):
    the token's ``cmds`` (exact match, ``/exec`` step 15), then the signing key's
    restrictions (step 16)."""
    if not token.allows(name):
        listed = _names(token.cmds) if token.cmds is not None else _names(token.effective_cmds)
        which = "token's cmds" if token.cmds is not None else "token's default cmds"
        return Refusal(TOKEN_NOT_ALLOWED, f"command {quote(name)} is not in the {which} ({listed})")
    return key_restriction_refusal(key, name)


def key_use_refusal(perms: KeyPermissions, now: int, vm: VMLike | None) -> Refusal | None:
    """May the signing key be used at all, now: not expired (docs/permissions.md#key-expiry)
    and, at a VM's proxy, a ``vm`` or ``tag`` restriction that admits this VM
    (docs/proxy.md#token-validation-at-the-proxy). ``vm`` is ``None`` for ``/exec``."""
    if perms.expired(now):
        assert perms.exp is not None
        return Refusal(KEY_EXPIRED, f"the key expired {rfc3339(perms.exp)}")
    if vm is not None and not perms.allows_vm(vm):
        if perms.vm is not None and perms.vm != vm.name:
            detail = f"the key is restricted to VM {quote(perms.vm)}"
        else:
            detail = f"the key is scoped to tag {quote(perms.tag or '')}, which VM {quote(vm.name)} does not carry"
        return Refusal(KEY_NOT_ALLOWED, detail)
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
