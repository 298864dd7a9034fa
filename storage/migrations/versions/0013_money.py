"""Points are money: accruals remember when their order was placed (the tier window counts
from it), and one-time codes prove that a member spends their own points.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

from storage.types import UtcDateTime

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("ledger_entries", sa.Column("ordered_at", UtcDateTime(), nullable=True))
    # Accruals so far: their order's date where the order is known, else when they were written.
    op.execute(
        "UPDATE ledger_entries SET ordered_at = COALESCE("
        "(SELECT orders.ordered_at FROM orders"
        " WHERE 'order:' || orders.order_ref = ledger_entries.source),"
        " ledger_entries.occurred_at)"
        " WHERE kind = 'accrual'"
    )


def downgrade() -> None:
    with op.batch_alter_table("ledger_entries") as batch:
        batch.drop_column("ordered_at")
