"""Calendly and Cal.com webhooks through the real routes, signed as the vendors sign them."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from bot.store.models import Appointment, CallTask, Enrollment, Lead
from handlers.calendar_webhooks import calcom_signature, calendly_signature
from tests.webhooks.conftest import CALCOM_SECRET, CALENDLY_KEY, LEAD_TOKEN

#: Monday Nov 30 2026, 3:00 PM in Chicago (the clinic); the test clock is Wed Nov 25.
START = "2026-11-30T21:00:00.000000Z"
START_UTC = datetime(2026, 11, 30, 21, 0, tzinfo=UTC)
EVENT = "https://api.calendly.com/scheduled_events/GBGBDCAADAEDCRZ2"
INVITEE = f"{EVENT}/invitees/AAAAAAAAAAAAAAAA"


# --- Calendly (API v2 webhook subscriptions) ---------------------------------------------------


def calendly_invitee(
    *,
    uri: str = INVITEE,
    start: str = START,
    email: str = "sam.park@example.com",
    phone: str | None = "+1 312 555 0199",
    old_invitee: str | None = None,
    rescheduled: bool = False,
    status: str = "active",
) -> dict:
    """An invitee as Calendly's v2 webhooks carry it (payload of invitee.created / invitee.canceled)."""
    return {
        "cancel_url": "https://calendly.com/cancellations/AAAAAAAAAAAAAAAA",
        "created_at": "2026-11-25T15:00:00.000000Z",
        "updated_at": "2026-11-25T15:00:00.000000Z",
        "email": email,
        "first_name": "Sam",
        "last_name": "Park",
        "name": "Sam Park",
        "new_invitee": None,
        "old_invitee": old_invitee,
        "questions_and_answers": [
            {"answer": "Lower back pain", "position": 0, "question": "What brings you in?"},
            *([{"answer": phone, "position": 1, "question": "Mobile phone"}] if phone else []),
        ],
        "reschedule_url": "https://calendly.com/reschedulings/AAAAAAAAAAAAAAAA",
        "rescheduled": rescheduled,
        "status": status,
        "text_reminder_number": None,
        "timezone": "America/Los_Angeles",
        "tracking": {
            "utm_campaign": None,
            "utm_source": None,
            "utm_medium": None,
            "utm_content": None,
            "utm_term": None,
            "salesforce_uuid": None,
        },
        "uri": uri,
        "scheduled_event": {
            "uri": EVENT,
            "name": "New patient visit",
            "status": status,
            "start_time": start,
            "end_time": start.replace("21:00", "21:45"),
            "event_type": "https://api.calendly.com/event_types/ET1",
            "location": {"type": "physical", "location": "1200 Lakeshore Dr"},
            "invitees_counter": {"total": 1, "active": 1, "limit": 1},
            "created_at": "2026-11-25T15:00:00.000000Z",
            "updated_at": "2026-11-25T15:00:00.000000Z",
            "event_memberships": [{"user": "https://api.calendly.com/users/U1", "user_email": "desk@lakeside.example"}],
            "event_guests": [],
        },
    }


def calendly(
    bot,
    event: str,
    payload: dict,
    *,
    key: str = CALENDLY_KEY,
    at: int | None = None,
    signature: str | None = None,
    path: str = "/webhooks/calendly",
    http=None,
):
    """Post a Calendly event to the bot (or to `http`, another client of it), signed with `key` as Calendly signs."""
    body = json.dumps(
        {
            "event": event,
            "created_at": "2026-11-25T15:00:00.000000Z",
            "created_by": "https://api.calendly.com/users/U1",
            "payload": payload,
        }
    ).encode()
    header = signature or calendly_signature(key, body, at if at is not None else int(time.time()))
    return (http or bot.http).post(
        path,
        content=body,
        headers={"Content-Type": "application/json", "Calendly-Webhook-Signature": header},
    )


