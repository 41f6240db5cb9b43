"""The one recorder: a send is written down the same way whichever path settled it.

A group's sends are recorded in a few bulk statements; a send settled on its own (a lead whose
group had a failure, a text found at the provider after a crash, a list of one inside another
unit of work) goes through the same recorder. Whatever the path, the same answer leaves the
same rows: the touch, its message, the lead's stage, the sequence, the outbox and the audit trail.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import event, select

from bot.app import build_services
from bot.channels.twilio_sms import SentSms
from bot.core.ports import OutgoingSms, PermanentSendError, SendReceipt
from bot.settings import Settings
from bot.store import audit
from bot.store.audit import SYSTEM
from bot.store.models import AuditEntry, Enrollment, Lead, Message, OutboxEvent, Touch
from bot.usecases import enrollment
from bot.usecases.dispatch import SEND_LEASE_SECONDS, Dispatcher, DispatchReport
from bot.usecases.leads import LeadInput, add_lead
from bot.usecases.send_outcomes import SendRecorder
from tests.fakes import FakeSmsSender, consented

#: Two sequences that each text at once: a lead in both has two touches due in one group.
ONE_TEXT = (
    "name: one_text\ndescription: one text\nsteps:\n"
    "  - {id: hello, after: 0s, channel: sms, template: default/instant_sms}\n"
)
OTHER_TEXT = (
    "name: other_text\ndescription: another text\nsteps:\n"
    "  - {id: again, after: 0s, channel: sms, template: default/instant_sms}\n"
)


@dataclass
class ListingSms(FakeSmsSender):
    """A texting provider that can also list what it holds for a number, as Twilio can."""

    held: list[tuple[str, SentSms]] = field(default_factory=list)

    def send_sms(self, message: OutgoingSms) -> SendReceipt:
        receipt = super().send_sms(message)
        self.held.append((message.to, SentSms(sid=receipt.provider_id, body=message.body, status="queued")))
        return receipt

    def messages_to(self, to: str) -> list[SentSms]:
        return [sms for number, sms in self.held if number == to]


@pytest.fixture
def sms() -> ListingSms:
    return ListingSms()


@pytest.fixture
def services(engine, clock, sms, email, business_file: Path, tmp_path: Path):
    sequences = tmp_path / "sequences"
    sequences.mkdir()
    (sequences / "one_text.yml").write_text(ONE_TEXT)
    (sequences / "other_text.yml").write_text(OTHER_TEXT)
    business_file.write_text(business_file.read_text().replace("sequence: default", "sequence: one_text"))
    settings = Settings(
        DATABASE_URL=str(engine.url),
        FOLLOWUP_BUSINESS=business_file,
        FOLLOWUP_SEQUENCES_DIR=sequences,
        PUBLIC_BASE_URL="https://followup.example.com",
    )
    return build_services(settings, engine=engine, clock=clock, sms=sms, email=email, migrate=False)


def new_lead(services, index: int, *, also_other_text: bool = False) -> int:
    with services.session_factory.begin() as session:
        lead_id = add_lead(
            session,
            LeadInput(name=f"Lead {index}", phone=f"+1312555{1000 + index:04d}", sms_consent=consented()),
            business=services.business,
            sequence=services.playbooks.get(),
            now=services.clock.now(),
            actor=SYSTEM,
        ).lead_id
        if also_other_text:
            enrollment.enroll(
                session,
                session.get(Lead, lead_id),
                services.playbooks.get("other_text"),
                business=services.business,
                now=services.clock.now(),
                actor=SYSTEM,
            )
    return lead_id


def first_touch(services, lead_id: int) -> int:
    with services.session_factory() as session:
        return session.scalars(
            select(Touch.id).join(Enrollment).where(Touch.lead_id == lead_id, Enrollment.sequence_name == "one_text")
        ).one()


def recorded(services, touch_id: int) -> dict:
    """What is stored about one touch's send, with its ids and the provider's id put aside."""
    with services.session_factory() as session:
        touch = session.get(Touch, touch_id)
        lead = session.get(Lead, touch.lead_id)
        messages = session.scalars(select(Message).where(Message.touch_id == touch_id)).all()
        notices = session.scalars(
            select(OutboxEvent).where(OutboxEvent.lead_id == lead.id).order_by(OutboxEvent.id)
        ).all()
        entries = session.scalars(select(AuditEntry).where(AuditEntry.lead_id == lead.id).order_by(AuditEntry.id)).all()
        return {
            "touch": (
                touch.status,
                touch.attempts,
                touch.sent_at,
                touch.last_error,
                touch.body_text,
                touch.provider_id == messages[0].provider_id is not None,
            ),
            "messages": [
                (m.direction, m.channel, m.subject, m.body, m.status, m.created_at, m.details, m.author, m.error_code)
                for m in messages
            ],
            "lead": (lead.stage, lead.updated_at),
            "enrollment": (touch.enrollment.state, touch.enrollment.state_reason, touch.enrollment.ended_at),
            "notices": sorted(
                (n.kind, n.created_at)
                for n in notices
                if n.payload.get("touch_id") == touch_id or n.kind == "lead_changed"
            ),
            "touch_sent": [n.payload for n in notices if n.kind == "touch_sent" and n.payload["touch_id"] == touch_id],
            "audit": sorted(
                (
                    e.action,
                    e.at,
                    str({**e.details, "enrollment": "its own"} if "enrollment" in e.details else e.details),
                )
                for e in entries
                if e.action in ("stage_changed", "sequence_completed")
                and e.details.get("enrollment", touch.enrollment_id) == touch.enrollment_id
            ),
        }


def as_for(snapshot: dict, touch_id: int) -> dict:
    """The snapshot with its touch id named generically, to compare two touches' records."""
    return {**snapshot, "touch_sent": [{**payload, "touch_id": "the touch"} for payload in snapshot["touch_sent"]]}


