"""One business.yml and today's environment: the deployment serves one business carrying those settings."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from bot.app import build_services, single_business
from bot.core.business import SINGLE_BUSINESS_SLUG
from bot.core.ports import EmailFrom, SmsFrom
from bot.settings import Settings
from bot.usecases.services import UnknownBusiness

ENVIRONMENT = {
    "SLACK_LEADS_CHANNEL": "C0LEADS",
    "SLACK_ONCALL": "U0ONCALL",
    "SLACK_ADMINS": "U0B, U0A",
    "TWILIO_FROM_NUMBER": "+13125550142",
    "TWILIO_MESSAGING_SERVICE_SID": "MG0123",
    "SENDGRID_FROM_EMAIL": "hello@lakeside.example",
    "SENDGRID_REPLY_TO": "desk@lakeside.example",
    "LEAD_WEBHOOK_TOKEN": "lead-secret",
    "BOOKING_WEBHOOK_TOKEN": "booking-secret",
    "CALENDLY_WEBHOOK_SIGNING_KEY": "calendly-key",
    "CALCOM_WEBHOOK_SECRET": "calcom-secret",
}


def test_the_environment_s_channel_senders_and_secrets_are_the_single_business_s(business_file: Path):
    business = single_business(Settings(_env_file=None, FOLLOWUP_BUSINESS=business_file, **ENVIRONMENT))
    assert business.slug == SINGLE_BUSINESS_SLUG
    assert (business.slack.channel, business.slack.on_call, business.slack.admins) == (
        "C0LEADS",
        "U0ONCALL",
        ("U0A", "U0B"),
    )
    assert business.sms == SmsFrom(number="+13125550142", messaging_service_sid="MG0123")
    assert business.email_sender == EmailFrom(
        address="hello@lakeside.example", name=business.name, reply_to="desk@lakeside.example"
    )
    assert business.webhooks.lead_token == "lead-secret"
    assert business.webhooks.booking_token == "booking-secret"
    assert business.webhooks.calendly_signing_key == "calendly-key"
    assert business.webhooks.calcom_secret == "calcom-secret"


def test_with_nothing_configured_the_business_has_no_channel_sender_or_secret(business_file: Path):
    business = single_business(Settings(_env_file=None, FOLLOWUP_BUSINESS=business_file))
    assert business.slack.channel == "" and business.sms == SmsFrom() and business.email_sender is None
    assert business.webhooks.lead_token == ""  # so the lead route stays closed, as it is today


def test_services_serve_exactly_the_one_business_and_know_no_other(business_file: Path, engine):
    settings = Settings(_env_file=None, FOLLOWUP_BUSINESS=business_file, DATABASE_URL=str(engine.url), **ENVIRONMENT)
    services = build_services(settings, engine=engine, migrate=False)
    assert services.businesses.only is services.business
    assert services.business_of(SINGLE_BUSINESS_SLUG) is services.business
    assert services.businesses.by_lead_token("lead-secret") is services.business
    assert services.businesses.by_channel("C0LEADS") is services.business
    assert services.playbooks_of(SINGLE_BUSINESS_SLUG) is services.playbooks
    assert services.renderer_of(SINGLE_BUSINESS_SLUG) is services.renderer
    with pytest.raises(UnknownBusiness):
        services.business_of("elsewhere")
    with pytest.raises(UnknownBusiness):
        services.renderer_of("elsewhere")


def test_services_rebuilt_for_another_business_serve_that_business(services):
    other = replace(services.business, slug="bright-dental", name="Bright Dental")
    rebuilt = replace(services, business=other)
    assert rebuilt.businesses.only is other
    assert rebuilt.business_of("bright-dental") is other
