"""Slack notices say in a column why they wait for a retry, instead of in the words of last_error

Revision ID: 0012
Revises: 0010
Create Date: 2026-12-02 06:00:00

The poster read two flags back out of prose: whether Slack had rate-limited a notice (its Retry-After
stands even once Slack answers again: `last_error` containing "rate limited") and whether its last post
may have reached Slack though the answer was lost (`last_error` starting "answer lost, maybe posted").
`outbox.retry_reason` (rate_limited | maybe_posted) says it, and is filled in for the notices waiting now.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("retry_reason", sa.String(length=20), nullable=True))
    outbox = sa.table(
        "outbox",
        sa.column("retry_reason", sa.String),
        sa.column("last_error", sa.Text),
        sa.column("delivered_at", sa.DateTime),
    )
    waiting = outbox.c.delivered_at.is_(None)
    op.execute(
        outbox.update()
        .where(waiting, outbox.c.last_error.like("answer lost, maybe posted%"))
        .values(retry_reason="maybe_posted")
    )
    op.execute(
        outbox.update()
        .where(waiting, outbox.c.retry_reason.is_(None), outbox.c.last_error.like("%rate limited%"))
        .values(retry_reason="rate_limited")
    )


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("retry_reason")
