"""Points ledger: append-only entries, lots with hold and expiry, allocations, cached accounts.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

from storage.types import BigIntId, UtcDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ledger_entries",
        sa.Column("id", BigIntId, primary_key=True, autoincrement=True),
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("paid_amount", sa.BigInteger(), nullable=True),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("actor_id", sa.BigInteger(), nullable=True),
        sa.Column("occurred_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name="fk_ledger_entries_customer_id_customers"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_ledger_entries"),
        sa.UniqueConstraint("source", "kind", name="uq_ledger_entries_source_kind"),
    )
    op.create_index("ix_ledger_entries_customer_history", "ledger_entries", ["customer_id", "id"])
    op.create_index(
        "ix_ledger_entries_customer_kind", "ledger_entries", ["customer_id", "kind", "occurred_at"]
    )
    op.create_table(
        "ledger_lots",
        sa.Column("id", BigIntId, primary_key=True, autoincrement=True),
        sa.Column("entry_id", sa.BigInteger(), nullable=False),
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("remaining", sa.BigInteger(), nullable=False),
        sa.Column("earned_at", UtcDateTime(), nullable=False),
        sa.Column("available_at", UtcDateTime(), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["entry_id"], ["ledger_entries.id"], name="fk_ledger_lots_entry_id_ledger_entries"
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name="fk_ledger_lots_customer_id_customers"
        ),
        sa.CheckConstraint(
            "amount > 0 AND remaining >= 0 AND remaining <= amount",
            name=op.f("ck_ledger_lots_remaining_within_amount"),
        ),
        sa.PrimaryKeyConstraint("id", name="pk_ledger_lots"),
    )
    op.create_index("ix_ledger_lots_entry_id", "ledger_lots", ["entry_id"])
    op.create_index("ix_ledger_lots_customer_expiry", "ledger_lots", ["customer_id", "expires_at"])
    op.create_index(
        "ix_ledger_lots_open_expiry",
        "ledger_lots",
        ["expires_at"],
        sqlite_where=sa.text("remaining > 0"),
        postgresql_where=sa.text("remaining > 0"),
    )
    op.create_table(
        "ledger_allocations",
        sa.Column("entry_id", sa.BigInteger(), nullable=False),
        sa.Column("lot_id", sa.BigInteger(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["entry_id"],
            ["ledger_entries.id"],
            name="fk_ledger_allocations_entry_id_ledger_entries",
        ),
        sa.ForeignKeyConstraint(
            ["lot_id"], ["ledger_lots.id"], name="fk_ledger_allocations_lot_id_ledger_lots"
        ),
        sa.CheckConstraint("amount > 0", name=op.f("ck_ledger_allocations_amount_positive")),
        sa.PrimaryKeyConstraint("entry_id", "lot_id", name="pk_ledger_allocations"),
    )
    op.create_index("ix_ledger_allocations_lot_id", "ledger_allocations", ["lot_id"])
    op.create_table(
        "ledger_accounts",
        sa.Column("customer_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("balance", sa.BigInteger(), nullable=False),
        sa.Column("debt", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name="fk_ledger_accounts_customer_id_customers"
        ),
        sa.PrimaryKeyConstraint("customer_id", name="pk_ledger_accounts"),
    )


def downgrade() -> None:
    op.drop_table("ledger_accounts")
    op.drop_table("ledger_allocations")
    op.drop_table("ledger_lots")
    op.drop_table("ledger_entries")