def appointments(bot) -> list[tuple[str, datetime, str | None]]:
    with bot.services.session_factory() as session:
        return [
            (a.status, a.start_at, a.external_id) for a in session.scalars(select(Appointment).order_by(Appointment.id))
        ]


def test_a_calendly_booking_from_someone_unknown_is_a_lead_with_an_appointment(running_bot, twilio, sendgrid):
    answer = calendly(running_bot, "invitee.created", calendly_invitee())
    assert answer.status_code == 200 and answer.json()["lead_created"] is True
    with running_bot.services.session_factory() as session:
        lead = session.get(Lead, answer.json()["lead_id"])
        assert (lead.name, lead.email, lead.phone, lead.source) == (
            "Sam Park",
            "sam.park@example.com",
            "+13125550199",
            "calendly",
        )
        [appointment] = session.scalars(select(Appointment)).all()
        assert "What brings you in?: Lower back pain" in appointment.notes
    assert appointments(running_bot) == [("booked", START_UTC, INVITEE)]
    # The confirmation: by email, as no consent to texts is on record for someone who only booked.
    assert twilio.messages == []
    assert any(e.subject.startswith("You're booked") for e in sendgrid.emails)


def test_a_redelivered_calendly_booking_changes_nothing(running_bot, sendgrid):
    calendly(running_bot, "invitee.created", calendly_invitee())
    sent = len(sendgrid.emails)
    again = calendly(running_bot, "invitee.created", calendly_invitee())
    assert again.status_code == 200 and again.json()["created"] is False
    assert appointments(running_bot) == [("booked", START_UTC, INVITEE)]
    assert sent and len(sendgrid.emails) == sent


def test_a_calendly_booking_matches_a_known_lead_by_the_phone_in_its_questions(running_bot):
    lead_id = running_bot.http.post(
        "/webhooks/leads",
        json={"name": "Sam", "phone": "(312) 555-0199"},
        headers={"Authorization": f"Bearer {LEAD_TOKEN}"},
    ).json()["lead_id"]
    answer = calendly(running_bot, "invitee.created", calendly_invitee(email="other@example.com"))
    assert answer.json()["lead_id"] == lead_id and answer.json()["lead_created"] is False
    with running_bot.services.session_factory() as session:
        states = {e.sequence_name: e.state for e in session.scalars(select(Enrollment))}
    assert states["default"] == "stopped" and states["appointment_reminders"] == "active"


def test_a_calendly_cancellation_cancels_and_stops_reminders(running_bot):
    calendly(running_bot, "invitee.created", calendly_invitee())
    answer = calendly(
        running_bot,
        "invitee.canceled",
        {
            **calendly_invitee(status="canceled"),
            "cancellation": {"canceled_by": "Sam Park", "reason": "feeling better", "canceler_type": "invitee"},
        },
    )
    assert answer.status_code == 200 and answer.json()["result"] == "cancelled"
    assert appointments(running_bot) == [("cancelled", START_UTC, INVITEE)]
    with running_bot.services.session_factory() as session:
        reminders = session.scalars(select(Enrollment).where(Enrollment.sequence_name == "appointment_reminders")).one()
        assert reminders.state == "stopped"


@pytest.mark.parametrize("order", ["cancel_first", "created_first"])
def test_a_calendly_reschedule_is_a_cancel_marked_rescheduled_and_a_new_invitee(running_bot, order):
    calendly(running_bot, "invitee.created", calendly_invitee())
    new_uri = f"{EVENT}/invitees/BBBBBBBBBBBBBBBB"
    moved = calendly_invitee(uri=new_uri, start="2026-12-01T16:00:00.000000Z", old_invitee=INVITEE)
    cancel = {
        **calendly_invitee(status="canceled", rescheduled=True),
        "cancellation": {"canceled_by": "Sam Park", "reason": None, "canceler_type": "invitee"},
    }
    steps = [("invitee.canceled", cancel), ("invitee.created", moved)]
    for event, payload in steps if order == "cancel_first" else reversed(steps):
        assert calendly(running_bot, event, payload).status_code == 200
    assert appointments(running_bot) == [
        ("rescheduled", START_UTC, INVITEE),
        ("booked", datetime(2026, 12, 1, 16, 0, tzinfo=UTC), new_uri),
    ]
    with running_bot.services.session_factory() as session:
        assert session.scalars(select(Lead)).one().stage == "booked"


