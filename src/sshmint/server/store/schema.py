"""Table definitions (docs/storage.md#schema) as SQLAlchemy Core objects.

The database itself is built by the Alembic migrations in ``migrations/versions``; these
objects describe the head revision for queries, and a test checks that the two agree.

Choices beyond the recommended schema:

- Surrogate ids are ``BIGINT`` identity columns on PostgreSQL and ``INTEGER PRIMARY KEY``
  (the rowid alias) on SQLite.
- Text that is sorted (emails, VM names) uses the ``"C"`` collation on PostgreSQL, so that
  ordering is by code point exactly as SQLite's ``BINARY`` collation orders it (docs/storage.md#backends:
  both backends behave identically).
"""

from __future__ import annotations

import sqlalchemy as sa

__all__ = [
    "EXE1_SECRET_NAME",
    "ID",
    "NAMING_CONVENTION",
    "SORTED_TEXT",
    "exe1_tokens",
    "metadata",
    "rate_limits",
    "server_secrets",
    "ssh_keys",
    "token_revocations",
    "users",
    "vm_shares",
    "vms",
]

EXE1_SECRET_NAME = "exe1-derivation"

NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
SORTED_TEXT = sa.Text().with_variant(sa.Text(collation="C"), "postgresql")

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)

users = sa.Table(
    "users",
    metadata,
    sa.Column("user_id", sa.Text(), primary_key=True),
    sa.Column("email", SORTED_TEXT, nullable=False),
    sa.Column("is_locked_out", sa.Integer(), nullable=False, server_default=sa.text("0")),
    sa.Column("next_ssh_key_number", sa.Integer(), nullable=False, server_default=sa.text("1")),
    sa.Column("created_at", sa.BigInteger(), nullable=False),
    sa.UniqueConstraint("email"),
    sa.CheckConstraint("is_locked_out IN (0, 1)", name="locked_flag"),
)

ssh_keys = sa.Table(
    "ssh_keys",
    metadata,
    sa.Column("id", ID, primary_key=True, autoincrement=True),
    sa.Column(
        "user_id",
        sa.Text(),
        sa.ForeignKey("users.user_id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("public_key", sa.Text(), nullable=False),
    sa.Column("fingerprint", sa.Text(), nullable=False),
    # The key's name (docs/accounts.md#ssh-keys); the column keeps the recommended schema's name.
    sa.Column("comment", sa.Text(), nullable=False, server_default=sa.text("''")),
    sa.Column("permissions", sa.Text(), nullable=False, server_default=sa.text("''")),
    sa.Column("api_key_hint", sa.Text(), nullable=True),
    sa.Column("added_at", sa.BigInteger(), nullable=False),
    sa.Column("last_used_at", sa.BigInteger(), nullable=True),
    sa.UniqueConstraint("public_key"),
    sa.UniqueConstraint("fingerprint"),
    sa.Index("idx_ssh_keys_user", "user_id"),
)

exe1_tokens = sa.Table(
    "exe1_tokens",
    metadata,
    # Lower-case hex SHA-256 of the whole "exe1." string (docs/storage.md#nothing-usable-at-rest).
    sa.Column("exe1_hash", sa.Text(), primary_key=True),
    # The exe0 string sealed under a key derived from the exe1 string (docs/storage.md#nothing-usable-at-rest).
    sa.Column("exe0_sealed", sa.LargeBinary(), nullable=False),
    sa.Column("expires_at", sa.BigInteger(), nullable=False),
    sa.Column("created_at", sa.BigInteger(), nullable=False),
    sa.Index("idx_exe1_tokens_expires", "expires_at"),
)

server_secrets = sa.Table(
    "server_secrets",
    metadata,
    sa.Column("name", sa.Text(), primary_key=True),
    sa.Column("value", sa.LargeBinary(), nullable=False),
    sa.Column("created_at", sa.BigInteger(), nullable=False),
)

vms = sa.Table(
    "vms",
    metadata,
    sa.Column("id", ID, primary_key=True, autoincrement=True),
    sa.Column("name", SORTED_TEXT, nullable=False),
    sa.Column(
        "owner_user_id",
        sa.Text(),
        sa.ForeignKey("users.user_id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("upstream", sa.Text(), nullable=False),
    sa.Column("share", sa.Text(), nullable=False, server_default=sa.text("'private'")),
    sa.Column("tags", sa.Text(), nullable=False, server_default=sa.text("'[]'")),
    sa.Column("created_at", sa.BigInteger(), nullable=False),
    sa.UniqueConstraint("name"),
    sa.CheckConstraint("share IN ('private', 'public')", name="share_mode"),
    sa.Index("idx_vms_owner", "owner_user_id"),
)

vm_shares = sa.Table(
    "vm_shares",
    metadata,
    sa.Column("id", ID, primary_key=True, autoincrement=True),
    sa.Column("vm_id", ID, sa.ForeignKey("vms.id", ondelete="CASCADE"), nullable=False),
    sa.Column("email", SORTED_TEXT, nullable=False),
    sa.Column(
        "shared_by_user_id",
        sa.Text(),
        sa.ForeignKey("users.user_id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("message", sa.Text(), nullable=True),
    sa.Column("created_at", sa.BigInteger(), nullable=False),
    sa.UniqueConstraint("vm_id", "email"),
    sa.Index("idx_vm_shares_email", "email"),
)

# docs/lifecycle.md#revoking-one-token: one row per revoked exe0, by the SHA-256 of the
# token string (lower-case hex); ``exp`` is the token's own (null: none), after which the
# row may be purged.
token_revocations = sa.Table(
    "token_revocations",
    metadata,
    sa.Column("token_hash", sa.Text(), primary_key=True),
    sa.Column(
        "user_id",
        sa.Text(),
        sa.ForeignKey("users.user_id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("fingerprint", sa.Text(), nullable=False),
    sa.Column("revoked_at", sa.BigInteger(), nullable=False),
    sa.Column("exp", sa.BigInteger(), nullable=True),
    sa.Index("idx_token_revocations_user", "user_id"),
    sa.Index("idx_token_revocations_exp", "exp"),
)

# docs/http-api.md#rate-limit-across-nodes: the token bucket of a key fingerprint when
# several nodes share a PostgreSQL database (UNLOGGED there; unused on SQLite).
rate_limits = sa.Table(
    "rate_limits",
    metadata,
    sa.Column("fingerprint", sa.Text(), primary_key=True),
    sa.Column("balance", sa.Integer(), nullable=False),
    sa.Column("refilled_at", sa.Float(), nullable=False),
)
