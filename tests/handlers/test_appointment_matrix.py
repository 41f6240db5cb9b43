"""Issue 14's matrix: each change of an appointment's state, from each source that may make it, end to end.

One served app holds what production serves: the Slack route (signed Slack requests, the real Bolt
listeners) and the HTTP webhooks (Twilio and SendGrid replies, Calendly, Cal.com, the generic booking
webhook, each signed as its vendor signs). What the bot queues for Slack is posted by the real poster
into the Slack stand-in, where the test reads the lead's card and thread as the team sees them; texts
and emails go through the real Twilio and SendGrid clients to their stand-ins.

Every cell checks the contract the issue states for every change: the audit log has it, the lead's
thread says it, the card shows it; and then what that change owes the lead (a confirmation, reminders
started or stopped, the no-show playbook and a call, ...).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from slack_sdk import WebClient
from sqlalchemy import select

from bot.app import build_services
from bot.channels.sendgrid_email import SendGridEmailSender
from bot.channels.twilio_sms import TwilioSmsSender
from bot.settings import Settings
from bot.slack.blocks import ActionId
from bot.slack.limits import SlackLimits
from bot.slack.poster import SlackPoster
from bot.store.models import Appointment, AuditEntry, CallTask, Enrollment, Lead
from bot.usecases.dispatch import Dispatcher
from bot.web import create_web_app
from tests.conftest import TEST_BUSINESS
from tests.handlers.conftest import ADMIN, ALICE, BOT_TOKEN, LEADS, Workspace, valid_blocks
from tests.webhooks.conftest import (  # noqa: F401  (twilio and sendgrid are fixtures)
    ACCOUNT_SID,
    AUTH_TOKEN,
    BOOKING_TOKEN,
    CALCOM_SECRET,
    CALENDLY_KEY,
    CLINIC_NUMBER,
    INBOUND_TOKEN,
    LEAD_TOKEN,
    SENDGRID_KEY,
    sendgrid,
    twilio,
)
from tests.webhooks.test_calendar_webhooks import calcom, calcom_booking, calendly, calendly_invitee
from tests.webhooks.test_no_lead_forgotten import inbound_email, new_lead, text_in

DANA_PHONE, DANA_EMAIL = "+13125550142", "dana@example.com"
#: Monday Nov 30 2026, 3:00 PM in Chicago (the clinic); the test clock starts on Wednesday Nov 25.
VISIT = datetime(2026, 11, 30, 21, 0, tzinfo=UTC)
#: Where a move takes it: Tuesday Dec 1, 10:00 AM in Chicago.
MOVED = datetime(2026, 12, 1, 16, 0, tzinfo=UTC)
CALENDLY_EVENT = "https://api.calendly.com/scheduled_events/GBGBDCAADAEDCRZ2"
CALENDLY_FIRST = f"{CALENDLY_EVENT}/invitees/AAAAAAAAAAAAAAAA"
#: The clinic's own webhook secrets (its business's, read from the settings like a single business.yml's).
WEBHOOK_SECRETS = {
    "LEAD_WEBHOOK_TOKEN": LEAD_TOKEN,
    "BOOKING_WEBHOOK_TOKEN": BOOKING_TOKEN,
    "CALENDLY_WEBHOOK_SIGNING_KEY": CALENDLY_KEY,
    "CALCOM_WEBHOOK_SECRET": CALCOM_SECRET,
}
CALENDLY_MOVED = f"{CALENDLY_EVENT}/invitees/BBBBBBBBBBBBBBBB"


@pytest.fixture
def services(engine, clock, business_file: Path, twilio, sendgrid):  # noqa: F811  (twilio and sendgrid: fixtures)
    """The services with the real vendor clients pointed at the stand-ins; the dispatcher runs when woken."""
    # The business's webhook secrets are read with the services, as `followup run` reads them.
    settings = Settings(
        DATABASE_URL=str(engine.url),
        FOLLOWUP_BUSINESS=business_file,
        PUBLIC_BASE_URL="https://followup.example.com",
        **WEBHOOK_SECRETS,
    )
    sms = TwilioSmsSender(ACCOUNT_SID, AUTH_TOKEN, from_number=CLINIC_NUMBER, api_url=twilio.url, timeout=2.0)
    email = SendGridEmailSender(
        SENDGRID_KEY,
        "hello@lakeside.example",
        "Lakeside Chiropractic",
        "reply@inbound.lakeside.example",
        api_url=sendgrid.url,
        timeout=2.0,
    )
    built = build_services(settings, engine=engine, clock=clock, sms=sms, email=email, migrate=False)
    built.wakeups.connect(dispatcher=lambda: Dispatcher(built).run_due())
    return built


class FakeTime:
    """Monotonic seconds that pass only when slept: Slack's rate limits cost the tests no real time."""

    def __init__(self) -> None:
        self.now = 1000.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Clinic:
    """The served app as the team, the lead and the calendars meet it."""

    team: Workspace
    services: Any
    poster: SlackPoster
    url: str
    twilio: Any
    sendgrid: Any

    @property
    def http(self):  # noqa: ANN201 - the served app's httpx client, as the webhook helpers expect
        return self.team.http

    def caught_up(self) -> None:
        """Send what is due and post what is queued, as the scheduler and the poster do."""
        Dispatcher(self.services).run_due()
        while self.poster.drain_once(500):
            pass

    def card_ts(self, lead_id: int) -> str:
        self.caught_up()
        with self.services.session_factory() as session:
            lead = session.get(Lead, lead_id)
            assert lead is not None and lead.slack_ts, "the lead has no card in Slack"
            return lead.slack_ts

    def card(self, lead_id: int) -> str:
        """The lead's card as it stands in the channel now (text and blocks)."""
        ts = self.card_ts(lead_id)
        [card] = [m for m in self.team.slack.messages(LEADS) if m["ts"] == ts]
        valid_blocks(card["blocks"])
        return card["text"] + "\n" + json.dumps(card["blocks"])

    def thread(self, lead_id: int) -> list[str]:
        ts = self.card_ts(lead_id)
        return [m["text"] + "\n" + json.dumps(m.get("blocks") or []) for m in self.team.slack.thread(LEADS, ts)[1:]]

    def click(self, action: ActionId, value: int, lead_id: int):  # noqa: ANN201 - the Slack route's answer
        return self.team.click(str(action), value, message_ts=self.card_ts(lead_id))


