"""the Slack poster reads the outbox queue per business, per edit kind and by retry time, through indexes

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03 16:45:00

With 50 clinics and 100,000 cards queued, each look at the queue for the next post scanned the whole
queue (the channels waiting for a rate-limit token were filtered out row by row), and the poster
managed under two posts a second where Slack allows about fifty. The poster now reads each business's
queue (and the card edits, which wait for no channel) from its own start: `(business, delivered_at,
id)` and `(kind, delivered_at, id)` give those in queue order; `(delivered_at, next_attempt_at)` gives
the next retry without a scan.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0015"
down_revision: str | Sequence[str] | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = {
    "ix_outbox_business_queue": ["business", "delivered_at", "id"],
    "ix_outbox_kind_queue": ["kind", "delivered_at", "id"],
    "ix_outbox_retry_queue": ["delivered_at", "next_attempt_at"],
}


def upgrade() -> None:
    for name, columns in INDEXES.items():
        op.create_index(name, "outbox", columns, unique=False)


def downgrade() -> None:
    for name in INDEXES:
        op.drop_index(name, table_name="outbox")
