"""Wrong tries of a one-time spending code are counted, so the code cannot be guessed.

Revision ID: 0022
Revises: 0017
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("redeem_codes") as batch:
        batch.add_column(
            sa.Column("wrong_attempts", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("redeem_codes") as batch:
        batch.drop_column("wrong_attempts")
