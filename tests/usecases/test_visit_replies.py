"""Replies about a visit ahead: confirm, move or cancel, read only while the lead has one booked."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.core.reply_classifier import ReplyClass, classify_reply, load_reply_rules

RULES = load_reply_rules()
NOW = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)

CONFIRM, MOVE, CANCEL = ReplyClass.CONFIRM_VISIT, ReplyClass.RESCHEDULE_VISIT, ReplyClass.CANCEL_VISIT


def classify(text: str, *, ahead: bool = True, channel: str = "sms") -> ReplyClass:
    return classify_reply(
        text, rules=RULES, channel=channel, now=NOW, lead_timezone="America/Chicago", appointment_ahead=ahead
    ).reply_class


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("YES", CONFIRM),
        ("Yes!", CONFIRM),
        ("yep see you then", CONFIRM),
        ("Confirmed, thanks", CONFIRM),
        ("I'll be there", CONFIRM),
        ("Please cancel", CANCEL),
        ("I need to cancel my appointment", CANCEL),
        ("Sorry, won't be coming tomorrow", CANCEL),
        ("I need to move my appointment", MOVE),
        ("Can we reschedule?", MOVE),
        ("I can't make it tomorrow", MOVE),
        ("yes but can we do 4pm instead", MOVE),
        ("How about Friday at 10?", MOVE),
        ("no", MOVE),  # "no" to "Reply YES to confirm": a person asks, the lead is not marked lost
        # still what they were
        ("STOP", ReplyClass.OPT_OUT),
        ("cancel", ReplyClass.OPT_OUT),  # the carrier keyword alone always opts out
        ("Do you take Blue Cross?", ReplyClass.QUESTION),
        ("I need to cancel my other appointment so I can come", ReplyClass.PLAIN),
    ],
)
def test_with_a_visit_ahead_a_reply_confirms_moves_or_cancels_it(text, expected):
    assert classify(text) == expected


@pytest.mark.parametrize("text", ["YES", "Please cancel", "I need to move my appointment", "Confirmed"])
def test_without_a_visit_ahead_the_visit_rules_never_apply(text):
    assert classify(text, ahead=False) not in (CONFIRM, MOVE, CANCEL)


def test_the_day_before_reminder_asks_for_the_reply_the_rules_read_as_a_confirmation():
    from bot import SHIPPED_TEMPLATES

    reminder = (SHIPPED_TEMPLATES / "appointment_reminders" / "day_before_sms.sms.j2").read_text()
    assert "Reply YES to confirm" in reminder
    assert classify("YES") == CONFIRM and classify("yes", channel="email") == CONFIRM