def test_a_calendly_no_show_starts_we_missed_you_and_a_call(running_bot, clock):
    calendly(running_bot, "invitee.created", calendly_invitee())
    clock.advance(START_UTC - clock.now() + timedelta(hours=1))
    no_show = {
        **calendly_invitee(),
        "no_show": {
            "uri": "https://api.calendly.com/invitee_no_shows/NS1",
            "created_at": "2026-11-30T22:00:00.000000Z",
        },
    }
    answer = calendly(running_bot, "invitee_no_show.created", no_show)
    assert answer.json()["result"] == "no_show"
    with running_bot.services.session_factory() as session:
        assert [t.reason for t in session.scalars(select(CallTask))] == ["missed the visit"]
        assert "no_show" in {e.sequence_name for e in session.scalars(select(Enrollment))}


@pytest.mark.parametrize(
    ("tamper", "status"),
    [
        ({"key": "not-the-signing-key"}, 403),
        ({"at": int(time.time()) - 3600}, 403),  # an hour-old signature: a replay
        ({"signature": "v1=abc"}, 403),
    ],
)
def test_a_calendly_request_not_signed_with_the_key_or_stale_is_refused(running_bot, tamper, status):
    answer = calendly(running_bot, "invitee.created", calendly_invitee(), **tamper)
    assert answer.status_code == status and answer.json()["error"]
    assert appointments(running_bot) == []


def test_calendly_without_a_signing_key_refuses_with_a_reason(running_bot):
    closed = running_bot.restarted_with(calendly_signing_key=None)
    answer = calendly(running_bot, "invitee.created", calendly_invitee(), http=closed)
    assert answer.status_code == 503 and "CALENDLY_WEBHOOK_SIGNING_KEY" in answer.json()["error"]


# --- Cal.com -------------------------------------------------------------------------------------


def calcom_booking(
    *,
    uid: str = "bk_7Hq2",
    start: str = "2026-11-30T21:00:00.000Z",
    email: str = "sam.park@example.com",
    phone: str | None = "+13125550199",
    **extra,
) -> dict:
    """A booking as Cal.com's webhooks carry it (payload of BOOKING_CREATED and friends)."""
    return {
        "type": "new-patient",
        "title": "New patient visit between Lakeside and Sam Park",
        "description": "",
        "additionalNotes": "Lower back pain",
        "startTime": start,
        "endTime": start.replace("21:00", "21:45"),
        "uid": uid,
        "bookingId": 412,
        "status": "ACCEPTED",
        "location": "1200 Lakeshore Dr",
        "eventTypeId": 9,
        "eventTitle": "New patient visit",
        "length": 45,
        "organizer": {
            "id": 1,
            "name": "Lakeside Desk",
            "email": "desk@lakeside.example",
            "timeZone": "America/Chicago",
            "language": {"locale": "en"},
        },
        "attendees": [
            {"name": "Sam Park", "email": email, "timeZone": "America/Los_Angeles", "language": {"locale": "en"}}
        ],
        "responses": {
            "name": {"label": "your_name", "value": "Sam Park"},
            "email": {"label": "email_address", "value": email},
            **({"attendeePhoneNumber": {"label": "phone_number", "value": phone}} if phone else {}),
            "notes": {"label": "additional_notes", "value": "Lower back pain"},
        },
        **extra,
    }


