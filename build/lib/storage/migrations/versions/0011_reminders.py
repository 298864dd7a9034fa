"""Replenishment reminders, the skus a customer stopped, learned intervals per product.

Revision ID: 0011
Revises: 0009
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

from storage.types import BigIntId, UtcDateTime

revision = "0011"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reminders",
        sa.Column("id", BigIntId, autoincrement=True, nullable=False),
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("order_ref", sa.String(64), nullable=False),
        sa.Column("ordered_at", UtcDateTime(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("basis", sa.String(12), nullable=False),
        sa.Column("runs_out_at", UtcDateTime(), nullable=False),
        sa.Column("remind_at", UtcDateTime(), nullable=False),
        sa.Column("due_at", UtcDateTime(), nullable=True),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("reason", sa.String(32), nullable=True),
        sa.Column("cancelled_by", sa.String(64), nullable=True),
        sa.Column("message_key", sa.String(200), nullable=True),
        sa.Column("sent_at", UtcDateTime(), nullable=True),
        sa.Column("converted_at", UtcDateTime(), nullable=True),
        sa.Column("converted_order_ref", sa.String(64), nullable=True),
        sa.Column("revenue", sa.BigInteger(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name="fk_reminders_customer_id_customers",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_reminders"),
        sa.UniqueConstraint(
            "customer_id", "sku", "order_ref", name="uq_reminders_customer_id_sku_order_ref"
        ),
    )
    op.create_index(
        "ix_reminders_due",
        "reminders",
        ["due_at"],
        sqlite_where=sa.text("due_at IS NOT NULL"),
        postgresql_where=sa.text("due_at IS NOT NULL"),
    )
    op.create_index("ix_reminders_order_ref", "reminders", ["order_ref"])
    op.create_index("ix_reminders_cancelled_by", "reminders", ["cancelled_by"])
    op.create_index("ix_reminders_converted_order_ref", "reminders", ["converted_order_ref"])
    op.create_index("ix_reminders_sent_at", "reminders", ["sent_at"])
    op.create_table(
        "reminder_stops",
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("stopped_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name="fk_reminder_stops_customer_id_customers",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("customer_id", "sku", name="pk_reminder_stops"),
    )
    op.create_table(
        "product_intervals",
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("seconds_per_unit", sa.BigInteger(), nullable=False),
        sa.Column("customers", sa.Integer(), nullable=False),
        sa.Column("refreshed_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("sku", name="pk_product_intervals"),
    )


def downgrade() -> None:
    op.drop_table("product_intervals")
    op.drop_table("reminder_stops")
    op.drop_index("ix_reminders_sent_at", table_name="reminders")
    op.drop_index("ix_reminders_converted_order_ref", table_name="reminders")
    op.drop_index("ix_reminders_cancelled_by", table_name="reminders")
    op.drop_index("ix_reminders_order_ref", table_name="reminders")
    op.drop_index("ix_reminders_due", table_name="reminders")
    op.drop_table("reminders")
