"""Two clinics in one deployment, one Slack workspace, a channel each: through the real /slack/events route,
with signed requests, a member of one clinic's channel cannot see, list, show, claim or message the other's
leads by any route (buttons carrying its ids, slash commands, modals, thread replies, App Home)."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from bot.core.states import Stage
from bot.settings import Settings
from bot.slack.blocks import ActionId, ModalCallback
from bot.slack.modals import ModalOrigin
from bot.store.models import Appointment, AuditEntry, Lead
from tests.handlers.conftest import (
    BOT_TOKEN,
    CARD_TS,
    SIGNING_SECRET,
    lead_row,
    new_call_task,
    new_lead,
)
from tests.support.clinics import (
    CHIRO_ADMIN,
    CHIRO_CHANNEL,
    CHIRO_ONCALL,
    DENTAL_ADMIN,
    DENTAL_CHANNEL,
    LOUNGE,
    two_clinics,
)

CHIRO = CHIRO_CHANNEL  #: Lakeside Chiropractic's leads channel
DENTAL = DENTAL_CHANNEL  #: Bright Smile Dental's leads channel
CARLA = "U0CARLA"  #: front desk at the chiropractic clinic
DORA = "U0DORA"  #: front desk at the dental clinic
ADA = "U0ADA"  #: the agency's account manager, in both clinics' channels
DENTAL_CARD_TS = "1764082900.000200"


@pytest.fixture
def slack_settings(engine, business_file, slack) -> Settings:
    slack.join(CHIRO, CARLA, ADA, CHIRO_ADMIN, CHIRO_ONCALL, "U0BOT")
    slack.join(DENTAL, DORA, ADA, DENTAL_ADMIN, "U0BOT")
    slack.join(LOUNGE, CARLA, DORA, ADA, "U0BOT")
    return Settings(
        DATABASE_URL=str(engine.url),
        FOLLOWUP_BUSINESS=business_file,
        PUBLIC_BASE_URL="https://followup.example.com",
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=slack.url + "/api/",
    )


@pytest.fixture
def services(services, engine):
    """The deployment's services, serving the two clinics."""
    return two_clinics(services)


@pytest.fixture
def leads(services) -> dict[str, int]:
    """One lead of each clinic, each with its card in its own clinic's channel."""
    return {
        "chiro": new_lead(services, business="chiro", channel=CHIRO, name="Chris Chiro", phone="+13125550142"),
        "dental": new_lead(
            services,
            business="dental",
            channel=DENTAL,
            card_ts=DENTAL_CARD_TS,
            name="Dana Dental",
            phone="+13125550143",
            email="dana.dental@example.com",
        ),
    }


def answered(workspace) -> str:
    """The last ephemeral answer to a command, text and blocks."""
    return workspace.last_answer()


def test_the_two_clinics_are_two_businesses_with_their_own_channels(services):
    assert sorted(services.businesses.slugs) == ["chiro", "dental"]
    assert services.businesses.by_channel(CHIRO).slug == "chiro"
    assert services.businesses.by_channel(DENTAL).slug == "dental"
    assert services.businesses.by_channel(LOUNGE) is None


# --- buttons ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "action",
    [ActionId.LEAD_CLAIM, ActionId.LEAD_PAUSE, ActionId.LEAD_BOOKED, ActionId.LEAD_REPLY],
)
def test_a_button_carrying_a_chiro_lead_pressed_in_the_dental_channel_changes_nothing(
    workspace, services, leads, action
):
    chiro_lead = leads["chiro"]

    workspace.click(action, chiro_lead, user=DORA, channel=DENTAL, message_ts=DENTAL_CARD_TS)

    lead = lead_row(services, chiro_lead)
    assert (lead.owner, lead.stage) == (None, Stage.NEW)
    assert workspace.slack.views == {}  # no modal about the chiro lead opened
    [told] = workspace.ephemerals_to(DORA)
    assert "not one of Bright Smile Dental's leads" in told
    assert "Chris" not in told


def test_a_call_task_button_of_a_chiro_lead_pressed_in_the_dental_channel_claims_nothing(workspace, services, leads):
    task_id = new_call_task(services, leads["chiro"])

    workspace.click(ActionId.TASK_CLAIM, task_id, user=ADA, channel=DENTAL)

    with services.session_factory() as session:
        claims = session.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.action.like("%claim%")))
    assert claims == 0
    assert "not one of Bright Smile Dental's leads" in workspace.ephemerals_to(ADA)[-1]