@pytest.fixture
def clinic(workspace: Workspace, slack_server, services, slack, business_file: Path, twilio, sendgrid):  # noqa: F811 - twilio and sendgrid are the fixtures imported above
    """The Bolt app's route (mounted by the workspace fixture) and every webhook, served as one app."""
    http, current = slack_server
    url = str(http.base_url).rstrip("/")
    settings = Settings(
        DATABASE_URL=str(services.session_factory.kw["bind"].url),
        PUBLIC_BASE_URL=url,
        FOLLOWUP_BUSINESS=business_file,
        **WEBHOOK_SECRETS,
        SENDGRID_INBOUND_TOKEN=INBOUND_TOKEN,
        TWILIO_AUTH_TOKEN=AUTH_TOKEN,
    )
    current.app = create_web_app(services, settings, extra_routes=list(current.app.routes))
    client = WebClient(token=BOT_TOKEN, base_url=slack.url + "/api/", timeout=2)
    fake = FakeTime()
    poster = SlackPoster(
        services, client, LEADS, ALICE, admins=(ADMIN,), limits=SlackLimits(clock=fake.clock, sleep=fake.sleep)
    )
    yield Clinic(workspace, services, poster, url, twilio, sendgrid)
    current.app.state.web_engine.dispose()


# --- reading the store ----------------------------------------------------------------------------


def visits(clinic: Clinic, lead_id: int) -> list[tuple[str, datetime]]:
    with clinic.services.session_factory() as session:
        return [
            (a.status, a.start_at)
            for a in session.scalars(select(Appointment).where(Appointment.lead_id == lead_id).order_by(Appointment.id))
        ]


def ahead(clinic: Clinic, lead_id: int) -> int:
    with clinic.services.session_factory() as session:
        return session.scalars(
            select(Appointment.id).where(
                Appointment.lead_id == lead_id, Appointment.status.in_(("booked", "confirmed"))
            )
        ).one()


def sequences(clinic: Clinic, lead_id: int) -> list[tuple[str, str]]:
    with clinic.services.session_factory() as session:
        return [
            (e.sequence_name, e.state)
            for e in session.scalars(select(Enrollment).where(Enrollment.lead_id == lead_id).order_by(Enrollment.id))
        ]


def audited(clinic: Clinic, lead_id: int) -> list[str]:
    with clinic.services.session_factory() as session:
        return [a.action for a in session.scalars(select(AuditEntry).where(AuditEntry.lead_id == lead_id))]


