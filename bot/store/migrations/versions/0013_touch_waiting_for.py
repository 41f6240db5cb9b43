"""touches say in a column which channel's settings they wait for, instead of in the words of last_error

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 06:00:00

A touch whose channel has no provider configured waits until a restart brings the settings. Which
channel it waits for was read back out of prose (`last_error` starting "waiting: SMS is not" or
"waiting: email is not"); `touches.waiting_for` (sms | email) says it, and is filled in for the
touches waiting now.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Added in place (no table rebuild: on SQLite that would fight the foreign keys into touches).
    op.add_column("touches", sa.Column("waiting_for", sa.String(length=10), nullable=True))
    touches = sa.table(
        "touches", sa.column("waiting_for", sa.String), sa.column("status", sa.String), sa.column("last_error", sa.Text)
    )
    for channel, what in (("sms", "SMS"), ("email", "email")):
        op.execute(
            touches.update()
            .where(touches.c.status == "scheduled", touches.c.last_error.like(f"waiting: {what} is not %"))
            .values(waiting_for=channel)
        )


def downgrade() -> None:
    with op.batch_alter_table("touches") as batch:
        batch.drop_column("waiting_for")