def test_the_same_button_in_the_leads_own_channel_works(workspace, services, leads):
    workspace.click(ActionId.LEAD_CLAIM, leads["chiro"], user=CARLA, channel=CHIRO)

    assert lead_row(services, leads["chiro"]).owner == CARLA


def test_a_member_of_the_dental_channel_alone_cannot_act_in_the_chiro_channel(workspace, services, leads):
    workspace.click(ActionId.LEAD_CLAIM, leads["chiro"], user=DORA, channel=CHIRO)

    assert lead_row(services, leads["chiro"]).owner is None
    assert "not on Lakeside Chiropractic's team" in workspace.ephemerals_to(DORA)[-1]


# --- /followup ---------------------------------------------------------------------------------------


def test_followup_list_in_a_clinics_channel_lists_only_its_leads(workspace, leads):
    workspace.command("list all", user=ADA, channel=DENTAL)
    dental = answered(workspace)
    workspace.command("list all", user=ADA, channel=CHIRO)
    chiro = answered(workspace)

    assert "Dana Dental" in dental and "Chris Chiro" not in dental
    assert "All leads: 1" in dental
    assert "Chris Chiro" in chiro and "Dana Dental" not in chiro


@pytest.mark.parametrize("reference", ["{id}", "#{id}", "+13125550142", "Chris"])
def test_followup_show_of_a_chiro_lead_from_the_dental_channel_finds_nothing(workspace, leads, reference):
    named = reference.format(id=leads["chiro"])

    workspace.command(f"show {named}", user=ADA, channel=DENTAL)

    said = answered(workspace)
    assert "No lead matches" in said
    assert "Chris" not in said.replace(named, "") and "5550142" not in said.replace(named, "")


@pytest.mark.parametrize("verb", ["claim", "pause", "stop"])
def test_followup_verbs_naming_a_chiro_lead_from_the_dental_channel_change_nothing(workspace, services, leads, verb):
    workspace.command(f"{verb} {leads['chiro']}", user=DENTAL_ADMIN, channel=DENTAL)

    assert "No lead matches" in answered(workspace)
    lead = lead_row(services, leads["chiro"])
    assert (lead.owner, lead.stage) == (None, Stage.NEW)
    with services.session_factory() as session:
        assert session.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.lead_id == lead.id)) == (
            session.scalar(
                select(func.count())
                .select_from(AuditEntry)
                .where(AuditEntry.lead_id == lead.id, AuditEntry.actor_type != "slack_user")
            )
        )


def test_each_clinics_admins_are_its_own(workspace, services, leads):
    workspace.command(f"stop {leads['chiro']}", user=CARLA, channel=CHIRO)
    by_a_member = answered(workspace)
    workspace.command(f"stop {leads['dental']}", user=CHIRO_ADMIN, channel=DENTAL)
    by_the_other_clinics_admin = answered(workspace)
    workspace.command(f"stop {leads['chiro']}", user=CHIRO_ADMIN, channel=CHIRO)

    assert "Only admins can stop a lead" in by_a_member and f"<@{CHIRO_ADMIN}>" in by_a_member
    assert f"<@{DENTAL_ADMIN}>" not in by_a_member
    assert "not on Bright Smile Dental's team" in by_the_other_clinics_admin
    assert lead_row(services, leads["dental"]).stage == Stage.NEW
    assert lead_row(services, leads["chiro"]).stage == Stage.LOST


def test_a_lead_added_in_a_clinics_channel_is_that_clinics(workspace, services):
    workspace.command("new +13125550177 Nora New", user=DORA, channel=DENTAL)

    with services.session_factory() as session:
        lead = session.scalars(select(Lead).where(Lead.name == "Nora New")).one()
    assert lead.business == "dental"


def test_followup_stats_in_a_clinics_channel_counts_only_its_leads(workspace, services, leads):
    new_lead(
        services,
        business="chiro",
        channel=CHIRO,
        card_ts="1764082900.000300",
        phone="+13125550144",
        email="x@example.com",
    )

    workspace.command("stats", user=DORA, channel=DENTAL)
    dental = answered(workspace)
    workspace.command("stats", user=CARLA, channel=CHIRO)
    chiro = answered(workspace)

    assert "*Leads in*\\n1" in dental
    assert "*Leads in*\\n2" in chiro


