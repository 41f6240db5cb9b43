"""index touches by enrollment and position

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 05:25:00

The claim's "blocked by an earlier touch" test and the "every step ran" test both look up a
lead's touches by enrollment; without this index PostgreSQL scans the due index for each
candidate whenever its statistics are stale (see docs/benchmarks.md).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("touches", schema=None) as batch_op:
        batch_op.create_index("ix_touches_enrollment_position", ["enrollment_id", "position"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("touches", schema=None) as batch_op:
        batch_op.drop_index("ix_touches_enrollment_position")
