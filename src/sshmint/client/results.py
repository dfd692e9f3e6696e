"""Typed results of the client's token-lifecycle calls (docs/lifecycle.md): what
``token revoke`` and ``token explain`` answer, as small frozen dataclasses.

Times are aware :class:`datetime.datetime` values in UTC (``None``: never, or not shown).
A response that is not the documented shape raises
:class:`~sshmint.client.errors.InvalidResponse`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sshmint.client.errors import InvalidResponse

__all__ = ["RevokedToken", "TokenCheck", "TokenExplanation", "explanation", "revoked_token"]


@dataclass(frozen=True, slots=True)
class RevokedToken:
    """``token revoke``: the token is revoked (again, if it was already).

    ``fingerprint`` is its signing key's (``SHA256:...``), ``key_name`` that key's name,
    ``exp`` the token's own expiry (``None``: it has none).
    """

    fingerprint: str
    key_name: str
    exp: datetime | None


@dataclass(frozen=True, slots=True)
class TokenCheck:
    """One check of ``token explain``: its name (``format``, ``claims``, ``key``,
    ``namespace``, ``signature``, ``owner``, ``revoked``, ``key_restrictions``, ``policy``,
    ``vm_access``, ``command``), whether it passed, and why."""

    check: str
    ok: bool
    detail: str


@dataclass(frozen=True, slots=True)
class TokenExplanation:
    """``token explain``: every check the server made, in order, up to the first failure.

    ``namespace``, ``exp`` and ``nbf`` are the token's own, shown only for a token of a
    key registered to the caller; ``expected_namespace`` is what the server (or the VM's
    proxy) expects; ``reason`` is the failing check's detail.
    """

    valid: bool
    reason: str | None
    checks: tuple[TokenCheck, ...]
    namespace: str | None
    expected_namespace: str
    fingerprint: str | None
    exp: datetime | None
    nbf: datetime | None

    @property
    def failed(self) -> TokenCheck | None:
        """The check that failed, or ``None`` for a valid token."""
        return next((check for check in self.checks if not check.ok), None)


def _invalid(what: str) -> InvalidResponse:
    return InvalidResponse(200, f"unexpected response: {what}")


def _text(data: Mapping[str, Any], name: str, *, optional: bool = False) -> Any:
    value = data.get(name)
    if isinstance(value, str) or (optional and value is None):
        return value
    raise _invalid(f"{name} is not a string")


def _time(data: Mapping[str, Any], name: str) -> datetime | None:
    text = _text(data, name, optional=True)
    if text is None:
        return None
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise _invalid(f"{name} is not an RFC 3339 time") from None


def revoked_token(data: Mapping[str, Any]) -> RevokedToken:
    """The :class:`RevokedToken` of a ``token revoke`` JSON answer."""
    if data.get("revoked") is not True:
        raise _invalid("revoked is not true")
    return RevokedToken(_text(data, "fingerprint"), _text(data, "key_name"), _time(data, "exp"))


def _check(item: object) -> TokenCheck:
    if not isinstance(item, dict) or not isinstance(item.get("ok"), bool):
        raise _invalid("a check is not an object with ok")
    return TokenCheck(_text(item, "check"), item["ok"], _text(item, "detail"))


def explanation(data: Mapping[str, Any]) -> TokenExplanation:
    """The :class:`TokenExplanation` of a ``token explain`` JSON answer."""
    checks = data.get("checks")
    if not isinstance(data.get("valid"), bool) or not isinstance(checks, list):
        raise _invalid("valid or checks missing")
    return TokenExplanation(
        valid=data["valid"],
        reason=_text(data, "reason", optional=True),
        checks=tuple(_check(item) for item in checks),
        namespace=_text(data, "namespace", optional=True),
        expected_namespace=_text(data, "expected_namespace"),
        fingerprint=_text(data, "fingerprint", optional=True),
        exp=_time(data, "exp"),
        nbf=_time(data, "nbf"),
    )
