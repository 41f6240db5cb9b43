"""the unsubscribe link gets its own token, apart from the booking link's

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 02:00:00

One token opened both links, so anything that saw the booking link (a link scanner, a forwarded
text) could unsubscribe the lead. Unsubscribe links already sent carry the old token and must keep
working (a lead who unsubscribes from an old email is unsubscribed), so existing leads keep it as
their unsubscribe token and get a new booking-link token; an old booking link still redirects to the
booking page, it is only no longer counted as that lead's click.
"""

import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Added and indexed in place (no table rebuild: on SQLite that would fight the foreign keys into
    # leads); the empty default only fills the column until each lead gets its token just below.
    op.add_column("leads", sa.Column("unsubscribe_token", sa.String(length=40), nullable=False, server_default=""))
    connection = op.get_bind()
    leads = sa.table("leads", sa.column("id"), sa.column("link_token"), sa.column("unsubscribe_token"))
    rows = connection.execute(sa.select(leads.c.id, leads.c.link_token)).all()
    if rows:
        connection.execute(
            leads.update()
            .where(leads.c.id == sa.bindparam("lead_id"))
            .values(unsubscribe_token=sa.bindparam("old"), link_token=sa.bindparam("new")),
            [{"lead_id": lead_id, "old": token, "new": secrets.token_urlsafe(16)} for lead_id, token in rows],
        )
    op.create_index("ix_leads_unsubscribe_token", "leads", ["unsubscribe_token"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_leads_unsubscribe_token", table_name="leads")
    op.drop_column("leads", "unsubscribe_token")