def calcom(
    bot,
    trigger: str,
    payload: dict,
    *,
    secret: str = CALCOM_SECRET,
    signature: str | None = None,
    path: str = "/webhooks/calcom",
    http=None,
):
    """Post a Cal.com trigger to the bot (or to `http`, another client of it), signed with `secret` as Cal.com signs."""
    body = json.dumps({"triggerEvent": trigger, "createdAt": "2026-11-25T15:00:00.000Z", "payload": payload}).encode()
    headers = {"Content-Type": "application/json"}
    if signature != "":
        headers["X-Cal-Signature-256"] = signature or calcom_signature(secret, body)
    return (http or bot.http).post(path, content=body, headers=headers)


def test_a_calcom_booking_creates_the_lead_and_redelivery_changes_nothing(running_bot, sendgrid):
    first = calcom(running_bot, "BOOKING_CREATED", calcom_booking())
    sent = len(sendgrid.emails)
    again = calcom(running_bot, "BOOKING_CREATED", calcom_booking())
    assert first.status_code == 200 and first.json()["created"] and first.json()["lead_created"]
    assert again.json()["created"] is False
    assert appointments(running_bot) == [("booked", START_UTC, "bk_7Hq2")]
    with running_bot.services.session_factory() as session:
        assert session.scalars(select(Lead)).one().source == "cal.com"
    assert sent and len(sendgrid.emails) == sent


def test_a_calcom_reschedule_moves_the_appointment(running_bot):
    calcom(running_bot, "BOOKING_CREATED", calcom_booking())
    moved = calcom_booking(
        uid="bk_9Zx1",
        start="2026-12-01T16:00:00.000Z",
        rescheduleUid="bk_7Hq2",
        rescheduleStartTime="2026-11-30T21:00:00.000Z",
    )
    assert calcom(running_bot, "BOOKING_RESCHEDULED", moved).status_code == 200
    assert calcom(running_bot, "BOOKING_RESCHEDULED", moved).json()["created"] is False
    assert appointments(running_bot) == [
        ("rescheduled", START_UTC, "bk_7Hq2"),
        ("booked", datetime(2026, 12, 1, 16, 0, tzinfo=UTC), "bk_9Zx1"),
    ]


def test_a_calcom_cancellation_and_no_show(running_bot, clock):
    calcom(running_bot, "BOOKING_CREATED", calcom_booking())
    calcom(
        running_bot,
        "BOOKING_CREATED",
        calcom_booking(uid="bk_other", start="2026-12-02T16:00:00.000Z", email="lee@example.com", phone=None),
    )
    cancelled = calcom(
        running_bot,
        "BOOKING_CANCELLED",
        calcom_booking(uid="bk_other", status="CANCELLED", cancellationReason="travelling"),
    )
    assert cancelled.json()["result"] == "cancelled"
    clock.advance(START_UTC - clock.now() + timedelta(minutes=30))
    no_show = {
        "message": "x_marked_as_no_show",
        "bookingUid": "bk_7Hq2",
        "bookingId": 412,
        "attendees": [{"email": "sam.park@example.com", "noShow": True}],
    }
    assert calcom(running_bot, "BOOKING_NO_SHOW_UPDATED", no_show).json()["result"] == "no_show"
    assert [status for status, _, _ in appointments(running_bot)] == ["no_show", "cancelled"]


@pytest.mark.parametrize("tamper", [{"secret": "wrong"}, {"signature": ""}, {"signature": "00" * 32}])
def test_a_calcom_request_not_signed_with_the_secret_is_refused(running_bot, tamper):
    answer = calcom(running_bot, "BOOKING_CREATED", calcom_booking(), **tamper)
    assert answer.status_code == 403 and answer.json()["error"]
    assert appointments(running_bot) == []


def test_calcom_without_a_secret_refuses_with_a_reason(running_bot):
    closed = running_bot.restarted_with(calcom_webhook_secret=None)
    answer = calcom(running_bot, "BOOKING_CREATED", calcom_booking(), http=closed)
    assert answer.status_code == 503 and "CALCOM_WEBHOOK_SECRET" in answer.json()["error"]
