"""appointments keep where they were booked, the calendar's id, and what replaced them

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 22:00:00

An appointment now lives through booked, confirmed, attended, no-show, cancelled and
rescheduled. It records its source (team, booking, calendly, cal.com) and the calendar's own id
for it, unique per source, so a redelivered booking webhook is the same appointment; when it
changed state last; and, once rescheduled, the appointment that replaced it.
"""

import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


@contextmanager
def _quiet_reflection() -> Iterator[None]:
    """SQLite's batch mode reflects the tables; the lower(email) index on leads cannot be reflected and needs not be."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Skipped unsupported reflection of expression-based index")
        yield


def upgrade() -> None:
    with _quiet_reflection(), op.batch_alter_table("appointments") as batch:
        batch.add_column(sa.Column("source", sa.String(length=30), server_default="team", nullable=False))
        batch.add_column(sa.Column("external_id", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("status_changed_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("replaced_by_id", sa.Integer(), nullable=True))
        batch.create_foreign_key("fk_appointments_replaced_by", "appointments", ["replaced_by_id"], ["id"])
        batch.create_unique_constraint("uq_appointment_external", ["source", "external_id"])


def downgrade() -> None:
    with _quiet_reflection(), op.batch_alter_table("appointments") as batch:
        batch.drop_constraint("uq_appointment_external", type_="unique")
        batch.drop_constraint("fk_appointments_replaced_by", type_="foreignkey")
        batch.drop_column("replaced_by_id")
        batch.drop_column("status_changed_at")
        batch.drop_column("external_id")
        batch.drop_column("source")
