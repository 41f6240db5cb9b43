"""Every button on lead cards and call tasks, through the real HTTP route."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from bot.core.states import CallTaskStatus, EnrollmentState, Stage
from bot.slack.blocks import ActionId, ModalCallback
from bot.store.audit import SYSTEM
from bot.store.models import AuditEntry, CallTask, Enrollment, Lead, OutboxEvent
from bot.store.outbox import Notice
from bot.usecases.lead_actions import opt_out, pause_lead
from tests.handlers.conftest import (
    ADMIN,
    ALICE,
    BOB,
    CARD_TS,
    LEADS,
    any_database,
    lead_row,
    new_call_task,
    new_lead,
    task_row,
)

TASK_TS = "1764082900.000200"


def enrollment_states(services, lead_id: int) -> list[str]:
    with services.session_factory() as session:
        return list(session.scalars(select(Enrollment.state).where(Enrollment.lead_id == lead_id)))


def notices(services, lead_id: int) -> list[str]:
    with services.session_factory() as session:
        return list(
            session.scalars(select(OutboxEvent.kind).where(OutboxEvent.lead_id == lead_id).order_by(OutboxEvent.id))
        )


# --- claims -------------------------------------------------------------------------------------


@any_database
def test_claim_button_makes_the_clicker_the_owner(workspace, services, slack):
    lead_id = new_lead(services)

    answer = workspace.click(ActionId.LEAD_CLAIM, lead_id, user=ALICE)

    assert answer.status_code == 200
    assert lead_row(services, lead_id).owner == ALICE
    assert notices(services, lead_id)[-1] == Notice.LEAD_CHANGED  # the poster shows the owner on the card
    assert slack.ephemerals == []


def test_a_second_claim_of_a_lead_is_told_who_has_it(workspace, services, slack):
    lead_id = new_lead(services)
    workspace.click(ActionId.LEAD_CLAIM, lead_id, user=ALICE)

    workspace.click(ActionId.LEAD_CLAIM, lead_id, user=BOB)

    assert workspace.ephemerals_to(BOB) == [f"Nothing changed: already claimed by <@{ALICE}>."]
    assert slack.ephemerals[0]["channel"] == LEADS
    assert lead_row(services, lead_id).owner == ALICE


def test_claiming_a_call_task_is_atomic_and_the_second_person_is_told_who_has_it(workspace, services):
    lead_id = new_lead(services)
    task_id = new_call_task(services, lead_id)

    workspace.click(ActionId.TASK_CLAIM, task_id, user=ALICE, message_ts=TASK_TS, thread_ts=CARD_TS)
    workspace.click(ActionId.TASK_CLAIM, task_id, user=BOB, message_ts=TASK_TS, thread_ts=CARD_TS)

    task = task_row(services, task_id)
    assert (task.status, task.claimed_by) == (CallTaskStatus.CLAIMED, ALICE)
    assert workspace.ephemerals_to(BOB) == [f"Nothing changed: already claimed by <@{ALICE}>."]
    assert workspace.slack.ephemerals[0]["thread_ts"] == CARD_TS  # shown beside the task in the thread
    assert lead_row(services, lead_id).owner == ALICE
    assert Notice.CALL_TASK_CHANGED in notices(services, lead_id)


def test_claim_answers_each_click_when_two_people_press_at_once(workspace, services):
    lead_id = new_lead(services)
    task_id = new_call_task(services, lead_id)

    with ThreadPoolExecutor(2) as both:
        list(both.map(lambda user: workspace.click(ActionId.TASK_CLAIM, task_id, user=user), (ALICE, BOB)))

    winner = task_row(services, task_id).claimed_by
    loser = BOB if winner == ALICE else ALICE
    assert workspace.ephemerals_to(loser) == [f"Nothing changed: already claimed by <@{winner}>."]
    assert workspace.ephemerals_to(winner) == []


# --- pause, resume, not interested -------------------------------------------------------------


def test_pause_and_resume_buttons_hold_and_restart_the_sequence(workspace, services):
    lead_id = new_lead(services)

    workspace.click(ActionId.LEAD_PAUSE, lead_id)
    assert enrollment_states(services, lead_id) == [EnrollmentState.PAUSED]

    workspace.click(ActionId.LEAD_RESUME, lead_id)
    assert enrollment_states(services, lead_id) == [EnrollmentState.ACTIVE]
    assert workspace.slack.ephemerals == []


@any_database
def test_task_pause_and_resume_buttons_act_on_the_tasks_lead(workspace, services):
    lead_id = new_lead(services)
    task_id = new_call_task(services, lead_id)

    workspace.click(ActionId.TASK_PAUSE, task_id, message_ts=TASK_TS)
    assert enrollment_states(services, lead_id) == [EnrollmentState.PAUSED]

    workspace.click(ActionId.TASK_RESUME, task_id, message_ts=TASK_TS)
    assert enrollment_states(services, lead_id) == [EnrollmentState.ACTIVE]


@any_database
def test_pause_when_nothing_runs_says_why(workspace, services, clock):
    lead_id = new_lead(services)
    with services.session_factory.begin() as session:
        pause_lead(session, services, session.get(Lead, lead_id), now=clock.now(), actor=SYSTEM)

    workspace.click(ActionId.LEAD_PAUSE, lead_id, user=BOB)

    assert workspace.ephemerals_to(BOB) == [
        "Nothing changed: automation is not running for this lead, so there is nothing to pause."
    ]


def test_not_interested_stops_follow_up_and_marks_the_lead_lost(workspace, services):
    lead_id = new_lead(services)
    task_id = new_call_task(services, lead_id)

    workspace.click(ActionId.LEAD_NOT_INTERESTED, lead_id, user=ADMIN)

    assert lead_row(services, lead_id).stage == Stage.LOST
    assert enrollment_states(services, lead_id) == [EnrollmentState.STOPPED]
    assert task_row(services, task_id).status == CallTaskStatus.CANCELLED
    with services.session_factory() as session:
        decision = session.scalars(select(OutboxEvent).where(OutboxEvent.kind == Notice.DECISION)).all()[-1]
    assert decision.payload["actor"] == f"<@{ADMIN}>"


@any_database
def test_not_interested_on_a_lost_lead_says_it_already_is(workspace, services):
    lead_id = new_lead(services)
    workspace.click(ActionId.LEAD_NOT_INTERESTED, lead_id, user=ADMIN)

    workspace.click(ActionId.LEAD_NOT_INTERESTED, lead_id, user="U0OTHERADMIN")

    assert workspace.ephemerals_to("U0OTHERADMIN") == ["Nothing changed: this lead is already lost."]


@any_database
def test_task_not_interested_logs_the_call_outcome(workspace, services):
    lead_id = new_lead(services)
    task_id = new_call_task(services, lead_id)

    workspace.click(ActionId.TASK_NOT_INTERESTED, task_id, message_ts=TASK_TS, user=ADMIN)

    task = task_row(services, task_id)
    assert (task.status, task.outcome, task.claimed_by) == (CallTaskStatus.DONE, "not_interested", ADMIN)
    assert lead_row(services, lead_id).stage == Stage.LOST


# --- snooze -------------------------------------------------------------------------------------


def test_snooze_puts_the_call_off_an_hour(workspace, services, clock):
    lead_id = new_lead(services)
    task_id = new_call_task(services, lead_id)

    workspace.click(ActionId.TASK_SNOOZE, task_id, message_ts=TASK_TS)

    assert task_row(services, task_id).due_at == clock.now() + timedelta(hours=1)
    assert workspace.ephemerals_to(ALICE) == [":zzz: Snoozed until Wed, Nov 25 at 10:00 AM CST."]
    assert notices(services, lead_id)[-1] == Notice.CALL_TASK_CHANGED
    with services.session_factory() as session:
        assert session.scalars(select(AuditEntry.action).order_by(AuditEntry.id.desc())).first() == "call_task_snoozed"


@any_database
def test_snooze_after_hours_moves_the_call_to_the_next_morning(workspace, services, clock):
    clock.set(datetime(2026, 11, 23, 19, 30, tzinfo=timezone(timedelta(hours=-6))))  # Monday 7:30 pm in Chicago
    lead_id = new_lead(services)
    task_id = new_call_task(services, lead_id)

    workspace.click(ActionId.TASK_SNOOZE, task_id, message_ts=TASK_TS)

    assert task_row(services, task_id).due_at == datetime(2026, 11, 24, 14, 0, tzinfo=UTC)  # 8 am
    assert workspace.ephemerals_to(ALICE) == [":zzz: Snoozed until Tue, Nov 24 at 8:00 AM CST."]


@any_database
def test_snooze_skips_the_days_the_business_is_closed(workspace, services, clock):
    clock.set(datetime(2026, 11, 25, 19, 30, tzinfo=timezone(timedelta(hours=-6))))  # the eve of Thanksgiving
    lead_id = new_lead(services)
    task_id = new_call_task(services, lead_id)

    workspace.click(ActionId.TASK_SNOOZE, task_id, message_ts=TASK_TS)

    assert workspace.ephemerals_to(ALICE) == [":zzz: Snoozed until Fri, Nov 27 at 8:00 AM CST."]


@any_database
def test_snoozing_a_finished_call_changes_nothing(workspace, services):
    lead_id = new_lead(services)
    task_id = new_call_task(services, lead_id)
    workspace.click(ActionId.TASK_NOT_INTERESTED, task_id, user=ADMIN)

    workspace.click(ActionId.TASK_SNOOZE, task_id, user=BOB)

    assert workspace.ephemerals_to(BOB) == ["Nothing changed: this call task is already done."]


# --- buttons that open modals -------------------------------------------------------------------


@any_database
def test_booked_on_a_card_opens_the_book_modal_for_that_lead(workspace, services):
    lead_id = new_lead(services)

    workspace.click(ActionId.LEAD_BOOKED, lead_id)

    view = workspace.opened_view()
    assert view["callback_id"] == ModalCallback.BOOK
    assert f'"lead_id":{lead_id}' in view["private_metadata"]
    assert any(b.get("element", {}).get("type") == "datetimepicker" for b in view["blocks"])
    assert workspace.slack.calls("views.open")[0]["trigger_id"].startswith("trigger-")


@any_database
def test_booked_on_a_call_task_opens_the_book_modal_for_that_task(workspace, services):
    lead_id = new_lead(services)
    task_id = new_call_task(services, lead_id)

    workspace.click(ActionId.TASK_BOOKED, task_id, message_ts=TASK_TS)

    view = workspace.opened_view()
    assert view["callback_id"] == ModalCallback.BOOK and f'"task_id":{task_id}' in view["private_metadata"]


@any_database
def test_log_outcome_opens_a_modal_with_every_outcome(workspace, services):
    lead_id = new_lead(services)
    task_id = new_call_task(services, lead_id, reason="asked about <!channel> prices")

    workspace.click(ActionId.TASK_LOG_OUTCOME, task_id, message_ts=TASK_TS)

    view = workspace.opened_view()
    assert view["callback_id"] == ModalCallback.LOG_OUTCOME
    outcome = next(b for b in view["blocks"] if b.get("block_id") == "outcome")
    assert [o["value"] for o in outcome["element"]["options"]] == [
        "booked",
        "call_back",
        "left_voicemail",
        "no_answer",
        "wrong_number",
        "not_interested",
    ]
    assert "&lt;!channel&gt;" in view["blocks"][0]["text"]["text"]


@any_database
def test_log_outcome_on_a_finished_call_opens_nothing(workspace, services):
    lead_id = new_lead(services)
    task_id = new_call_task(services, lead_id)
    workspace.click(ActionId.TASK_NOT_INTERESTED, task_id, user=ADMIN)

    workspace.click(ActionId.TASK_LOG_OUTCOME, task_id, user=BOB)

    assert workspace.slack.views == {}
    assert workspace.ephemerals_to(BOB) == ["Nothing to do: this call task is already done."]


@any_database
def test_reply_opens_a_modal_offering_the_channels_still_open(workspace, services, clock):
    lead_id = new_lead(services)
    with services.session_factory.begin() as session:
        opt_out(session, session.get(Lead, lead_id), "sms", now=clock.now(), actor=SYSTEM)

    workspace.click(ActionId.LEAD_REPLY, lead_id)

    view = workspace.opened_view()
    assert view["callback_id"] == ModalCallback.REPLY
    channel = next(b for b in view["blocks"] if b.get("block_id") == "channel")
    assert [o["value"] for o in channel["element"]["options"]] == ["email"]


@any_database
def test_reply_to_a_lead_nobody_can_reach_opens_nothing_and_says_why(workspace, services, clock):
    lead_id = new_lead(services, email=None)
    with services.session_factory.begin() as session:
        opt_out(session, session.get(Lead, lead_id), "sms", now=clock.now(), actor=SYSTEM)

    workspace.click(ActionId.LEAD_REPLY, lead_id)

    assert workspace.slack.views == {}
    assert workspace.ephemerals_to(ALICE) == [
        "Can't reply: the lead cannot be reached: they opted out, or have no phone or email that works."
    ]


@pytest.mark.parametrize(
    "action",
    [
        ActionId.LEAD_CLAIM,
        ActionId.LEAD_PAUSE,
        ActionId.LEAD_BOOKED,
        ActionId.TASK_CLAIM,
        ActionId.TASK_SNOOZE,
        ActionId.TASK_LOG_OUTCOME,
    ],
)
@any_database
def test_a_button_for_a_record_that_is_gone_is_answered_not_crashed(workspace, action):
    answer = workspace.click(action, 4242)

    assert answer.status_code == 200
    assert len(workspace.ephemerals_to(ALICE)) == 1


@any_database
def test_buttons_edit_no_message_themselves_the_poster_does(workspace, services, slack):
    lead_id = new_lead(services)
    task_id = new_call_task(services, lead_id)

    for action, value in (
        (ActionId.TASK_CLAIM, task_id),
        (ActionId.TASK_PAUSE, task_id),
        (ActionId.TASK_RESUME, task_id),
        (ActionId.TASK_SNOOZE, task_id),
        (ActionId.LEAD_CLAIM, lead_id),
    ):
        workspace.click(action, value)

    assert slack.calls("chat.update") == [] and slack.calls("chat.postMessage") == []
    with services.session_factory() as session:
        assert session.scalars(select(CallTask.status)).one() == CallTaskStatus.CLAIMED


@pytest.mark.parametrize("value", ["²", "١٢", "12\u00b3", "🔟"])
@pytest.mark.parametrize("action", [ActionId.LEAD_CLAIM, ActionId.TASK_CLAIM, ActionId.APPOINTMENT_CANCEL])
@any_database
def test_a_button_whose_value_is_not_an_ascii_id_is_answered_as_out_of_date(workspace, services, action, value):
    """Unicode digits pass str.isdigit() but are no record's id: the person is told, nothing is touched."""
    lead_id = new_lead(services)

    answer = workspace.click(action, value)

    assert answer.status_code == 200 and workspace.errors == []
    [said] = workspace.ephemerals_to(ALICE)
    assert "no longer exists" in said
    assert lead_row(services, lead_id).owner is None
