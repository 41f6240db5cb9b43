"""every lead, appointment, Slack notice, outbound webhook and idempotency key names its business

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02 16:00:00

One deployment serves many businesses (issue #16). Leads, appointments, the outbox, outbound
webhooks and processed deliveries get a `business` column (the business's slug); every other table
belongs to a business through its lead. The rows already stored belong to the one business the
deployment served until now: the slug `followup db upgrade` is given (`db.upgrade(engine,
business=...)`, "main" for a single business.yml).

Keys that were unique in the whole database become unique per business, because two clinics are two
separate worlds that may use the same words: a calendar booking id (the generic booking webhook's
`external_id` is the clinic system's own number) and a webhook's delivery id are unique per business;
an inbound message's provider id is unique per lead (one email sent to two clinics' inbound
addresses carries one Message-ID and is a message to each). A lead's phone and email were never
unique keys (intake dedupes by looking, under the lead lock); the lookups it makes are indexed per
business now. The booking and unsubscribe link tokens stay unique in the whole database: a link
names no business, so its token alone must find the lead (and with it the business).

On SQLite each table is rebuilt to make the column NOT NULL and to change its unique key; that needs
foreign keys off, which `db.upgrade` sees to (and checks them all afterwards).
"""

import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import sqlalchemy as sa
from alembic import context, op

revision: str = "0014"
down_revision: str | Sequence[str] | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: The tables whose rows say their business themselves.
TABLES = ("leads", "appointments", "outbox", "processed_deliveries", "outbound_webhooks")
#: The slug of the one business a database from before this migration served.
DEFAULT_BUSINESS = "main"


@contextmanager
def _quiet_reflection() -> Iterator[None]:
    """SQLite's batch mode reflects the tables; the lower(email) index on leads cannot be reflected and needs not be."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Skipped unsupported reflection of expression-based index")
        yield


def _existing_business() -> str:
    slug = context.config.attributes.get("business") or DEFAULT_BUSINESS
    if not isinstance(slug, str):
        raise TypeError(f"the business the stored rows belong to must be a slug, not {slug!r}")
    return slug


def upgrade() -> None:
    business = _existing_business()
    # Lookups by contact are per business now: (business, phone) and (business, lower(email)) replace them.
    op.drop_index("ix_leads_phone", table_name="leads")
    op.drop_index("ix_leads_email", table_name="leads")
    # A SQLite database once taken back past 0005 lost it (a table rebuild cannot copy an expression index).
    op.drop_index("ix_leads_email_lower", table_name="leads", if_exists=True)
    for name in TABLES:
        op.add_column(name, sa.Column("business", sa.String(length=100), nullable=True))
        table = sa.table(name, sa.column("business", sa.String))
        op.execute(table.update().values(business=sa.bindparam("slug", business, type_=sa.String)))
    with _quiet_reflection():
        for name in TABLES:
            with op.batch_alter_table(name) as batch:
                batch.alter_column("business", existing_type=sa.String(length=100), nullable=False)
                if name == "appointments":
                    batch.drop_constraint("uq_appointment_external", type_="unique")
                    batch.create_unique_constraint("uq_appointment_external", ["business", "source", "external_id"])
                elif name == "processed_deliveries":
                    batch.drop_constraint("uq_processed_delivery", type_="unique")
                    batch.create_unique_constraint("uq_processed_delivery", ["business", "provider", "delivery_id"])
        with op.batch_alter_table("messages") as batch:
            batch.drop_constraint("uq_message_provider", type_="unique")
            batch.create_unique_constraint("uq_message_provider", ["lead_id", "channel", "provider_id"])
    op.create_index("ix_leads_business_phone", "leads", ["business", "phone"], unique=False)
    op.create_index("ix_leads_business_email_lower", "leads", ["business", sa.text("lower(email)")], unique=False)
    for name in ("appointments", "outbox", "outbound_webhooks"):
        op.create_index(f"ix_{name}_business", name, ["business"], unique=False)


def downgrade() -> None:
    for name in ("appointments", "outbox", "outbound_webhooks"):
        op.drop_index(f"ix_{name}_business", table_name=name)
    op.drop_index("ix_leads_business_email_lower", table_name="leads")
    op.drop_index("ix_leads_business_phone", table_name="leads")
    with _quiet_reflection():
        with op.batch_alter_table("messages") as batch:
            batch.drop_constraint("uq_message_provider", type_="unique")
            batch.create_unique_constraint("uq_message_provider", ["channel", "provider_id"])
        for name in TABLES:
            with op.batch_alter_table(name) as batch:
                if name == "appointments":
                    batch.drop_constraint("uq_appointment_external", type_="unique")
                    batch.create_unique_constraint("uq_appointment_external", ["source", "external_id"])
                elif name == "processed_deliveries":
                    batch.drop_constraint("uq_processed_delivery", type_="unique")
                    batch.create_unique_constraint("uq_processed_delivery", ["provider", "delivery_id"])
                batch.drop_column("business")
    op.create_index("ix_leads_email_lower", "leads", [sa.text("lower(email)")], unique=False)
    op.create_index("ix_leads_email", "leads", ["email"], unique=False)
    op.create_index("ix_leads_phone", "leads", ["phone"], unique=False)