def test_a_send_recorded_alone_inside_another_unit_of_work_leaves_what_a_group_s_bulk_recording_leaves(services, clock):
    in_group, alone = new_lead(services, 1), new_lead(services, 2)
    beside = new_lead(services, 3)
    claimed = {item.lead_id: item for item in Dispatcher(services)._claim_batch(DispatchReport())}  # noqa: SLF001 - claimed as a process would, answered by hand below
    recorder = SendRecorder(services)
    with services.session_factory.begin() as session:
        recorder.record(
            session,
            [(claimed[lead_id].send, SendReceipt(f"SM-{lead_id}")) for lead_id in (in_group, beside)],
            DispatchReport(),
        )
    with services.session_factory.begin() as session:
        # As recovery does: the touch and lead are held by the unit of work, with a change of its own pending.
        lead = session.get(Lead, alone)
        session.get(Touch, claimed[alone].touch_id)
        audit.record(
            session,
            lead_id=alone,
            actor=SYSTEM,
            action="touch_recovered",
            at=clock.now(),
            touch=claimed[alone].touch_id,
            found="sent",
        )
        recorder.record(session, [(claimed[alone].send, SendReceipt(f"SM-{alone}"))], DispatchReport())
        assert lead.stage == "contacted"  # what the unit of work holds is read afresh after the recording
    group_record = recorded(services, claimed[in_group].touch_id)
    alone_record = recorded(services, claimed[alone].touch_id)
    assert group_record["touch"][0] == "sent" and group_record["lead"][0] == "contacted"
    assert group_record["enrollment"][1] == "every step ran"
    assert as_for(alone_record, claimed[alone].touch_id) == as_for(group_record, claimed[in_group].touch_id)


