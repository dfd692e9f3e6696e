"""The store's read statements, built once (docs/storage.md#schema schema).

Each :class:`ReadQuery` carries the SQLAlchemy statement (run through the async engine on
SQLite when a fast read falls back) and the same statement compiled once per backend's
fast route: for SQLite with named parameters (run by :class:`~.fastread.SQLiteFastReader`),
for PostgreSQL with positional ``$n`` parameters (:attr:`ReadQuery.postgres`, run as an
asyncpg prepared statement by :class:`~.pgfast.PgFastPath`; compiled on first use, so a
SQLite server never pays for it). All return the selected columns in the same order, so
one positional row decoder serves every route.

Column order of whole-table selects is the table's column order (see ``schema.py``):

- ``users``: user_id, email, is_locked_out, next_ssh_key_number, created_at
- ``ssh_keys``: id, user_id, public_key, fingerprint, comment, permissions, api_key_hint,
  added_at, last_used_at
- ``vms``: id, name, owner_user_id, upstream, share, tags, created_at
- ``vm_shares``: id, vm_id, email, shared_by_user_id, message, created_at
- ``token_revocations``: token_hash, user_id, fingerprint, revoked_at, exp
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.postgresql import asyncpg as postgresql_asyncpg
from sqlalchemy.sql.compiler import SQLCompiler

from sshmint.server.store.schema import (
    EXE1_SECRET_NAME,
    exe1_tokens,
    server_secrets,
    ssh_keys,
    token_revocations,
    users,
    vm_shares,
    vms,
)

__all__ = [
    "CALLER_LOOKUP",
    "EXE1_LOOKUP",
    "EXE1_SECRET",
    "KEYS_OF_USER",
    "KEY_BY_FINGERPRINT",
    "KEY_BY_ID",
    "KEY_LAST_USED",
    "KEY_OWNER_BY_KEY",
    "LOGIN_LOOKUP",
    "PING",
    "PROXY_LOOKUP",
    "REVOCATIONS_OF_USER",
    "SHARES_OF_VM",
    "SHARE_EXISTS",
    "TOKEN_LOOKUP",
    "USER_BY_EMAIL",
    "USER_BY_ID",
    "VMS_OF_OWNER",
    "VM_BY_ID",
    "VM_BY_NAME",
    "PgStatement",
    "ReadQuery",
    "compile_for_postgres",
]

_SQLITE = sqlite.dialect(paramstyle="named")
# asyncpg's own parameter style: $1, $2, ... in the order of ``positiontup``.
_POSTGRES = postgresql_asyncpg.dialect()  # type: ignore[no-untyped-call]


@dataclass(frozen=True, slots=True)
class PgStatement:
    """A statement compiled once for asyncpg: its text with ``$n`` parameters, and the
    names those parameters stand for, in order."""

    sql: str
    names: tuple[str, ...]
    # Values of parameters fixed in the statement itself (e.g. LIMIT 1).
    defaults: Mapping[str, Any]

    def args(self, params: Mapping[str, Any]) -> tuple[Any, ...]:
        """The positional arguments for ``params`` (named as in the statement)."""
        defaults = self.defaults
        return tuple(params[n] if n in params else defaults[n] for n in self.names)


def compile_for_postgres(statement: sa.ClauseElement) -> PgStatement:
    """``statement`` as asyncpg runs it (a parameter used twice keeps one number)."""
    compiled = statement.compile(dialect=_POSTGRES)
    assert isinstance(compiled, SQLCompiler)
    names = tuple(compiled.positiontup or ())
    defaults = {k: v for k, v in compiled.params.items() if v is not None}
    return PgStatement(str(compiled), names, defaults)


@dataclass(frozen=True)
class ReadQuery:
    """A ``SELECT`` with bind parameters, plus its SQLite text compiled once."""

    statement: sa.Select[Any]
    # Whether SQLite's fast reader may give an earlier answer again while nothing has been
    # committed (see fastread.py); off where the point is to query the file.
    reusable: bool = True
    sqlite_sql: str = field(init=False)
    # Values of parameters fixed in the statement itself (e.g. LIMIT 1).
    sqlite_defaults: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        compiled = self.statement.compile(dialect=_SQLITE)
        object.__setattr__(self, "sqlite_sql", str(compiled))
        object.__setattr__(
            self, "sqlite_defaults", {k: v for k, v in compiled.params.items() if v is not None}
        )

    def sqlite_params(self, params: dict[str, Any]) -> dict[str, Any]:
        if not self.sqlite_defaults:
            return params
        return {**self.sqlite_defaults, **params}

    @cached_property
    def postgres(self) -> PgStatement:
        """The statement compiled for asyncpg (on first use)."""
        return compile_for_postgres(self.statement)


def _p(name: str) -> sa.BindParameter[Any]:
    return sa.bindparam(name)


# A query that reads the schema and a table page, not just "SELECT 1" (which SQLite answers
# without opening the database file): /healthz must prove the database can be queried.
PING = ReadQuery(
    sa.select(sa.literal_column("1")).select_from(server_secrets).limit(1), reusable=False
)

USER_BY_ID = ReadQuery(sa.select(users).where(users.c.user_id == _p("user_id")))
USER_BY_EMAIL = ReadQuery(sa.select(users).where(users.c.email == _p("email")))

KEY_BY_FINGERPRINT = ReadQuery(sa.select(ssh_keys).where(ssh_keys.c.fingerprint == _p("fp")))
KEY_BY_ID = ReadQuery(sa.select(ssh_keys).where(ssh_keys.c.id == _p("key_id")))
KEYS_OF_USER = ReadQuery(
    sa.select(ssh_keys).where(ssh_keys.c.user_id == _p("user_id")).order_by(ssh_keys.c.id)
)
KEY_LAST_USED = ReadQuery(sa.select(ssh_keys.c.last_used_at).where(ssh_keys.c.id == _p("key_id")))
KEY_OWNER_BY_KEY = ReadQuery(
    sa.select(ssh_keys.c.user_id)
    .where(sa.or_(ssh_keys.c.public_key == _p("openssh"), ssh_keys.c.fingerprint == _p("fp")))
    .limit(1)
)
# SSH login's one round trip: the key by fingerprint and its owner (docs/ssh.md#connection-and-login).
# An outer join keeps "no such key" apart from "key without owner".
LOGIN_LOOKUP = ReadQuery(
    sa.select(ssh_keys, users)
    .select_from(ssh_keys.outerjoin(users, users.c.user_id == ssh_keys.c.user_id))
    .where(ssh_keys.c.fingerprint == _p("fp"))
)
# The token path's one round trip (docs/tokens.md#validation steps 18-20): the key by
# fingerprint, its owner, and whether this very token is revoked
# (docs/lifecycle.md#revoking-one-token). The revocation rides on the key lookup as an
# outer join on the token's hash (the table's primary key), so checking it costs no
# round trip: ``revoked_at`` is NULL unless the token is revoked.
_revocation = token_revocations.c.token_hash == _p("token_hash")
TOKEN_LOOKUP = ReadQuery(
    sa.select(ssh_keys, users, token_revocations.c.revoked_at)
    .select_from(
        ssh_keys.outerjoin(users, users.c.user_id == ssh_keys.c.user_id).outerjoin(
            token_revocations, _revocation
        )
    )
    .where(ssh_keys.c.fingerprint == _p("fp"))
)
# /exec's variant: also every key of the same owner (one row each, in insertion order),
# so that commands listing the caller's keys need no second read.
_peer = ssh_keys.alias("peer")
CALLER_LOOKUP = ReadQuery(
    sa.select(ssh_keys, users, token_revocations.c.revoked_at, _peer)
    .select_from(
        ssh_keys.outerjoin(users, users.c.user_id == ssh_keys.c.user_id)
        .outerjoin(token_revocations, _revocation)
        .outerjoin(_peer, _peer.c.user_id == ssh_keys.c.user_id)
    )
    .where(ssh_keys.c.fingerprint == _p("fp"))
    .order_by(_peer.c.id)
)

EXE1_SECRET = ReadQuery(
    sa.select(server_secrets.c.value).where(server_secrets.c.name == EXE1_SECRET_NAME)
)
EXE1_LOOKUP = ReadQuery(
    sa.select(exe1_tokens.c.exe0_sealed).where(
        exe1_tokens.c.exe1_hash == _p("exe1_hash"), exe1_tokens.c.expires_at >= _p("now")
    )
)

VM_BY_NAME = ReadQuery(sa.select(vms).where(vms.c.name == _p("name")))
VM_BY_ID = ReadQuery(sa.select(vms).where(vms.c.id == _p("vm_id")))
VMS_OF_OWNER = ReadQuery(
    sa.select(vms).where(vms.c.owner_user_id == _p("user_id")).order_by(vms.c.name)
)
# The proxy's VM lookup: the VM by name and its owner (lock-out, docs/proxy.md#unknown-vms).
PROXY_LOOKUP = ReadQuery(
    sa.select(vms, users)
    .select_from(vms.outerjoin(users, users.c.user_id == vms.c.owner_user_id))
    .where(vms.c.name == _p("name"))
)
SHARES_OF_VM = ReadQuery(
    sa.select(vm_shares)
    .where(vm_shares.c.vm_id == _p("vm_id"))
    .order_by(vm_shares.c.created_at, vm_shares.c.email)
)
SHARE_EXISTS = ReadQuery(
    sa.select(vm_shares.c.id)
    .where(vm_shares.c.vm_id == _p("vm_id"), vm_shares.c.email == _p("email"))
    .limit(1)
)
# docs/ssh.md#token-revocations: a user's revocations that still matter (the token's exp
# not passed), newest first, with the current name of the key (NULL once it is removed).
_revoked_key = sa.and_(
    ssh_keys.c.fingerprint == token_revocations.c.fingerprint,
    ssh_keys.c.user_id == token_revocations.c.user_id,
)
REVOCATIONS_OF_USER = ReadQuery(
    sa.select(token_revocations, ssh_keys.c.comment)
    .select_from(token_revocations.outerjoin(ssh_keys, _revoked_key))
    .where(
        token_revocations.c.user_id == _p("user_id"),
        sa.or_(token_revocations.c.exp.is_(None), token_revocations.c.exp >= _p("now")),
    )
    .order_by(token_revocations.c.revoked_at.desc(), token_revocations.c.token_hash)
)
