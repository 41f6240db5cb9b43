"""The web form and `/followup new` share one country rule: only numbers in the countries the business texts."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from bot.app import build_services
from bot.settings import Settings
from bot.store.models import Lead
from bot.usecases.leads import InvalidLead, LeadInput
from tests.webhooks.conftest import LEAD_TOKEN

AUTH = {"Authorization": f"Bearer {LEAD_TOKEN}"}


def test_a_web_lead_from_another_country_is_422_with_the_reason_and_nothing_is_texted(running_bot, twilio):
    answer = running_bot.http.post(
        "/webhooks/leads",
        json={"name": "Overseas", "phone": "+44 20 7946 0958", "email": "overseas@example.com"},
        headers=AUTH,
    )

    assert answer.status_code == 422
    [reason] = answer.json()["reasons"]
    assert reason.startswith("phone:") and "GB" in reason and "US" in reason and "FOLLOWUP_SMS_COUNTRIES" in reason
    with running_bot.services.session_factory() as session:
        assert session.scalar(select(func.count(Lead.id))) == 0
    assert twilio.messages == []


def test_a_web_lead_from_the_business_country_is_taken(running_bot):
    answer = running_bot.http.post("/webhooks/leads", json={"phone": "(312) 555-0142"}, headers=AUTH)

    assert answer.status_code == 201


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_served_countries_default_to_the_business_country_and_can_be_set(engine, business_file):
    own = build_services(
        Settings(DATABASE_URL=str(engine.url), FOLLOWUP_BUSINESS=business_file), engine=engine, migrate=False
    )
    several = build_services(
        Settings(DATABASE_URL=str(engine.url), FOLLOWUP_BUSINESS=business_file, FOLLOWUP_SMS_COUNTRIES="us, ca,GB"),
        engine=engine,
        migrate=False,
    )

    assert own.sms_countries == frozenset({"US"})
    assert several.sms_countries == frozenset({"US", "CA", "GB"})
    assert LeadInput.parse({"phone": "+44 20 7946 0958"}, sms_countries=several.sms_countries).phone == "+442079460958"
    with pytest.raises(InvalidLead):
        LeadInput.parse({"phone": "+44 20 7946 0958"}, sms_countries=own.sms_countries)