def test_a_lead_whose_group_had_a_failure_records_its_sent_text_as_a_plain_group_does(services, sms):
    plain = new_lead(services, 1, also_other_text=True)
    troubled = new_lead(services, 2, also_other_text=True)
    troubled_other = {touch_id for touch_id in _touches_of(services, troubled)} - {first_touch(services, troubled)}

    def the_other_text_of_the_troubled_lead_fails(message: OutgoingSms) -> None:
        if int(message.reference.removeprefix("touch-")) in troubled_other:
            raise PermanentSendError("Twilio refused it", code="30007")

    sms.during_send = the_other_text_of_the_troubled_lead_fails
    report = Dispatcher(services).run_due()
    assert (report.sent, report.failed) == (3, 1)
    plain_record = recorded(services, first_touch(services, plain))
    troubled_record = recorded(services, first_touch(services, troubled))
    assert plain_record["touch"][0] == troubled_record["touch"][0] == "sent"
    # The plain lead's second text adds its own lead_changed; the troubled lead's failed text adds none.
    plain_record["notices"].remove(("lead_changed", plain_record["notices"][-1][1]))
    assert as_for(troubled_record, 0) == as_for(plain_record, 0)


def test_a_text_found_at_the_provider_after_a_crash_is_recorded_as_one_recorded_on_the_spot(services, sms, clock):
    on_the_spot, after_crash = new_lead(services, 1), new_lead(services, 2)
    dispatcher = Dispatcher(services)
    claimed = {item.lead_id: item for item in dispatcher._claim_batch(DispatchReport())}  # noqa: SLF001 - a process about to die
    sms.send_sms(claimed[after_crash].outgoing)  # the provider took it; the process died before recording it
    dispatcher._deliver(claimed[on_the_spot], DispatchReport())  # noqa: SLF001 - the live process records its own
    clock.advance(timedelta(seconds=SEND_LEASE_SECONDS + 1))
    Dispatcher(services).run_due()  # recovery asks the provider, finds the text, records it
    spot_record = recorded(services, claimed[on_the_spot].touch_id)
    crash_record = recorded(services, claimed[after_crash].touch_id)
    assert len(sms.sent) == 2 and crash_record["touch"][0] == "sent"
    # Recorded later, so at a later time; otherwise the same.
    later = clock.now()
    spot_time = spot_record["touch"][2]
    assert crash_record["touch"][2] == later and spot_time < later
    normalised = {key: _retimed(value, later, spot_time) for key, value in crash_record.items()}
    assert as_for(normalised, 0) == as_for(spot_record, 0)


def _touches_of(services, lead_id: int) -> list[int]:
    with services.session_factory() as session:
        return list(session.scalars(select(Touch.id).where(Touch.lead_id == lead_id)))


def _retimed(value, later, earlier):
    """`value` with every occurrence of the time `later` read as `earlier`."""
    if value == later:
        return earlier
    if isinstance(value, (list, tuple)):
        return type(value)(_retimed(item, later, earlier) for item in value)
    if isinstance(value, str):
        return value.replace(later.isoformat(), earlier.isoformat())
    return value


@contextmanager
def statements_sent(services) -> Iterator[list[str]]:
    """The SQL of every statement the services' engine sends meanwhile (an executemany counts once)."""
    engine = services.session_factory.kw["bind"]
    sent: list[str] = []

    def keep(_conn, _cursor, statement, _parameters, _context, _executemany):  # noqa: ANN001 - SQLAlchemy's before_cursor_execute signature
        sent.append(" ".join(statement.split()))

    event.listen(engine, "before_cursor_execute", keep)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", keep)


def test_a_batch_of_texts_is_claimed_checked_and_recorded_in_as_many_statements_for_twenty_leads_as_for_two(
    services, sms
):
    # Two sender threads: the batch goes in two groups either way, each checked and recorded in bulk.
    counts = []
    for first, leads in ((0, 2), (100, 20)):
        for index in range(first, first + leads):
            new_lead(services, index)
        with statements_sent(services) as sent:
            report = Dispatcher(services, senders=2).run_due()
        assert report.sent == leads
        counts.append(len(sent))
    assert counts[0] == counts[1]
    assert len(sms.sent) == 22


