"""Ratings after orders and the staff alerts for negative ones.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

from storage.types import BigIntId, UtcDateTime

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ratings",
        sa.Column("id", BigIntId, autoincrement=True, nullable=False),
        sa.Column("order_ref", sa.String(64), nullable=False),
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("requested_at", UtcDateTime(), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
        sa.Column("withdrawn_at", UtcDateTime(), nullable=True),
        sa.Column("score", sa.SmallInteger(), nullable=True),
        sa.Column("first_rated_at", UtcDateTime(), nullable=True),
        sa.Column("rated_at", UtcDateTime(), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("closed_at", UtcDateTime(), nullable=True),
        sa.CheckConstraint(
            "score IS NULL OR (score >= 1 AND score <= 5)", name="ck_ratings_score_range"
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name="fk_ratings_customer_id_customers",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_ratings"),
        sa.UniqueConstraint("order_ref", name="uq_ratings_order_ref"),
    )
    op.create_index("ix_ratings_rated_at", "ratings", ["rated_at"])
    op.create_index("ix_ratings_expires_at", "ratings", ["expires_at"])
    op.create_table(
        "rating_alerts",
        sa.Column("id", BigIntId, autoincrement=True, nullable=False),
        sa.Column("rating_id", sa.BigInteger(), nullable=False),
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("snapshot", sa.JSON(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("taken_by", sa.BigInteger(), nullable=True),
        sa.Column("taken_by_name", sa.String(256), nullable=True),
        sa.Column("taken_at", UtcDateTime(), nullable=True),
        sa.Column("resolved_by", sa.BigInteger(), nullable=True),
        sa.Column("resolved_by_name", sa.String(256), nullable=True),
        sa.Column("resolved_at", UtcDateTime(), nullable=True),
        sa.Column("compensation_points", sa.BigInteger(), nullable=True),
        sa.Column("compensated_by_name", sa.String(256), nullable=True),
        sa.Column("compensated_at", UtcDateTime(), nullable=True),
        sa.Column("replied_by_name", sa.String(256), nullable=True),
        sa.Column("replied_at", UtcDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["rating_id"],
            ["ratings.id"],
            name="fk_rating_alerts_rating_id_ratings",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name="fk_rating_alerts_customer_id_customers",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_rating_alerts"),
        sa.UniqueConstraint("rating_id", name="uq_rating_alerts_rating_id"),
    )
    op.create_index("ix_rating_alerts_customer_state", "rating_alerts", ["customer_id", "state"])
    op.create_index("ix_rating_alerts_created_at", "rating_alerts", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_rating_alerts_created_at", table_name="rating_alerts")
    op.drop_index("ix_rating_alerts_customer_state", table_name="rating_alerts")
    op.drop_table("rating_alerts")
    op.drop_index("ix_ratings_expires_at", table_name="ratings")
    op.drop_index("ix_ratings_rated_at", table_name="ratings")
    op.drop_table("ratings")
