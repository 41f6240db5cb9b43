"""The migrations build exactly the schema the models describe, on SQLite and on PostgreSQL."""

from __future__ import annotations

from datetime import UTC

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import event, inspect
from sqlalchemy.orm import Session

from bot.store.models import Base, Lead
from bot.usecases.leads import find_existing

#: These test the migrations, so they run them rather than copying the session's migrated template.
pytestmark = pytest.mark.real_migrations


# SQLite cannot reflect expression indexes, so there the lower(email) one is left out of the
# comparison (it is checked on its own below); PostgreSQL compares it too.
@pytest.mark.filterwarnings("ignore:.*expression-based index")
def test_the_migrated_schema_matches_the_models(engine):
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []


def test_touches_are_indexed_by_enrollment_and_position_for_the_claim(engine):
    indexes = {index["name"]: index["column_names"] for index in inspect(engine).get_indexes("touches")}
    assert indexes["ix_touches_enrollment_position"] == ["enrollment_id", "position"]


def test_intake_finds_a_lead_by_phone_or_email_within_its_business_through_indexes_not_a_table_scan(engine):
    statements = []

    def keep(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001, ARG001 - SQLAlchemy's before_cursor_execute signature
        statements.append((statement, parameters))

    with Session(engine) as session:
        event.listen(engine, "before_cursor_execute", keep)
        try:
            find_existing(session, "+13125550142", "Dana@Example.com", business="main")
        finally:
            event.remove(engine, "before_cursor_execute", keep)
        [(statement, parameters)] = statements
        connection = session.connection()
        if engine.dialect.name == "sqlite":
            plan = " ".join(
                str(row[-1]) for row in connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
            )
            assert "USING INDEX ix_leads_business_email_lower" in plan
            assert (
                "USING INDEX ix_leads_business_phone" in plan or "USING COVERING INDEX ix_leads_business_phone" in plan
            )
            assert "SCAN leads" not in plan
        else:
            connection.exec_driver_sql("SET LOCAL enable_seqscan = off")  # an empty table: what *can* it use?
            plan = " ".join(row[0] for row in connection.exec_driver_sql("EXPLAIN " + statement, parameters))
            # On an empty table the planner may take either index and filter: what matters is no scan.
            assert "ix_leads_business_" in plan and "Seq Scan" not in plan


def test_leads_stored_with_a_fixed_offset_abbreviation_get_the_place_with_daylight_saving(engine):
    from datetime import datetime

    from sqlalchemy import insert, select

    from bot.store.db import upgrade

    downgrade_to(engine, "0003")
    stored = {
        "+12125550142": "EST",
        "+16025550142": "MST",
        "+13035550142": "MST",
        "+18085550142": "HST",
        "+13125550142": "America/Chicago",
        "+14155550142": "",
    }
    at = datetime(2026, 3, 2, 15, tzinfo=UTC)
    with engine.begin() as connection:
        connection.execute(
            insert(Lead),
            [
                dict(name="Lead", phone=phone, timezone=zone, link_token=f"token-{index}", created_at=at, updated_at=at)
                for index, (phone, zone) in enumerate(stored.items())
            ],
        )
    upgrade(engine)
    with engine.connect() as connection:
        now = dict(connection.execute(select(Lead.phone, Lead.timezone)).all())
    assert now == {
        "+12125550142": "America/New_York",
        "+16025550142": "America/Phoenix",
        "+13035550142": "America/Denver",
        "+18085550142": "Pacific/Honolulu",
        "+13125550142": "America/Chicago",
        "+14155550142": "",
    }


def test_leads_from_before_consent_records_have_none_on_record_and_a_log_row_saying_so(engine):
    from datetime import datetime

    from sqlalchemy import insert, select

    from bot.store.db import upgrade
    from bot.store.models import ConsentEntry

    downgrade_to(engine, "0004")
    at = datetime(2026, 11, 2, 15, tzinfo=UTC)
    leads = [("+13125550142", "web"), ("+13125550143", "sms"), ("+13125550144", "missed_call"), (None, "email")]
    with engine.begin() as connection:
        connection.execute(
            insert(Lead.__table__),
            [
                dict(
                    name="Lead",
                    phone=phone,
                    source=source,
                    timezone="America/Chicago",
                    link_token=f"token-{index}",
                    sms_consent=True,
                    email_consent=True,
                    stage="new",
                    first_message="",
                    custom_fields={},
                    created_at=at,
                    updated_at=at,
                )
                for index, (phone, source) in enumerate(leads)
            ],
        )
    upgrade(engine)
    with engine.connect() as connection:
        stored = {row.source: row for row in connection.execute(select(Lead.__table__))}
        log = sorted(
            (row.lead_id, row.granted, row.method) for row in connection.execute(select(ConsentEntry.__table__))
        )
    assert all(row.sms_consent is False or row.sms_consent == 0 for row in stored.values())
    assert {row.sms_consent_method for row in stored.values()} == {"none_before_0005"}
    assert stored["sms"].sms_lead_started_at is not None and stored["missed_call"].sms_lead_started_at is not None
    assert stored["web"].sms_lead_started_at is None
    ids = {source: row.id for source, row in stored.items()}
    assert log == sorted(
        [
            (ids["web"], False, "none_before_0005"),
            (ids["sms"], True, "lead_texted"),
            (ids["sms"], False, "none_before_0005"),
            (ids["missed_call"], True, "lead_called"),
            (ids["missed_call"], False, "none_before_0005"),
        ]
    )


def test_touches_rerouted_before_0009_say_so_in_their_own_column(engine):
    from datetime import datetime

    from sqlalchemy import insert, select

    from bot.store.db import upgrade
    from bot.store.models import Enrollment, Touch

    downgrade_to(engine, "0008")
    at = datetime(2026, 11, 2, 15, tzinfo=UTC)
    with engine.begin() as connection:
        lead_id = connection.execute(
            insert(Lead.__table__).returning(Lead.__table__.c.id),
            [
                dict(
                    name="Lead",
                    phone="+13125550142",
                    source="web",
                    timezone="America/Chicago",
                    link_token="token-1",
                    sms_consent=True,
                    email_consent=True,
                    stage="contacted",
                    first_message="",
                    custom_fields={},
                    created_at=at,
                    updated_at=at,
                )
            ],
        ).scalar()
        enrollment_id = connection.execute(
            insert(Enrollment.__table__).returning(Enrollment.__table__.c.id),
            [dict(lead_id=lead_id, sequence_name="default", state="active", state_reason="", enrolled_at=at)],
        ).scalar()
        old_ways = {
            "by_email": ("sent", "sent by email: texts are not delivered to this number", None),
            "by_call": ("sent", "handed to the team as a call: no SMS consent on record", None),
            "queued": ("scheduled", None, "rerouted: not delivered (error 30006)"),
            "plain": ("sent", None, None),
            "skipped": ("skipped", "no email address", None),
        }
        connection.execute(
            insert(Touch.__table__),
            [
                dict(
                    enrollment_id=enrollment_id,
                    lead_id=lead_id,
                    step_id=step,
                    channel="sms",
                    position=index,
                    planned_at=at,
                    due_at=at,
                    status=status,
                    attempts=1,
                    skip_reason=reason,
                    last_error=error,
                )
                for index, (step, (status, reason, error)) in enumerate(old_ways.items())
            ],
        )
    upgrade(engine)
    with engine.connect() as connection:
        rerouted = {row.step_id: row.rerouted for row in connection.execute(select(Touch.__table__))}
    assert rerouted == {"by_email": "email", "by_call": "call", "queued": "queued", "plain": None, "skipped": None}


def test_touches_waiting_for_a_channel_before_0013_say_which_in_their_own_column(engine):
    from datetime import datetime

    from sqlalchemy import insert, select

    from bot.store.db import upgrade
    from bot.store.models import Enrollment, Touch

    downgrade_to(engine, "0012")
    at = datetime(2026, 11, 2, 15, tzinfo=UTC)
    waiting = datetime(9999, 1, 1, tzinfo=UTC)
    with engine.begin() as connection:
        lead_id = connection.execute(
            insert(Lead.__table__).returning(Lead.__table__.c.id),
            [
                dict(
                    name="Lead",
                    phone="+13125550142",
                    source="web",
                    timezone="America/Chicago",
                    link_token="token-1",
                    unsubscribe_token="token-2",
                    sms_consent=True,
                    email_consent=True,
                    stage="contacted",
                    first_message="",
                    custom_fields={},
                    created_at=at,
                    updated_at=at,
                )
            ],
        ).scalar()
        enrollment_id = connection.execute(
            insert(Enrollment.__table__).returning(Enrollment.__table__.c.id),
            [dict(lead_id=lead_id, sequence_name="default", state="active", state_reason="", enrolled_at=at)],
        ).scalar()
        old_ways = {
            "for_sms": (
                "sms",
                "scheduled",
                "waiting: SMS is not configured (set TWILIO_ACCOUNT_SID, ...); it goes out "
                "once it is and followup is restarted",
            ),
            # An SMS step said by email waits for email: only its words said so.
            "for_email": (
                "sms",
                "scheduled",
                "waiting: email is not configured (set SENDGRID_API_KEY and "
                "SENDGRID_FROM_EMAIL); it goes out once it is and followup is restarted",
            ),
            "failed": ("sms", "failed", "Twilio refused it (code 30007)"),
            "plain": ("email", "scheduled", None),
        }
        connection.execute(
            insert(Touch.__table__),
            [
                dict(
                    enrollment_id=enrollment_id,
                    lead_id=lead_id,
                    step_id=step,
                    channel=channel,
                    position=index,
                    planned_at=at,
                    due_at=at,
                    status=status,
                    attempts=0,
                    last_error=error,
                    next_attempt_at=waiting if error and error.startswith("waiting") else None,
                )
                for index, (step, (channel, status, error)) in enumerate(old_ways.items())
            ],
        )
    upgrade(engine)
    with engine.connect() as connection:
        waiting_for = {row.step_id: row.waiting_for for row in connection.execute(select(Touch.__table__))}
    assert waiting_for == {"for_sms": "sms", "for_email": "email", "failed": None, "plain": None}


def downgrade_to(engine, revision: str) -> None:
    """Take a migrated database back to an earlier release's schema (to upgrade rows written by it)."""
    from alembic import command

    from bot.store.db import alembic_config

    with engine.begin() as connection:
        config = alembic_config(engine)
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


def test_leads_from_before_0010_keep_their_sent_unsubscribe_links_and_get_a_new_booking_token(engine):
    from datetime import datetime

    from sqlalchemy import column, insert, select, table

    from bot.store.db import upgrade

    downgrade_to(engine, "0009")
    at = datetime(2026, 11, 2, 15, tzinfo=UTC)
    old_leads = table(
        "leads",
        *(
            column(name)
            for name in (
                "name",
                "phone",
                "source",
                "timezone",
                "link_token",
                "sms_consent",
                "email_consent",
                "stage",
                "first_message",
                "custom_fields",
                "created_at",
                "updated_at",
            )
        ),
    )
    with engine.begin() as connection:
        connection.execute(
            insert(old_leads),
            [
                dict(
                    name="Lead",
                    phone=f"+1312555014{index}",
                    source="web",
                    timezone="America/Chicago",
                    link_token=f"sent-token-{index}",
                    sms_consent=False,
                    email_consent=True,
                    stage="new",
                    first_message="",
                    custom_fields="{}",
                    created_at=at,
                    updated_at=at,
                )
                for index in range(3)
            ],
        )
    upgrade(engine)
    with engine.connect() as connection:
        rows = connection.execute(select(Lead.link_token, Lead.unsubscribe_token).order_by(Lead.id)).all()
    assert [unsubscribe for _booking, unsubscribe in rows] == ["sent-token-0", "sent-token-1", "sent-token-2"]
    assert all(booking != unsubscribe and len(booking) >= 16 for booking, unsubscribe in rows)


def test_slack_notices_waiting_before_the_retry_reason_column_keep_their_retry_reason_in_its_own_column(engine):
    from datetime import datetime

    from sqlalchemy import insert, select

    from bot.store.db import upgrade
    from bot.store.models import OutboxEvent

    downgrade_to(engine, "0010")
    at = datetime(2026, 11, 2, 15, tzinfo=UTC)
    old_words = {
        "rate_limited": ("chat.postMessage: rate limited", None),
        "lost": ("answer lost, maybe posted: chat.postMessage: Received a response in a non-JSON format", None),
        "down": ("chat.postMessage: internal_error (HTTP 500)", None),
        "done_long_ago": ("chat.postMessage: rate limited", at),
    }
    with engine.begin() as connection:
        connection.execute(
            insert(OutboxEvent.__table__),
            [
                dict(
                    lead_id=None,
                    kind="decision",
                    payload={"text": name},
                    created_at=at,
                    attempts=1,
                    last_error=error,
                    delivered_at=delivered,
                )
                for name, (error, delivered) in old_words.items()
            ],
        )
    upgrade(engine)
    with engine.connect() as connection:
        reasons = {row.payload["text"]: row.retry_reason for row in connection.execute(select(OutboxEvent.__table__))}
    assert reasons == {"rate_limited": "rate_limited", "lost": "maybe_posted", "down": None, "done_long_ago": None}


def rows_of_the_0013_release(connection) -> dict[str, int]:
    """One row in every table, written as the release at 0013 wrote them (its tables, reflected); their ids."""
    from datetime import datetime

    from sqlalchemy import MetaData, insert

    tables = MetaData()
    tables.reflect(connection)
    at = datetime(2026, 11, 2, 15, tzinfo=UTC)

    def add(table_name: str, /, **values) -> int:
        table = tables.tables[table_name]
        return connection.execute(insert(table).returning(table.c.id), [values]).scalar()

    lead = add(
        "leads",
        name="Dana Lee",
        phone="+13125550142",
        email="dana@example.com",
        source="web",
        first_message="",
        custom_fields={},
        timezone="America/Chicago",
        stage="booked",
        sms_consent=True,
        email_consent=True,
        link_token="booking-token",
        unsubscribe_token="unsubscribe-token",
        created_at=at,
        updated_at=at,
    )
    appointment = add(
        "appointments",
        lead_id=lead,
        start_at=at,
        notes="",
        status="booked",
        booked_by="calendly",
        created_at=at,
        source="calendly",
        external_id="invitee-1",
    )
    # An enrollment pointing at the appointment: rebuilding appointments must keep the reference good.
    enrollment = add(
        "enrollments",
        lead_id=lead,
        sequence_name="reminders",
        state="active",
        state_reason="",
        enrolled_at=at,
        appointment_id=appointment,
    )
    touch = add(
        "touches",
        enrollment_id=enrollment,
        lead_id=lead,
        step_id="day0",
        position=0,
        channel="sms",
        planned_at=at,
        due_at=at,
        status="sent",
        attempts=1,
        provider_id="SM1",
    )
    return {
        "leads": lead,
        "appointments": appointment,
        "enrollments": enrollment,
        "touches": touch,
        "messages": add(
            "messages",
            lead_id=lead,
            direction="out",
            channel="sms",
            touch_id=touch,
            provider_id="SM1",
            body="Hi Dana",
            status="delivered",
            details={},
            created_at=at,
        ),
        "call_tasks": add(
            "call_tasks",
            lead_id=lead,
            touch_id=touch,
            reason="day-1 call",
            due_at=at,
            status="open",
            call_script="Hi Dana",
            voicemail_script="",
            notes="",
            created_at=at,
        ),
        "consent_log": add(
            "consent_log",
            lead_id=lead,
            channel="sms",
            granted=True,
            method="web_form",
            evidence="I agree",
            actor="lead",
            at=at,
        ),
        "audit_log": add(
            "audit_log", lead_id=lead, at=at, actor_type="system", actor_id="", action="booked", details={}
        ),
        "outbox": add("outbox", lead_id=lead, kind="lead_changed", payload={}, created_at=at, attempts=0),
        "processed_deliveries": add("processed_deliveries", provider="calendly", delivery_id="event-1", received_at=at),
        "booking_link_clicks": add("booking_link_clicks", lead_id=lead, clicked_at=at),
        "outbound_webhooks": add(
            "outbound_webhooks",
            lead_id=lead,
            receiver="https://crm.example.com/hook",
            event="lead.booked",
            payload={},
            created_at=at,
            attempts=0,
        ),
    }


#: The tables whose rows name their business; the others belong to it through their lead.
WITH_A_BUSINESS = ("leads", "appointments", "outbox", "processed_deliveries", "outbound_webhooks")


@pytest.mark.filterwarnings("ignore:.*expression-based index")
@pytest.mark.parametrize("slug", ["main", "lakeside"])
def test_rows_of_the_release_before_businesses_are_kept_and_belong_to_the_configured_business(engine, slug):
    from sqlalchemy import MetaData, select

    from bot.store.db import upgrade

    downgrade_to(engine, "0013")
    with engine.begin() as connection:
        ids = rows_of_the_0013_release(connection)
        before = {
            name: dict(connection.execute(select(table).where(table.c.id == ids[name])).mappings().one())
            for name, table in _reflected(connection).items()
        }
    upgrade(engine, business=slug)
    with engine.connect() as connection:
        tables = MetaData()
        tables.reflect(connection)
        for name, row in before.items():
            table = tables.tables[name]
            after = dict(connection.execute(select(table).where(table.c.id == ids[name])).mappings().one())
            if name in WITH_A_BUSINESS:
                assert after.pop("business") == slug, name
            else:
                assert "business" not in after, name
            assert after == row, name
        if engine.dialect.name == "sqlite":
            assert connection.exec_driver_sql("PRAGMA foreign_key_check").all() == []
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1  # back on for the app


def _reflected(connection):
    from sqlalchemy import MetaData

    tables = MetaData()
    tables.reflect(connection)
    return {name: table for name, table in tables.tables.items() if name != "alembic_version"}


def test_after_the_upgrade_the_business_column_is_required(engine):
    from sqlalchemy import inspect as reflect

    for name in WITH_A_BUSINESS:
        [column] = [c for c in reflect(engine).get_columns(name) if c["name"] == "business"]
        assert column["nullable"] is False, name


def test_a_sqlite_migration_that_would_leave_a_broken_reference_changes_nothing(tmp_path):
    from sqlalchemy import inspect as reflect

    from bot.store.db import MigrationBrokeReferences, make_engine, upgrade

    engine = make_engine(f"sqlite:///{tmp_path / 'followup.db'}")
    upgrade(engine)
    downgrade_to(engine, "0013")
    with engine.connect() as connection:
        # A touch of an enrollment that is not there: only possible with the checks off, as here.
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        connection.exec_driver_sql(
            "INSERT INTO touches (enrollment_id, lead_id, step_id, position, channel, planned_at, due_at, status, "
            "attempts) VALUES (999, 999, 'day0', 0, 'sms', '2026-11-02 15:00:00', '2026-11-02 15:00:00', 'sent', 1)"
        )
        connection.commit()
    with pytest.raises(MigrationBrokeReferences, match="touches"):
        upgrade(engine, business="main")
    with engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == "0013"
        assert "business" not in {column["name"] for column in reflect(connection).get_columns("leads")}
        assert {index["name"] for index in reflect(connection).get_indexes("leads")} >= {"ix_leads_phone"}
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    engine.dispose()
