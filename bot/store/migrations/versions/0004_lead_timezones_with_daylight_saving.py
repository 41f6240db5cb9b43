"""read leads' fixed-offset EST, MST and HST as the places people meant

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 09:20:00

Before intake read US abbreviations as places (contacts.normalize_timezone), a lead could be
stored with the time zone database's `EST`, `MST` or `HST`: fixed offsets that never move for
daylight saving, so from March to November such a lead's "daytime" ran an hour off. They become
the place intake now stores for them: `EST` New York, `HST` Honolulu, and `MST` Phoenix for an
Arizona number (which keeps no daylight time either) and Denver for any other. Downgrading leaves
the names as they are.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from bot.core.contacts import timezones_for_phone

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Frozen here, as the migration's own record of what it did.
PLACES = {"EST": ("America/New_York",), "MST": ("America/Denver", "America/Phoenix"), "HST": ("Pacific/Honolulu",)}

leads = sa.table("leads", sa.column("id", sa.Integer), sa.column("phone", sa.String), sa.column("timezone", sa.String))


def place_for(abbreviation: str, phone: str | None) -> str:
    places = PLACES[abbreviation]
    phone_zones = timezones_for_phone(phone) if phone else ()
    return next((place for place in places if place in phone_zones), places[0])


def upgrade() -> None:
    connection = op.get_bind()
    stored = connection.execute(
        sa.select(leads.c.id, leads.c.phone, leads.c.timezone).where(leads.c.timezone.in_(list(PLACES)))
    ).all()
    if stored:
        connection.execute(
            leads.update().where(leads.c.id == sa.bindparam("lead_id")).values(timezone=sa.bindparam("place")),
            [{"lead_id": row.id, "place": place_for(row.timezone, row.phone)} for row in stored],
        )


def downgrade() -> None:
    pass
