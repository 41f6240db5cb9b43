"""index leads by lower(email)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 07:05:00

Intake looks a lead up by `lower(email) = ...` (an address is the same whatever its case); the
plain index on `email` cannot serve that, so every new lead scanned the whole table.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_leads_email_lower", "leads", [sa.text("lower(email)")], unique=False)


def downgrade() -> None:
    op.drop_index("ix_leads_email_lower", table_name="leads")
