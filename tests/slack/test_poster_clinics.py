"""With several clinics, each lead's card, thread and call tasks go to its own clinic's channel, and ping its
own on-call and admins: through the real WebClient and the Slack stand-in."""

from __future__ import annotations

import json

import pytest
from slack_sdk import WebClient

from bot.core.rules import LeadSignal
from bot.slack.poster import SlackPoster
from bot.standins.slack_api import SlackApiStandin
from bot.store.audit import SYSTEM
from bot.store.models import Lead
from bot.usecases.call_tasks import open_call_task
from bot.usecases.dispatch import Dispatcher
from bot.usecases.lead_actions import receive_message
from bot.usecases.leads import LeadInput, add_lead
from tests.fakes import WEB_FORM_CONSENT
from tests.support.clinics import (
    CHIRO_CHANNEL,
    CHIRO_ONCALL,
    DENTAL_CHANNEL,
    DENTAL_ONCALL,
    two_clinics,
)

BOT_TOKEN = "xoxb-test"
#: The deployment's own channel, which no clinic names: nothing of theirs may land there.
FALLBACK = "C0FALLBACK"


@pytest.fixture
def standin():
    with SlackApiStandin(BOT_TOKEN) as server:
        yield server


@pytest.fixture
def services(services, engine):
    """The deployment's services, serving the two clinics."""
    return two_clinics(services)


@pytest.fixture
def poster(services, standin) -> SlackPoster:
    client = WebClient(token=BOT_TOKEN, base_url=standin.url + "/api/", timeout=2)
    return SlackPoster(services, client, FALLBACK, "U0DEPLOYMENTONCALL")


def clinic_lead(services, slug: str, name: str, phone: str) -> int:
    data = LeadInput.parse({"name": name, "phone": phone, "message": "Any openings this week?", **WEB_FORM_CONSENT})
    with services.session_factory.begin() as session:
        return add_lead(
            session,
            data,
            business=services.business_of(slug),
            sequence=services.playbooks_of(slug).get(),
            now=services.clock.now(),
            actor=SYSTEM,
        ).lead_id


def shown(messages: list[dict]) -> str:
    return json.dumps(messages, ensure_ascii=False)


def test_each_clinics_cards_and_threads_go_to_its_own_channel(services, poster, standin, sms):
    chiro = clinic_lead(services, "chiro", "Chris Chiro", "+13125550142")
    dental = clinic_lead(services, "dental", "Dana Dental", "+13125550143")
    Dispatcher(services).run_due()

    poster.drain_once()

    in_chiro, in_dental = standin.messages(CHIRO_CHANNEL), standin.messages(DENTAL_CHANNEL)
    assert "Chris Chiro" in shown(in_chiro) and "Dana Dental" not in shown(in_chiro)
    assert "Dana Dental" in shown(in_dental) and "Chris Chiro" not in shown(in_dental)
    assert standin.messages(FALLBACK) == []
    with services.session_factory() as session:
        assert session.get(Lead, chiro).slack_channel == CHIRO_CHANNEL
        assert session.get(Lead, dental).slack_channel == DENTAL_CHANNEL
    # The first text of each is in its own card's thread.
    assert any(m.get("thread_ts") for m in in_chiro) and any(m.get("thread_ts") for m in in_dental)


def test_a_clinics_alerts_ping_its_own_on_call(services, poster, standin):
    chiro = clinic_lead(services, "chiro", "Chris Chiro", "+13125550142")
    dental = clinic_lead(services, "dental", "Dana Dental", "+13125550143")
    for lead_id in (chiro, dental):
        with services.session_factory.begin() as session:
            receive_message(
                session,
                services,
                session.get(Lead, lead_id),
                channel="sms",
                body="Yes please, call me",
                signal=LeadSignal.PLAIN,
                now=services.clock.now(),
            )

    poster.drain_once()

    in_chiro, in_dental = shown(standin.messages(CHIRO_CHANNEL)), shown(standin.messages(DENTAL_CHANNEL))
    assert f"<@{CHIRO_ONCALL}>" in in_chiro and DENTAL_ONCALL not in in_chiro
    assert f"<@{DENTAL_ONCALL}>" in in_dental and CHIRO_ONCALL not in in_dental
    assert "U0DEPLOYMENTONCALL" not in in_chiro + in_dental


def test_a_call_task_is_posted_in_its_clinics_channel(services, poster, standin):
    dental = clinic_lead(services, "dental", "Dana Dental", "+13125550143")
    with services.session_factory.begin() as session:
        task = open_call_task(
            session,
            services,
            session.get(Lead, dental),
            reason="asked a question",
            now=services.clock.now(),
            actor=SYSTEM,
        )
        task_id = task.id

    poster.drain_once()

    top_level = [m for m in standin.messages(DENTAL_CHANNEL) if not m.get("thread_ts")]
    # The card, and the call's own post where people act on it.
    assert len(top_level) == 2 and "Dana Dental" in shown(top_level[:1])
    assert str(task_id) in shown(top_level[1:]) and "asked a question" in shown(top_level[1:])
    assert standin.messages(CHIRO_CHANNEL) == [] and standin.messages(FALLBACK) == []
