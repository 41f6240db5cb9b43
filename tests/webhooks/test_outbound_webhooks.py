"""Outbound webhooks: the clinic's CRM hears of lead events, signed, in order per lead, retried, never lost."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from pydantic import ValidationError
from sqlalchemy import select

from bot.app import build_services
from bot.channels.webhook_delivery import BACKOFF, WebhookDeliverer, verify
from bot.settings import Settings
from bot.store.audit import Actor
from bot.store.models import Lead, OutboundWebhook, OutboxEvent
from bot.store.outbox import Notice
from bot.usecases.forget import forget_lead
from bot.usecases.lead_actions import stop_lead
from tests.webhooks.conftest import BOOKING_TOKEN, CLINIC_NUMBER, LEAD_TOKEN

SECRET = "crm-shared-secret-0123456789"
DANA = {"name": "Dana Lee", "phone": "+13125550142", "email": "dana@example.com"}


class Receiver:
    """A CRM's webhook endpoint on loopback: checks each post's signature as the README tells receivers to."""

    def __init__(self):
        self.posts: list[dict] = []
        self.refuse_next = 0  # answer 503 to this many posts first
        self.bad_signatures = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if not verify(SECRET, body, self.headers.get("Followup-Signature", ""), now=time.time()):
                    receiver.bad_signatures += 1
                    self.send_response(401)
                elif receiver.refuse_next > 0:
                    receiver.refuse_next -= 1
                    self.send_response(503)
                else:
                    receiver.posts.append({"headers": dict(self.headers), "body": json.loads(body)})
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args):  # keep the test output clean
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/followup"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def events(self) -> list[str]:
        return [post["body"]["event"] for post in self.posts]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    crm = Receiver()
    yield crm
    crm.close()


@pytest.fixture
def bot_settings(bot_settings: Settings, receiver: Receiver) -> Settings:
    return bot_settings.model_copy(update={"webhook_url": receiver.url, "webhook_secret": SECRET})


@pytest.fixture
def deliverer(running_bot):
    sender = WebhookDeliverer(running_bot.services, secret=SECRET, max_attempts=3)
    yield sender
    sender.close()


def new_lead(bot) -> int:
    answer = bot.http.post("/webhooks/leads", json=DANA, headers={"Authorization": f"Bearer {LEAD_TOKEN}"})
    assert answer.status_code == 201, answer.text
    return answer.json()["lead_id"]


def text_in(bot, twilio, body: str) -> None:
    assert twilio.inbound_sms(f"{bot.url}/webhooks/twilio/sms", DANA["phone"], body, to=CLINIC_NUMBER) == 200


def test_a_new_lead_reaches_the_crm_signed_with_its_contact_and_stage(running_bot, receiver, deliverer):
    lead_id = new_lead(running_bot)
    assert deliverer.deliver_once().delivered == 1
    [post] = receiver.posts
    assert receiver.bad_signatures == 0
    assert post["headers"]["Followup-Event"] == "lead.created"
    assert post["headers"]["Followup-Delivery"] == str(post["body"]["id"])
    lead = post["body"]["lead"]
    assert (lead["id"], lead["name"], lead["phone"], lead["email"]) == (
        lead_id,
        "Dana Lee",
        "+13125550142",
        "dana@example.com",
    )
    assert set(post["body"]["details"]) == {"source"}
    assert deliverer.deliver_once().delivered == 0  # taken once, never posted again


def test_replies_bookings_and_opt_outs_arrive_in_the_order_they_happened(running_bot, twilio, receiver, deliverer):
    new_lead(running_bot)
    text_in(running_bot, twilio, "ok thanks, I'll check my calendar")
    booked = running_bot.http.post(
        "/webhooks/booking",
        json={"phone": DANA["phone"], "start": "2026-11-30T10:00:00-06:00"},
        headers={"Authorization": f"Bearer {BOOKING_TOKEN}"},
    )
    assert booked.status_code == 201
    text_in(running_bot, twilio, "STOP")
    deliverer.deliver_once()
    # STOP is a message from the lead too: the CRM hears what was written, then what it did.
    assert receiver.events() == ["lead.created", "lead.replied", "lead.booked", "lead.replied", "lead.opted_out"]
    replied = receiver.posts[1]["body"]
    assert replied["details"]["body"] == "ok thanks, I'll check my calendar"
    assert receiver.posts[2]["body"]["lead"]["appointment"]["start_at"].startswith("2026-11-30T16:00")
    assert receiver.posts[3]["body"]["details"]["reply_class"] == "opt_out"
    assert receiver.posts[4]["body"]["details"] == {"channel": "sms"}
    assert receiver.posts[4]["body"]["lead"]["sms_opted_out_at"] is not None


def test_a_lead_closed_by_the_team_is_reported_lost(running_bot, receiver, deliverer, clock):
    lead_id = new_lead(running_bot)
    with running_bot.services.session_factory.begin() as session:
        stop_lead(
            session,
            running_bot.services,
            session.get(Lead, lead_id),
            now=clock.now(),
            actor=Actor.slack_user("U0FRONT"),
        )
    deliverer.deliver_once()
    assert receiver.events() == ["lead.created", "lead.lost"]
    assert receiver.posts[1]["body"]["lead"]["stage"] == "lost"


def test_a_receiver_that_is_down_gets_every_event_later_in_order(running_bot, twilio, receiver, deliverer, clock):
    new_lead(running_bot)
    text_in(running_bot, twilio, "ok thanks, I'll check my calendar")
    receiver.refuse_next = 1
    report = deliverer.deliver_once()
    # The first event was refused; the reply waits behind it instead of overtaking it.
    assert (report.delivered, report.retrying) == (0, 1) and receiver.posts == []
    assert deliverer.deliver_once().delivered == 0  # not due again before its backoff
    clock.advance(BACKOFF[0] + timedelta(seconds=1))
    assert deliverer.deliver_once().delivered == 2
    assert receiver.events() == ["lead.created", "lead.replied"]
    assert receiver.posts[0]["headers"]["Followup-Delivery"] == str(receiver.posts[0]["body"]["id"])


def test_an_event_given_up_after_the_last_retry_is_shown_to_the_team(running_bot, receiver, deliverer, clock):
    lead_id = new_lead(running_bot)
    receiver.refuse_next = 3
    for wait in BACKOFF[:3]:
        deliverer.deliver_once()
        clock.advance(wait + timedelta(seconds=1))
    with running_bot.services.session_factory() as session:
        event = session.scalars(select(OutboundWebhook)).one()
        assert event.failed_at is not None and event.attempts == 3 and event.last_error == "HTTP 503"
        [notice] = session.scalars(select(OutboxEvent).where(OutboxEvent.kind == Notice.NEEDS_PERSON)).all()
    assert notice.lead_id == lead_id
    assert "lead.created" in notice.payload["text"] and "127.0.0.1" in notice.payload["text"]
    assert receiver.posts == []


def test_queued_events_survive_a_restart(running_bot, bot_settings, receiver, engine, clock):
    new_lead(running_bot)
    # Another process (after a restart) builds its own services on the same database and delivers.
    restarted = build_services(bot_settings, engine=engine, clock=clock, migrate=False)
    sender = WebhookDeliverer(restarted, secret=SECRET)
    try:
        assert sender.deliver_once().delivered == 1
    finally:
        sender.close()
    assert receiver.events() == ["lead.created"]


def test_an_erased_lead_is_never_sent_and_the_crm_is_told_to_erase_it(running_bot, receiver, deliverer, clock):
    lead_id = new_lead(running_bot)
    with running_bot.services.session_factory.begin() as session:
        forget_lead(session, session.get(Lead, lead_id), now=clock.now(), actor=Actor.slack_user("U0ADMIN"))
    deliverer.deliver_once()
    assert receiver.events() == ["lead.erased"]
    assert receiver.posts[0]["body"]["lead"] == {"id": lead_id}
    with running_bot.services.session_factory() as session:
        stored = json.dumps([event.payload for event in session.scalars(select(OutboundWebhook))])
    assert "Dana" not in stored and "555" not in stored


def test_a_post_with_a_wrong_or_stale_signature_fails_verification():
    from bot.channels.webhook_delivery import signature

    body = b'{"event":"lead.created"}'
    now = time.time()
    assert verify(SECRET, body, signature(SECRET, body, int(now)), now=now)
    assert not verify("another-secret", body, signature(SECRET, body, int(now)), now=now)
    assert not verify(SECRET, body + b" ", signature(SECRET, body, int(now)), now=now)
    assert not verify(SECRET, body, signature(SECRET, body, int(now) - 3600), now=now)
    assert not verify(SECRET, body, "garbage", now=now)


def test_without_a_receiver_nothing_is_queued(services, clock):
    from bot.usecases.leads import LeadInput, add_lead

    with services.session_factory.begin() as session:
        add_lead(
            session,
            LeadInput.parse(DANA, default_region="US"),
            business=services.business,
            sequence=services.playbooks.get(),
            now=clock.now(),
            actor=Actor.slack_user("U0FRONT"),
        )
    with services.session_factory() as session:
        assert session.scalars(select(OutboundWebhook)).all() == []


def test_a_receiver_url_without_a_secret_is_refused_at_start():
    with pytest.raises(ValidationError, match="FOLLOWUP_WEBHOOK_SECRET"):
        Settings(FOLLOWUP_WEBHOOK_URL="https://crm.example.com/hook")
    with pytest.raises(ValidationError, match="not an http"):
        Settings(FOLLOWUP_WEBHOOK_URL="file:///etc/passwd", FOLLOWUP_WEBHOOK_SECRET=SECRET)
