"""A lead's life in the core: intake, the sequence in order, windows, restarts, and the stop rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from bot.core.ports import FailureKind, PermanentSendError, TransientSendError
from bot.core.rules import CallOutcome, LeadSignal
from bot.store.audit import SYSTEM, Actor
from bot.store.models import (
    AuditEntry,
    CallTask,
    ConsentEntry,
    Enrollment,
    Lead,
    Message,
    OutboxEvent,
    Touch,
)
from bot.usecases.dispatch import Dispatcher
from bot.usecases.lead_actions import (
    LeadActionRefused,
    book,
    claim_call_task,
    escalate_unfinished_bookings,
    log_call_outcome,
    pause_lead,
    receive_message,
    record_booking_link_click,
    resume_lead,
)
from bot.usecases.leads import InvalidLead, LeadInput, add_lead, take_in_lead
from tests.fakes import WEB_FORM_CONSENT

CHICAGO_PHONE = "+13125550142"
ALICE = Actor.slack_user("U0ALICE")
BOB = Actor.slack_user("U0BOB")


def new_lead(services, **fields) -> int:
    data = LeadInput.parse(
        {
            "name": "Dana Lee",
            "phone": CHICAGO_PHONE,
            "email": "dana@example.com",
            "message": "Lower back pain, any openings this week?",
            **WEB_FORM_CONSENT,
            **fields,
        }
    )
    with services.session_factory.begin() as session:
        result = add_lead(
            session,
            data,
            business=services.business,
            sequence=services.playbooks.get(),
            now=services.clock.now(),
            actor=SYSTEM,
        )
    return result.lead_id


def touches(services, lead_id: int) -> list[Touch]:
    with services.session_factory() as session:
        return list(
            session.scalars(select(Touch).where(Touch.lead_id == lead_id).order_by(Touch.enrollment_id, Touch.position))
        )


def run_days(services, clock, days: float, step: timedelta = timedelta(minutes=30)) -> None:
    """Let simulated time pass with the dispatcher ticking, as the scheduler would."""
    dispatcher = Dispatcher(services)
    end = clock.now() + timedelta(days=days)
    while clock.now() < end:
        dispatcher.run_due()
        clock.advance(step)
    dispatcher.run_due()


def lead_message(services, lead_id: int, signal: LeadSignal, body: str, requested_time=None):
    with services.session_factory.begin() as session:
        lead = session.get(Lead, lead_id)
        return receive_message(
            session,
            services,
            lead,
            channel="sms",
            body=body,
            signal=signal,
            now=services.clock.now(),
            requested_time=requested_time,
        )


def with_lead(services, lead_id: int, action, *args, **kwargs):
    with services.session_factory.begin() as session:
        lead = session.get(Lead, lead_id)
        return action(session, services, lead, *args, now=services.clock.now(), **kwargs)


# --- intake -------------------------------------------------------------------------------------


def test_new_lead_is_stored_and_enrolled_with_every_touch_laid_out(services):
    lead_id = new_lead(services)
    laid_out = touches(services, lead_id)
    assert [t.step_id for t in laid_out] == [s.id for s in services.playbooks.get().steps]
    assert all(t.status == "scheduled" for t in laid_out)
    assert laid_out[0].due_at == services.clock.now()  # 09:00 in Chicago: the instant text goes now
    assert [t.due_at for t in laid_out] == sorted(t.due_at for t in laid_out)


def test_a_new_lead_is_stored_with_its_consent_audit_and_card_notice_together(services):
    data = LeadInput.parse(
        {"name": "Dana Lee", "phone": CHICAGO_PHONE, "source": "web", "insurance": "Aetna", **WEB_FORM_CONSENT}
    )
    result = take_in_lead(services, data, actor=Actor.lead(0))
    assert (result.created, result.enrolled) == (True, True)
    now = services.clock.now()
    with services.session_factory() as session:
        lead = session.get(Lead, result.lead_id)
        assert lead is not None
        assert (lead.name, lead.phone, lead.stage, lead.timezone, lead.custom_fields) == (
            "Dana Lee",
            CHICAGO_PHONE,
            "new",
            "America/Chicago",
            {"insurance": "Aetna"},
        )
        assert (lead.sms_consent, lead.sms_consent_method, lead.sms_consent_at) == (True, "web_form", now)
        assert lead.link_token != lead.unsubscribe_token and len(lead.link_token) >= 16
        consent = session.scalars(select(ConsentEntry).where(ConsentEntry.lead_id == lead.id)).all()
        assert [(c.granted, c.method, c.evidence, c.actor, c.at) for c in consent] == [
            (True, "web_form", WEB_FORM_CONSENT["consent_text"], "the lead", now)
        ]
        logged = session.scalars(select(AuditEntry).where(AuditEntry.lead_id == lead.id).order_by(AuditEntry.id))
        assert [(a.action, a.details, a.actor_type) for a in logged] == [
            ("lead_created", {"source": "web"}, "lead"),
            ("enrolled", {"sequence": services.playbooks.get().name}, "lead"),
        ]
        notices = session.scalars(select(OutboxEvent).where(OutboxEvent.lead_id == lead.id)).all()
        assert [(n.kind, n.payload, n.delivered_at) for n in notices] == [("lead_created", {}, None)]
        enrollments = session.scalars(select(Enrollment).where(Enrollment.lead_id == lead.id)).all()
        assert [(e.sequence_name, e.state, e.enrolled_at) for e in enrollments] == [
            (services.playbooks.get().name, "active", now)
        ]
    assert [t.enrollment_id for t in touches(services, lead.id)] == [enrollments[0].id] * len(
        services.playbooks.get().steps
    )


def test_a_new_lead_whose_transaction_fails_leaves_nothing_behind(services):
    def refuse(session, lead, result):
        raise RuntimeError("the caller's own note could not be written")

    data = LeadInput.parse({"name": "Dana Lee", "phone": CHICAGO_PHONE, **WEB_FORM_CONSENT})
    with pytest.raises(RuntimeError):
        take_in_lead(services, data, actor=Actor.lead(0), also=refuse)
    with services.session_factory() as session:
        for table in (Lead, ConsentEntry, AuditEntry, OutboxEvent, Enrollment, Touch):
            assert session.scalars(select(table)).all() == [], table.__name__


def test_the_same_phone_or_email_again_returns_the_existing_lead_without_enrolling_twice(services):
    first = new_lead(services)
    data = LeadInput.parse({"phone": "(312) 555-0142", "name": "Dana"})
    with services.session_factory.begin() as session:
        again = add_lead(
            session,
            data,
            business=services.business,
            sequence=services.playbooks.get(),
            now=services.clock.now(),
            actor=SYSTEM,
        )
    assert (again.lead_id, again.created, again.enrolled) == (first, False, False)
    with services.session_factory() as session:
        assert len(session.scalars(select(Enrollment)).all()) == 1


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"name": "No Contact"}, "phone or email: give at least one way"),
        ({"phone": "12"}, "phone:"),
        ({"phone": "not a phone"}, "phone:"),
        ({"email": "dana@"}, "email:"),
        ({"email": "dana@example.com", "timezone": "Mars/Olympus"}, "timezone:"),
        ({"email": "dana@example.com", "timezone": "EST5EDT"}, "timezone: 'EST5EDT' is a legacy alias"),
        ({"phone": ["+13125550142"]}, "phone: must be text"),
    ],
)
def test_invalid_lead_fields_are_refused_with_a_reason_naming_the_field(fields, reason):
    with pytest.raises(InvalidLead) as refused:
        LeadInput.parse(fields)
    assert any(r.startswith(reason) for r in refused.value.reasons), refused.value.reasons


@pytest.mark.parametrize(
    ("written", "zone"),
    [("EST", "America/New_York"), ("pst", "America/Los_Angeles"), ("America/Denver", "America/Denver"), ("", None)],
)
def test_a_lead_time_zone_is_stored_as_the_iana_place_it_names(written, zone):
    assert LeadInput.parse({"phone": CHICAGO_PHONE, "timezone": written}).timezone == zone


def test_fields_beyond_the_known_ones_are_kept_as_custom_fields():
    data = LeadInput.parse({"phone": CHICAGO_PHONE, "insurance": "Delta Dental", "referrer": "Google"})
    assert data.custom_fields == {"insurance": "Delta Dental", "referrer": "Google"}


# --- dispatching --------------------------------------------------------------------------------


def test_instant_sms_goes_out_once_with_the_opt_out_notice(services, sms):
    lead_id = new_lead(services)
    Dispatcher(services).run_due()
    Dispatcher(services).run_due()
    assert len(sms.to(CHICAGO_PHONE)) == 1
    assert "Reply STOP to opt out" in sms.to(CHICAGO_PHONE)[0]
    first = touches(services, lead_id)[0]
    assert first.status == "sent" and first.provider_id and first.body_text == sms.sent[0].body
    with services.session_factory() as session:
        assert session.get(Lead, lead_id).stage == "contacted"
        assert session.scalars(select(Message).where(Message.direction == "out")).one().touch_id == first.id


def test_only_the_first_sms_to_a_number_carries_the_opt_out_notice(services, clock, sms):
    new_lead(services)
    run_days(services, clock, 2)
    texts = sms.to(CHICAGO_PHONE)
    assert len(texts) >= 2
    assert "Reply STOP" in texts[0] and all("Reply STOP" not in t for t in texts[1:])


def test_the_whole_sequence_runs_in_order_and_ends_in_nurture(services, clock, sms, email):
    lead_id = new_lead(services)
    run_days(services, clock, 8)
    sales = [t for t in touches(services, lead_id) if t.enrollment_id == touches(services, lead_id)[0].enrollment_id]
    outcome = [(t.step_id, t.status, t.skip_reason) for t in sales]
    # Day 7 goes by email to a lead with an address; its SMS alternative is skipped with the reason.
    assert all(t.status == "sent" or (t.status == "skipped" and t.skip_reason) for t in sales), outcome
    assert [t.channel for t in sales if t.status == "sent"] == [
        "sms",
        "email",
        "sms",
        "call_task",
        "email",
        "sms",
        "email",
        "stage",
    ], outcome
    sent = [t for t in sales if t.status == "sent"]
    assert [t.position for t in sorted(sent, key=lambda t: (t.sent_at, t.position))] == [t.position for t in sent]
    with services.session_factory() as session:
        lead = session.get(Lead, lead_id)
        assert lead.stage == "nurture"
        states = {e.sequence_name: e.state for e in session.scalars(select(Enrollment))}
        assert states["default"] == "stopped" or states["default"] == "completed"
        assert states["nurture"] == "active"
        assert session.scalars(select(CallTask)).one().reason == "First call: scheduled follow-up call"
    assert email.sent and all("https://followup.example.com/u/" in m.text for m in email.sent)
    assert all(m.headers["List-Unsubscribe"].startswith("<https://followup.example.com/u/") for m in email.sent)


def test_a_lead_arriving_at_3am_is_texted_at_8am_their_time(services, clock, sms):
    clock.set(datetime(2026, 11, 25, 9, 0, tzinfo=UTC))  # 03:00 in Chicago
    lead_id = new_lead(services)
    Dispatcher(services).run_due()
    assert sms.sent == []
    assert touches(services, lead_id)[0].due_at == datetime(2026, 11, 25, 14, 0, tzinfo=UTC)
    clock.set(datetime(2026, 11, 25, 14, 0, tzinfo=UTC))
    Dispatcher(services).run_due()
    assert len(sms.sent) == 1


def test_nothing_automated_goes_out_on_a_closed_day(services, clock):
    clock.set(datetime(2026, 11, 26, 15, 0, tzinfo=UTC))  # Thanksgiving, a US holiday
    lead_id = new_lead(services)
    first = touches(services, lead_id)[0]
    assert first.due_at == datetime(2026, 11, 27, 14, 0, tzinfo=UTC)


def test_a_restart_repeats_nothing(services, clock, sms, business_file, engine, email):
    from bot.app import build_services
    from bot.settings import Settings

    new_lead(services)
    Dispatcher(services).run_due()
    restarted = build_services(
        Settings(FOLLOWUP_BUSINESS=business_file), engine=engine, clock=clock, sms=sms, email=email
    )
    Dispatcher(restarted).run_due()
    assert len(sms.sent) == 1


def test_a_touch_missed_while_down_goes_out_within_its_grace_and_is_skipped_after(services, clock, sms):
    clock.set(datetime(2026, 12, 1, 15, 0, tzinfo=UTC))  # a Tuesday, far from holidays
    lead_id = new_lead(services)
    clock.advance(timedelta(hours=1))
    Dispatcher(services).run_due()
    assert len(sms.sent) == 1  # an hour late still makes sense for the instant text
    clock.advance(timedelta(days=1, hours=5))  # the day-1 text fell due ~5h ago
    Dispatcher(services).run_due()
    day1 = next(t for t in touches(services, lead_id) if t.step_id == touches(services, lead_id)[2].step_id)
    assert day1.status == "skipped" and "missed" in day1.skip_reason


def test_a_transient_failure_retries_with_backoff_then_fails_visibly(services, clock, sms):
    lead_id = new_lead(services)
    sms.failures = [TransientSendError("rate limited", code="20429", retry_after=5)] * 5
    for _ in range(5):
        Dispatcher(services).run_due()
        clock.advance(timedelta(hours=1))
    first = touches(services, lead_id)[0]
    assert first.status == "failed" and first.attempts == 5 and "rate limited" in first.last_error
    with services.session_factory() as session:
        kinds = [e.kind for e in session.scalars(select(OutboxEvent).where(OutboxEvent.lead_id == lead_id))]
    assert "touch_failed" in kinds
    assert sms.sent == []


def test_a_retry_succeeds_and_the_touch_is_sent_once(services, clock, sms):
    lead_id = new_lead(services)
    sms.failures = [TransientSendError("server error", code="500")]
    Dispatcher(services).run_due()
    assert touches(services, lead_id)[0].status == "scheduled"
    clock.advance(timedelta(minutes=5))
    Dispatcher(services).run_due()
    assert touches(services, lead_id)[0].status == "sent" and len(sms.sent) == 1


def test_twilio_unsubscribed_error_opts_the_lead_out_of_sms(services, clock, sms):
    lead_id = new_lead(services)
    sms.failures = [PermanentSendError("unsubscribed", code="21610", kind=FailureKind.OPTED_OUT)]
    run_days(services, clock, 6)
    assert sms.sent == []
    with services.session_factory() as session:
        lead = session.get(Lead, lead_id)
        assert lead.sms_opted_out_at is not None and lead.stage == "opted_out"


def test_an_invalid_number_stops_sms_but_not_email(services, clock, sms, email):
    lead_id = new_lead(services)
    sms.failures = [PermanentSendError("invalid To", code="21211", kind=FailureKind.UNREACHABLE)]
    run_days(services, clock, 4)
    assert sms.sent == [] and email.sent
    with services.session_factory() as session:
        assert "21211" in session.get(Lead, lead_id).sms_unreachable_reason


def test_subject_options_rotate_across_leads_and_the_choice_is_stored(services, clock, email):
    ids = [
        new_lead(services, phone=p, email=f"lead{i}@example.com")
        for i, p in enumerate(["+13125551234", "+13122345678", "+13128675309"])
    ]
    run_days(services, clock, 0.2)
    email_step = next(s for s in services.playbooks.get().steps if s.channel == "email")
    chosen = [next(t.subject_option for t in touches(services, i) if t.step_id == email_step.id) for i in ids]
    assert chosen == [n % len(email_step.subjects) for n in range(3)]


# --- stop rules ---------------------------------------------------------------------------------


def test_a_reply_pauses_automation_and_hands_the_lead_to_the_team(services, clock, sms):
    lead_id = new_lead(services)
    Dispatcher(services).run_due()
    lead_message(services, lead_id, LeadSignal.PLAIN, "ok thanks, let me check my calendar")
    run_days(services, clock, 3)
    assert len(sms.sent) == 1
    with services.session_factory() as session:
        assert session.get(Lead, lead_id).stage == "engaged"
        assert session.scalars(select(Enrollment)).one().state == "paused"
        decisions = [e.payload for e in session.scalars(select(OutboxEvent).where(OutboxEvent.kind == "decision"))]
    assert any(d.get("alert_team") for d in decisions)


def test_resume_shifts_what_remains_by_the_pause_so_nothing_bursts_out(services, clock, sms):
    lead_id = new_lead(services)
    Dispatcher(services).run_due()
    before = {t.step_id: t.due_at for t in touches(services, lead_id)}
    with_lead(services, lead_id, pause_lead, actor=ALICE)
    clock.advance(timedelta(days=3))
    with_lead(services, lead_id, resume_lead, actor=ALICE)
    after = {t.step_id: t for t in touches(services, lead_id)}
    for step_id, due in before.items():
        if after[step_id].status == "scheduled":
            assert after[step_id].due_at >= due + timedelta(days=3)
    report = Dispatcher(services).run_due()
    assert report.sent == 0  # nothing overdue bursts out right after resuming


def test_an_auto_reply_never_pauses_the_sequence(services):
    lead_id = new_lead(services)
    lead_message(services, lead_id, LeadSignal.AUTO_REPLY, "I am out of the office until Monday")
    with services.session_factory() as session:
        assert session.scalars(select(Enrollment)).one().state == "active"


def test_not_interested_stops_the_sequence_and_marks_the_lead_lost(services, clock, sms):
    lead_id = new_lead(services)
    Dispatcher(services).run_due()
    lead_message(services, lead_id, LeadSignal.NOT_INTERESTED, "no thanks, found someone")
    run_days(services, clock, 7)
    assert len(sms.sent) == 1
    statuses = {t.status for t in touches(services, lead_id)[1:]}
    assert statuses == {"cancelled"}
    with services.session_factory() as session:
        assert session.get(Lead, lead_id).stage == "lost"


def test_stop_ends_everything_and_no_message_follows(services, clock, sms, email):
    lead_id = new_lead(services)
    Dispatcher(services).run_due()
    lead_message(services, lead_id, LeadSignal.OPT_OUT, "STOP")
    run_days(services, clock, 10)
    assert len(sms.sent) == 1 and email.sent == []
    with services.session_factory() as session:
        lead = session.get(Lead, lead_id)
        assert lead.stage == "opted_out" and lead.sms_opted_out_at is not None


def test_a_question_escalates_to_a_call_task_now(services):
    lead_id = new_lead(services)
    lead_message(services, lead_id, LeadSignal.QUESTION, "Do you take Blue Cross?")
    with services.session_factory() as session:
        task = session.scalars(select(CallTask)).one()
        assert task.reason == "asked a question" and task.due_at == services.clock.now()
        assert task.call_script and task.voicemail_script
        assert session.scalars(select(Enrollment)).one().state == "paused"


def test_a_requested_time_escalates_with_the_time_for_the_team(services):
    lead_id = new_lead(services)
    wanted = datetime(2026, 11, 26, 21, 0, tzinfo=UTC)
    lead_message(services, lead_id, LeadSignal.ASKS_TIME, "can I come tomorrow at 3?", requested_time=wanted)
    with services.session_factory() as session:
        task = session.scalars(select(CallTask)).one()
        assert task.requested_time == wanted and "time" in task.reason


def test_booking_stops_sales_follow_up_and_starts_reminders_before_the_visit(services, clock, sms):
    lead_id = new_lead(services)
    Dispatcher(services).run_due()
    visit = datetime(2026, 11, 30, 16, 0, tzinfo=UTC)  # Monday 10:00 in Chicago
    with_lead(services, lead_id, book, start_at=visit, actor=ALICE)
    with services.session_factory() as session:
        states = {e.sequence_name: e.state for e in session.scalars(select(Enrollment))}
        assert states == {"default": "stopped", "appointment_reminders": "active", "appointment_confirmation": "active"}
        assert session.get(Lead, lead_id).stage == "booked"
    reminders = [t for t in touches(services, lead_id) if t.status == "scheduled"]
    assert reminders and all(t.due_at < visit for t in reminders)
    run_days(services, clock, 6)
    assert all(
        t.status in ("sent", "skipped")
        for t in reminders
        for t in touches(services, lead_id)
        if t.enrollment_id == reminders[0].enrollment_id
    )
    assert len(sms.sent) >= 2


def test_a_booking_in_the_past_is_refused(services):
    lead_id = new_lead(services)
    with pytest.raises(LeadActionRefused):
        with_lead(services, lead_id, book, start_at=services.clock.now() - timedelta(hours=1), actor=ALICE)


def test_a_clicked_booking_link_without_a_booking_escalates_after_the_delay(services, clock):
    lead_id = new_lead(services)
    with services.session_factory.begin() as session:
        record_booking_link_click(session, session.get(Lead, lead_id), now=clock.now())
    with services.session_factory.begin() as session:
        assert escalate_unfinished_bookings(session, services, now=clock.now(), delay=timedelta(hours=2)) == 0
    clock.advance(timedelta(hours=2))
    with services.session_factory.begin() as session:
        assert escalate_unfinished_bookings(session, services, now=clock.now(), delay=timedelta(hours=2)) == 1
    with services.session_factory.begin() as session:
        assert escalate_unfinished_bookings(session, services, now=clock.now(), delay=timedelta(hours=2)) == 0
        assert "booking link" in session.scalars(select(CallTask)).one().reason


# --- the team's actions -------------------------------------------------------------------------


def _question_task(services, lead_id: int) -> int:
    lead_message(services, lead_id, LeadSignal.QUESTION, "how much is a first visit?")
    with services.session_factory() as session:
        return session.scalars(select(CallTask.id)).one()


def test_claiming_is_atomic_and_a_second_person_is_told_who_has_it(services):
    task_id = _question_task(services, new_lead(services))
    with services.session_factory.begin() as session:
        claim_call_task(session, task_id, now=services.clock.now(), actor=ALICE)
    with pytest.raises(LeadActionRefused, match="already claimed by <@U0ALICE>"):
        with services.session_factory.begin() as session:
            claim_call_task(session, task_id, now=services.clock.now(), actor=BOB)


def test_voicemail_lets_the_sequence_continue(services):
    lead_id = new_lead(services)
    task_id = _question_task(services, lead_id)
    with services.session_factory.begin() as session:
        log_call_outcome(session, services, task_id, CallOutcome.LEFT_VOICEMAIL, now=services.clock.now(), actor=ALICE)
    with services.session_factory() as session:
        assert session.scalars(select(Enrollment)).one().state == "active"
        assert session.get(CallTask, task_id).outcome == "left_voicemail"


def test_a_call_back_schedules_a_new_call_task_at_that_time(services):
    lead_id = new_lead(services)
    task_id = _question_task(services, lead_id)
    later = services.clock.now() + timedelta(days=1)
    with services.session_factory.begin() as session:
        log_call_outcome(
            session,
            services,
            task_id,
            CallOutcome.CALL_BACK,
            now=services.clock.now(),
            actor=ALICE,
            when=later,
            notes="after work",
        )
    with services.session_factory() as session:
        newest = session.scalars(select(CallTask).order_by(CallTask.id.desc())).first()
        assert newest.id != task_id and newest.due_at == later and newest.status == "open"


def test_booked_on_the_call_starts_reminders(services):
    lead_id = new_lead(services)
    task_id = _question_task(services, lead_id)
    with services.session_factory.begin() as session:
        log_call_outcome(
            session,
            services,
            task_id,
            CallOutcome.BOOKED,
            now=services.clock.now(),
            actor=ALICE,
            when=services.clock.now() + timedelta(days=2),
        )
    with services.session_factory() as session:
        states = {e.sequence_name: e.state for e in session.scalars(select(Enrollment))}
        assert states["appointment_reminders"] == "active"


@pytest.mark.parametrize("outcome", [CallOutcome.WRONG_NUMBER, CallOutcome.NOT_INTERESTED])
def test_wrong_number_and_not_interested_stop_the_lead(services, outcome):
    lead_id = new_lead(services)
    task_id = _question_task(services, lead_id)
    with services.session_factory.begin() as session:
        log_call_outcome(session, services, task_id, outcome, now=services.clock.now(), actor=ALICE)
    with services.session_factory() as session:
        assert session.get(Lead, lead_id).stage == "lost"
        assert session.scalars(select(Enrollment)).one().state == "stopped"


def test_every_state_change_is_audited_with_who_did_it(services):
    lead_id = new_lead(services)
    with_lead(services, lead_id, pause_lead, actor=ALICE)
    with_lead(services, lead_id, resume_lead, actor=BOB)
    with services.session_factory() as session:
        entries = [
            (e.action, e.actor_type, e.actor_id)
            for e in session.scalars(select(AuditEntry).where(AuditEntry.lead_id == lead_id).order_by(AuditEntry.id))
        ]
    assert ("lead_created", "system", "") in entries
    assert ("paused", "slack_user", "U0ALICE") in entries
    assert ("resumed", "slack_user", "U0BOB") in entries


def test_pausing_a_lead_with_nothing_running_is_refused_with_a_reason(services):
    lead_id = new_lead(services)
    with_lead(services, lead_id, pause_lead, actor=ALICE)
    with pytest.raises(LeadActionRefused, match="nothing to pause"):
        with_lead(services, lead_id, pause_lead, actor=ALICE)


def test_texts_that_cannot_reach_a_number_go_by_email_instead(services, clock, sms, email):
    lead_id = new_lead(services)
    sms.failures = [PermanentSendError("landline", code="21614", kind=FailureKind.UNREACHABLE)]
    run_days(services, clock, 2)
    rerouted = [t for t in touches(services, lead_id) if t.channel == "sms" and t.status == "sent"]
    assert sms.sent == [] and rerouted
    assert all(t.skip_reason.startswith("sent by email") for t in rerouted)
    assert any(m.subject.startswith("A note from Lakeside") for m in email.sent)


def test_texts_that_cannot_reach_a_lead_without_email_become_calls(services, clock, sms):
    lead_id = new_lead(services, email=None)
    sms.failures = [PermanentSendError("invalid number", code="21211", kind=FailureKind.UNREACHABLE)]
    run_days(services, clock, 2)
    with services.session_factory() as session:
        reasons = [t.reason for t in session.scalars(select(CallTask).where(CallTask.lead_id == lead_id))]
    assert any(r.startswith("texts cannot reach this number") for r in reasons)


def test_yes_from_a_lead_who_never_opted_out_is_a_reply_for_the_team(services):
    lead_id = new_lead(services)
    decision = lead_message(services, lead_id, LeadSignal.OPT_IN, "YES")
    assert decision.sequence == "pause" and decision.alert_team


def test_an_unclaimed_call_task_nudges_on_call_once_then_the_admins_once(services, clock):
    from bot.usecases.call_tasks import remind_unclaimed

    def remind() -> int:
        with services.session_factory.begin() as session:
            return remind_unclaimed(session, now=clock.now(), after=timedelta(minutes=30), business=services.business)

    _question_task(services, new_lead(services))
    assert remind() == 0
    clock.advance(timedelta(minutes=31))
    assert remind() == 1
    assert remind() == 0  # the team was just nudged: give them time
    clock.advance(timedelta(minutes=31))
    assert remind() == 1
    clock.advance(timedelta(hours=2))
    assert remind() == 0
    with services.session_factory() as session:
        nudges = [
            e.payload
            for e in session.scalars(select(OutboxEvent).where(OutboxEvent.kind == "decision"))
            if "claimed" in e.payload.get("text", "")
        ]
    assert [bool(n.get("alert_team")) for n in nudges] == [True, False]
    assert [bool(n.get("alert_admins")) for n in nudges] == [False, True]


def test_nobody_is_nudged_about_an_unclaimed_call_outside_the_teams_hours(services, clock):
    from bot.usecases.call_tasks import remind_unclaimed

    _question_task(services, new_lead(services))
    clock.advance(timedelta(hours=11, minutes=30))  # 20:30 in Chicago: the clinic closed at 20:00
    with services.session_factory.begin() as session:
        assert remind_unclaimed(session, now=clock.now(), after=timedelta(minutes=30), business=services.business) == 0
    clock.advance(timedelta(hours=36))  # 08:30 on Friday (Thursday is Thanksgiving: closed)
    with services.session_factory.begin() as session:
        assert remind_unclaimed(session, now=clock.now(), after=timedelta(minutes=30), business=services.business) == 1


def test_a_claimed_call_task_gets_no_reminder(services, clock):
    from bot.usecases.call_tasks import remind_unclaimed

    task_id = _question_task(services, new_lead(services))
    with services.session_factory.begin() as session:
        claim_call_task(session, task_id, now=clock.now(), actor=ALICE)
    clock.advance(timedelta(hours=1))
    with services.session_factory.begin() as session:
        assert remind_unclaimed(session, now=clock.now(), after=timedelta(minutes=30), business=services.business) == 0


def test_a_clinic_s_unclaimed_call_is_nudged_in_its_own_hours_and_by_no_other_clinic(services, clock):
    from dataclasses import replace

    from bot.core.business import SendWindow
    from bot.usecases.call_tasks import remind_unclaimed

    _question_task(services, new_lead(services))
    clock.advance(timedelta(minutes=31))
    other_clinic = replace(services.business, slug="harbor", send_window=SendWindow.parse("always"))
    with services.session_factory.begin() as session:
        assert remind_unclaimed(session, now=clock.now(), after=timedelta(minutes=30), business=other_clinic) == 0
        assert remind_unclaimed(session, now=clock.now(), after=timedelta(minutes=30), business=services.business) == 1
