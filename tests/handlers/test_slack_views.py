"""Modal submissions through the real HTTP route: the log-outcome, book and reply modals, good and invalid."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from bot.core.ports import FailureKind, PermanentSendError
from bot.core.states import CallTaskStatus, EnrollmentState, Stage
from bot.slack.blocks import ActionId, ModalCallback
from bot.slack.modals import ModalOrigin
from bot.store.audit import SYSTEM
from bot.store.models import Appointment, CallTask, Enrollment, Lead, Message
from bot.usecases.lead_actions import opt_out
from tests.handlers.conftest import (
    ADMIN,
    ALICE,
    CARD_TS,
    CHICAGO_PHONE,
    LEADS,
    any_database,
    lead_row,
    new_call_task,
    new_lead,
    task_row,
)


def radio(value: str) -> dict[str, Any]:
    return {"type": "radio_buttons", "selected_option": {"text": {"type": "plain_text", "text": value}, "value": value}}


def moment(at: datetime) -> dict[str, Any]:
    return {"type": "datetimepicker", "selected_date_time": int(at.timestamp())}


def text(value: str | None) -> dict[str, Any]:
    return {"type": "plain_text_input", "value": value}


def errors_of(answer) -> dict[str, str]:
    assert answer.status_code == 200
    body = answer.json()
    assert body["response_action"] == "errors"
    return body["errors"]


@pytest.fixture
def task(workspace, services) -> tuple[int, int, dict[str, Any]]:
    """A lead with an open call task, and the log-outcome modal opened from the task's buttons."""
    lead_id = new_lead(services)
    task_id = new_call_task(services, lead_id)
    workspace.click(ActionId.TASK_LOG_OUTCOME, task_id, thread_ts=CARD_TS)
    return lead_id, task_id, workspace.opened_view()


# --- log outcome --------------------------------------------------------------------------------


@any_database
def test_no_answer_closes_the_call_and_lets_the_sequence_go_on(workspace, services, task):
    lead_id, task_id, view = task

    answer = workspace.submit(
        view, {"outcome": radio("no_answer"), "when": {"type": "datetimepicker"}, "notes": text("rang twice")}
    )

    assert answer.status_code == 200 and answer.text == ""  # the modal closes
    done = task_row(services, task_id)
    assert (done.status, done.outcome, done.notes) == (CallTaskStatus.DONE, "no_answer", "rang twice")
    with services.session_factory() as session:
        assert (
            session.scalars(select(Enrollment.state).where(Enrollment.lead_id == lead_id)).one()
            == EnrollmentState.ACTIVE
        )
    assert workspace.ephemerals_to(ALICE) == ["Saved: No answer."]
    assert workspace.slack.ephemerals[0]["thread_ts"] == CARD_TS


def test_call_back_schedules_a_new_call_at_the_time_given(workspace, services, clock, task):
    lead_id, task_id, view = task
    later = clock.now() + timedelta(days=1, hours=2)

    workspace.submit(view, {"outcome": radio("call_back"), "when": moment(later), "notes": text("after work")})

    with services.session_factory() as session:
        calls = session.scalars(select(CallTask).where(CallTask.lead_id == lead_id).order_by(CallTask.id)).all()
    assert [c.status for c in calls] == [CallTaskStatus.DONE, CallTaskStatus.OPEN]
    assert calls[1].due_at == later
    assert workspace.ephemerals_to(ALICE) == [
        ":telephone_receiver: Saved. A call back is set for Thu, Nov 26 at 11:00 AM CST."
    ]


def test_booked_on_the_call_books_the_visit(workspace, services, clock, task):
    lead_id, task_id, view = task
    visit = clock.now() + timedelta(days=2)

    workspace.submit(view, {"outcome": radio("booked"), "when": moment(visit), "notes": text(None)})

    with services.session_factory() as session:
        appointment = session.scalars(select(Appointment).where(Appointment.lead_id == lead_id)).one()
    assert appointment.start_at == visit
    assert lead_row(services, lead_id).stage == Stage.BOOKED
    assert task_row(services, task_id).outcome == "booked"


