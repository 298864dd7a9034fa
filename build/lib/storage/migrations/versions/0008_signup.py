"""Sign-up: consent and birthday columns, invite codes, erasure mark, referrals.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

from storage.types import BigIntId, UtcDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("customers") as batch:
        batch.add_column(sa.Column("terms_accepted_at", UtcDateTime(), nullable=True))
        batch.add_column(sa.Column("birthday_day", sa.SmallInteger(), nullable=True))
        batch.add_column(sa.Column("birthday_month", sa.SmallInteger(), nullable=True))
        batch.add_column(sa.Column("birthday_year", sa.SmallInteger(), nullable=True))
        batch.add_column(sa.Column("birthday_set_at", UtcDateTime(), nullable=True))
        batch.add_column(sa.Column("birthday_gift_year", sa.SmallInteger(), nullable=True))
        batch.add_column(sa.Column("invite_code", sa.String(32), nullable=True))
        batch.add_column(sa.Column("erased_at", UtcDateTime(), nullable=True))
        batch.create_unique_constraint("uq_customers_invite_code", ["invite_code"])
        batch.create_index("ix_customers_birthday", ["birthday_month", "birthday_day"])
    op.create_table(
        "referrals",
        sa.Column("referee_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("referrer_id", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("order_ref", sa.String(64), nullable=True),
        sa.Column("reason", sa.String(40), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("mature_at", UtcDateTime(), nullable=True),
        sa.Column("settled_at", UtcDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["referee_id"], ["customers.id"], name="fk_referrals_referee_id_customers"
        ),
        sa.ForeignKeyConstraint(
            ["referrer_id"], ["customers.id"], name="fk_referrals_referrer_id_customers"
        ),
        sa.PrimaryKeyConstraint("referee_id", name="pk_referrals"),
    )
    op.create_index("ix_referrals_state_mature", "referrals", ["state", "mature_at"])
    op.create_index(
        "ix_referrals_referrer_state", "referrals", ["referrer_id", "state", "settled_at"]
    )
    op.create_table(
        "referral_refusals",
        sa.Column("id", BigIntId, autoincrement=True, nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.Column("referrer_id", sa.BigInteger(), nullable=True),
        sa.Column("referee_id", sa.BigInteger(), nullable=True),
        sa.Column("order_ref", sa.String(64), nullable=True),
        sa.Column("reason", sa.String(40), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_referral_refusals"),
    )
    op.create_index("ix_referral_refusals_referrer_id", "referral_refusals", ["referrer_id"])


def downgrade() -> None:
    op.drop_index("ix_referral_refusals_referrer_id", table_name="referral_refusals")
    op.drop_table("referral_refusals")
    op.drop_index("ix_referrals_referrer_state", table_name="referrals")
    op.drop_index("ix_referrals_state_mature", table_name="referrals")
    op.drop_table("referrals")
    with op.batch_alter_table("customers") as batch:
        batch.drop_index("ix_customers_birthday")
        batch.drop_constraint("uq_customers_invite_code", type_="unique")
        for column in (
            "erased_at",
            "invite_code",
            "birthday_gift_year",
            "birthday_set_at",
            "birthday_year",
            "birthday_month",
            "birthday_day",
            "terms_accepted_at",
        ):
            batch.drop_column(column)
