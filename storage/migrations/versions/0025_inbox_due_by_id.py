"""The webhook inbox's due deliveries read from an index in the order the worker takes them.

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-04
"""

from alembic import op

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The worker takes the oldest pending deliveries that are due. With (state, not_before)
    # SQLite read every pending row and sorted them by id for each batch: 24 ms at 40 000
    # pending. With (state, id, not_before) it walks the pending ones in id order and stops
    # after a batch, whatever the backlog.
    op.create_index(
        "ix_webhook_inbox_state_id",
        "webhook_inbox",
        ["state", "id", "not_before"],
        if_not_exists=True,
    )
    op.drop_index("ix_webhook_inbox_state_due", table_name="webhook_inbox", if_exists=True)


def downgrade() -> None:
    op.create_index(
        "ix_webhook_inbox_state_due", "webhook_inbox", ["state", "not_before"], if_not_exists=True
    )
    op.drop_index("ix_webhook_inbox_state_id", table_name="webhook_inbox", if_exists=True)
