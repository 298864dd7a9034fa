"""Orders and their items, program membership, broadcasts and their recipients.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

from storage.types import BigIntId, UtcDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("customers") as batch:
        batch.add_column(sa.Column("phone", sa.String(20), nullable=True))
        batch.add_column(sa.Column("joined_at", UtcDateTime(), nullable=True))
        batch.create_unique_constraint("uq_customers_phone", ["phone"])
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("broadcast_id", sa.BigInteger(), nullable=True))
        batch.create_index("ix_outbox_broadcast_state", ["broadcast_id", "state"])
    op.create_table(
        "orders",
        sa.Column("id", BigIntId, primary_key=True, autoincrement=True),
        sa.Column("order_ref", sa.String(64), nullable=False),
        sa.Column("customer_id", sa.BigInteger(), nullable=True),
        sa.Column("phone", sa.String(20), nullable=True),
        sa.Column("telegram_id", sa.BigInteger(), nullable=True),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.Column("bonus_redeemed", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("ordered_at", UtcDateTime(), nullable=False),
        sa.Column("received_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name="fk_orders_customer_id_customers",
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_orders"),
        sa.UniqueConstraint("order_ref", name="uq_orders_order_ref"),
    )
    op.create_index("ix_orders_phone", "orders", ["phone"])
    op.create_index("ix_orders_customer_ordered", "orders", ["customer_id", "ordered_at"])
    op.create_table(
        "order_items",
        sa.Column("id", BigIntId, primary_key=True, autoincrement=True),
        sa.Column("order_id", sa.BigInteger(), nullable=False),
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("category", sa.String(64), nullable=True),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("price", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.id"], name="fk_order_items_order_id_orders", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_order_items"),
    )
    op.create_index("ix_order_items_order_id", "order_items", ["order_id"])
    op.create_index("ix_order_items_sku", "order_items", ["sku"])
    op.create_index("ix_order_items_category", "order_items", ["category"])
    op.create_table(
        "broadcasts",
        sa.Column("id", BigIntId, primary_key=True, autoincrement=True),
        sa.Column("created_by", sa.BigInteger(), nullable=False),
        sa.Column("segment", sa.JSON(), nullable=False),
        sa.Column("variants", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("progress_chat_id", sa.BigInteger(), nullable=True),
        sa.Column("progress_message_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("started_at", UtcDateTime(), nullable=True),
        sa.Column("finished_at", UtcDateTime(), nullable=True),
        sa.Column("reported_at", UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_broadcasts"),
    )
    op.create_table(
        "broadcast_recipients",
        sa.Column("broadcast_id", sa.BigInteger(), nullable=False),
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("variant", sa.String(1), nullable=False),
        sa.ForeignKeyConstraint(
            ["broadcast_id"],
            ["broadcasts.id"],
            name="fk_broadcast_recipients_broadcast_id_broadcasts",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name="fk_broadcast_recipients_customer_id_customers",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("broadcast_id", "customer_id", name="pk_broadcast_recipients"),
    )


def downgrade() -> None:
    op.drop_table("broadcast_recipients")
    op.drop_table("broadcasts")
    op.drop_table("order_items")
    op.drop_table("orders")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_index("ix_outbox_broadcast_state")
        batch.drop_column("broadcast_id")
    with op.batch_alter_table("customers") as batch:
        batch.drop_constraint("uq_customers_phone", type_="unique")
        batch.drop_column("joined_at")
        batch.drop_column("phone")
