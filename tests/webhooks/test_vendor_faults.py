"""Vendor trouble delays touches but never loses or doubles one, and never beats a STOP."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

from sqlalchemy import select

from bot.store.models import Lead, OutboxEvent, Touch
from tests.fakes import WEB_FORM_CONSENT
from tests.webhooks.conftest import CLINIC_NUMBER, LEAD_TOKEN

DANA_PHONE = "+13125550142"


def new_lead(bot) -> int:
    return bot.http.post(
        "/webhooks/leads",
        json={"name": "Dana Lee", "phone": DANA_PHONE, **WEB_FORM_CONSENT},
        headers={"Authorization": f"Bearer {LEAD_TOKEN}"},
    ).json()["lead_id"]


def first_touch(bot, lead_id: int) -> Touch:
    with bot.services.session_factory() as session:
        return session.scalars(select(Touch).where(Touch.lead_id == lead_id).order_by(Touch.position)).first()


def test_a_rate_limit_delays_the_text_by_retry_after_and_it_goes_out_once(running_bot, twilio, clock):
    twilio.fail_next("messages.create", 429, retry_after=120)
    lead_id = new_lead(running_bot)
    touch = first_touch(running_bot, lead_id)
    assert touch.status == "scheduled" and touch.next_attempt_at >= clock.now() + timedelta(seconds=120)
    assert twilio.messages == []
    clock.advance(timedelta(minutes=3))
    running_bot.dispatch()
    running_bot.dispatch()
    assert len(twilio.messages) == 1 and first_touch(running_bot, lead_id).status == "sent"


def test_server_errors_retry_with_backoff_then_fail_visibly(running_bot, twilio, clock):
    twilio.fail_next("messages.create", 500, times=10)
    lead_id = new_lead(running_bot)
    for _ in range(8):
        clock.advance(timedelta(hours=1))
        running_bot.dispatch()
    touch = first_touch(running_bot, lead_id)
    assert touch.status == "failed" and touch.attempts == 5
    with running_bot.services.session_factory() as session:
        kinds = {e.kind for e in session.scalars(select(OutboxEvent).where(OutboxEvent.lead_id == lead_id))}
    assert "touch_failed" in kinds


def test_a_timeout_after_sending_is_flagged_for_a_person_never_resent(running_bot, twilio, clock):
    twilio.fail_next("messages.create", delay=2.0)  # longer than the sender's 1 s timeout
    lead_id = new_lead(running_bot)
    touch = first_touch(running_bot, lead_id)
    assert touch.status == "unknown"
    clock.advance(timedelta(hours=1))
    running_bot.dispatch()
    time.sleep(2.2)  # let the slow answer land at the stand-in
    assert len(twilio.messages) <= 1
    with running_bot.services.session_factory() as session:
        assert session.scalars(select(OutboxEvent).where(OutboxEvent.kind == "needs_person")).first() is not None


def test_a_refused_connection_is_retried_later(running_bot, twilio, clock):
    twilio.fail_next("messages.create", drop=True)
    lead_id = new_lead(running_bot)
    assert first_touch(running_bot, lead_id).status in ("scheduled", "unknown")


def test_a_stop_arriving_while_a_text_is_being_sent_waits_and_nothing_follows(running_bot, twilio, clock):
    lead_id = new_lead(running_bot)
    clock.advance(timedelta(days=1, minutes=1))  # the day-1 check-in falls due
    twilio.fail_next("messages.create", delay=0.6)  # a slow, successful send
    sender = threading.Thread(target=running_bot.dispatch)
    sender.start()
    time.sleep(0.2)  # the day-1 text is on its way to Twilio now
    stop_status = twilio.inbound_sms(f"{running_bot.url}/webhooks/twilio/sms", DANA_PHONE, "STOP", to=CLINIC_NUMBER)
    sender.join()
    assert stop_status == 200
    sent = len(twilio.messages)
    for _ in range(10):
        clock.advance(timedelta(days=1))
        running_bot.dispatch()
    assert len(twilio.messages) == sent <= 2
    with running_bot.services.session_factory() as session:
        assert session.get(Lead, lead_id).stage == "opted_out"
        pending = session.scalars(select(Touch).where(Touch.lead_id == lead_id, Touch.status == "scheduled")).all()
        assert pending == []