def open_calls(clinic: Clinic, lead_id: int) -> list[CallTask]:
    with clinic.services.session_factory() as session:
        return list(session.scalars(select(CallTask).where(CallTask.lead_id == lead_id, CallTask.status == "open")))


def texts_to_dana(clinic: Clinic) -> list[str]:
    return [m["body"] for m in clinic.twilio.messages if m["to"] == DANA_PHONE]


def in_thread(clinic: Clinic, lead_id: int, words: str) -> bool:
    return any(words in entry for entry in clinic.thread(lead_id))


def a_lead(clinic: Clinic) -> int:
    """Dana, from the web form (agreeing to texts), with her card in the leads channel."""
    lead_id = new_lead(clinic)
    clinic.caught_up()
    return lead_id


# --- each source, as it makes each change ---------------------------------------------------------

Change = Callable[[Clinic, int], Any]


def moment(at: datetime) -> dict[str, Any]:
    return {"type": "datetimepicker", "selected_date_time": int(at.timestamp())}


def booking_webhook(clinic: Clinic, **fields: Any) -> Any:
    answer = clinic.http.post("/webhooks/booking", json=fields, headers={"Authorization": f"Bearer {BOOKING_TOKEN}"})
    assert answer.status_code in (200, 201), answer.text
    return answer


def book_by_log_outcome(clinic: Clinic, lead_id: int) -> None:
    assert text_in(clinic, clinic.twilio, "Do you take Blue Cross?") == 200
    [task] = open_calls(clinic, lead_id)
    clinic.click(ActionId.TASK_LOG_OUTCOME, task.id, lead_id)
    booked = {
        "type": "radio_buttons",
        "selected_option": {"text": {"type": "plain_text", "text": "Booked"}, "value": "booked"},
    }
    clinic.team.submit(clinic.team.opened_view(), {"outcome": booked, "when": moment(VISIT)})


def book_by_card(clinic: Clinic, lead_id: int) -> None:
    clinic.click(ActionId.LEAD_BOOKED, lead_id, lead_id)
    clinic.team.submit(clinic.team.opened_view(), {"when": moment(VISIT)})


def book_by_command(clinic: Clinic, lead_id: int) -> None:
    clinic.team.command(f"book {lead_id} 2026-11-30 15:00")
    assert "Booked" in clinic.team.last_answer() or "booked" in clinic.team.last_answer()


def book_by_calendly(clinic: Clinic, lead_id: int) -> None:
    assert calendly(clinic, "invitee.created", calendly_invitee(email=DANA_EMAIL, phone=DANA_PHONE)).status_code == 200


def book_by_calcom(clinic: Clinic, lead_id: int) -> None:
    assert calcom(clinic, "BOOKING_CREATED", calcom_booking(email=DANA_EMAIL, phone=DANA_PHONE)).status_code == 200


def book_by_webhook(clinic: Clinic, lead_id: int) -> None:
    booking_webhook(clinic, phone=DANA_PHONE, start=VISIT.isoformat(), external_id="visit-1")


def book_by_webhook_without_an_id(clinic: Clinic, lead_id: int) -> None:
    booking_webhook(clinic, email=DANA_EMAIL, start=VISIT.isoformat())


BOOK: dict[str, Change] = {
    "the Log outcome modal": book_by_log_outcome,
    "the card's Book button": book_by_card,
    "/followup book": book_by_command,
    "Calendly": book_by_calendly,
    "Cal.com": book_by_calcom,
    "the booking webhook (external_id)": book_by_webhook,
    "the booking webhook (same lead, same start)": book_by_webhook_without_an_id,
}
#: Sources that redeliver: the same booking twice is one booking.
REDELIVERED = (
    "Calendly",
    "Cal.com",
    "the booking webhook (external_id)",
    "the booking webhook (same lead, same start)",
)


def move_by_card(clinic: Clinic, lead_id: int) -> None:
    clinic.click(ActionId.APPOINTMENT_RESCHEDULE, ahead(clinic, lead_id), lead_id)
    clinic.team.submit(
        clinic.team.opened_view(),
        {
            "visit_date": {"type": "datepicker", "selected_date": "2026-12-01"},
            "visit_time": {"type": "timepicker", "selected_time": "10:00"},
        },
    )


def move_by_command(clinic: Clinic, lead_id: int) -> None:
    clinic.team.command(f"reschedule {lead_id} 2026-12-01 10:00")
    assert "Moved the visit of" in clinic.team.last_answer()


