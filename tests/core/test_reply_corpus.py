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

from bot.core.reply_classifier import DESTRUCTIVE, ReplyClass, Understanding, classify_reply, load_reply_rules
from bot.core.rules import Decision, LeadSignal, SequenceChange, decide_on_signal, signal_for_lead
from bot.core.states import Stage

CORPUS = Path(__file__).with_name("reply_corpus.yml")
CHICAGO = "America/Chicago"
#: Wednesday 2026-11-25, 10:00 in Chicago.
NOW = datetime(2026, 11, 25, 10, 0, tzinfo=ZoneInfo(CHICAGO))
RULES = load_reply_rules()
ROWS = yaml.safe_load(CORPUS.read_text(encoding="utf-8"))
EFFECTS = {"call", "alert", "confirm", "ignore", "nurture", "lost", "help", "stop sms", "stop email",
           "stop sms+email"}


def read(channel: str, text: str) -> Understanding:
    return classify_reply(text, rules=RULES, channel=channel, now=NOW, lead_timezone=CHICAGO)


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
    return f"{row[0]}:{row[3][:40]}"


def test_the_corpus_is_large_and_covers_both_channels_both_languages_and_every_class():
    assert len(ROWS) >= 300
    assert {row[0] for row in ROWS} == {"sms", "email"}
    assert {ReplyClass(row[1]) for row in ROWS} >= set(ReplyClass) - {
        ReplyClass.OPT_IN, ReplyClass.CANCEL_VISIT, ReplyClass.RESCHEDULE_VISIT, ReplyClass.CONFIRM_VISIT}
    assert {row[2] for row in ROWS} == EFFECTS
    spanish = [row for row in ROWS if any(word in row[3].lower() for word in (
        "cita", "gracias", "no me", "por favor", "cuesta", "mensajes", "equivocado", "hola", "tienen", "llám", "estoy",
        "alto", "parar", "cancelar", "detener", "baja", "más", "despues"))]
    assert len(spanish) >= 30
    assert len({(row[0], row[3]) for row in ROWS}) == len(ROWS), "a reply is in the corpus twice"


@pytest.mark.parametrize("row", ROWS, ids=row_id)
def test_each_reply_is_read_as_its_class_and_has_its_effect(row):
    channel, expected_class, expected_effect, text = row
    understanding = read(channel, text)
    assert understanding.reply_class == ReplyClass(expected_class), understanding.rule
    signal = signal_for_lead(LeadSignal(understanding.reply_class.value), opted_out=False)  # as conversations does
    decision = decide_on_signal(signal, current_stage=Stage.CONTACTED)
    assert effect_of(understanding, decision) == expected_effect


def test_no_reply_a_person_should_read_is_given_a_destructive_reading():
    misread = [(row[3], read(row[0], row[3]).reply_class.value) for row in ROWS
               if ReplyClass(row[1]) not in DESTRUCTIVE and read(row[0], row[3]).reply_class in DESTRUCTIVE]
    assert misread == []
