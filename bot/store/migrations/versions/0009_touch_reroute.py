"""touches say in a column whether they were rerouted, instead of in the words of skip_reason / last_error

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 01:45:00

A text the number could not take goes again another way, once. Whether it did was read back out of
prose (`skip_reason` starting "sent by email" or "handed to the team as a call", `last_error`
starting "rerouted:"); `touches.rerouted` (queued | email | call) says it, and is filled in for the
touches already rerouted.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("touches") as batch:
        batch.add_column(sa.Column("rerouted", sa.String(length=10), nullable=True))
    touches = sa.table(
        "touches",
        sa.column("rerouted", sa.String),
        sa.column("skip_reason", sa.String),
        sa.column("last_error", sa.Text),
    )
    op.execute(touches.update().where(touches.c.skip_reason.like("sent by email%")).values(rerouted="email"))
    op.execute(
        touches.update().where(touches.c.skip_reason.like("handed to the team as a call%")).values(rerouted="call")
    )
    op.execute(
        touches.update()
        .where(touches.c.rerouted.is_(None), touches.c.last_error.like("rerouted:%"))
        .values(rerouted="queued")
    )


def downgrade() -> None:
    with op.batch_alter_table("touches") as batch:
        batch.drop_column("rerouted")