def move_by_calendly(clinic: Clinic, lead_id: int) -> None:
    # Calendly: a cancel marked rescheduled, and the new invitee pointing back at the old one.
    cancelled = {
        **calendly_invitee(email=DANA_EMAIL, phone=DANA_PHONE, status="canceled", rescheduled=True),
        "cancellation": {"canceled_by": "Dana Lee", "reason": None, "canceler_type": "invitee"},
    }
    moved = calendly_invitee(
        uri=CALENDLY_MOVED,
        start="2026-12-01T16:00:00.000000Z",
        old_invitee=CALENDLY_FIRST,
        email=DANA_EMAIL,
        phone=DANA_PHONE,
    )
    assert calendly(clinic, "invitee.canceled", cancelled).status_code == 200
    assert calendly(clinic, "invitee.created", moved).status_code == 200


def move_by_calcom(clinic: Clinic, lead_id: int) -> None:
    moved = calcom_booking(
        uid="bk_9Zx1",
        start="2026-12-01T16:00:00.000Z",
        rescheduleUid="bk_7Hq2",
        rescheduleStartTime="2026-11-30T21:00:00.000Z",
        email=DANA_EMAIL,
        phone=DANA_PHONE,
    )
    assert calcom(clinic, "BOOKING_RESCHEDULED", moved).status_code == 200


def move_by_webhook(clinic: Clinic, lead_id: int) -> None:
    booking_webhook(clinic, phone=DANA_PHONE, start=MOVED.isoformat(), external_id="visit-1")


#: (how it was booked, how it is moved): a calendar moves what it booked.
MOVE: dict[str, tuple[Change, Change]] = {
    "the card's Reschedule modal": (book_by_command, move_by_card),
    "/followup reschedule": (book_by_command, move_by_command),
    "Calendly": (book_by_calendly, move_by_calendly),
    "Cal.com": (book_by_calcom, move_by_calcom),
    "the booking webhook (same external_id, new start)": (book_by_webhook, move_by_webhook),
}


def cancel_by_card(clinic: Clinic, lead_id: int) -> None:
    clinic.click(ActionId.APPOINTMENT_CANCEL, ahead(clinic, lead_id), lead_id)  # after Slack's confirm dialog


def cancel_by_command(clinic: Clinic, lead_id: int) -> None:
    clinic.team.command(f"cancel {lead_id}")
    assert "Cancelled the visit" in clinic.team.last_answer()


def cancel_by_calendly(clinic: Clinic, lead_id: int) -> None:
    cancelled = {
        **calendly_invitee(email=DANA_EMAIL, phone=DANA_PHONE, status="canceled"),
        "cancellation": {"canceled_by": "Dana Lee", "reason": "feeling better", "canceler_type": "invitee"},
    }
    assert calendly(clinic, "invitee.canceled", cancelled).json()["result"] == "cancelled"


def cancel_by_calcom(clinic: Clinic, lead_id: int) -> None:
    cancelled = calcom_booking(
        status="CANCELLED", cancellationReason="feeling better", email=DANA_EMAIL, phone=DANA_PHONE
    )
    assert calcom(clinic, "BOOKING_CANCELLED", cancelled).json()["result"] == "cancelled"


CANCEL: dict[str, tuple[Change, Change]] = {
    "the card's Cancel button": (book_by_command, cancel_by_card),
    "/followup cancel": (book_by_command, cancel_by_command),
    "Calendly": (book_by_calendly, cancel_by_calendly),
    "Cal.com": (book_by_calcom, cancel_by_calcom),
}


def no_show_by_card(clinic: Clinic, lead_id: int) -> None:
    clinic.click(ActionId.APPOINTMENT_NO_SHOW, ahead(clinic, lead_id), lead_id)


def no_show_by_command(clinic: Clinic, lead_id: int) -> None:
    clinic.team.command(f"noshow {lead_id}")


def no_show_by_calendly(clinic: Clinic, lead_id: int) -> None:
    no_show = {
        **calendly_invitee(email=DANA_EMAIL, phone=DANA_PHONE),
        "no_show": {
            "uri": "https://api.calendly.com/invitee_no_shows/NS1",
            "created_at": "2026-11-30T22:00:00.000000Z",
        },
    }
    assert calendly(clinic, "invitee_no_show.created", no_show).json()["result"] == "no_show"


