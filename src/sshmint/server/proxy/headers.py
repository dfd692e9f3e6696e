"""The proxy's header rules, as pure functions (tested without sockets): which credential a
request carries (docs/proxy.md#credentials), what the upstream receives
(docs/proxy.md#what-the-upstream-receives, docs/proxy.md#header-names-with-underscores) and what
the client gets back of the upstream's headers (docs/proxy.md#responses).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from multidict import CIMultiDict, MultiMapping
from yarl import URL

from sshmint.token import EXE0_PREFIX, EXE1_PREFIX
from sshmint.valuetypes import value_type

__all__ = [
    "HOP_BY_HOP",
    "BearerCredential",
    "Identity",
    "absolute_target",
    "basic_password",
    "bearer_credential",
    "carries_exe_token",
    "is_ambiguous",
    "is_upgrade_request",
    "normalises_to_protected",
    "upstream_request_headers",
    "upstream_response_headers",
]


# docs/proxy.md#what-the-upstream-receives step 1 (RFC 9110 §7.6.1), plus the obsolete Keep-Alive/Proxy-Connection.
HOP_BY_HOP: Final = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
_EXE_PREFIXES: Final = (EXE0_PREFIX, EXE1_PREFIX)
_EXEDEV_PREFIX: Final = "x-exedev-"
_FORWARDED: Final = frozenset({"x-forwarded-proto", "x-forwarded-host", "x-forwarded-for"})
# docs/proxy.md#header-names-with-underscores: names that, spelled with "_" for "-", mean a protected header to WSGI/CGI.
_UNDERSCORE_PROTECTED: Final = _FORWARDED | {"authorization"}


@value_type
@dataclass(frozen=True, slots=True)
class Identity:
    """What the upstream learns about an authenticated request (docs/proxy.md#what-the-upstream-receives step 8).

    ``ctx_raw`` is the exact text of the token's ``ctx`` value, or None without ``ctx``.
    """

    user_id: str
    email: str
    ctx_raw: str | None


@value_type
@dataclass(frozen=True, slots=True)
class BearerCredential:
    """The bearer token chosen by docs/proxy.md#credentials and the header line it came from."""

    token: str
    header_name: str
    header_value: str


def _is_bearer(value: str) -> bool:
    return value[:7].lower() == "bearer "


def is_ambiguous(headers: MultiMapping[str]) -> bool:
    """docs/proxy.md#credentials: a non-empty X-Exedev-Authorization value identical to an Authorization one."""
    extra = _getall(headers, "X-Exedev-Authorization")
    if not extra:
        return False
    auth = set(_getall(headers, "Authorization"))
    return any(value and value in auth for value in extra)


def bearer_credential(headers: MultiMapping[str]) -> BearerCredential | None:
    """docs/proxy.md#credentials: the first ``Bearer`` value among X-Exedev-Authorization then Authorization."""
    for name in ("X-Exedev-Authorization", "Authorization"):
        for value in _getall(headers, name):
            if _is_bearer(value):
                return BearerCredential(value[7:].strip(), name, value)
    return None


def basic_password(headers: MultiMapping[str]) -> str | None:
    """docs/proxy.md#credentials: the password of a ``Basic`` first Authorization value, else None."""
    values = _getall(headers, "Authorization")
    if not values or values[0][:6].lower() != "basic ":
        return None
    try:
        decoded = base64.b64decode(values[0][6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    _user, colon, password = decoded.partition(":")
    return password if colon else None


def carries_exe_token(authorization_values: Sequence[str]) -> bool:
    """docs/proxy.md#what-the-upstream-receives step 4: an exe0/exe1 bearer in any value, or as the first value's Basic
    password."""
    for value in authorization_values:
        if _is_bearer(value) and value[7:].strip().startswith(_EXE_PREFIXES):
            return True
    if authorization_values:
        password = basic_password(CIMultiDict(Authorization=authorization_values[0]))
        if password is not None and password.startswith(_EXE_PREFIXES):
            return True
    return False


def normalises_to_protected(name: str) -> bool:
    """docs/proxy.md#header-names-with-underscores: a header name with ``_`` that WSGI, CGI and similar servers would read
    as a protected one: lower-cased with every ``_`` made ``-``, it starts with
    ``x-exedev-`` or is an ``X-Forwarded-*`` name of docs/proxy.md#what-the-upstream-receives or ``authorization``.

    Names without ``_`` are left to the rules of docs/proxy.md#what-the-upstream-receives (and answer False here). The ``_``
    test comes first and is all that most names cost.
    """
    if "_" not in name:
        return False
    normalised = name.lower().replace("_", "-")
    return normalised.startswith(_EXEDEV_PREFIX) or normalised in _UNDERSCORE_PROTECTED


def _connection_tokens(headers: Iterable[tuple[str, str]]) -> set[str]:
    tokens: set[str] = set()
    for name, value in headers:
        if name.lower() == "connection":
            tokens.update(t.strip().lower() for t in value.split(",") if t.strip())
    return tokens


def is_upgrade_request(headers: MultiMapping[str]) -> bool:
    """docs/proxy.md#responses: ``Connection: Upgrade`` together with an ``Upgrade`` header."""
    return "Upgrade" in headers and "upgrade" in _connection_tokens(headers.items())


def upstream_request_headers(
    headers: Iterable[tuple[str, str]],
    *,
    consumed: BearerCredential | None,
    client_ip: str,
    default_proto: str,
    identity: Identity | None,
    upgrade: bool,
) -> list[tuple[str, str]]:
    """The request headers the upstream receives, in docs/proxy.md#what-the-upstream-receives order.

    ``headers`` are the client's header lines in order (``Host`` among them). ``upgrade``
    keeps ``Connection: Upgrade`` and ``Upgrade`` (docs/proxy.md#responses).
    """
    # Each name is lower-cased once; the steps below then work on (lower, name, value).
    lines = [(name.lower(), name, value) for name, value in headers]
    host, proto, forwarded_for, upgrade_values, connection_values = _incoming(lines)
    out = [(name, value) for _lower, name, value in _kept(lines, connection_values, consumed)]
    if upgrade:
        out.append(("Connection", "Upgrade"))
        out.extend(("Upgrade", value) for value in upgrade_values)
    # 5.–7. X-Forwarded-*, whatever the client sent.
    incoming_for = ", ".join(forwarded_for).strip()
    out.append(("X-Forwarded-Proto", proto if proto in ("http", "https") else default_proto))
    out.append(("X-Forwarded-Host", host))
    out.append(("X-Forwarded-For", f"{incoming_for}, {client_ip}" if incoming_for else client_ip))
    # 8. Identity of an authenticated request.
    if identity is not None:
        out.append(("X-ExeDev-UserID", identity.user_id))
        out.append(("X-ExeDev-Email", identity.email))
        if identity.ctx_raw is not None:
            out.append(("X-ExeDev-Token-Ctx", identity.ctx_raw))
    return out


def _incoming(
    lines: list[tuple[str, str, str]],
) -> tuple[str, str | None, list[str], list[str], list[str]]:
    """What the client sent that the rules read: the first ``Host`` and
    ``X-Forwarded-Proto``, every ``X-Forwarded-For``, ``Upgrade`` and ``Connection`` value."""
    incoming_host = ""
    incoming_proto: str | None = None
    incoming_for_values: list[str] = []
    upgrade_values: list[str] = []
    connection_values: list[str] = []
    seen_host = False
    for lower, _name, value in lines:
        if lower == "host":
            if not seen_host:
                incoming_host, seen_host = value, True
        elif lower == "x-forwarded-proto":
            if incoming_proto is None:
                incoming_proto = value
        elif lower == "x-forwarded-for":
            incoming_for_values.append(value)
        elif lower == "upgrade":
            upgrade_values.append(value)
        elif lower == "connection":
            connection_values.append(value)
    return incoming_host, incoming_proto, incoming_for_values, upgrade_values, connection_values


def _kept(
    lines: list[tuple[str, str, str]],
    connection_values: list[str],
    consumed: BearerCredential | None,
) -> list[tuple[str, str, str]]:
    """The client's header lines that reach the upstream (steps 1–4 and the underscore rule)."""
    # 1. Hop-by-hop headers, and every header the Connection header names.
    drop = HOP_BY_HOP
    if connection_values:
        drop = drop | _connection_tokens(("connection", v) for v in connection_values)
    kept = [line for line in lines if line[0] not in drop]
    # 2. The consumed header line, whatever token it carried.
    if consumed is not None:
        consumed_name = consumed.header_name.lower()
        for index, (lower, _name, value) in enumerate(kept):
            if lower == consumed_name and value == consumed.header_value:
                del kept[index]
                break
    # 3. Every X-ExeDev-* header, client-sent identity headers included; and 5.–7.
    # X-Forwarded-*, replaced by the caller whatever the client sent; and
    # (docs/proxy.md#header-names-with-underscores) any name with "_" that a WSGI/CGI
    # upstream would read as one of these. The filters commute with step 4, which looks at
    # Authorization only.
    kept = [
        line
        for line in kept
        if not line[0].startswith(_EXEDEV_PREFIX)
        and line[0] not in _FORWARDED
        and not ("_" in line[0] and normalises_to_protected(line[0]))
    ]
    # 4. Authorization lines when any of them carries an exe0/exe1 token.
    authorization = [value for lower, _name, value in kept if lower == "authorization"]
    if authorization and carries_exe_token(authorization):
        kept = [line for line in kept if line[0] != "authorization"]
    return kept


def upstream_response_headers(
    headers: Iterable[tuple[str, str]], *, switching: bool
) -> list[tuple[str, str]]:
    """docs/proxy.md#responses: the upstream's response headers minus hop-by-hop ones (a 101 keeps
    ``Connection``/``Upgrade``)."""
    lines = list(headers)
    drop = HOP_BY_HOP | _connection_tokens(lines)
    if switching:
        drop = drop - {"connection", "upgrade"}
    return [(n, v) for n, v in lines if n.lower() not in drop]


def absolute_target(raw: str) -> URL | None:
    """The URL of an absolute-form request target (``GET http://host/path``, RFC 9112
    §3.2.2), else None; ``raw`` is the target exactly as received."""
    if raw.startswith("/"):
        return None
    target = URL(raw, encoded=True)
    return target if target.is_absolute() else None


def _getall(headers: MultiMapping[str], name: str) -> list[str]:
    return list(headers.getall(name, []))
