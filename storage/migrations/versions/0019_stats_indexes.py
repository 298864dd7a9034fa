"""Indexes for /stats: customers' order histories read from the index alone, the ledger by date.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-01
"""

from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Every figure of /stats walks each customer's orders in time order and needs only these
    # columns: with them in the index, neither backend touches the table (1M orders: seconds).
    op.create_index(
        "ix_orders_customer_history",
        "orders",
        ["customer_id", "ordered_at", "id", "status", "total"],
    )
    op.create_index("ix_ledger_entries_occurred_at", "ledger_entries", ["occurred_at"])


def downgrade() -> None:
    op.drop_index("ix_ledger_entries_occurred_at", table_name="ledger_entries")
    op.drop_index("ix_orders_customer_history", table_name="orders")