def no_show_by_calcom(clinic: Clinic, lead_id: int) -> None:
    no_show = {
        "message": "x_marked_as_no_show",
        "bookingUid": "bk_7Hq2",
        "bookingId": 412,
        "attendees": [{"email": DANA_EMAIL, "noShow": True}],
    }
    assert calcom(clinic, "BOOKING_NO_SHOW_UPDATED", no_show).json()["result"] == "no_show"


NO_SHOW: dict[str, tuple[Change, Change]] = {
    "the card's No-show button": (book_by_command, no_show_by_card),
    "/followup noshow": (book_by_command, no_show_by_command),
    "Calendly": (book_by_calendly, no_show_by_calendly),
    "Cal.com": (book_by_calcom, no_show_by_calcom),
}


def attended_by_card(clinic: Clinic, lead_id: int) -> None:
    clinic.click(ActionId.APPOINTMENT_ATTENDED, ahead(clinic, lead_id), lead_id)


def attended_by_command(clinic: Clinic, lead_id: int) -> None:
    clinic.team.command(f"attended {lead_id}")
    assert "attended the visit" in clinic.team.last_answer()


ATTENDED: dict[str, Change] = {
    "the card's Attended button": attended_by_card,
    "/followup attended": attended_by_command,
}

CONFIRM: dict[str, Change] = {
    "a text": lambda clinic, _: text_in(clinic, clinic.twilio, "YES"),
    "an email": lambda clinic, _: inbound_email(clinic, "Yes, confirmed. Thank you!\n\nDana"),
}
ASK_TO_MOVE: dict[str, Change] = {
    "a text asking to move": lambda clinic, _: text_in(clinic, clinic.twilio, "I need to move my appointment"),
    "a text asking to cancel": lambda clinic, _: text_in(clinic, clinic.twilio, "Please cancel, I'm feeling better"),
    "an email asking to move": lambda clinic, _: inbound_email(clinic, "Could we move it to another day?\n\nDana"),
}


def after_the_start(clinic: Clinic) -> None:
    clinic.services.clock.advance(VISIT - clinic.services.clock.now() + timedelta(hours=1))


# --- the matrix -----------------------------------------------------------------------------------


@pytest.mark.parametrize("source", BOOK)
def test_booked_from_each_source_confirms_to_the_lead_stops_sales_and_starts_reminders(clinic, source):
    lead_id = a_lead(clinic)
    BOOK[source](clinic, lead_id)
    if source in REDELIVERED:
        BOOK[source](clinic, lead_id)  # calendars redeliver: the same booking again changes nothing
    clinic.caught_up()

    assert visits(clinic, lead_id) == [("booked", VISIT)]
    assert "booked" in audited(clinic, lead_id)
    assert in_thread(clinic, lead_id, "Appointment booked for Monday, Nov 30 at 3:00 PM")
    assert ":calendar: Booked for" in clinic.card(lead_id)
    confirmations = [t for t in texts_to_dana(clinic) if "you're booked" in t]
    assert len(confirmations) == 1 and "Monday, Nov 30 at 3:00 PM" in confirmations[0]
    states = dict(sequences(clinic, lead_id))
    assert states["default"] == "stopped" and states["appointment_reminders"] == "active"
    assert open_calls(clinic, lead_id) == []  # nobody needs to call someone who booked


@pytest.mark.parametrize("source", CONFIRM)
def test_confirmed_by_the_leads_reply_shows_on_the_card_and_reminders_go_on(clinic, source):
    lead_id = a_lead(clinic)
    book_by_command(clinic, lead_id)
    assert CONFIRM[source](clinic, lead_id) == 200
    assert visits(clinic, lead_id) == [("confirmed", VISIT)]
    assert "appointment_confirmed" in audited(clinic, lead_id)
    assert in_thread(clinic, lead_id, "confirmed by the lead")
    assert ":white_check_mark: Confirmed for" in clinic.card(lead_id)
    assert ("appointment_reminders", "active") in sequences(clinic, lead_id)


