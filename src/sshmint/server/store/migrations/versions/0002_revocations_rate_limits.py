"""Revoked tokens (docs/lifecycle.md#revoking-one-token) and the token buckets shared by
several nodes (docs/http-api.md#rate-limit-across-nodes).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01

``token_revocations`` holds the SHA-256 of a revoked exe0 string, never the token.
``rate_limits`` is UNLOGGED on PostgreSQL: a bucket is worth nothing after a crash (it
refills within two minutes anyway), and an unlogged table spares every rate-limited
request a write-ahead-log flush. On SQLite (one node) the buckets stay in memory and the
table stays empty.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "token_revocations",
        sa.Column("token_hash", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("fingerprint", sa.Text(), nullable=False),
        sa.Column("revoked_at", sa.BigInteger(), nullable=False),
        sa.Column("exp", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("token_hash", name="pk_token_revocations"),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.user_id"],
            name="fk_token_revocations_user_id_users",
            ondelete="CASCADE",
        ),
    )
    op.create_index("idx_token_revocations_user", "token_revocations", ["user_id"])
    op.create_index("idx_token_revocations_exp", "token_revocations", ["exp"])
    unlogged = ["UNLOGGED"] if op.get_bind().dialect.name == "postgresql" else []
    op.create_table(
        "rate_limits",
        sa.Column("fingerprint", sa.Text(), nullable=False),
        sa.Column("balance", sa.Integer(), nullable=False),
        sa.Column("refilled_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("fingerprint", name="pk_rate_limits"),
        prefixes=unlogged,
    )


def downgrade() -> None:
    op.drop_table("rate_limits")
    op.drop_index("idx_token_revocations_exp", "token_revocations")
    op.drop_index("idx_token_revocations_user", "token_revocations")
    op.drop_table("token_revocations")
