"""Initial schema (docs/storage.md#schema) and the exe1 derivation secret (docs/storage.md#nothing-usable-at-rest).

Revision ID: 0001
Revises:
Create Date: 2025-01-01

Self-contained on purpose: later changes to ``schema.py`` must not alter what this
revision creates.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
# Code-point ordering on PostgreSQL, like SQLite's BINARY collation.
_SORTED_TEXT = sa.Text().with_variant(sa.Text(collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("email", _SORTED_TEXT, nullable=False),
        sa.Column("is_locked_out", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("next_ssh_key_number", sa.Integer(), nullable=False, server_default=sa.text("1")),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name="pk_users"),
        sa.UniqueConstraint("email", name="uq_users_email"),
        sa.CheckConstraint("is_locked_out IN (0, 1)", name="ck_users_locked_flag"),
    )
    op.create_table(
        "ssh_keys",
        sa.Column("id", _ID, nullable=False, autoincrement=True),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("public_key", sa.Text(), nullable=False),
        sa.Column("fingerprint", sa.Text(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False, server_default=sa.text("''")),
        sa.Column("permissions", sa.Text(), nullable=False, server_default=sa.text("''")),
        sa.Column("api_key_hint", sa.Text(), nullable=True),
        sa.Column("added_at", sa.BigInteger(), nullable=False),
        sa.Column("last_used_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_ssh_keys"),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.user_id"],
            name="fk_ssh_keys_user_id_users",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("public_key", name="uq_ssh_keys_public_key"),
        sa.UniqueConstraint("fingerprint", name="uq_ssh_keys_fingerprint"),
    )
    op.create_index("idx_ssh_keys_user", "ssh_keys", ["user_id"])
    op.create_table(
        "exe1_tokens",
        sa.Column("exe1_hash", sa.Text(), nullable=False),
        sa.Column("exe0_sealed", sa.LargeBinary(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("exe1_hash", name="pk_exe1_tokens"),
    )
    op.create_index("idx_exe1_tokens_expires", "exe1_tokens", ["expires_at"])
    server_secrets = op.create_table(
        "server_secrets",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("value", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_server_secrets"),
    )
    op.create_table(
        "vms",
        sa.Column("id", _ID, nullable=False, autoincrement=True),
        sa.Column("name", _SORTED_TEXT, nullable=False),
        sa.Column("owner_user_id", sa.Text(), nullable=False),
        sa.Column("upstream", sa.Text(), nullable=False),
        sa.Column("share", sa.Text(), nullable=False, server_default=sa.text("'private'")),
        sa.Column("tags", sa.Text(), nullable=False, server_default=sa.text("'[]'")),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_vms"),
        sa.ForeignKeyConstraint(
            ["owner_user_id"],
            ["users.user_id"],
            name="fk_vms_owner_user_id_users",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("name", name="uq_vms_name"),
        sa.CheckConstraint("share IN ('private', 'public')", name="ck_vms_share_mode"),
    )
    op.create_index("idx_vms_owner", "vms", ["owner_user_id"])
    op.create_table(
        "vm_shares",
        sa.Column("id", _ID, nullable=False, autoincrement=True),
        sa.Column("vm_id", _ID, nullable=False),
        sa.Column("email", _SORTED_TEXT, nullable=False),
        sa.Column("shared_by_user_id", sa.Text(), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_vm_shares"),
        sa.ForeignKeyConstraint(
            ["vm_id"], ["vms.id"], name="fk_vm_shares_vm_id_vms", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["shared_by_user_id"],
            ["users.user_id"],
            name="fk_vm_shares_shared_by_user_id_users",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("vm_id", "email", name="uq_vm_shares_vm_id_email"),
    )
    op.create_index("idx_vm_shares_email", "vm_shares", ["email"])
    # docs/storage.md#nothing-usable-at-rest: 32 random bytes, made once, shared by every node using this database.
    op.bulk_insert(
        server_secrets,
        [{"name": "exe1-derivation", "value": os.urandom(32), "created_at": int(time.time())}],
    )


def downgrade() -> None:
    for table in ("vm_shares", "vms", "server_secrets", "exe1_tokens", "ssh_keys", "users"):
        op.drop_table(table)