@pytest.mark.parametrize("outcome", ["booked", "call_back"])
@any_database
def test_an_outcome_that_needs_a_time_without_one_is_sent_back_to_the_field(workspace, services, task, outcome):
    _lead_id, task_id, view = task

    answer = workspace.submit(
        view, {"outcome": radio(outcome), "when": {"type": "datetimepicker", "selected_date_time": None}}
    )

    assert errors_of(answer) == {
        "when": "Pick the date and time of " + ("the visit." if outcome == "booked" else "the call back.")
    }
    assert task_row(services, task_id).status == CallTaskStatus.OPEN


@any_database
def test_a_time_in_the_past_is_sent_back_to_the_field(workspace, services, clock, task):
    _lead_id, task_id, view = task

    answer = workspace.submit(view, {"outcome": radio("booked"), "when": moment(clock.now() - timedelta(hours=1))})

    assert errors_of(answer) == {"when": "That time has passed; pick a future date and time for the visit."}
    assert task_row(services, task_id).status == CallTaskStatus.OPEN


@any_database
def test_no_outcome_picked_is_sent_back_to_the_field(workspace, task):
    _lead_id, _task_id, view = task

    answer = workspace.submit(view, {"outcome": {"type": "radio_buttons", "selected_option": None}})

    assert errors_of(answer) == {"outcome": "Pick how the call went."}


def test_an_outcome_for_a_call_someone_else_just_closed_is_refused_in_a_message(workspace, services, task):
    _lead_id, task_id, view = task
    workspace.click(ActionId.TASK_NOT_INTERESTED, task_id, user=ADMIN)

    answer = workspace.submit(view, {"outcome": radio("left_voicemail")})

    assert answer.status_code == 200 and answer.text == ""
    assert workspace.ephemerals_to(ALICE) == ["Outcome not saved: this call task is already done."]
    assert task_row(services, task_id).outcome == "not_interested"


@any_database
def test_a_submission_the_bot_did_not_open_changes_nothing(workspace, services, task):
    _lead_id, task_id, view = task

    answer = workspace.submit({**view, "private_metadata": "not json"}, {"outcome": radio("wrong_number")})

    assert answer.status_code == 200
    assert task_row(services, task_id).status == CallTaskStatus.OPEN
    assert workspace.slack.ephemerals == []


# --- book ---------------------------------------------------------------------------------------


@any_database
def test_booking_from_a_card_books_the_lead(workspace, services, clock):
    lead_id = new_lead(services)
    workspace.click(ActionId.LEAD_BOOKED, lead_id)
    visit = clock.now() + timedelta(days=3)

    workspace.submit(workspace.opened_view(), {"when": moment(visit), "notes": text("new patient exam")})

    with services.session_factory() as session:
        appointment = session.scalars(select(Appointment).where(Appointment.lead_id == lead_id)).one()
    assert (appointment.start_at, appointment.notes, appointment.booked_by) == (
        visit,
        "new patient exam",
        f"<@{ALICE}>",
    )
    assert lead_row(services, lead_id).stage == Stage.BOOKED
    assert workspace.ephemerals_to(ALICE) == [":calendar: Booked for Sat, Nov 28 at 9:00 AM CST."]


@any_database
def test_booking_from_a_call_task_closes_the_call_as_booked(workspace, services, clock):
    lead_id = new_lead(services)
    task_id = new_call_task(services, lead_id)
    workspace.click(ActionId.TASK_BOOKED, task_id)

    # Friday: tomorrow is Thanksgiving, a closed day the modal would warn about first.
    workspace.submit(workspace.opened_view(), {"when": moment(clock.now() + timedelta(days=2))})

    done = task_row(services, task_id)
    assert (done.status, done.outcome) == (CallTaskStatus.DONE, "booked")
    assert lead_row(services, lead_id).stage == Stage.BOOKED


@pytest.mark.parametrize(
    ("picked", "error"),
    [
        (None, "Pick the date and time of the visit."),
        (-60, "That time has passed; pick a future date and time."),
    ],
)
@any_database
def test_a_booking_without_a_future_time_is_sent_back_to_the_field(workspace, services, clock, picked, error):
    lead_id = new_lead(services)
    workspace.click(ActionId.LEAD_BOOKED, lead_id)
    state = {
        "type": "datetimepicker",
        "selected_date_time": None if picked is None else int((clock.now() + timedelta(minutes=picked)).timestamp()),
    }

    answer = workspace.submit(workspace.opened_view(), {"when": state})

    assert errors_of(answer) == {"when": error}
    assert lead_row(services, lead_id).stage == Stage.NEW


