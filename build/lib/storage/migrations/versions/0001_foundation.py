"""Foundation: customers as Telegram users, and aiogram FSM state.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

from storage.types import BigIntId, UtcDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "customers",
        sa.Column("id", BigIntId, primary_key=True, autoincrement=True),
        sa.Column("telegram_id", sa.BigInteger(), nullable=True),
        sa.Column("first_name", sa.String(256), nullable=True),
        sa.Column("username", sa.String(64), nullable=True),
        sa.Column("language_code", sa.String(16), nullable=True),
        sa.Column("locale", sa.String(8), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("last_seen_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_customers"),
        sa.UniqueConstraint("telegram_id", name="uq_customers_telegram_id"),
    )
    op.create_table(
        "fsm_states",
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("state", sa.String(255), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_fsm_states"),
    )
    op.create_index("ix_fsm_states_updated_at", "fsm_states", ["updated_at"])


def downgrade() -> None:
    op.drop_index("ix_fsm_states_updated_at", table_name="fsm_states")
    op.drop_table("fsm_states")
    op.drop_table("customers")
