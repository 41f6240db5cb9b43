"""Staff notes never reach patients: a note typed in every modal that takes one appears in no SMS or email.

The team types notes through the real Bolt app (signed Slack requests, the Slack stand-in
behind); every text and email the bot then sends goes through the real Twilio and SendGrid
clients to their stand-ins, where the test reads them.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.app import build_services
from bot.channels.sendgrid_email import SendGridEmailSender
from bot.channels.twilio_sms import TwilioSmsSender
from bot.settings import Settings
from bot.slack.blocks import ActionId
from bot.standins.sendgrid_api import SendGridApiStandin
from bot.standins.twilio_api import TwilioApiStandin
from bot.store.models import Appointment, CallTask
from bot.usecases.dispatch import Dispatcher
from tests.handlers.conftest import CARD_TS, new_call_task, new_lead

ACCOUNT_SID = "AC" + "1" * 32
AUTH_TOKEN = "notes-test-token"
SENDGRID_KEY = "SG.notes-test"
CLINIC = "+13125550100"
#: What each modal's notes field is given: words a patient must never read.
NOTES = {
    "log outcome (call back)": "STAFF-NOTE-1 sounded annoyed, owes $340",
    "log outcome (voicemail)": "STAFF-NOTE-2 wife answered, did not want to talk",
    "book": "STAFF-NOTE-3 VIP, history of no-shows",
}


@pytest.fixture
def twilio():
    with TwilioApiStandin(ACCOUNT_SID, AUTH_TOKEN) as standin:
        yield standin


@pytest.fixture
def sendgrid():
    with SendGridApiStandin(SENDGRID_KEY) as standin:
        yield standin


@pytest.fixture
def services(engine, clock, business_file: Path, twilio, sendgrid):
    """The services with the real vendor clients, pointed at the stand-ins (not the in-memory fakes)."""
    settings = Settings(
        DATABASE_URL=str(engine.url), FOLLOWUP_BUSINESS=business_file, PUBLIC_BASE_URL="https://followup.example.com"
    )
    sms = TwilioSmsSender(ACCOUNT_SID, AUTH_TOKEN, from_number=CLINIC, api_url=twilio.url, timeout=2.0)
    email = SendGridEmailSender(
        SENDGRID_KEY,
        "hello@lakeside.example",
        "Lakeside Chiropractic",
        "reply@inbound.lakeside.example",
        api_url=sendgrid.url,
        timeout=2.0,
    )
    return build_services(settings, engine=engine, clock=clock, sms=sms, email=email, migrate=False)


def plain(value: str | None) -> dict:
    return {"type": "plain_text_input", "value": value}


def radio(value: str) -> dict:
    return {"type": "radio_buttons", "selected_option": {"text": {"type": "plain_text", "text": value}, "value": value}}


def moment(at) -> dict:
    return {"type": "datetimepicker", "selected_date_time": int(at.timestamp())}


def test_a_note_typed_in_every_modal_reaches_no_sms_or_email(workspace, services, clock, twilio, sendgrid):
    lead_id = new_lead(services)
    first_call = new_call_task(services, lead_id)

    workspace.click(ActionId.TASK_LOG_OUTCOME, first_call, thread_ts=CARD_TS)
    workspace.submit(
        workspace.opened_view(),
        {
            "outcome": radio("call_back"),
            "when": moment(clock.now() + timedelta(hours=2)),
            "notes": plain(NOTES["log outcome (call back)"]),
        },
    )
    with services.session_factory() as session:
        call_back = session.scalars(select(CallTask.id).where(CallTask.status == "open")).one()
    workspace.click(ActionId.TASK_LOG_OUTCOME, call_back, thread_ts=CARD_TS)
    workspace.submit(
        workspace.opened_view(),
        {
            "outcome": radio("left_voicemail"),
            "when": {"type": "datetimepicker"},
            "notes": plain(NOTES["log outcome (voicemail)"]),
        },
    )
    workspace.click(ActionId.LEAD_BOOKED, lead_id)
    visit = clock.now() + timedelta(days=3)
    workspace.submit(workspace.opened_view(), {"when": moment(visit), "notes": plain(NOTES["book"])})
    with services.session_factory() as session:
        assert session.scalars(select(Appointment.notes)).one() == NOTES["book"]  # kept for the team

    dispatcher = Dispatcher(services)
    dispatcher.run_due()
    while clock.now() < visit:
        clock.advance(timedelta(hours=1))
        dispatcher.run_due()

    emails = sendgrid.emails
    assert any("reminder" in (email.text or "").lower() for email in emails), "no reminder email went out"
    assert twilio.messages, "no text went out"
    sent = [message["body"] for message in twilio.messages] + [
        part for email in emails for part in (email.subject, email.text or "", email.html or "")
    ]
    for modal, note in NOTES.items():
        marker = note.split()[0]
        assert not [words for words in sent if marker in words], f"the note typed in {modal} reached the lead"
