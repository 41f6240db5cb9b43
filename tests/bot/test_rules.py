"""The stop and escalation rules as a table: what each thing the lead or the team does changes."""

from __future__ import annotations

import pytest

from bot.models import Stage
from bot.rules import (
    CallOutcome,
    LeadSignal,
    SequenceChange,
    decide_on_booking,
    decide_on_call_outcome,
    decide_on_quiet_end,
    decide_on_signal,
    stage_after_touch,
)


@pytest.mark.parametrize(
    ("signal", "sequence", "stage", "call_task", "alert"),
    [
        (LeadSignal.OPT_OUT, SequenceChange.STOP, Stage.OPTED_OUT, None, False),
        (LeadSignal.NOT_INTERESTED, SequenceChange.STOP, Stage.LOST, None, False),
        (LeadSignal.BOOKED, SequenceChange.STOP, Stage.BOOKED, None, True),
        (LeadSignal.ASKS_TIME, SequenceChange.PAUSE, Stage.ENGAGED, "asked for a specific time", True),
        (LeadSignal.QUESTION, SequenceChange.PAUSE, Stage.ENGAGED, "asked a question", True),
        (LeadSignal.PLAIN, SequenceChange.PAUSE, Stage.ENGAGED, None, True),
        (LeadSignal.AUTO_REPLY, SequenceChange.KEEP, None, None, False),
        (LeadSignal.HELP, SequenceChange.KEEP, None, None, False),
        (LeadSignal.OPT_IN, SequenceChange.KEEP, None, None, True),
    ],
)
def test_what_a_message_from_the_lead_changes(signal, sequence, stage, call_task, alert):
    decision = decide_on_signal(signal, current_stage=Stage.CONTACTED)
    assert (decision.sequence, decision.stage, decision.call_task, decision.alert_team) == (
        sequence, stage, call_task, alert)


@pytest.mark.parametrize("signal", [LeadSignal.OPT_OUT, LeadSignal.NOT_INTERESTED, LeadSignal.BOOKED])
def test_leads_who_end_things_need_no_more_calls(signal):
    assert decide_on_signal(signal, current_stage=Stage.CONTACTED).close_call_tasks


def test_an_opted_out_lead_who_writes_again_goes_to_a_person_not_back_into_a_sequence():
    decision = decide_on_signal(LeadSignal.QUESTION, current_stage=Stage.OPTED_OUT)
    assert decision.sequence == SequenceChange.KEEP and decision.alert_team and decision.call_task is None


def test_a_booking_stops_sales_and_marks_the_lead_booked():
    decision = decide_on_booking()
    assert (decision.sequence, decision.stage, decision.close_call_tasks) == (SequenceChange.STOP, Stage.BOOKED, True)


@pytest.mark.parametrize(
    ("outcome", "paused", "sequence", "stage"),
    [
        (CallOutcome.LEFT_VOICEMAIL, False, SequenceChange.KEEP, None),
        (CallOutcome.LEFT_VOICEMAIL, True, SequenceChange.RESUME, None),
        (CallOutcome.NO_ANSWER, True, SequenceChange.RESUME, None),
        (CallOutcome.CALL_BACK, False, SequenceChange.PAUSE, Stage.ENGAGED),
        (CallOutcome.BOOKED, False, SequenceChange.STOP, Stage.BOOKED),
        (CallOutcome.WRONG_NUMBER, False, SequenceChange.STOP, Stage.LOST),
        (CallOutcome.NOT_INTERESTED, True, SequenceChange.STOP, Stage.LOST),
    ],
)
def test_what_a_logged_call_outcome_changes(outcome, paused, sequence, stage):
    decision = decide_on_call_outcome(outcome, paused=paused)
    assert (decision.sequence, decision.stage) == (sequence, stage)


def test_a_quiet_lead_moves_to_nurture_at_the_end():
    assert decide_on_quiet_end().stage == Stage.NURTURE


@pytest.mark.parametrize(
    ("before", "after"),
    [(Stage.NEW, Stage.CONTACTED), (Stage.CONTACTED, Stage.CONTACTED), (Stage.ENGAGED, Stage.ENGAGED),
     (Stage.BOOKED, Stage.BOOKED), (Stage.NURTURE, Stage.NURTURE)],
)
def test_a_sent_touch_only_moves_new_leads_to_contacted(before, after):
    assert stage_after_touch(before) == after
