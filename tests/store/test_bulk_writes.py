"""Many rows written at once: one statement whatever their number, every value and the order kept.

On PostgreSQL a group's audit entries, notices and messages go as one array a column, unnested by
the statement (bot.store.bulk), instead of psycopg's statement a row; on SQLite as one executemany.
Either way what is read back is what was given, in the order given.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from sqlalchemy import event, select
from sqlalchemy.orm import Session

from bot.store import audit, outbox
from bot.store.audit import SYSTEM, Actor
from bot.store.models import AuditEntry, Lead, OutboxEvent
from bot.store.outbox import Notice

AT = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


@contextmanager
def statements_sent(engine) -> Iterator[list[tuple[str, bool]]]:
    """Each statement sent meanwhile, and whether it went as an executemany (a row at a time to PostgreSQL)."""
    sent: list[tuple[str, bool]] = []

    def keep(_conn, _cursor, statement, _parameters, _context, executemany):  # noqa: ANN001 - SQLAlchemy's before_cursor_execute signature
        sent.append((statement, executemany))

    event.listen(engine, "before_cursor_execute", keep)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", keep)


def a_lead(session: Session, index: int, business: str = "main") -> int:
    lead = Lead(
        business=business,
        name=f"Lead {index}",
        phone=f"+1312555{2000 + index:04d}",
        source="test",
        first_message="",
        custom_fields={},
        timezone="America/Chicago",
        stage="new",
        link_token=f"bulk{index:012d}",
        unsubscribe_token=f"bulkunsub{index:08d}",
        created_at=AT,
        updated_at=AT,
    )
    session.add(lead)
    session.flush()
    return lead.id


def test_a_hundred_audit_entries_are_written_in_one_statement_executed_once_on_postgresql_in_order(engine):
    entries = [
        audit.Entry(
            lead_id=None,
            actor=SYSTEM if index % 2 else Actor.slack_user(f"U{index}"),
            action=f"action_{index % 7}",
            at=AT,
            details={"index": index, "nested": {"list": [index, "é"]}, "none": None},
        )
        for index in range(100)
    ]
    with Session(engine) as session, session.begin(), statements_sent(engine) as sent:
        audit.record_many(session, entries)
    assert [many for statement, many in sent if "audit_log" in statement] == [engine.dialect.name == "sqlite"]
    with Session(engine) as session:
        stored = session.scalars(select(AuditEntry).order_by(AuditEntry.id)).all()
        assert [(e.actor_type, e.actor_id, e.action, e.at, e.details) for e in stored] == [
            (e.actor.type, e.actor.id, e.action, e.at, e.details) for e in entries
        ]


def test_audit_entries_of_different_times_keep_each_its_own_time(engine):
    entries = [
        audit.Entry(lead_id=None, actor=SYSTEM, action="x", at=AT + timedelta(seconds=index), details={})
        for index in range(3)
    ]
    with Session(engine) as session, session.begin():
        audit.record_many(session, entries)
    with Session(engine) as session:
        assert session.scalars(select(AuditEntry.at).order_by(AuditEntry.id)).all() == [e.at for e in entries]


def test_many_notices_take_their_lead_s_business_or_the_one_they_name_in_one_statement_executed_once(engine):
    with Session(engine) as session, session.begin():
        first, second = a_lead(session, 1, "north"), a_lead(session, 2, "south")
    pending = [
        outbox.Pending(Notice.TOUCH_SENT, lead_id=first, at=AT, payload={"touch_id": 7}),
        outbox.Pending(Notice.LEAD_CHANGED, lead_id=second, at=AT, payload={}),
        outbox.Pending(Notice.LEAD_CHANGED, lead_id=first, at=AT, payload={}, business="east"),
        outbox.Pending(Notice.TOUCH_SENT, lead_id=second, at=AT, payload={"touch_id": 8}),
    ]
    with Session(engine) as session, session.begin(), statements_sent(engine) as sent:
        outbox.publish_many(session, pending)
    assert [many for statement, many in sent if "INSERT INTO outbox" in statement] == [engine.dialect.name == "sqlite"]
    with Session(engine) as session:
        stored = session.scalars(select(OutboxEvent).order_by(OutboxEvent.id)).all()
        assert [(n.business, n.lead_id, n.kind, n.payload, n.created_at, n.attempts) for n in stored] == [
            ("north", first, "touch_sent", {"touch_id": 7}, AT, 0),
            ("south", second, "lead_changed", {}, AT, 0),
            ("east", first, "lead_changed", {}, AT, 0),
            ("south", second, "touch_sent", {"touch_id": 8}, AT, 0),
        ]
