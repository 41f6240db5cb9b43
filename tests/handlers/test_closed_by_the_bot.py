"""Nobody loses a lead the bot closed: `/followup list lost|nurture|opted-out|all`, and App Home's
"closed by the bot this week" with the message that caused it and a Reopen button."""

from __future__ import annotations

import json

from sqlalchemy import select

from bot.core.rules import LeadSignal
from bot.core.states import Stage
from bot.slack.blocks import ActionId
from bot.store.models import Enrollment, Lead
from bot.usecases.lead_actions import receive_message
from tests.handlers.conftest import ALICE, any_database, lead_row, new_lead, valid_view


def lead_writes(services, lead_id: int, signal: LeadSignal, body: str) -> None:
    with services.session_factory.begin() as session:
        receive_message(
            session,
            services,
            session.get(Lead, lead_id),
            channel="sms",
            body=body,
            signal=signal,
            now=services.clock.now(),
        )


def home_of(workspace, user: str = ALICE) -> dict:
    workspace.event(
        {"type": "app_home_opened", "user": user, "channel": "D0HOME", "tab": "home", "event_ts": "1764083000.000100"}
    )
    view = workspace.slack.home_views[user]
    return valid_view({**view, "type": "home"}) if "type" not in view else valid_view(view)


def home_click(workspace, action_id: str, value: int, user: str = ALICE):
    return workspace.home_click(action_id, value, user=user)


def test_a_lead_the_bot_closed_on_a_message_is_on_app_home_with_the_words_and_reopens(workspace, services):
    lead_id = new_lead(services, name="Nora Quinn")
    lead_writes(services, lead_id, LeadSignal.NOT_INTERESTED, "no thanks, found another clinic")
    assert lead_row(services, lead_id).stage == Stage.LOST

    home = json.dumps(home_of(workspace)["blocks"])
    assert "Closed by the bot this week* (1)" in home
    assert "Nora Quinn" in home and "found another clinic" in home and str(ActionId.LEAD_REOPEN) in home

    assert home_click(workspace, str(ActionId.LEAD_REOPEN), lead_id).status_code == 200
    assert lead_row(services, lead_id).stage == Stage.ENGAGED
    again = json.dumps(workspace.slack.home_views[ALICE]["blocks"])  # published again after the click
    assert "Closed by the bot this week* (0)" in again and "Nora Quinn" not in again


def test_reopening_a_lead_moved_to_nurture_ends_its_nurture_sequence(workspace, services):
    lead_id = new_lead(services)
    lead_writes(services, lead_id, LeadSignal.LATER, "maybe in the spring")
    assert lead_row(services, lead_id).stage == Stage.NURTURE
    home_click(workspace, str(ActionId.LEAD_REOPEN), lead_id)
    with services.session_factory() as session:
        states = dict(
            session.execute(
                select(Enrollment.sequence_name, Enrollment.state).where(Enrollment.lead_id == lead_id)
            ).all()
        )
    assert states["nurture"] == "stopped" and lead_row(services, lead_id).stage == Stage.ENGAGED


def test_a_lead_the_team_closed_is_not_listed_as_closed_by_the_bot(workspace, services):
    lead_id = new_lead(services, name="Team Closed")
    workspace.command("stop Team Closed", user="U0ADMIN")
    assert lead_row(services, lead_id).stage == Stage.LOST
    assert "Team Closed" not in json.dumps(home_of(workspace)["blocks"])


@any_database
def test_followup_list_shows_lost_opted_out_nurture_and_all_leads(workspace, services):
    lost = new_lead(services, name="Lou Lost", phone="+13125550161", email="lou@example.com")
    gone = new_lead(services, name="Oona Optout", phone="+13125550162", email="oona@example.com")
    later = new_lead(services, name="Nell Nurture", phone="+13125550163", email="nell@example.com")
    new_lead(services, name="Olly Open", phone="+13125550164", email="olly@example.com")
    lead_writes(services, lost, LeadSignal.NOT_INTERESTED, "not interested")
    lead_writes(services, gone, LeadSignal.OPT_OUT, "STOP")
    lead_writes(services, later, LeadSignal.LATER, "next month")

    expected = {
        "lost": ["Lou Lost"],
        "opted-out": ["Oona Optout"],
        "nurture": ["Nell Nurture"],
        "all": ["Lou Lost", "Oona Optout", "Nell Nurture", "Olly Open"],
    }
    names = ["Lou Lost", "Oona Optout", "Nell Nurture", "Olly Open"]
    for which, shown in expected.items():
        workspace.command(f"list {which}")
        answer = workspace.last_answer()
        assert [name for name in names if name in answer] == shown, which
