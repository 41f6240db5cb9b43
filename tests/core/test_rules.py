"""The stop and escalation rules as a table: what each thing the lead or the team does changes."""

from __future__ import annotations

import pytest

from bot.core.rules import (
    CallOutcome,
    LeadSignal,
    SequenceChange,
    VisitChange,
    decide_on_booking,
    decide_on_call_outcome,
    decide_on_quiet_end,
    decide_on_signal,
    decide_on_visit_reply,
    signal_for_lead,
    stage_after_touch,
)
from bot.store.models import Stage


@pytest.mark.parametrize(
    ("signal", "sequence", "stage", "call_task", "alert"),
    [
        (LeadSignal.OPT_OUT, SequenceChange.STOP, Stage.OPTED_OUT, None, False),
        (LeadSignal.NOT_INTERESTED, SequenceChange.STOP, Stage.LOST, None, False),
        (LeadSignal.BOOKED, SequenceChange.STOP, Stage.BOOKED, None, True),
        (LeadSignal.LATER, SequenceChange.STOP, Stage.NURTURE, None, False),
        (LeadSignal.ASKS_TIME, SequenceChange.PAUSE, Stage.ENGAGED, "asked for a time or to book", True),
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
        sequence,
        stage,
        call_task,
        alert,
    )


@pytest.mark.parametrize("signal", [LeadSignal.OPT_OUT, LeadSignal.NOT_INTERESTED, LeadSignal.BOOKED, LeadSignal.LATER])
def test_leads_who_end_things_need_no_more_calls(signal):
    assert decide_on_signal(signal, current_stage=Stage.CONTACTED).close_call_tasks


def test_a_lead_who_would_rather_hear_later_gets_the_slow_nurture_cadence_and_nothing_else_does():
    assert decide_on_signal(LeadSignal.LATER, current_stage=Stage.CONTACTED).start_nurture
    assert not any(
        decide_on_signal(signal, current_stage=Stage.CONTACTED).start_nurture
        for signal in LeadSignal
        if signal != LeadSignal.LATER
    )


def test_later_neither_restarts_nurture_nor_puts_off_a_booked_visit():
    in_nurture = decide_on_signal(LeadSignal.LATER, current_stage=Stage.NURTURE)
    assert in_nurture.sequence == SequenceChange.KEEP and not in_nurture.start_nurture
    booked = decide_on_signal(LeadSignal.LATER, current_stage=Stage.BOOKED)
    assert booked == decide_on_signal(LeadSignal.PLAIN, current_stage=Stage.BOOKED)


@pytest.mark.parametrize(
    ("signal", "opted_out", "read_as"),
    [
        (LeadSignal.OPT_IN, False, LeadSignal.PLAIN),
        (LeadSignal.OPT_IN, True, LeadSignal.OPT_IN),
        (LeadSignal.OPT_OUT, False, LeadSignal.OPT_OUT),
        (LeadSignal.QUESTION, True, LeadSignal.QUESTION),
    ],
)
def test_an_opt_in_keyword_counts_only_from_a_lead_who_opted_out(signal, opted_out, read_as):
    assert signal_for_lead(signal, opted_out=opted_out) == read_as


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
    [
        (Stage.NEW, Stage.CONTACTED),
        (Stage.CONTACTED, Stage.CONTACTED),
        (Stage.ENGAGED, Stage.ENGAGED),
        (Stage.BOOKED, Stage.BOOKED),
        (Stage.NURTURE, Stage.NURTURE),
    ],
)
def test_a_sent_touch_only_moves_new_leads_to_contacted(before, after):
    assert stage_after_touch(before) == after


@pytest.mark.parametrize(
    ("signal", "also", "change", "call"),
    [
        (LeadSignal.CONFIRM_VISIT, None, VisitChange.CONFIRM, None),
        (LeadSignal.CONFIRM_VISIT, LeadSignal.QUESTION, VisitChange.CONFIRM, "asked a question"),
        (LeadSignal.CONFIRM_VISIT, LeadSignal.ASKS_CALL, VisitChange.CONFIRM, "asked to be called or booked"),
        (LeadSignal.CONFIRM_VISIT, LeadSignal.ASKS_TIME, VisitChange.CONFIRM, "asked for a time or to book"),
        (LeadSignal.CANCEL_VISIT, None, VisitChange.HOLD, "wants to reschedule"),
        (LeadSignal.CANCEL_VISIT, LeadSignal.QUESTION, VisitChange.HOLD, "wants to reschedule; also: asked a question"),
        (
            LeadSignal.RESCHEDULE_VISIT,
            LeadSignal.ASKS_CALL,
            VisitChange.HOLD,
            "wants to reschedule; also: asked to be called or booked",
        ),
    ],
)
def test_a_reply_about_the_visit_is_acted_on_and_what_else_it_asks_goes_to_a_person(signal, also, change, call):
    decided = decide_on_visit_reply(signal, also=also)
    assert (decided.change, decided.call_task, decided.alert_team) == (change, call, call is not None)


@pytest.mark.parametrize("signal", [LeadSignal.QUESTION, LeadSignal.ASKS_CALL, LeadSignal.ASKS_TIME, LeadSignal.PLAIN])
def test_a_lead_with_a_visit_booked_who_asks_something_keeps_the_booking_and_reaches_a_person(signal):
    decision = decide_on_signal(signal, current_stage=Stage.BOOKED)
    assert decision.stage is None and decision.alert_team
    assert decision.call_task == decide_on_signal(signal, current_stage=Stage.CONTACTED).call_task