def test_followup_stats_by_in_a_clinics_channel_breaks_down_only_its_leads(workspace, services, leads):
    another = {"phone": "+13125550144", "email": "x@example.com"}
    new_lead(services, business="chiro", channel=CHIRO, card_ts="1764082900.000300", **another)

    workspace.command("stats by source", user=DORA, channel=DENTAL)
    dental = answered(workspace)
    workspace.command("stats by source", user=CARLA, channel=CHIRO)
    chiro = answered(workspace)

    assert "By source" in dental and "By source" in chiro
    # The table's row of the leads' source (new_lead's leads are `manual`): one dental lead, two chiro leads.
    assert leads_from_manual(dental) == 1 and leads_from_manual(chiro) == 2


def leads_from_manual(said: str) -> int:
    """The Leads column of the `manual` row of a `stats by source` answer."""
    [count] = re.findall(r"\\nmanual +(\d+) ", said)
    return int(count)


def test_followup_digest_in_a_clinics_channel_previews_only_its_week(workspace, leads):
    workspace.command("digest", user=ADA, channel=DENTAL)
    dental = answered(workspace)
    workspace.command("digest", user=ADA, channel=CHIRO)
    chiro = answered(workspace)

    assert "Weekly digest: 1 lead in" in dental and "(preview)" in dental
    assert "Chris" not in dental and "5550142" not in dental
    assert "Weekly digest: 1 lead in" in chiro and "Dana" not in chiro


def test_a_command_from_a_channel_of_no_clinic_is_refused(workspace, services, leads):
    workspace.command("list all", user=ADA, channel=LOUNGE)
    listed = answered(workspace)
    workspace.command("new +13125550177 Nora New", user=ADA, channel=LOUNGE)
    added = answered(workspace)

    for said in (listed, added):
        assert "no clinic's leads channel" in said
        assert "Chris" not in said and "Dana" not in said
    with services.session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Lead)) == 2


@pytest.mark.parametrize("text", ["lsit all", "frobnicate 12", "shwo Chris"])
def test_a_command_that_cannot_be_read_is_still_checked_and_refused_outside_a_clinics_channel(
    workspace, services, leads, text
):
    """A command the guard cannot read is never let through unchecked: outside a clinic's channel it is
    refused, not answered for (or carried out on) the first clinic."""
    workspace.command(text, user=ADA, channel=LOUNGE)

    said = answered(workspace)
    assert "no clinic's leads channel" in said
    assert "Chris" not in said and "Dana" not in said


def test_a_command_that_cannot_be_read_is_answered_with_how_to_write_it_in_a_clinics_channel(workspace, leads):
    workspace.command("lsit all", user=CARLA, channel=CHIRO)

    said = answered(workspace)
    assert "no clinic's leads channel" not in said and "not allowed" not in said.lower()
    assert "/followup" in said


def test_help_is_answered_in_any_channel(workspace, leads):
    workspace.command("help", user=ADA, channel=LOUNGE)

    assert "/followup" in answered(workspace)


def test_a_button_pressed_in_a_channel_of_no_clinic_changes_nothing(workspace, services, leads):
    workspace.click(ActionId.LEAD_CLAIM, leads["chiro"], user=CARLA, channel=LOUNGE)

    assert lead_row(services, leads["chiro"]).owner is None
    assert "no clinic's leads channel" in workspace.ephemerals_to(CARLA)[-1]


# --- modals ----------------------------------------------------------------------------------------


def book_modal_naming(lead_id: int, channel: str) -> dict:
    return {
        "id": "V0FORGED",
        "type": "modal",
        "callback_id": str(ModalCallback.BOOK),
        "private_metadata": ModalOrigin(lead_id=lead_id, channel=channel).to_metadata(),
        "title": {"type": "plain_text", "text": "Book"},
        "blocks": [],
    }


