"""Every way in that changes a lead takes it one way: its lock, then one transaction (bot.store.lead_locks.taking_lead).

A lead's life is driven through the real routes (a form, texts both ways, delivery reports, a
missed call, an email reply, SendGrid's events, a booking, a calendar's cancellation, the booking and
unsubscribe links) and the scheduler's work, with a watch on the database that notes any change to
the lead's state made without the lead's lock. That watch stays empty.
"""

from __future__ import annotations

import base64
import json
import re
from datetime import timedelta

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from bot.store.audit import CLI
from bot.store.models import Lead, Message
from bot.usecases.forget import forget
from tests.fakes import WEB_FORM_CONSENT
from tests.support.unlocked_changes import UnlockedChanges
from tests.webhooks.conftest import (
    AUTH_TOKEN,
    BOOKING_TOKEN,
    CLINIC_NUMBER,
    INBOUND_TOKEN,
    LEAD_TOKEN,
    SENDGRID_EVENT_KEY,
)

DANA = {"name": "Dana Lee", "phone": "+13125550142", "email": "dana@example.com", **WEB_FORM_CONSENT}


def signed_events(bot, key, events: list[dict]) -> int:
    body = json.dumps(events)
    timestamp = "1764080000"
    signature = base64.b64encode(key.sign((timestamp + body).encode(), ec.ECDSA(hashes.SHA256()))).decode()
    return bot.http.post(
        "/webhooks/sendgrid/events",
        content=body,
        headers={
            "Content-Type": "application/json",
            "X-Twilio-Email-Event-Webhook-Signature": signature,
            "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
        },
    ).status_code


def email_reply(bot, text: str) -> int:
    sender = "Dana Lee <dana@example.com>"
    fields = {
        "from": sender,
        "to": "reply@inbound.lakeside.example",
        "subject": "Re: Thanks for reaching out",
        "text": text,
        "headers": f"Message-ID: <{abs(hash(text))}@mail.example.com>\nFrom: {sender}\n",
        "envelope": json.dumps({"to": ["reply@inbound.lakeside.example"], "from": "dana@example.com"}),
        "SPF": "pass",
        "dkim": "{@example.com : pass}",
        "charsets": json.dumps({"text": "UTF-8"}),
    }
    return bot.http.post(
        f"/webhooks/sendgrid/inbound?token={INBOUND_TOKEN}", files={k: (None, v) for k, v in fields.items()}
    ).status_code


def missed_call(bot) -> int:
    url = f"{bot.url}/webhooks/twilio/voice"
    params = {"CallSid": "CA" + "4" * 32, "From": DANA["phone"], "To": CLINIC_NUMBER, "CallStatus": "no-answer"}
    signature = RequestValidator(AUTH_TOKEN).compute_signature(url, params)
    return bot.http.post("/webhooks/twilio/voice", data=params, headers={"X-Twilio-Signature": signature}).status_code


def test_nothing_that_reaches_a_lead_from_outside_changes_it_without_its_lock(running_bot, twilio, sendgrid, clock):
    key = SENDGRID_EVENT_KEY
    services = running_bot.services
    watch = UnlockedChanges(services)
    lead_auth = {"Authorization": f"Bearer {LEAD_TOKEN}"}

    # She fills in the form (the instant text goes), and the text is delivered.
    lead_id = running_bot.http.post("/webhooks/leads", json=DANA, headers=lead_auth).json()["lead_id"]
    [first_text] = twilio.messages
    assert twilio.deliver_status(first_text["sid"], "delivered") == 204
    # The same-day email goes and SendGrid reports it; she fills in the form again.
    clock.advance(timedelta(minutes=30))
    running_bot.dispatch()
    with services.session_factory() as session:
        email = session.scalars(select(Message).where(Message.channel == "email")).one()
    assert (
        signed_events(
            running_bot,
            key,
            [
                {
                    "email": DANA["email"],
                    "timestamp": 1764080000,
                    "event": "delivered",
                    "sg_event_id": "ev-delivered",
                    "sg_message_id": f"{email.provider_id}.filter0001.1.0",
                    "touch_id": str(email.touch_id),
                }
            ],
        )
        == 200
    )
    assert running_bot.http.post(
        "/webhooks/leads", json={**DANA, "message": "Any time Friday?"}, headers=lead_auth
    ).status_code in (200, 201)
    # She taps the booking link, texts back, calls and hangs up, answers by email.
    booking_link = re.search(r"/b/[\w-]+", sendgrid.emails[0].text or "")
    assert booking_link, "the same-day email carries the booking link"
    assert running_bot.http.get(booking_link.group(0), follow_redirects=False).status_code == 302
    assert (
        twilio.inbound_sms(
            f"{running_bot.url}/webhooks/twilio/sms", DANA["phone"], "what does it cost?", to=CLINIC_NUMBER
        )
        == 200
    )
    assert missed_call(running_bot) == 200
    assert email_reply(running_bot, "Could you call me tomorrow afternoon?") == 200
    # The team's follow-up runs; she books; the calendar later cancels; she unsubscribes from email.
    clock.advance(timedelta(days=1))
    running_bot.dispatch()
    booking = running_bot.http.post(
        "/webhooks/booking",
        json={"phone": DANA["phone"], "start": "2026-11-30T10:00:00-06:00"},
        headers={"Authorization": f"Bearer {BOOKING_TOKEN}"},
    )
    assert booking.status_code == 201, booking.text
    unsubscribe = re.search(r"/u/[\w-]+", sendgrid.emails[-1].text or "" if sendgrid.emails else "")
    assert unsubscribe, "an email carries its unsubscribe link"
    assert running_bot.http.post(unsubscribe.group(0)).status_code == 200
    # She texts STOP, and later asks for her data to be erased.
    assert twilio.inbound_sms(f"{running_bot.url}/webhooks/twilio/sms", DANA["phone"], "STOP", to=CLINIC_NUMBER) == 200
    forget(services, lead_id, actor=CLI)

    with services.session_factory() as session:
        assert session.get(Lead, lead_id).stage == "opted_out"
    assert watch.found == [], "\n".join(watch.found)