@pytest.mark.parametrize("source", ASK_TO_MOVE)
def test_asked_by_reply_to_move_or_cancel_pauses_reminders_and_opens_a_call_never_a_silent_change(clinic, source):
    lead_id = a_lead(clinic)
    book_by_command(clinic, lead_id)
    assert ASK_TO_MOVE[source](clinic, lead_id) == 200
    assert visits(clinic, lead_id) == [("booked", VISIT)]
    assert "appointment_change_asked" in audited(clinic, lead_id)
    assert in_thread(clinic, lead_id, "reminders paused; nothing is changed until someone calls")
    assert [t.reason for t in open_calls(clinic, lead_id)] == ["wants to reschedule"]
    assert ("appointment_reminders", "paused") in sequences(clinic, lead_id)
    assert ":calendar: Booked for" in clinic.card(lead_id)


@pytest.mark.parametrize("source", MOVE)
def test_rescheduled_from_each_source_replaces_the_visit_confirms_the_new_time_and_moves_the_reminders(clinic, source):
    lead_id = a_lead(clinic)
    booked_by, moved_by = MOVE[source]
    booked_by(clinic, lead_id)
    clinic.caught_up()
    moved_by(clinic, lead_id)
    clinic.caught_up()

    assert visits(clinic, lead_id) == [("rescheduled", VISIT), ("booked", MOVED)]
    assert "appointment_rescheduled" in audited(clinic, lead_id)
    assert in_thread(clinic, lead_id, "Tuesday, Dec 1 at 10:00 AM")
    card = clinic.card(lead_id)
    assert ":calendar: Booked for" in card and "Dec 1" in card
    assert any("you're booked" in t and "Tuesday, Dec 1 at 10:00 AM" in t for t in texts_to_dana(clinic))
    reminders = [state for name, state in sequences(clinic, lead_id) if name == "appointment_reminders"]
    assert reminders == ["stopped", "active"]


@pytest.mark.parametrize("source", CANCEL)
def test_cancelled_from_each_source_stops_reminders_and_offers_rebook_or_back_to_follow_up(clinic, source):
    lead_id = a_lead(clinic)
    booked_by, cancelled_by = CANCEL[source]
    booked_by(clinic, lead_id)
    clinic.caught_up()
    cancelled_by(clinic, lead_id)

    assert visits(clinic, lead_id) == [("cancelled", VISIT)]
    assert "appointment_cancelled" in audited(clinic, lead_id)
    assert in_thread(clinic, lead_id, "Appointment Monday, Nov 30 at 3:00 PM cancelled by")
    card = clinic.card(lead_id)
    assert ":x: Cancelled" in card
    assert '"Rebook"' in card and '"Back to follow-up"' in card
    assert str(ActionId.LEAD_BOOKED) in card and str(ActionId.LEAD_BACK_TO_FOLLOW_UP) in card
    assert [state for _, state in sequences(clinic, lead_id) if state == "active"] == []  # not silently back in sales


@pytest.mark.parametrize("source", NO_SHOW)
def test_a_no_show_from_each_source_starts_we_missed_you_and_a_call(clinic, source):
    lead_id = a_lead(clinic)
    booked_by, marked_by = NO_SHOW[source]
    booked_by(clinic, lead_id)
    clinic.caught_up()
    after_the_start(clinic)
    marked_by(clinic, lead_id)

    assert visits(clinic, lead_id) == [("no_show", VISIT)]
    assert "appointment_no_show" in audited(clinic, lead_id)
    assert in_thread(clinic, lead_id, "No-show for the visit Monday, Nov 30 at 3:00 PM")
    assert ":ghost: No-show" in clinic.card(lead_id)
    assert [t.reason for t in open_calls(clinic, lead_id)] == ["missed the visit"]
    assert ("no_show", "active") in sequences(clinic, lead_id)
    clinic.services.clock.advance(timedelta(minutes=31))
    clinic.caught_up()
    assert any("we missed you at Lakeside Chiropractic" in t for t in texts_to_dana(clinic))


@pytest.mark.parametrize("source", ATTENDED)
def test_attended_from_each_source_ends_the_reminders_and_says_so(clinic, source):
    lead_id = a_lead(clinic)
    book_by_command(clinic, lead_id)
    clinic.caught_up()
    after_the_start(clinic)
    ATTENDED[source](clinic, lead_id)

    assert visits(clinic, lead_id) == [("attended", VISIT)]
    assert "appointment_attended" in audited(clinic, lead_id)
    assert in_thread(clinic, lead_id, "Attended the visit Monday, Nov 30 at 3:00 PM")
    assert ":tada: Attended" in clinic.card(lead_id)
    states = sequences(clinic, lead_id)
    assert [state for name, state in states if name == "appointment_reminders"] in (["stopped"], ["completed"])
    assert "after_visit" not in dict(states)  # off unless the business turns it on


