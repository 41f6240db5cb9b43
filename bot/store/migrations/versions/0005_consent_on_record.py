"""SMS consent on record: how and when each lead agreed to texts, and a consent log

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 22:30:00

Until now every lead was assumed to have agreed to texts (`sms_consent` was always true) and
nothing recorded how. From here automated texts go only to leads with consent on record
(bot/store/consent.py), so existing leads are migrated as what they are: leads with no consent on
record. Each gets `sms_consent` false, the method `none_before_0005` and a consent-log row
saying so; their automated texts go by email or as call tasks from now on, until a team member
records their consent (`/followup consent <lead> verbal "..."`) or they text START. A lead whose
source is `sms` or `missed_call` texted or called first: the log records that too, at the time
the lead came in, so a team member may still answer them by text. Leads without a phone (erased
ones among them) get no log row: there is nothing to text. Downgrading drops the new columns and
the log; `sms_consent` stays as it is then (false for the leads migrated here).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NO_RECORD = "none_before_0005"
NO_RECORD_NOTE = (
    "came in before followup recorded SMS consent: none on record, so automated texts go by "
    "email or as calls until consent is recorded"
)
BY = "followup (migration 0005)"
#: Sources of leads who started the conversation themselves, and how.
STARTED_BY_LEAD = {"sms": "lead_texted", "missed_call": "lead_called"}

leads = sa.table(
    "leads",
    sa.column("id", sa.Integer),
    sa.column("phone", sa.String),
    sa.column("source", sa.String),
    sa.column("created_at", sa.DateTime(timezone=True)),
    sa.column("sms_consent", sa.Boolean),
    sa.column("sms_consent_method", sa.String),
    sa.column("sms_consent_at", sa.DateTime(timezone=True)),
    sa.column("sms_lead_started_at", sa.DateTime(timezone=True)),
)


def upgrade() -> None:
    op.create_table(
        "consent_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("lead_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=10), nullable=False),
        sa.Column("granted", sa.Boolean(), nullable=False),
        sa.Column("method", sa.String(length=30), nullable=False),
        sa.Column("evidence", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(length=60), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["lead_id"],
            ["leads.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("consent_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_consent_log_lead_id"), ["lead_id"], unique=False)
    with op.batch_alter_table("leads", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sms_consent_method", sa.String(length=30), nullable=True))
        batch_op.add_column(sa.Column("sms_consent_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("sms_lead_started_at", sa.DateTime(timezone=True), nullable=True))

    log = sa.table(
        "consent_log",
        sa.column("lead_id", sa.Integer),
        sa.column("channel", sa.String),
        sa.column("granted", sa.Boolean),
        sa.column("method", sa.String),
        sa.column("evidence", sa.Text),
        sa.column("actor", sa.String),
        sa.column("at", sa.DateTime(timezone=True)),
    )
    connection = op.get_bind()
    # Stored as SQLite keeps every other time (naive UTC text) and PostgreSQL its timestamptz.
    now = sa.func.now() if connection.dialect.name == "postgresql" else sa.func.datetime("now")
    with_phone = leads.c.phone.is_not(None)
    for source, method in STARTED_BY_LEAD.items():
        connection.execute(
            log.insert().from_select(
                ["lead_id", "channel", "granted", "method", "evidence", "actor", "at"],
                sa.select(
                    leads.c.id,
                    sa.literal("sms"),
                    sa.true(),
                    sa.literal(method),
                    sa.literal(f"came in by {source.replace('_', ' ')} (recorded by migration 0005)"),
                    sa.literal(BY),
                    leads.c.created_at,
                ).where(with_phone, leads.c.source == source),
            )
        )
        connection.execute(
            leads.update().where(with_phone, leads.c.source == source).values(sms_lead_started_at=leads.c.created_at)
        )
    connection.execute(
        log.insert().from_select(
            ["lead_id", "channel", "granted", "method", "evidence", "actor", "at"],
            sa.select(
                leads.c.id,
                sa.literal("sms"),
                sa.false(),
                sa.literal(NO_RECORD),
                sa.literal(NO_RECORD_NOTE),
                sa.literal(BY),
                now,
            ).where(with_phone),
        )
    )
    connection.execute(leads.update().values(sms_consent=False, sms_consent_method=NO_RECORD, sms_consent_at=now))


def downgrade() -> None:
    with op.batch_alter_table("leads", schema=None) as batch_op:
        batch_op.drop_column("sms_lead_started_at")
        batch_op.drop_column("sms_consent_at")
        batch_op.drop_column("sms_consent_method")
    with op.batch_alter_table("consent_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_consent_log_lead_id"))
    op.drop_table("consent_log")
