"""Points are money: accruals remember when their order was placed (the tier window counts
from it), and one-time codes prove that a member spends their own points.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

from storage.types import BigIntId, UtcDateTime

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
    op.create_table(
        "redeem_codes",
        sa.Column("id", BigIntId, autoincrement=True, nullable=False),
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
        sa.Column("used_at", UtcDateTime(), nullable=True),
        sa.Column("order_ref", sa.String(64), nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name="fk_redeem_codes_customer_id_customers",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_redeem_codes"),
    )
    op.create_index("ix_redeem_codes_customer_hash", "redeem_codes", ["customer_id", "code_hash"])


def downgrade() -> None:
    op.drop_table("redeem_codes")
    with op.batch_alter_table("ledger_entries") as batch:
        batch.drop_column("ordered_at")
