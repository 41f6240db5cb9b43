"""call tasks remember when the admins were nudged about an unclaimed call

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 22:30:00

A call nobody claims gets a nudge to the lead's owner or on-call; when that is ignored too, a
second nudge goes to the admins, once. `admins_nudged_at` records it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("call_tasks") as batch:
        batch.add_column(sa.Column("admins_nudged_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("call_tasks") as batch:
        batch.drop_column("admins_nudged_at")
