"""The modals the bot opens, and reading what was submitted into typed values or field errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

from bot.core.rules import CallOutcome
from bot.slack.modals import (
    FormErrors,
    ModalOrigin,
    OutcomeForm,
    ReplyForm,
    StaleModal,
    book_modal,
    log_outcome_modal,
    read_book_form,
    read_outcome_form,
    read_reply_form,
    reply_modal,
)

NOW = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
ORIGIN = ModalOrigin(task_id=7, channel="C0LEADS", thread_ts="1764082800.000100")


def valid(view: dict) -> dict:
    assert len(view["blocks"]) <= 100
    assert all(block is not None for block in Block.parse_all(view["blocks"]))
    for block in Block.parse_all(view["blocks"]):
        block.validate_json()
    View(**view).validate_json()
    return view


@pytest.mark.parametrize(
    "view",
    [
        log_outcome_modal("Dana Lee", "asked a question", ORIGIN),
        book_modal("Dana Lee", ModalOrigin(lead_id=3, channel="C0LEADS")),
        reply_modal("Dana Lee", ["sms", "email"], ModalOrigin(lead_id=3, channel="C0LEADS")),
        reply_modal("D" * 500, ["email"], ModalOrigin(lead_id=3)),
        log_outcome_modal("x" * 5000, "why " * 2000, ORIGIN),
    ],
)
def test_every_modal_is_valid_block_kit(view):
    valid(view)


def test_lead_text_in_a_modal_pings_no_one():
    view = log_outcome_modal("<!channel>", "asked about <@U0BOSS>", ORIGIN)

    assert "<!channel>" not in str(view) and "&lt;!channel&gt;" in view["blocks"][0]["text"]["text"]


def test_the_modal_carries_ids_only_and_reads_them_back():
    view = log_outcome_modal("Dana", "why", ORIGIN)

    assert ModalOrigin.from_metadata(view["private_metadata"]) == ORIGIN
    assert len(view["private_metadata"]) < 3000


@pytest.mark.parametrize(
    "metadata",
    [
        None,
        "",
        "not json",
        "[]",
        '{"channel":"C1"}',
        '{"lead_id":"3"}',
        '{"lead_id":true}',
        '{"task_id":1,"channel":5}',
    ],
)
def test_metadata_the_bot_did_not_write_is_refused(metadata):
    with pytest.raises(StaleModal):
        ModalOrigin.from_metadata(metadata)


def state(**elements) -> dict:
    return {block: {block: element} for block, element in elements.items()}


def picked(value: str) -> dict:
    return {"type": "radio_buttons", "selected_option": {"value": value}}


def at(moment: datetime | None) -> dict:
    return {"type": "datetimepicker", "selected_date_time": int(moment.timestamp()) if moment else None}


def typed(value: str | None) -> dict:
    return {"type": "plain_text_input", "value": value}


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (state(outcome=picked("no_answer")), OutcomeForm(CallOutcome.NO_ANSWER, None, "")),
        (
            state(outcome=picked("left_voicemail"), notes=typed("  left the script  ")),
            OutcomeForm(CallOutcome.LEFT_VOICEMAIL, None, "left the script"),
        ),
        (
            state(outcome=picked("wrong_number"), when=at(NOW + timedelta(days=1))),
            OutcomeForm(CallOutcome.WRONG_NUMBER, None, ""),
        ),  # a time means nothing here
        (
            state(outcome=picked("booked"), when=at(NOW + timedelta(days=1))),
            OutcomeForm(CallOutcome.BOOKED, NOW + timedelta(days=1), ""),
        ),
        (
            state(outcome=picked("call_back"), when=at(NOW + timedelta(hours=3)), notes=typed(None)),
            OutcomeForm(CallOutcome.CALL_BACK, NOW + timedelta(hours=3), ""),
        ),
    ],
)
def test_a_call_outcome_reads_into_a_typed_form(values, expected):
    assert read_outcome_form(values, now=NOW) == expected


@pytest.mark.parametrize(
    ("values", "errors"),
    [
        ({}, {"outcome": "Pick how the call went."}),
        (state(outcome=picked("called_twice")), {"outcome": "Pick how the call went."}),
        (state(outcome=picked("booked")), {"when": "Pick the date and time of the visit."}),
        (state(outcome=picked("call_back"), when=at(None)), {"when": "Pick the date and time of the call back."}),
        (
            state(outcome=picked("booked"), when=at(NOW)),
            {"when": "That time has passed; pick a future date and time for the visit."},
        ),
    ],
)
def test_a_call_outcome_that_cannot_be_used_names_the_field(values, errors):
    with pytest.raises(FormErrors) as raised:
        read_outcome_form(values, now=NOW)
    assert raised.value.errors == errors


def test_a_booking_needs_a_future_time():
    assert read_book_form(
        state(when=at(NOW + timedelta(hours=1)), notes=typed("x")), now=NOW
    ).start_at == NOW + timedelta(hours=1)
    with pytest.raises(FormErrors) as raised:
        read_book_form(state(when=at(NOW - timedelta(minutes=1))), now=NOW)
    assert set(raised.value.errors) == {"when"}


@pytest.mark.parametrize(
    ("values", "result"),
    [
        (state(channel=picked("sms"), body=typed(" See you ")), ReplyForm("sms", None, "See you")),
        (state(channel=picked("sms"), subject=typed("ignored"), body=typed("Hi")), ReplyForm("sms", None, "Hi")),
        (
            state(channel=picked("email"), subject=typed("Your visit"), body=typed("Hi")),
            ReplyForm("email", "Your visit", "Hi"),
        ),
        (state(channel=picked("email"), subject=typed(""), body=typed("Hi")), ReplyForm("email", None, "Hi")),
        (state(channel=picked("sms"), body=typed("")), {"body": "Write the message to send."}),
        (state(body=typed("Hi")), {"channel": "Pick SMS or email."}),
        (
            state(channel=picked("sms"), body=typed("x" * 1601)),
            {"body": "A text can be at most 1600 characters; this one has 1601."},
        ),
    ],
)
def test_a_reply_reads_into_a_typed_form_or_names_the_field(values, result):
    if isinstance(result, ReplyForm):
        assert read_reply_form(values) == result
        return
    with pytest.raises(FormErrors) as raised:
        read_reply_form(values)
    assert raised.value.errors == result


def test_a_reply_modal_needs_a_channel_to_offer():
    with pytest.raises(ValueError):
        reply_modal("Dana", [], ModalOrigin(lead_id=1))
