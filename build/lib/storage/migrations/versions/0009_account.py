"""Account: the tier each customer was last told about, and admins' holiday gifts.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

from storage.types import BigIntId, UtcDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tier_standings",
        sa.Column("customer_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("tier", sa.String(32), nullable=False),
        sa.Column("changes", sa.Integer(), nullable=False),
        sa.Column("changed_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name="fk_tier_standings_customer_id_customers",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("customer_id", name="pk_tier_standings"),
    )
    op.create_table(
        "gifts",
        sa.Column("id", BigIntId, autoincrement=True, nullable=False),
        sa.Column("request_key", sa.String(64), nullable=False),
        sa.Column("created_by", sa.BigInteger(), nullable=False),
        sa.Column("locale", sa.String(8), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("tier", sa.String(32), nullable=True),
        sa.Column("multipliers", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("cursor", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("granted", sa.Integer(), server_default="0", nullable=False),
        sa.Column("points", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("finished_at", UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_gifts"),
        sa.UniqueConstraint("request_key", name="uq_gifts_request_key"),
    )
    op.create_index("ix_gifts_state", "gifts", ["state"])


def downgrade() -> None:
    op.drop_index("ix_gifts_state", table_name="gifts")
    op.drop_table("gifts")
    op.drop_table("tier_standings")
