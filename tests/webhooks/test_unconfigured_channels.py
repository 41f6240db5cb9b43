"""A channel a playbook uses but no provider is configured for: said loudly, and its touches wait."""

from __future__ import annotations

import logging
from dataclasses import replace

from sqlalchemy import select

from bot.app import assemble
from bot.settings import Settings
from bot.store.audit import Actor
from bot.store.models import OutboxEvent, Touch
from bot.store.outbox import Notice
from bot.usecases.dispatch import Dispatcher, release_waiting_touches
from bot.usecases.leads import LeadInput, take_in_lead
from tests.fakes import WEB_FORM_CONSENT
from tests.webhooks.conftest import LEAD_TOKEN

AUTH = {"Authorization": f"Bearer {LEAD_TOKEN}"}
DANA = {"name": "Dana Lee", "phone": "+13125550142", "email": "dana@example.com", **WEB_FORM_CONSENT}


def test_without_twilio_settings_texts_wait_with_the_reason_in_the_thread_and_go_out_after_a_restart(
    running_bot, twilio, sendgrid
):
    configured = running_bot.services
    services = replace(configured, sms=None)  # followup run started with no TWILIO_* settings

    lead_id = take_in_lead(services, LeadInput.parse(DANA), actor=Actor.lead(0)).lead_id
    Dispatcher(services).run_due()
    Dispatcher(services).run_due()

    assert twilio.messages == []
    with services.session_factory() as session:
        instant = session.scalars(select(Touch).where(Touch.lead_id == lead_id, Touch.step_id == "instant_sms")).one()
        assert instant.status == "scheduled"  # waiting, not failed for good
        assert instant.last_error.startswith("waiting: SMS is not configured (set TWILIO_ACCOUNT_SID")
        said = [
            e.payload["text"]
            for e in session.scalars(
                select(OutboxEvent).where(OutboxEvent.lead_id == lead_id, OutboxEvent.kind == Notice.DECISION)
            )
        ]
    assert said == [f"First text is {instant.last_error}"]  # once (as people know the step), however often it looks

    # Restarted with the settings.
    assert release_waiting_touches(configured) == 1
    running_bot.dispatch()

    assert [m["to"] for m in twilio.messages] == ["+13125550142"]
    with services.session_factory() as session:
        instant = session.get(Touch, instant.id)
        assert (instant.status, instant.last_error) == ("sent", None)


def test_followup_run_says_loudly_at_start_which_channel_is_not_configured(business_file, database_url, caplog):
    settings = Settings(
        DATABASE_URL=database_url,
        FOLLOWUP_BUSINESS=business_file,
        SENDGRID_API_KEY="SG.x",
        SENDGRID_FROM_EMAIL="hello@lakeside.example",
    )
    with caplog.at_level(logging.ERROR, logger="bot.app"):
        parts = assemble(settings)
    parts.services.session_factory.kw["bind"].dispose()
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR and r.name == "bot.app"]
    assert len(errors) == 1
    assert errors[0].startswith("SMS is not configured (set TWILIO_ACCOUNT_SID") and "default" in errors[0]
    assert "those touches wait" in errors[0]
