"""Store platforms' webhooks: the durable inbox, platform order ids, partial refunds.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

from storage.types import BigIntId, UtcDateTime

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "webhook_inbox",
        sa.Column("id", BigIntId, autoincrement=True, nullable=False),
        sa.Column("platform", sa.String(16), nullable=False),
        sa.Column("delivery_id", sa.String(128), nullable=False),
        sa.Column("topic", sa.String(64), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("not_before", UtcDateTime(), nullable=False),
        sa.Column("received_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_inbox"),
        sa.UniqueConstraint(
            "platform", "delivery_id", name="uq_webhook_inbox_platform_delivery_id"
        ),
    )
    op.create_index("ix_webhook_inbox_state_due", "webhook_inbox", ["state", "not_before"])
    op.create_table(
        "store_orders",
        sa.Column("platform", sa.String(16), nullable=False),
        sa.Column("external_id", sa.String(64), nullable=False),
        sa.Column("order_ref", sa.String(64), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("platform", "external_id", name="pk_store_orders"),
    )
    op.create_table(
        "order_refunds",
        sa.Column("order_ref", sa.String(64), nullable=False),
        sa.Column("refund_key", sa.String(100), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("order_ref", "refund_key", name="pk_order_refunds"),
    )


def downgrade() -> None:
    op.drop_table("order_refunds")
    op.drop_table("store_orders")
    op.drop_index("ix_webhook_inbox_state_due", table_name="webhook_inbox")
    op.drop_table("webhook_inbox")