def test_new_leads_texted_in_a_group_become_contacted_in_one_statement_that_reads_and_moves_the_stage(services):
    lead_ids = [new_lead(services, index) for index in range(5)]
    with statements_sent(services) as sent:
        Dispatcher(services).run_due()
    on_leads = [
        statement for statement in sent if statement.startswith(("UPDATE leads", "SELECT leads.id, leads.stage"))
    ]
    assert len(on_leads) == 1 and on_leads[0].startswith("UPDATE leads SET stage")
    with services.session_factory() as session:
        assert {session.get(Lead, lead_id).stage for lead_id in lead_ids} == {"contacted"}
        moved = session.scalars(
            select(AuditEntry.lead_id).where(AuditEntry.action == "stage_changed").order_by(AuditEntry.id)
        ).all()
    assert moved == lead_ids  # one entry a lead, in lead order, as before


def test_a_lead_already_past_new_is_not_moved_and_gets_no_stage_entry_when_its_text_goes(services):
    lead_id = new_lead(services, 1)
    with services.session_factory.begin() as session:
        session.get(Lead, lead_id).stage = "booked"
    Dispatcher(services).run_due()
    with services.session_factory() as session:
        assert session.get(Lead, lead_id).stage == "booked"
        assert not session.scalars(select(AuditEntry).where(AuditEntry.action == "stage_changed")).all()
        assert session.scalars(select(Touch.status).where(Touch.lead_id == lead_id)).all() == ["sent"]


def test_sequences_whose_every_step_ran_are_completed_in_the_statement_that_finds_them(services):
    lead_ids = [new_lead(services, index) for index in range(3)]
    with statements_sent(services) as sent:
        Dispatcher(services).run_due()
    on_enrollments = [
        statement for statement in sent if statement.startswith(("UPDATE enrollments", "SELECT enrollments.id"))
    ]
    assert len(on_enrollments) == 1 and on_enrollments[0].startswith("UPDATE enrollments SET state")
    with services.session_factory() as session:
        states = session.execute(select(Enrollment.lead_id, Enrollment.state, Enrollment.state_reason)).all()
        completed = session.scalars(
            select(AuditEntry.lead_id).where(AuditEntry.action == "sequence_completed").order_by(AuditEntry.id)
        ).all()
    assert sorted(states) == [(lead_id, "completed", "every step ran") for lead_id in lead_ids]
    assert completed == lead_ids


def test_a_sequence_with_a_step_still_to_go_is_not_completed_when_one_of_its_texts_goes(services):
    lead_id = new_lead(services, 1, also_other_text=True)
    with services.session_factory.begin() as session:  # the other sequence's text waits a day
        for touch in session.scalars(select(Touch).join(Enrollment).where(Enrollment.sequence_name == "other_text")):
            touch.due_at = services.clock.now() + timedelta(days=1)
    Dispatcher(services).run_due()
    with services.session_factory() as session:
        states = dict(session.execute(select(Enrollment.sequence_name, Enrollment.state)).all())
    assert states == {"one_text": "completed", "other_text": "active"}
    assert lead_id


def test_on_postgresql_a_group_s_sends_are_recorded_in_statements_executed_once_not_once_a_row(services, engine):
    for index in range(6):
        new_lead(services, index)
    executions: list[tuple[str, bool]] = []

    def keep(_conn, _cursor, statement, _parameters, _context, executemany):  # noqa: ANN001 - SQLAlchemy's before_cursor_execute signature
        executions.append((" ".join(statement.split()), executemany))

    event.listen(engine, "before_cursor_execute", keep)
    try:
        assert Dispatcher(services, senders=2).run_due().sent == 6
    finally:
        event.remove(engine, "before_cursor_execute", keep)
    recording = [
        many
        for statement, many in executions
        if statement.startswith(
            ("UPDATE touches SET status", "INSERT INTO messages", "INSERT INTO outbox", "INSERT INTO audit_log")
        )
        and "WHERE touches.id IN (SELECT" not in statement  # the claim, not the recording
    ]
    assert len(recording) == 2 * 4  # two groups, four bulk writes each
    # SQLite's executemany is a loop in the process; PostgreSQL's would be a statement a row to the server.
    assert set(recording) == {engine.dialect.name == "sqlite"}
