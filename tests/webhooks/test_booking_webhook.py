"""The generic booking webhook.

Idempotent, a lead for an unknown booker, a confirmation, the visit in the clinic's zone.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from bot.app import preview_sources
from bot.reports.preview import render_preview
from bot.store.models import Appointment, AuditEntry, CallTask, Enrollment, Lead, Message, OutboxEvent
from tests.conftest import TEST_BUSINESS
from tests.webhooks.conftest import BOOKING_TOKEN, LEAD_TOKEN
from tests.webhooks.test_no_lead_forgotten import ONCALL, inbound_email, team  # noqa: F401  (team is a fixture)

BOOK = {"Authorization": f"Bearer {BOOKING_TOKEN}"}
#: Monday Nov 30 2026, 3:00 PM in Chicago (the clinic).
VISIT = "2026-11-30T15:00:00-06:00"
VISIT_UTC = datetime(2026, 11, 30, 21, 0, tzinfo=UTC)
#: Its day-before reminder falls on a Monday, inside the clinic's Mon-Sat window.
TUESDAY_VISIT = "2026-12-01T15:00:00-06:00"
TUESDAY_VISIT_UTC = datetime(2026, 12, 1, 21, 0, tzinfo=UTC)


def new_lead(bot, **fields) -> int:
    # Consent to texts on record (the web form's checkbox), so the visit's texts may go.
    lead = {
        "name": "Dana Lee",
        "phone": "+13125550142",
        "email": "dana@example.com",
        "consent": True,
        "consent_text": "I agree to receive texts from Lakeside Chiropractic about my inquiry.",
        **fields,
    }
    answer = bot.http.post("/webhooks/leads", json=lead, headers={"Authorization": f"Bearer {LEAD_TOKEN}"})
    return answer.json()["lead_id"]


def book(bot, **fields):
    return bot.http.post("/webhooks/booking", json={"start": VISIT, **fields}, headers=BOOK)


def appointments(bot) -> list[tuple[str, datetime]]:
    with bot.services.session_factory() as session:
        return [(a.status, a.start_at) for a in session.scalars(select(Appointment).order_by(Appointment.id))]


def test_the_same_booking_posted_twice_with_its_external_id_is_one_appointment(running_bot):
    new_lead(running_bot)
    first = book(running_bot, phone="+13125550142", external_id="cal-77")
    again = book(running_bot, phone="+13125550142", external_id="cal-77")
    assert first.status_code == 201 and first.json()["created"] is True
    assert again.status_code == 200 and again.json()["created"] is False
    assert again.json()["appointment_id"] == first.json()["appointment_id"]
    assert appointments(running_bot) == [("booked", VISIT_UTC)]


def test_the_same_lead_and_start_posted_twice_without_an_id_is_one_booking(running_bot):
    new_lead(running_bot)
    assert book(running_bot, email="dana@example.com").status_code == 201
    assert book(running_bot, phone="(312) 555-0142").status_code == 200
    assert appointments(running_bot) == [("booked", VISIT_UTC)]
    with running_bot.services.session_factory() as session:
        reminders = session.scalars(select(Enrollment).where(Enrollment.sequence_name == "appointment_reminders")).all()
        assert [e.state for e in reminders] == ["active"]


def test_the_same_external_id_at_a_new_time_moves_the_appointment(running_bot):
    new_lead(running_bot)
    book(running_bot, phone="+13125550142", external_id="cal-77")
    moved = book(running_bot, phone="+13125550142", external_id="cal-77", start="2026-12-01T10:00:00-06:00")
    assert moved.status_code == 201
    assert [status for status, _ in appointments(running_bot)] == ["rescheduled", "booked"]
    with running_bot.services.session_factory() as session:
        old, new = session.scalars(select(Appointment).order_by(Appointment.id)).all()
        assert old.replaced_by_id == new.id and new.external_id == "cal-77"
        reminders = session.scalars(
            select(Enrollment).where(Enrollment.sequence_name == "appointment_reminders").order_by(Enrollment.id)
        ).all()
        assert [(e.appointment_id, e.state) for e in reminders] == [(old.id, "stopped"), (new.id, "active")]


def test_a_booking_from_someone_unknown_creates_the_lead_with_its_appointment(running_bot, twilio, sendgrid):
    answer = book(running_bot, email="Sam.Park@Example.com", phone="+13125550199", name="Sam Park", notes="new patient")
    assert answer.status_code == 201 and answer.json()["lead_created"] is True
    with running_bot.services.session_factory() as session:
        lead = session.get(Lead, answer.json()["lead_id"])
        assert (lead.name, lead.email, lead.source, lead.stage) == (
            "Sam Park",
            "Sam.Park@example.com",
            "booking",
            "booked",
        )
        # No sales follow-up for someone who already booked: only the visit's own messages.
        assert {e.sequence_name for e in session.scalars(select(Enrollment))} == {
            "appointment_confirmation",
            "appointment_reminders",
        }
    # No consent to texts on record for someone who only booked: the confirmation goes by email.
    assert twilio.messages == []
    subjects = [e.subject for e in sendgrid.emails]
    assert "You're booked: Monday, Nov 30 at 3:00 PM at Lakeside Chiropractic" in subjects


def test_a_booking_tells_the_lead_stops_sales_follow_up_and_is_in_the_audit_log_and_thread(running_bot, twilio):
    lead_id = new_lead(running_bot)
    texts_before = len(twilio.messages)
    assert book(running_bot, lead_id=lead_id).status_code == 201
    assert "you're booked" in twilio.messages[texts_before]["body"]
    with running_bot.services.session_factory() as session:
        states = {e.sequence_name: e.state for e in session.scalars(select(Enrollment))}
        assert states["default"] == "stopped" and states["appointment_reminders"] == "active"
        actions = [a.action for a in session.scalars(select(AuditEntry).where(AuditEntry.lead_id == lead_id))]
        assert "booked" in actions
        notes = [
            e.payload.get("text", "")
            for e in session.scalars(
                select(OutboxEvent).where(OutboxEvent.lead_id == lead_id, OutboxEvent.kind == "decision")
            )
        ]
        assert any("Appointment booked for Monday, Nov 30 at 3:00 PM (from the booking webhook)" in n for n in notes)


def test_a_booking_on_a_closed_day_is_kept_with_a_warning_for_whoever_booked(running_bot):
    lead_id = new_lead(running_bot)
    answer = book(running_bot, lead_id=lead_id, start="2026-12-24T10:00:00-06:00")
    assert answer.status_code == 201
    assert answer.json()["warnings"] == ["Thu Dec 24 is a closed day (closed date)"]
    assert [status for status, _ in appointments(running_bot)] == ["booked"]


def test_the_reminder_states_the_visit_in_the_clinics_zone_and_names_it_for_a_lead_elsewhere(
    running_bot, twilio, clock
):
    # A San Francisco number: the lead's clock reads 1:00 PM, the visit is at 3:00 PM at the clinic.
    new_lead(running_bot, phone="+14155552671", email=None)
    book(running_bot, phone="+14155552671", start=TUESDAY_VISIT)
    clock.advance(TUESDAY_VISIT_UTC - timedelta(hours=24) - clock.now() + timedelta(minutes=1))
    running_bot.dispatch()
    [reminder] = [m["body"] for m in twilio.messages if "a reminder from" in m["body"]]
    assert "see you Tuesday, Dec 1 at 3:00 PM CST" in reminder and "1:00 PM" not in reminder
    assert "Reply YES to confirm" in reminder

    preview = render_preview(
        preview_sources(running_bot.settings),
        sequence="appointment_reminders",
        lead_fields={"name": "Dana Lee", "phone": "+14155552671"},
        start=clock.now() - timedelta(days=1),
        appointment=TUESDAY_VISIT_UTC,
    )
    assert "see you Tuesday, Dec 1 at 3:00 PM CST" in preview


def test_a_lead_in_the_clinics_zone_reads_the_time_without_a_zone(running_bot, twilio, clock):
    new_lead(running_bot)
    book(running_bot, phone="+13125550142", start=TUESDAY_VISIT)
    clock.advance(TUESDAY_VISIT_UTC - timedelta(hours=24) - clock.now() + timedelta(minutes=1))
    running_bot.dispatch()
    [reminder] = [m["body"] for m in twilio.messages if "a reminder from" in m["body"]]
    assert "see you Tuesday, Dec 1 at 3:00 PM. Reply" in reminder


@pytest.fixture
def booked_through(business_file, booking_link):
    """The business file with this booking link (read when the bot starts)."""
    business_file.write_text(
        TEST_BUSINESS.replace("booking_link: https://example.com/book", f"booking_link: {booking_link}")
    )
    return booking_link


@pytest.mark.parametrize(
    ("booking_link", "expected"),
    [
        (
            "https://calendly.com/lakeside/new-patient",
            "https://calendly.com/lakeside/new-patient?name=Dana+Lee&email=dana%40example.com",
        ),
        (
            "https://cal.com/lakeside/visit?month=2026-12",
            "https://cal.com/lakeside/visit?month=2026-12&name=Dana+Lee&email=dana%40example.com",
        ),
        (
            "https://app.cal.com/lakeside/visit",
            "https://app.cal.com/lakeside/visit?name=Dana+Lee&email=dana%40example.com",
        ),
        ("https://example.com/book", "https://example.com/book"),  # another page: left as it is
    ],
)
def test_the_tracked_booking_link_prefills_name_and_email_for_calendly_and_calcom(
    booked_through, running_bot, expected
):
    lead_id = new_lead(running_bot)
    with running_bot.services.session_factory() as session:
        token = session.get(Lead, lead_id).link_token
    answer = running_bot.http.get(f"/b/{token}", follow_redirects=False)
    assert answer.status_code == 302 and answer.headers["location"] == expected
    assert running_bot.http.get("/b/unknown-token", follow_redirects=False).headers["location"] == booked_through


# --- the lead answers about the visit ----------------------------------------------------------


def text_in(bot, twilio, body: str, sender: str = "+13125550142"):
    from tests.webhooks.conftest import CLINIC_NUMBER

    return twilio.inbound_sms(f"{bot.url}/webhooks/twilio/sms", sender, body, to=CLINIC_NUMBER)


def reminder_states(bot) -> list[str]:
    with bot.services.session_factory() as session:
        return [
            e.state
            for e in session.scalars(
                select(Enrollment).where(Enrollment.sequence_name == "appointment_reminders").order_by(Enrollment.id)
            )
        ]


def test_a_yes_to_the_reminder_confirms_the_visit(running_bot, twilio):
    new_lead(running_bot)
    book(running_bot, phone="+13125550142")
    assert text_in(running_bot, twilio, "YES") == 200
    assert appointments(running_bot) == [("confirmed", VISIT_UTC)]
    assert reminder_states(running_bot) == ["active"]
    with running_bot.services.session_factory() as session:
        assert session.scalars(select(CallTask)).all() == []
        notes = [
            e.payload.get("text", "")
            for e in session.scalars(select(OutboxEvent).where(OutboxEvent.kind == "decision"))
        ]
    assert any("confirmed by the lead" in n for n in notes)


@pytest.mark.parametrize(
    "words",
    [
        "Yes, see you Monday at 3",
        "yes see you at 3pm",
        "Confirmed for Monday afternoon",
        "yes 3.00 works",
        "Sí, nos vemos el lunes a las 3",
    ],
)
def test_a_confirmation_that_names_the_visits_own_time_confirms_it(running_bot, twilio, words):
    new_lead(running_bot)
    book(running_bot, phone="+13125550142")  # Monday 3:00 PM, Chicago
    assert text_in(running_bot, twilio, words) == 200
    assert appointments(running_bot) == [("confirmed", VISIT_UTC)]
    assert open_calls(running_bot) == []


@pytest.mark.parametrize(
    ("words", "named"),
    [
        ("Yes see you at 4", "at 4"),
        ("yes, see you Tuesday!", "Tuesday"),
        ("Confirmed for Monday morning", "Monday morning"),
        ("yes see you at 10.30", "at 10.30"),
        ("yes see you at 3 or 4", "at 3 or 4"),
        ("Sí, nos vemos el martes", "el martes"),
    ],
)
def test_a_confirmation_that_names_another_time_is_held_for_a_person_never_confirmed(running_bot, twilio, words, named):
    # A yes that names 4 for a visit at 3 is no agreement to 3: reminders for 3 would go to a patient who
    # means 4. So the visit stands unconfirmed, its reminders wait, and a person asks which they meant.
    new_lead(running_bot)
    book(running_bot, phone="+13125550142")
    assert text_in(running_bot, twilio, words) == 200
    assert appointments(running_bot) == [("booked", VISIT_UTC)]
    assert reminder_states(running_bot) == ["paused"]
    [call] = open_calls(running_bot)
    assert call.reason.startswith("wants to reschedule")
    with running_bot.services.session_factory() as session:
        [message] = session.scalars(select(Message).where(Message.direction == "in")).all()
    assert message.classification == "reschedule_visit"
    assert f'"{named}" is not the visit\'s time' in message.details["rule"]


@pytest.mark.parametrize(
    ("words", "wants"),
    [
        ("I need to move my appointment", "asked to move the visit"),
        ("Can we reschedule? Something came up", "asked to move the visit"),
        ("Please cancel, I'm feeling better", "asked to cancel the visit"),
    ],
)
def test_a_request_to_move_or_cancel_pauses_reminders_and_opens_a_call_never_a_silent_change(
    running_bot, twilio, words, wants
):
    new_lead(running_bot)
    book(running_bot, phone="+13125550142")
    assert text_in(running_bot, twilio, words) == 200
    assert appointments(running_bot) == [("booked", VISIT_UTC)]  # the visit stands until a person calls
    assert reminder_states(running_bot) == ["paused"]
    with running_bot.services.session_factory() as session:
        assert [t.reason for t in session.scalars(select(CallTask))] == ["wants to reschedule"]
        [message] = session.scalars(select(Message).where(Message.direction == "in")).all()
        assert message.classification in ("reschedule_visit", "cancel_visit")
        notes = [
            e.payload.get("text", "")
            for e in session.scalars(select(OutboxEvent).where(OutboxEvent.kind == "decision"))
        ]
    assert any(wants in n and "reminders paused" in n for n in notes)


def test_a_yes_from_a_lead_without_a_visit_is_a_plain_reply(running_bot, twilio):
    new_lead(running_bot)
    assert text_in(running_bot, twilio, "YES") == 200
    with running_bot.services.session_factory() as session:
        [message] = session.scalars(select(Message).where(Message.direction == "in")).all()
        assert message.classification == "plain"


# --- a visit reply with a request beside it: the visit is acted on, and a person answers the rest ---

CHICAGO_FRIDAY_3PM = datetime(2026, 11, 27, 21, 0, tzinfo=UTC)
CHICAGO_FRIDAY_10AM = datetime(2026, 11, 27, 16, 0, tzinfo=UTC)


def open_calls(bot) -> list[CallTask]:
    with bot.services.session_factory() as session:
        return list(session.scalars(select(CallTask).where(CallTask.status == "open").order_by(CallTask.id)))


def stage_of(bot, lead_id: int) -> str:
    with bot.services.session_factory() as session:
        return session.get(Lead, lead_id).stage


@pytest.mark.parametrize(
    ("words", "call", "requested"),
    [
        ("yes! do I need to bring my card?", "asked a question", None),
        ("yes do I need to bring my insurance card", "asked a question", None),
        ("Confirmed, what's the address again?", "asked a question", None),
        ("Yes please call me when you can", "asked to be called or booked", None),
        ("Yes. Also can I book my son for Friday at 3?", "asked for a time or to book", CHICAGO_FRIDAY_3PM),
        ("Sí, ahí estaré. ¿Tengo que llevar mi tarjeta del seguro?", "asked a question", None),
    ],
)
def test_a_confirmation_with_a_request_confirms_the_visit_and_the_request_reaches_the_on_call(
    running_bot, twilio, team, words, call, requested
):
    lead_id = new_lead(running_bot)
    book(running_bot, phone="+13125550142")
    assert text_in(running_bot, twilio, words) == 200
    assert appointments(running_bot) == [("confirmed", VISIT_UTC)]
    assert reminder_states(running_bot) == ["active"]  # a confirmed visit is still reminded
    [task] = open_calls(running_bot)
    assert task.reason == call and task.requested_time == requested
    assert stage_of(running_bot, lead_id) == "booked"  # the booking stands while a person answers
    assert any(f"<@{ONCALL}>" in post and call in post for post in team.channel_posts())
    thread = team.thread(lead_id)
    assert any("confirmed by the lead" in entry for entry in thread)
    assert any("read as: confirm_visit" in entry and "also " in entry for entry in thread)


@pytest.mark.parametrize(
    ("words", "call"),
    [
        ("I need to cancel. Do you charge a fee for cancelling?", "wants to reschedule; also: asked a question"),
        (
            "I need to move my appointment, can you call me back?",
            "wants to reschedule; also: asked to be called or booked",
        ),
        (
            "Please cancel my appointment. How much do I owe for the x-rays?",
            "wants to reschedule; also: asked a question",
        ),
    ],
)
def test_a_request_to_move_or_cancel_with_a_question_is_one_call_that_names_both(
    running_bot, twilio, team, words, call
):
    new_lead(running_bot)
    book(running_bot, phone="+13125550142")
    assert text_in(running_bot, twilio, words) == 200
    assert appointments(running_bot) == [("booked", VISIT_UTC)]  # nothing changes until a person calls
    assert reminder_states(running_bot) == ["paused"]
    assert [t.reason for t in open_calls(running_bot)] == [call]
    assert any(f"<@{ONCALL}>" in post and call in post for post in team.channel_posts())


def test_a_new_time_offered_for_the_visit_travels_with_the_call(running_bot, twilio):
    new_lead(running_bot)
    book(running_bot, phone="+13125550142")
    assert text_in(running_bot, twilio, "How about Friday at 10?") == 200
    [task] = open_calls(running_bot)
    assert (task.reason, task.requested_time) == ("wants to reschedule", CHICAGO_FRIDAY_10AM)
    assert appointments(running_bot) == [("booked", VISIT_UTC)]


def test_an_email_confirming_with_a_question_confirms_and_opens_a_call(running_bot, team):
    new_lead(running_bot)
    book(running_bot, email="dana@example.com")
    assert inbound_email(running_bot, "Yes, I'll be there. Is there parking nearby?\n\nDana") == 200
    assert appointments(running_bot) == [("confirmed", VISIT_UTC)]
    assert [t.reason for t in open_calls(running_bot)] == ["asked a question"]


def test_a_question_from_a_lead_with_a_visit_booked_opens_a_call_and_the_booking_stands(running_bot, twilio):
    lead_id = new_lead(running_bot)
    book(running_bot, phone="+13125550142")
    assert text_in(running_bot, twilio, "Do you take Blue Cross?") == 200
    assert [t.reason for t in open_calls(running_bot)] == ["asked a question"]
    assert stage_of(running_bot, lead_id) == "booked"
    assert appointments(running_bot) == [("booked", VISIT_UTC)] and reminder_states(running_bot) == ["active"]


def test_the_web_form_sent_again_asking_to_move_the_visit_holds_it_for_a_call(running_bot, twilio):
    lead_id = new_lead(running_bot)
    book(running_bot, phone="+13125550142")
    again = running_bot.http.post(
        "/webhooks/leads",
        json={
            "name": "Dana Lee",
            "phone": "+13125550142",
            "message": "I need to reschedule my appointment, can someone call me?",
        },
        headers={"Authorization": f"Bearer {LEAD_TOKEN}"},
    )
    assert again.status_code == 200 and again.json()["lead_id"] == lead_id
    assert appointments(running_bot) == [("booked", VISIT_UTC)] and reminder_states(running_bot) == ["paused"]
    assert [t.reason for t in open_calls(running_bot)] == ["wants to reschedule; also: asked to be called or booked"]
