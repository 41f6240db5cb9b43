"""Who may do what in Slack, through the real listeners: one table, the same answer for buttons, modals,
slash commands, thread messages and App Home; and every request applied once however often it comes."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from starlette.applications import Starlette

from bot.core.states import Stage
from bot.settings import Settings
from bot.slack.blocks import ActionId, ModalCallback
from bot.slack.command_text import LeadVerb
from bot.slack.permissions import PERMISSIONS, Act
from bot.slack_app import build_slack_app, slack_route
from bot.store.models import AuditEntry, CallTask, Lead, ProcessedDelivery
from handlers.slack_guard import ACTION_ACTS, ACTION_TARGETS, VERB_ACTS, VIEW_ACTS
from tests.handlers.conftest import (
    ADMIN,
    ALICE,
    BOB,
    BOT_TOKEN,
    CARD_TS,
    CHICAGO_PHONE,
    LEADS,
    SIGNING_SECRET,
    TrackingExecutor,
    any_database,
    lead_row,
    new_call_task,
    new_lead,
)

CAROL = "U0CAROL"  #: on the team through the user group, not in the leads channel
DAVE = "U0DAVE"  #: a full member of the workspace, not on the team
GUEST = "U0GUEST"  #: a multi-channel guest, invited into the leads channel
SOLO_GUEST = "U0SOLO"  #: a single-channel guest in the leads channel
PARTNER = "U0PARTNER"  #: from another organisation, in the leads channel through Slack Connect
TEAM_GROUP = "S0FRONTDESK"
NEW_LEADS_PER_HOUR = 3


@pytest.fixture
def slack_settings(engine, business_file, slack) -> Settings:
    slack.add_user_group(TEAM_GROUP, CAROL)
    slack.add_user(GUEST, "guest", guest="multi-channel")
    slack.add_user(SOLO_GUEST, "solo", guest="single-channel")
    slack.add_user(PARTNER, "partner", team_id="T0PARTNER")
    slack.join(LEADS, GUEST, SOLO_GUEST, PARTNER)
    return Settings(
        DATABASE_URL=str(engine.url),
        FOLLOWUP_BUSINESS=business_file,
        PUBLIC_BASE_URL="https://followup.example.com",
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=slack.url + "/api/",
        SLACK_LEADS_CHANNEL=LEADS,
        SLACK_ADMINS=f"{ADMIN}, U0OTHERADMIN",
        SLACK_TEAM_GROUP=TEAM_GROUP,
        FOLLOWUP_SLACK_NEW_LEADS_PER_HOUR=str(NEW_LEADS_PER_HOUR),
    )


OUTSIDERS = [
    (DAVE, "not on the team"),
    (GUEST, "guests cannot"),
    (SOLO_GUEST, "guests cannot"),
    (PARTNER, "another organisation"),
]


def audit_count(services, action: str) -> int:
    with services.session_factory() as session:
        return session.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == action))


# --- the table ------------------------------------------------------------------------------------


def test_every_button_modal_and_command_verb_has_a_row_in_the_table():
    assert set(ACTION_ACTS) == set(ActionId)
    # And every button says what record its value names, so the guard can tell whose lead it acts on.
    assert set(ACTION_TARGETS) == set(ActionId)
    assert set(VIEW_ACTS) == set(ModalCallback)
    assert set(VERB_ACTS) == set(LeadVerb)
    assert set(PERMISSIONS) == set(Act)


def test_what_ends_a_lead_needs_the_same_standing_however_it_is_asked():
    ending = {
        ACTION_ACTS[ActionId.LEAD_NOT_INTERESTED],
        ACTION_ACTS[ActionId.TASK_NOT_INTERESTED],
        VERB_ACTS[LeadVerb.STOP],
    }
    assert ending == {Act.END_LEAD}


# --- same effect, same permission -----------------------------------------------------------------


@any_database
def test_a_team_member_who_is_not_an_admin_cannot_stop_a_lead_by_any_door(workspace, services):
    lead_id = new_lead(services)
    task_id = new_call_task(services, lead_id)

    workspace.click(ActionId.LEAD_NOT_INTERESTED, lead_id, user=BOB)
    workspace.click(ActionId.TASK_NOT_INTERESTED, task_id, user=BOB)
    workspace.command(f"stop {lead_id}", user=BOB)
    stop_answer = workspace.last_answer()
    workspace.click(ActionId.TASK_LOG_OUTCOME, task_id, user=BOB)
    logged = workspace.submit(
        workspace.opened_view(),
        {
            "outcome": {
                "type": "radio_buttons",
                "selected_option": {
                    "value": "not_interested",
                    "text": {"type": "plain_text", "text": "Not interested"},
                },
            }
        },
        user=BOB,
    )

    assert lead_row(services, lead_id).stage == Stage.NEW
    told = workspace.ephemerals_to(BOB)
    assert len(told) == 2 and all("Only admins can stop a lead" in said and f"<@{ADMIN}>" in said for said in told)
    assert "Only admins can stop a lead" in stop_answer
    assert logged.json()["response_action"] == "errors"
    assert "Only admins can stop a lead" in logged.json()["errors"]["outcome"]
    with services.session_factory() as session:
        assert session.get(CallTask, task_id).outcome is None


@any_database
def test_an_admin_stops_a_lead_with_the_button(workspace, services):
    lead_id = new_lead(services)

    workspace.click(ActionId.LEAD_NOT_INTERESTED, lead_id, user=ADMIN)

    assert lead_row(services, lead_id).stage == Stage.LOST


# --- who is on the team ---------------------------------------------------------------------------


@any_database
@pytest.mark.parametrize(("outsider", "why"), OUTSIDERS)
def test_people_not_on_the_team_cannot_touch_a_lead(workspace, services, outsider, why):
    lead_id = new_lead(services)

    workspace.click(ActionId.LEAD_PAUSE, lead_id, user=outsider)
    workspace.click(ActionId.LEAD_REPLY, lead_id, user=outsider)
    workspace.command(f"show {lead_id}", user=outsider)

    assert workspace.slack.views == {}
    assert audit_count(services, "paused") == 0
    assert all(why in said for said in workspace.ephemerals_to(outsider))
    answer = workspace.last_answer()
    assert why in answer and "dana@example.com" not in answer and "555" not in answer


@any_database
@pytest.mark.parametrize(("outsider", "why"), OUTSIDERS)
def test_a_reply_from_someone_not_on_the_team_reaches_nobody_and_they_are_told_why(
    workspace, services, sms, email, outsider, why
):
    new_lead(services)

    workspace.thread_reply("!reply Hi Dana, call me on my cell", user=outsider, thread_ts=CARD_TS)
    workspace.thread_reply("a note nobody should keep", user=outsider, thread_ts=CARD_TS)

    assert sms.sent == [] and email.sent == []
    [told] = workspace.ephemerals_to(outsider)
    assert told.startswith(":no_entry: Not sent") and why in told
    assert workspace.slack.ephemerals[-1]["thread_ts"] == CARD_TS
    assert audit_count(services, "note") == 0


@any_database
def test_a_payload_that_says_its_sender_is_from_another_workspace_is_refused(workspace, services, sms):
    new_lead(services)

    workspace.thread_reply("!reply Hello", user="U0LOOKSLOCAL", thread_ts=CARD_TS, user_team="T0ELSEWHERE")

    assert sms.sent == []
    assert "another organisation" in workspace.ephemerals_to("U0LOOKSLOCAL")[0]


@any_database
def test_a_member_of_the_team_user_group_works_leads_outside_the_channel(workspace, services, sms):
    new_lead(services)

    workspace.thread_reply("!reply See you at 3", user=CAROL, thread_ts=CARD_TS)

    assert sms.to(CHICAGO_PHONE) == ["See you at 3"]


@any_database
def test_an_outsider_opening_app_home_sees_no_lead(workspace, services):
    new_lead(services)
    workspace.event(
        {"type": "app_home_opened", "user": GUEST, "channel": "D0GUEST", "tab": "home", "event_ts": "1764083000.000001"}
    )

    home = workspace.slack.home_views[GUEST]
    shown = str(home["blocks"])
    assert "guests cannot" in shown and "Dana" not in shown


# --- where leads are shown ------------------------------------------------------------------------


@any_database
def test_leads_are_listed_only_in_the_leads_channel_or_a_dm_with_the_bot(workspace, services, slack):
    new_lead(services)
    own_dm = slack.open_dm(ALICE)

    workspace.command("list", channel="C0RANDOM")
    elsewhere = workspace.last_answer()
    workspace.command("show Dana", channel="D0ALICEBOB")  # a DM between two people: the bot is not in it
    someone_elses_dm = workspace.last_answer()
    workspace.command("list", user=BOB, channel=own_dm)
    bobs_in_alices_dm = workspace.last_answer()
    workspace.command("show Dana", channel=own_dm)
    in_own_dm = workspace.last_answer()
    workspace.command("show Dana", channel=LEADS)
    in_the_channel = workspace.last_answer()

    for refused in (elsewhere, someone_elses_dm, bobs_in_alices_dm):
        assert "only in the leads channel" in refused and "Dana" not in refused
    assert "Dana" in in_own_dm and "Dana" in in_the_channel


@any_database
@pytest.mark.parametrize("wildcard", ["%", "_", "%%", "\\"])
def test_a_like_wildcard_finds_no_lead_by_name(workspace, services, wildcard):
    for index in range(3):
        new_lead(
            services,
            name=f"Patient {index}",
            phone=f"+1312555017{index}",
            email=None,
            card_ts=f"1764082800.00010{index}",
        )

    workspace.command(f"show {wildcard}")

    answer = workspace.last_answer()
    assert "No lead matches" in answer and "Patient" not in answer


@any_database
def test_a_name_that_many_leads_share_lists_a_bounded_number_to_pick_from(workspace, services):
    for index in range(14):
        new_lead(
            services,
            name=f"Sam Patient{index}",
            phone=None,
            email=f"sam{index}@example.com",
            card_ts=f"1764082800.0002{index:02d}",
        )

    workspace.command("show Sam")

    answer = workspace.last_answer()
    assert answer.count("@example.com") <= 10


# --- adding leads ---------------------------------------------------------------------------------


@any_database
def test_followup_new_is_rate_limited_per_person(workspace, services, clock):
    for index in range(NEW_LEADS_PER_HOUR):
        workspace.command(f"new +1 312 555 01{60 + index} Walk-in {index}")
    workspace.command("new +1 312 555 0199 One too many")
    refused = workspace.last_answer()
    workspace.command("new +1 312 555 0198 Someone else's", user=BOB)
    clock.advance(timedelta(hours=1, minutes=1))
    workspace.command("new +1 312 555 0199 An hour later")

    with services.session_factory() as session:
        names = set(session.scalars(select(Lead.name)))
    assert "in the last hour" in refused and "One too many" not in names
    assert {"Someone else's", "An hour later"} <= names


@any_database
@pytest.mark.parametrize(
    "text", ["stats", "stats 30d by source", "stats by person", "stats 7d by touch", "stats by playbook"]
)
def test_stats_and_their_breakdowns_are_for_team_members(workspace, text):
    workspace.command(text, user=DAVE)
    assert "not on the team" in workspace.last_answer()

    workspace.command(text, user=CAROL)  # on the team through the user group, anywhere
    assert "not on the team" not in workspace.last_answer()


@any_database
def test_followup_new_is_for_team_members(workspace, services):
    workspace.command("new +1 312 555 0150 From a guest", user=GUEST)

    with services.session_factory() as session:
        assert session.scalar(select(Lead.id)) is None
    assert "guests cannot" in workspace.last_answer()


@any_database
def test_followup_new_refuses_a_number_in_a_country_the_business_does_not_text(workspace, services, sms):
    workspace.command("new +44 20 7946 0958 Overseas")

    with services.session_factory() as session:
        assert session.scalar(select(Lead.id)) is None
    answer = workspace.last_answer()
    assert "GB" in answer and "FOLLOWUP_SMS_COUNTRIES" in answer
    assert sms.sent == []


# --- applied once ---------------------------------------------------------------------------------


@any_database
def test_a_replayed_button_click_is_applied_once(workspace, services):
    lead_id = new_lead(services)

    workspace.click(ActionId.LEAD_PAUSE, lead_id)
    replayed = workspace.replay()

    assert replayed.status_code == 200
    assert audit_count(services, "paused") == 1
    assert workspace.ephemerals_to(ALICE) == []  # no "nothing to pause" for the copy


@any_database
def test_a_replayed_modal_submission_sends_the_message_once(workspace, services, sms):
    lead_id = new_lead(services)
    workspace.click(ActionId.LEAD_REPLY, lead_id)
    view = workspace.opened_view()
    state: dict[str, Any] = {
        "channel": {
            "type": "radio_buttons",
            "selected_option": {"value": "sms", "text": {"type": "plain_text", "text": "SMS"}},
        },
        "body": {"type": "plain_text_input", "value": "See you at 3"},
    }

    workspace.submit(view, state)
    workspace.replay()

    assert sms.to(CHICAGO_PHONE) == ["See you at 3"]


@any_database
def test_a_replayed_command_adds_one_lead(workspace, services):
    workspace.command("new +1 312 555 0161 Once")
    workspace.replay()

    with services.session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Lead)) == 1


@any_database
def test_an_events_api_retry_of_app_home_opened_is_applied_once(workspace, services):
    workspace.event(
        {
            "type": "app_home_opened",
            "user": ALICE,
            "channel": "D0ALICE",
            "tab": "home",
            "event_ts": "1764083000.000001",
        },
        event_id="Ev0HOME1",
    )
    workspace.event(
        {
            "type": "app_home_opened",
            "user": ALICE,
            "channel": "D0ALICE",
            "tab": "home",
            "event_ts": "1764083000.000001",
        },
        event_id="Ev0HOME1",
        headers={"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"},
    )

    assert len(workspace.slack.calls("views.publish")) == 1


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_retry_that_reaches_another_process_is_applied_once(workspace, services, slack_settings, slack_server, sms):
    new_lead(services)
    workspace.thread_reply("!reply On our way", thread_ts=CARD_TS, event_id="Ev0ONCE")

    # A second bot process: its own Bolt app and memory, the same database.
    executor = TrackingExecutor()
    other = build_slack_app(services, slack_settings, listener_executor=executor)
    http, current = slack_server
    current.app = Starlette(routes=[slack_route(other)])
    workspace.thread_reply(
        "!reply On our way",
        thread_ts=CARD_TS,
        event_id="Ev0ONCE",
        headers={"X-Slack-Retry-Num": "2", "X-Slack-Retry-Reason": "http_error"},
    )
    executor.wait_idle()
    executor.shutdown()

    assert sms.to(CHICAGO_PHONE) == ["On our way"]
    with services.session_factory() as session:
        assert (
            session.scalar(
                select(func.count()).select_from(ProcessedDelivery).where(ProcessedDelivery.delivery_id == "Ev0ONCE")
            )
            == 1
        )


@any_database
def test_a_book_command_too_long_to_be_a_time_is_refused_without_reading_it(workspace, services):
    lead_id = new_lead(services)

    workspace.command(f"book {lead_id} " + "tomorrow 3pm " * 200)

    assert "characters" in workspace.last_answer()
    with services.session_factory() as session:
        assert session.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "booked")) == 0
