"""index orders by (state, id), for listing a state newest first

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_orders_state_id", "orders", ["state", "id"])


def downgrade() -> None:
    op.drop_index("ix_orders_state_id", table_name="orders")
