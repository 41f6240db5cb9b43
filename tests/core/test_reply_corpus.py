"""The reply corpus (tests/core/reply_corpus.yml): real-sounding replies each read as its class, with its effect.

Each reply goes through the shipped rules and the pure decision rules the webhooks use, so a row
says both what the bot understands and what then happens (who is told, what pauses, what is sent).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from bot.core.reply_classifier import (
    DESTRUCTIVE,
    VISIT_CLASSES,
    ReplyClass,
    Understanding,
    classify_reply,
    load_reply_rules,
)
from bot.core.rules import (
    Decision,
    LeadSignal,
    SequenceChange,
    VisitChange,
    VisitDecision,
    decide_on_signal,
    decide_on_visit_reply,
    signal_for_lead,
)
from bot.core.states import Stage

CORPUS = Path(__file__).with_name("reply_corpus.yml")
CHICAGO = "America/Chicago"
#: Wednesday 2026-11-25, 10:00 in Chicago.
NOW = datetime(2026, 11, 25, 10, 0, tzinfo=ZoneInfo(CHICAGO))
RULES = load_reply_rules()
ROWS = yaml.safe_load(CORPUS.read_text(encoding="utf-8"))
EFFECTS = {"call", "alert", "confirm", "ignore", "nurture", "lost", "help", "stop sms", "stop email", "stop sms+email"}
#: The effects of a reply about the visit ahead (rows with the fifth column "visit").
VISIT_EFFECTS = {"visit confirmed", "visit confirmed+call", "visit held+call"}


def visit_ahead(row: list[str]) -> bool:
    """Say whether the row is read with a visit booked (its fifth column)."""
    return len(row) > 4 and row[4] == "visit"


def read(channel: str, text: str, *, ahead: bool = False) -> Understanding:
    return classify_reply(text, rules=RULES, channel=channel, now=NOW, lead_timezone=CHICAGO, appointment_ahead=ahead)


def class_of(understanding: Understanding) -> str:
    """Name the reading as the corpus writes it: the class, and "+" what else it asks beside a visit reading."""
    also = understanding.also
    return understanding.reply_class.value + (f"+{also.reply_class.value}" if also is not None else "")


def visit_effect_of(decided: VisitDecision) -> str:
    """Name what a reply about the visit does, from the decision the bot takes on it."""
    if decided.change == VisitChange.CONFIRM:
        assert bool(decided.call_task) == decided.alert_team
        return "visit confirmed+call" if decided.call_task else "visit confirmed"
    assert decided.call_task and decided.call_task.startswith("wants to reschedule") and decided.alert_team
    return "visit held+call"


def effect_of(understanding: Understanding, decision: Decision) -> str:
    """Name what the reply does, from the decision the bot takes on it."""
    if understanding.reply_class == ReplyClass.OPT_OUT:
        assert decision.sequence == SequenceChange.STOP and decision.stage == Stage.OPTED_OUT
        return "stop " + "+".join(understanding.opt_out_channels)
    if understanding.reply_class == ReplyClass.HELP:
        return "help"
    if decision.call_task:
        assert decision.alert_team and decision.sequence == SequenceChange.PAUSE
        return "call"
    if decision.stage == Stage.BOOKED:
        assert decision.alert_team and decision.sequence == SequenceChange.STOP
        return "confirm"
    if decision.stage == Stage.NURTURE and decision.start_nurture:
        return "nurture"
    if decision.stage == Stage.LOST:
        assert decision.sequence == SequenceChange.STOP and not decision.alert_team
        return "lost"
    if decision.alert_team and decision.sequence == SequenceChange.PAUSE:
        return "alert"
    if decision.sequence == SequenceChange.KEEP and not decision.alert_team:
        return "ignore"
    raise AssertionError(f"no effect name for {decision}")


def row_id(row: list[str]) -> str:
    return f"{row[0]}:{'visit:' if visit_ahead(row) else ''}{row[3][:40]}"


def test_the_corpus_is_large_and_covers_both_channels_both_languages_and_every_class():
    assert len(ROWS) >= 300
    assert {row[0] for row in ROWS} == {"sms", "email"}
    assert {ReplyClass(row[1].partition("+")[0]) for row in ROWS} >= set(ReplyClass) - {ReplyClass.OPT_IN}
    assert {row[2] for row in ROWS} == EFFECTS | VISIT_EFFECTS
    # Each visit reading with each kind of request beside it.
    combined = {row[1] for row in ROWS if "+" in row[1]}
    assert {
        f"{visit}+{asks}"
        for visit in ("confirm_visit", "cancel_visit", "reschedule_visit")
        for asks in ("question", "asks_call")
    } | {"confirm_visit+asks_time"} <= combined
    spanish = [
        row
        for row in ROWS
        if any(
            word in row[3].lower()
            for word in (
                "cita",
                "gracias",
                "no me",
                "por favor",
                "cuesta",
                "mensajes",
                "equivocado",
                "hola",
                "tienen",
                "llám",
                "estoy",
                "alto",
                "parar",
                "cancelar",
                "detener",
                "baja",
                "más",
                "despues",
            )
        )
    ]
    assert len(spanish) >= 30
    assert len({(row[0], row[3], visit_ahead(row)) for row in ROWS}) == len(ROWS), "a reply is in the corpus twice"


@pytest.mark.parametrize("row", ROWS, ids=row_id)
def test_each_reply_is_read_as_its_class_and_has_its_effect(row):
    channel, expected_class, expected_effect, text = row[:4]
    understanding = read(channel, text, ahead=visit_ahead(row))
    assert class_of(understanding) == expected_class, understanding.rule
    signal = signal_for_lead(LeadSignal(understanding.reply_class.value), opted_out=False)  # as conversations does
    if understanding.reply_class in VISIT_CLASSES:
        also = LeadSignal(understanding.also.reply_class.value) if understanding.also else None
        assert visit_effect_of(decide_on_visit_reply(signal, also=also)) == expected_effect
        return
    decision = decide_on_signal(signal, current_stage=Stage.BOOKED if visit_ahead(row) else Stage.CONTACTED)
    assert effect_of(understanding, decision) == expected_effect


def test_no_reply_a_person_should_read_is_given_a_destructive_reading():
    readings = [(row, read(row[0], row[3], ahead=visit_ahead(row))) for row in ROWS]
    misread = [
        (row[3], reading.reply_class.value)
        for row, reading in readings
        if ReplyClass(row[1].partition("+")[0]) not in DESTRUCTIVE and reading.reply_class in DESTRUCTIVE
    ]
    assert misread == []


def test_no_request_beside_a_visit_reading_goes_unanswered():
    """Every row that asks something beside confirming, moving or cancelling hands a person a call naming it."""
    for row in ROWS:
        understanding = read(row[0], row[3], ahead=visit_ahead(row))
        if understanding.reply_class in VISIT_CLASSES and understanding.also is not None:
            asked = decide_on_signal(
                LeadSignal(understanding.also.reply_class.value), current_stage=Stage.BOOKED
            ).call_task
            decided = decide_on_visit_reply(
                LeadSignal(understanding.reply_class.value), also=LeadSignal(understanding.also.reply_class.value)
            )
            assert asked and decided.call_task and asked in decided.call_task, row[3]
