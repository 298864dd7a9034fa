"""Card QR codes scanned at the till: each code works once.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

from storage.types import UtcDateTime

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "qr_scans",
        sa.Column("nonce", sa.String(32), nullable=False),
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("cashier_id", sa.BigInteger(), nullable=False),
        sa.Column("scanned_at", UtcDateTime(), nullable=False),
        sa.Column("order_ref", sa.String(64), nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name="fk_qr_scans_customer_id_customers",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("nonce", name="pk_qr_scans"),
    )


def downgrade() -> None:
    op.drop_table("qr_scans")