# --- reply --------------------------------------------------------------------------------------


def open_reply(workspace, services, **fields) -> tuple[int, dict[str, Any]]:
    lead_id = new_lead(services, **fields)
    workspace.click(ActionId.LEAD_REPLY, lead_id)
    return lead_id, workspace.opened_view()


def test_reply_by_sms_goes_to_the_lead(workspace, services, sms):
    lead_id, view = open_reply(workspace, services)

    workspace.submit(view, {"channel": radio("sms"), "subject": text(None), "body": text("See you at 3!")})

    assert sms.to(CHICAGO_PHONE) == ["See you at 3!"]
    with services.session_factory() as session:
        sent = session.scalars(select(Message).where(Message.lead_id == lead_id)).one()
    assert (sent.direction, sent.channel, sent.author) == ("out", "sms", ALICE)
    assert workspace.ephemerals_to(ALICE) == [
        ":outbox_tray: Your text is on its way to the lead; its delivery status shows in the lead's thread."
    ]


@any_database
def test_reply_by_email_carries_the_subject(workspace, services, email):
    _lead_id, view = open_reply(workspace, services)

    workspace.submit(view, {"channel": radio("email"), "subject": text("Your visit"), "body": text("Bring ID.")})

    assert [(m.to, m.subject) for m in email.sent] == [("dana@example.com", "Your visit")]
    assert "Bring ID." in email.sent[0].text


@any_database
def test_an_empty_reply_is_sent_back_to_the_field(workspace, services, sms):
    _lead_id, view = open_reply(workspace, services)

    answer = workspace.submit(view, {"channel": radio("sms"), "body": text("   ")})

    assert errors_of(answer) == {"body": "Write the message to send."}
    assert sms.sent == []


@any_database
def test_a_reply_to_a_lead_who_opted_out_meanwhile_is_not_sent(workspace, services, sms, clock):
    lead_id, view = open_reply(workspace, services)
    with services.session_factory.begin() as session:
        opt_out(session, session.get(Lead, lead_id), "sms", now=clock.now(), actor=SYSTEM)

    workspace.submit(view, {"channel": radio("sms"), "body": text("Still coming?")})

    assert sms.sent == []
    [said] = workspace.ephemerals_to(ALICE)
    assert said.startswith(":no_entry: Not sent: this lead opted out of texts") and "Nothing left Slack" in said


@any_database
def test_a_reply_the_provider_refuses_says_why(workspace, services, sms):
    sms.failures.append(PermanentSendError("the number is a landline", code="21614", kind=FailureKind.UNREACHABLE))
    _lead_id, view = open_reply(workspace, services)

    workspace.submit(view, {"channel": radio("sms"), "body": text("Hello")})

    assert workspace.ephemerals_to(ALICE) == [":x: Your text was not sent: the number is a landline."]


@any_database
def test_a_modal_is_acknowledged_before_the_message_is_sent(workspace, services, sms):
    # The send takes 3 s; Slack's answer must not wait for it (the margin is wide: the machine may be loaded).
    sms.during_send = lambda message: time.sleep(3.0)
    _lead_id, view = open_reply(workspace, services)

    answer = workspace.submit(view, {"channel": radio("sms"), "body": text("On our way")})

    assert answer.elapsed.total_seconds() < 2.5
    assert sms.to(CHICAGO_PHONE) == ["On our way"]


@any_database
def test_the_modal_remembers_where_to_answer(workspace, services):
    lead_id, view = open_reply(workspace, services)

    origin = ModalOrigin.from_metadata(view["private_metadata"])

    assert origin == ModalOrigin(lead_id=lead_id, channel=LEADS)
    assert json.loads(view["private_metadata"]) == {"lead_id": lead_id, "channel": LEADS}
    assert view["callback_id"] == ModalCallback.REPLY
