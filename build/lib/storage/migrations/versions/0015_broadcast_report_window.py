"""Broadcasts remember when their progress message showed the end: the report waits for the
conversion window to close.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

from storage.types import UtcDateTime

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("broadcasts") as batch:
        batch.add_column(sa.Column("progress_final_at", UtcDateTime(), nullable=True))
    # Broadcasts reported before this revision are over in every sense.
    op.execute(
        "UPDATE broadcasts SET progress_final_at = reported_at WHERE reported_at IS NOT NULL"
    )


def downgrade() -> None:
    with op.batch_alter_table("broadcasts") as batch:
        batch.drop_column("progress_final_at")