@pytest.mark.parametrize("action", [ActionId.APPOINTMENT_ATTENDED, ActionId.APPOINTMENT_NO_SHOW])
def test_before_the_start_time_the_card_offers_neither_attended_nor_no_show_and_a_click_changes_nothing(clinic, action):
    lead_id = a_lead(clinic)
    book_by_command(clinic, lead_id)
    card = clinic.card(lead_id)
    assert str(ActionId.APPOINTMENT_RESCHEDULE) in card and str(action) not in card
    clinic.click(action, ahead(clinic, lead_id), lead_id)  # an old card, or a hand-made request
    assert "has not started yet" in clinic.team.ephemerals_to(ALICE)[-1]
    assert visits(clinic, lead_id) == [("booked", VISIT)]
    after_the_start(clinic)
    Dispatcher(clinic.services).run_due()
    from bot.usecases.appointments import announce_started_visits

    with clinic.services.session_factory.begin() as session:
        announce_started_visits(session, clinic.services, now=clinic.services.clock.now())
    assert str(action) in clinic.card(lead_id)  # the card is refreshed once the visit has started


@pytest.fixture
def after_visit_on(business_file: Path) -> str:
    """The business file turning the after-visit playbook on (read when the bot starts)."""
    review = "https://g.page/r/lakeside/review"
    business_file.write_text(TEST_BUSINESS + f"review_link: {review}\nafter_visit: true\n")
    return review


def test_attended_starts_the_after_visit_thank_you_with_the_review_link_when_the_business_turns_it_on(
    after_visit_on, clinic
):
    lead_id = a_lead(clinic)
    book_by_command(clinic, lead_id)
    clinic.caught_up()
    after_the_start(clinic)
    attended_by_card(clinic, lead_id)
    assert in_thread(clinic, lead_id, "The after-visit thank-you starts.")
    clinic.services.clock.advance(timedelta(hours=2, minutes=1))
    clinic.caught_up()
    [thanks] = [t for t in texts_to_dana(clinic) if t.startswith("Thanks for coming in today")]
    assert after_visit_on in thanks


def test_stats_and_app_home_count_the_changes_made_through_the_routes(clinic):
    """Show rate, no-show rate, cancellations and reschedules, from visits changed by Slack and the calendars."""
    leads = []
    for n in range(4):
        lead_id = new_lead(clinic, name=f"Lead {n}", phone=f"+1312555030{n}", email=f"lead{n}@example.com")
        leads.append(lead_id)
        booking_webhook(
            clinic, lead_id=lead_id, start=(VISIT + timedelta(minutes=n)).isoformat(), external_id=f"visit-{n}"
        )
    clinic.caught_up()
    booking_webhook(clinic, lead_id=leads[2], start=(VISIT + timedelta(days=5)).isoformat(), external_id="visit-2")
    clinic.team.command(f"cancel {leads[3]}")
    after_the_start(clinic)
    clinic.team.command(f"attended {leads[0]}")
    clinic.click(ActionId.APPOINTMENT_NO_SHOW, ahead(clinic, leads[1]), leads[1])

    clinic.team.command("stats 7d")
    said = clinic.team.last_answer()
    for part in (
        "*Show rate*\\n50% (1 of 2)",
        "*No-show rate*\\n50% (1 of 2)",
        "*Cancellations*\\n1",
        "*Reschedules*\\n1",
    ):
        assert part in said
    clinic.team.event(
        {"type": "app_home_opened", "user": ALICE, "channel": "D0HOME", "tab": "home", "event_ts": "1764083000.000100"}
    )
    home = json.dumps(clinic.team.slack.home_views[ALICE])
    assert "Show rate" in home and "50% (1 of 2)" in home and "Reschedules" in home


#: Thursday Dec 24 2026, 10:00 AM in Chicago: a closed date in the business file.
CHRISTMAS_EVE = datetime(2026, 12, 24, 16, 0, tzinfo=UTC)
CLOSED = "Thu Dec 24 is a closed day (closed date)"


def closed_by_log_outcome(clinic: Clinic, lead_id: int) -> str:
    assert text_in(clinic, clinic.twilio, "Do you take Blue Cross?") == 200
    [task] = open_calls(clinic, lead_id)
    clinic.click(ActionId.TASK_LOG_OUTCOME, task.id, lead_id)
    booked = {
        "type": "radio_buttons",
        "selected_option": {"text": {"type": "plain_text", "text": "Booked"}, "value": "booked"},
    }
    clinic.team.submit(clinic.team.opened_view(), {"outcome": booked, "when": moment(CHRISTMAS_EVE)})
    return clinic.team.ephemerals_to(ALICE)[-1]


