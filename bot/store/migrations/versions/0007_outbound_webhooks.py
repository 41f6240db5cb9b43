"""outbound webhooks: the clinic's own systems hear of lead events

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 22:10:00

One row per event and receiver (`FOLLOWUP_WEBHOOK_URL`), delivered from the database so an
event survives a restart and goes out in order per lead. Existing databases start with an empty
queue: events from before the upgrade are not replayed.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "outbound_webhooks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("lead_id", sa.Integer(), nullable=True),
        sa.Column("receiver", sa.String(length=500), nullable=False),
        sa.Column("event", sa.String(length=40), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["lead_id"], ["leads.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_outbound_webhooks_lead_id", "outbound_webhooks", ["lead_id"], unique=False)
    op.create_index(
        "ix_outbound_webhooks_pending", "outbound_webhooks", ["delivered_at", "failed_at", "id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_outbound_webhooks_pending", table_name="outbound_webhooks")
    op.drop_index("ix_outbound_webhooks_lead_id", table_name="outbound_webhooks")
    op.drop_table("outbound_webhooks")
