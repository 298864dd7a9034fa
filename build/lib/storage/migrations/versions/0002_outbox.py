"""Delivery engine: the outbox, notification mutes, consent and reachability of customers.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

from storage.types import BigIntId, UtcDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("customers") as batch:
        batch.add_column(
            sa.Column("marketing_opt_in", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("marketing_changed_at", UtcDateTime(), nullable=True))
        batch.add_column(sa.Column("blocked_at", UtcDateTime(), nullable=True))
        batch.add_column(sa.Column("timezone", sa.String(64), nullable=True))
    op.create_table(
        "notification_mutes",
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("muted_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name="fk_notification_mutes_customer_id_customers",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("customer_id", "kind", name="pk_notification_mutes"),
    )
    op.create_table(
        "outbox",
        sa.Column("id", BigIntId, primary_key=True, autoincrement=True),
        sa.Column("dedupe_key", sa.String(200), nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("customer_id", sa.BigInteger(), nullable=True),
        sa.Column("category", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("priority", sa.SmallInteger(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("not_before", UtcDateTime(), nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("claimed_by", sa.String(64), nullable=True),
        sa.Column("claimed_until", UtcDateTime(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.Column("sent_at", UtcDateTime(), nullable=True),
        sa.Column("telegram_message_id", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name="fk_outbox_customer_id_customers",
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_outbox"),
        sa.UniqueConstraint("dedupe_key", name="uq_outbox_dedupe_key"),
    )
    op.create_index("ix_outbox_due", "outbox", ["state", "priority", "not_before"])
    op.create_index("ix_outbox_chat_state", "outbox", ["chat_id", "state"])
    op.create_index("ix_outbox_customer_sent", "outbox", ["customer_id", "category", "sent_at"])


def downgrade() -> None:
    op.drop_table("outbox")
    op.drop_table("notification_mutes")
    with op.batch_alter_table("customers") as batch:
        batch.drop_column("timezone")
        batch.drop_column("blocked_at")
        batch.drop_column("marketing_changed_at")
        batch.drop_column("marketing_opt_in")