def test_a_modal_submitted_from_the_dental_channel_with_a_chiro_lead_id_books_nothing(
    workspace, services, leads, clock
):
    visit = int((clock.now() + timedelta(days=3)).timestamp())

    answer = workspace.submit(
        book_modal_naming(leads["chiro"], DENTAL),
        {"when": {"type": "datetimepicker", "selected_date_time": visit}},
        user=DORA,
    )

    body = answer.json()
    assert body["response_action"] == "errors"
    assert "not one of Bright Smile Dental's leads" in body["errors"]["when"]
    with services.session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Appointment)) == 0
    assert lead_row(services, leads["chiro"]).stage == Stage.NEW


def test_a_modal_naming_the_chiro_channel_submitted_by_a_dental_member_books_nothing(workspace, services, leads, clock):
    visit = int((clock.now() + timedelta(days=3)).timestamp())

    answer = workspace.submit(
        book_modal_naming(leads["chiro"], CHIRO),
        {"when": {"type": "datetimepicker", "selected_date_time": visit}},
        user=DORA,
    )

    assert answer.json()["response_action"] == "errors"
    with services.session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Appointment)) == 0


# --- thread replies ------------------------------------------------------------------------------


def test_a_reply_in_the_dental_channel_under_a_chiro_cards_ts_reaches_nobody(workspace, services, leads, sms):
    workspace.thread_reply("!reply We have an opening at 3", user=DORA, channel=DENTAL, thread_ts=CARD_TS)

    assert sms.sent == []
    with services.session_factory() as session:
        assert session.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "note")) == 0


def test_a_reply_under_the_cards_own_thread_by_a_member_of_the_other_clinic_reaches_nobody(
    workspace, services, leads, sms
):
    workspace.thread_reply("!reply We have an opening at 3", user=DORA, channel=CHIRO, thread_ts=CARD_TS)

    assert sms.sent == []
    assert "not on Lakeside Chiropractic's team" in workspace.ephemerals_to(DORA)[-1]


def test_a_reply_under_the_cards_own_thread_by_its_clinic_reaches_the_lead(workspace, services, leads, sms):
    workspace.thread_reply("!reply We have an opening at 3", user=CARLA, channel=CHIRO, thread_ts=CARD_TS)

    assert [text.to for text in sms.sent] == ["+13125550142"]


# --- App Home --------------------------------------------------------------------------------------


def opened_home(workspace, user: str) -> str:
    workspace.event({"type": "app_home_opened", "user": user, "tab": "home", "channel": "D0HOME"})
    return json.dumps(workspace.slack.home_views[user])


def test_app_home_shows_a_member_only_the_clinics_whose_channels_they_are_in(workspace, services, leads):
    with services.session_factory.begin() as session:
        session.get(Lead, leads["chiro"]).owner = DORA  # even a lead of theirs in the other clinic stays hidden
        session.get(Lead, leads["dental"]).owner = DORA

    dora = opened_home(workspace, DORA)

    assert "Bright Smile Dental" in dora and "Dana Dental" in dora
    assert "Lakeside Chiropractic" not in dora and "Chris Chiro" not in dora


def test_app_home_shows_a_member_of_both_channels_each_clinic_apart(workspace, services, leads):
    with services.session_factory.begin() as session:
        session.get(Lead, leads["chiro"]).owner = ADA
        session.get(Lead, leads["dental"]).owner = ADA

    ada = opened_home(workspace, ADA)

    assert ada.index("Lakeside Chiropractic") < ada.index("Chris Chiro") < ada.index("Bright Smile Dental")
    assert ada.index("Bright Smile Dental") < ada.index("Dana Dental")


def test_app_home_for_someone_in_no_clinics_channel_shows_no_lead(workspace, leads):
    workspace.slack.join(LOUNGE, "U0NOBODY")

    home = opened_home(workspace, "U0NOBODY")

    assert "no clinic's leads channel" in home
    assert "Chris" not in home and "Dana" not in home


def test_reopen_in_app_home_of_a_lead_of_a_clinic_whose_channel_one_is_not_in_changes_nothing(
    workspace, services, leads
):
    with services.session_factory.begin() as session:
        session.get(Lead, leads["chiro"]).stage = Stage.LOST

    workspace.home_click(ActionId.LEAD_REOPEN, leads["chiro"], user=DORA)

    assert lead_row(services, leads["chiro"]).stage == Stage.LOST
