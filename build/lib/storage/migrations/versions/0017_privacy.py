"""Erasure that erases: fraud-check hashes, the bot's own secrets, random card numbers.

Revision ID: 0017
Revises: 0015
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

from storage.types import UtcDateTime

revision = "0017"
down_revision = "0015"
branch_labels = None
depends_on = None


def _legacy_card(customer_id: int) -> str:
    """The card number members were given before random ones: "29" + id + check digit."""
    body = f"29{customer_id:010d}"
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(body))
    return body + str((10 - total % 10) % 10)


def upgrade() -> None:
    op.create_table(
        "erased_identities",
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("erased_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("digest", name="pk_erased_identities"),
    )
    op.create_table(
        "app_secrets",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("value", sa.String(128), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_app_secrets"),
    )
    with op.batch_alter_table("customers") as batch:
        batch.add_column(sa.Column("card_number", sa.String(13), nullable=True))
        batch.create_unique_constraint("uq_customers_card_number", ["card_number"])
    # Cards already handed out keep working: every member keeps the number their id spelt.
    # Customers who have not joined yet get a random number when they do.
    customers = sa.table(
        "customers",
        sa.column("id", sa.BigInteger()),
        sa.column("card_number", sa.String(13)),
        sa.column("joined_at", UtcDateTime()),
    )
    connection = op.get_bind()
    ids = connection.execute(
        sa.select(customers.c.id).where(customers.c.joined_at.is_not(None))
    ).scalars()
    for customer_id in list(ids):
        connection.execute(
            sa.update(customers)
            .where(customers.c.id == customer_id)
            .values(card_number=_legacy_card(int(customer_id)))
        )


def downgrade() -> None:
    with op.batch_alter_table("customers") as batch:
        batch.drop_constraint("uq_customers_card_number", type_="unique")
        batch.drop_column("card_number")
    op.drop_table("app_secrets")
    op.drop_table("erased_identities")