def closed_by_card(clinic: Clinic, lead_id: int) -> str:
    clinic.click(ActionId.LEAD_BOOKED, lead_id, lead_id)
    warned = clinic.team.submit(clinic.team.opened_view(), {"when": moment(CHRISTMAS_EVE)}).json()
    assert visits(clinic, lead_id) == []  # the modal warns first; the second submit books
    clinic.team.submit(warned["view"], {"when": moment(CHRISTMAS_EVE)})
    return json.dumps(warned["view"])


def closed_by_command(clinic: Clinic, lead_id: int) -> str:
    clinic.team.command(f"book {lead_id} 2026-12-24 10:00")
    return clinic.team.last_answer()


def closed_by_webhook(clinic: Clinic, lead_id: int) -> str:
    return json.dumps(booking_webhook(clinic, lead_id=lead_id, start=CHRISTMAS_EVE.isoformat()).json()["warnings"])


def closed_by_calendly(clinic: Clinic, lead_id: int) -> str:
    calendly(
        clinic,
        "invitee.created",
        calendly_invitee(email=DANA_EMAIL, phone=DANA_PHONE, start="2026-12-24T16:00:00.000000Z"),
    )
    # Nobody on the team chose it: the on-call person is told in the thread.
    return "\n".join(e for e in clinic.thread(lead_id) if f"<@{ALICE}>" in e)


def closed_by_calcom(clinic: Clinic, lead_id: int) -> str:
    calcom(
        clinic, "BOOKING_CREATED", calcom_booking(email=DANA_EMAIL, phone=DANA_PHONE, start="2026-12-24T16:00:00.000Z")
    )
    return "\n".join(e for e in clinic.thread(lead_id) if f"<@{ALICE}>" in e)


CLOSED_DAY: dict[str, Callable[[Clinic, int], str]] = {
    "the Log outcome modal": closed_by_log_outcome,
    "the card's Book button": closed_by_card,
    "/followup book": closed_by_command,
    "the booking webhook": closed_by_webhook,
    "Calendly": closed_by_calendly,
    "Cal.com": closed_by_calcom,
}


@pytest.mark.parametrize("source", CLOSED_DAY)
def test_a_visit_booked_on_a_closed_day_from_each_source_is_kept_and_whoever_booked_is_warned(clinic, source):
    lead_id = a_lead(clinic)
    seen = CLOSED_DAY[source](clinic, lead_id)
    assert CLOSED in seen
    assert visits(clinic, lead_id) == [("booked", CHRISTMAS_EVE)]
    assert in_thread(clinic, lead_id, f":warning: {CLOSED}")


def test_the_cards_cancel_button_asks_for_confirmation_before_anything_changes(clinic):
    lead_id = a_lead(clinic)
    book_by_command(clinic, lead_id)
    clinic.card(lead_id)
    [card] = [m for m in clinic.team.slack.messages(LEADS) if m["ts"] == clinic.card_ts(lead_id)]
    [cancel] = [
        element
        for block in card["blocks"]
        if block["type"] == "actions"
        for element in block["elements"]
        if element.get("action_id") == str(ActionId.APPOINTMENT_CANCEL)
    ]
    assert cancel["confirm"]["title"]["text"] == "Cancel the visit?"
    assert cancel["confirm"]["confirm"]["text"] == "Cancel visit"


@pytest.mark.parametrize(
    ("start", "warning"),
    [
        ("2026-11-26T10:00:00-06:00", "Thu Nov 26 is a closed day (Thanksgiving Day)"),  # a holiday of closed.holidays
        ("2026-11-29T10:00:00-06:00", "Sun Nov 29 is not an opening day (Mon-Sat 08:00-20:00)"),
    ],
)
def test_a_visit_booked_on_a_holiday_or_a_day_the_business_does_not_open_is_kept_with_its_warning(
    clinic, start, warning
):
    lead_id = a_lead(clinic)
    assert booking_webhook(clinic, lead_id=lead_id, start=start).json()["warnings"] == [warning]
    assert [status for status, _ in visits(clinic, lead_id)] == ["booked"]
    assert in_thread(clinic, lead_id, f":warning: {warning}")
