"""The modals the bot opens (log a call outcome, book a visit, reply to a lead), and reading them back.

Pure: builders return view dicts; readers turn a submitted `view.state.values` into typed values,
or raise FormErrors naming the block each problem belongs to (Slack shows it under the field).
A modal's `private_metadata` carries ids only (which lead or call task, where to answer).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time, tzinfo
from typing import Any

from bot.core.rules import CallOutcome
from bot.slack.blocks import OUTCOME_LABELS, ModalCallback, clip, escape

View = dict[str, Any]

#: block_id (and action_id) of each input, so errors land under the right field.
OUTCOME_BLOCK = "outcome"
WHEN_BLOCK = "when"
NOTES_BLOCK = "notes"
CHANNEL_BLOCK = "channel"
SUBJECT_BLOCK = "subject"
BODY_BLOCK = "body"

#: Outcomes that need a date and time.
TIMED_OUTCOMES = frozenset({CallOutcome.BOOKED, CallOutcome.CALL_BACK})
#: Longest team reply by SMS: Twilio refuses bodies over 1600 characters.
SMS_MAX = 1600
EMAIL_MAX = 3000
NOTES_MAX = 2000
SUBJECT_MAX = 150
CHANNEL_LABELS = {"sms": "Text message (SMS)", "email": "Email"}


class FormErrors(Exception):
    """The form cannot be used as filled in; `errors` maps each block_id to what to fix."""

    def __init__(self, errors: Mapping[str, str]):
        self.errors = dict(errors)
        super().__init__("; ".join(f"{block}: {message}" for block, message in self.errors.items()))


class StaleModal(ValueError):
    """The modal's private_metadata is not one the bot wrote (an old or forged submission)."""


@dataclass(frozen=True)
class ModalOrigin:
    """What a modal is about, and where to answer the person who submits it."""

    lead_id: int | None = None
    task_id: int | None = None
    #: The channel (and thread) the button was in: where an ephemeral answer goes.
    channel: str | None = None
    thread_ts: str | None = None
    #: The visit time (unix) the person was warned about (a closed day) and may now book anyway.
    warned: int | None = None

    def to_metadata(self) -> str:
        return json.dumps({k: v for k, v in asdict(self).items() if v is not None}, separators=(",", ":"))

    @classmethod
    def from_metadata(cls, text: str | None) -> ModalOrigin:
        try:
            data = json.loads(text or "")
            origin = cls(
                lead_id=_optional_int(data.get("lead_id")),
                task_id=_optional_int(data.get("task_id")),
                channel=_optional_str(data.get("channel")),
                thread_ts=_optional_str(data.get("thread_ts")),
                warned=_optional_int(data.get("warned")),
            )
        except (ValueError, TypeError, AttributeError) as error:
            raise StaleModal(f"unreadable private_metadata: {text!r:.80}") from error
        if origin.lead_id is None and origin.task_id is None:
            raise StaleModal("the modal names neither a lead nor a call task")
        return origin


def _optional_int(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("an id must be an integer")
    return value


def _optional_str(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError("expected text")
    return value


# --- pieces -------------------------------------------------------------------------------------


def _plain(text: str, limit: int) -> dict[str, Any]:
    return {"type": "plain_text", "text": clip(text, limit) or " ", "emoji": True}


def _modal(callback: ModalCallback, title: str, submit: str, blocks: list[dict], origin: ModalOrigin) -> View:
    return {
        "type": "modal",
        "callback_id": str(callback),
        "title": _plain(title, 24),
        "submit": _plain(submit, 24),
        "close": _plain("Cancel", 24),
        "private_metadata": origin.to_metadata(),
        "blocks": blocks,
    }


def _about(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": clip(text, 3000)}}


def _when_input(label: str, *, optional: bool, hint: str | None = None, initial: datetime | None = None) -> dict:
    element: dict[str, Any] = {"type": "datetimepicker", "action_id": WHEN_BLOCK}
    if initial is not None:
        element["initial_date_time"] = int(initial.timestamp())
    block: dict[str, Any] = {
        "type": "input",
        "block_id": WHEN_BLOCK,
        "optional": optional,
        "label": _plain(label, 2000),
        "element": element,
    }
    if hint:
        block["hint"] = _plain(hint, 2000)
    return block


def _text_input(
    block_id: str, label: str, *, multiline: bool, optional: bool, max_length: int, placeholder: str | None = None
) -> dict[str, Any]:
    element: dict[str, Any] = {
        "type": "plain_text_input",
        "action_id": block_id,
        "multiline": multiline,
        "max_length": max_length,
    }
    if placeholder:
        element["placeholder"] = _plain(placeholder, 150)
    return {
        "type": "input",
        "block_id": block_id,
        "optional": optional,
        "label": _plain(label, 2000),
        "element": element,
    }


def _option(value: str, label: str) -> dict[str, Any]:
    return {"text": _plain(label, 75), "value": value}


# --- builders -----------------------------------------------------------------------------------


def log_outcome_modal(lead_name: str, reason: str, origin: ModalOrigin) -> View:
    """How did the call go: an outcome, a time for booked or call back, and notes."""
    options = [_option(str(outcome), OUTCOME_LABELS.get(str(outcome), str(outcome))) for outcome in CallOutcome]
    blocks = [
        _about(f":telephone_receiver: Call with *{escape(lead_name)}*\n_{escape(reason)}_"),
        {
            "type": "input",
            "block_id": OUTCOME_BLOCK,
            "label": _plain("How did it go?", 2000),
            "element": {"type": "radio_buttons", "action_id": OUTCOME_BLOCK, "options": options},
        },
        _when_input("When", optional=True, hint="For Booked: the visit. For Call back: when to call."),
        _text_input(
            NOTES_BLOCK,
            "Notes",
            multiline=True,
            optional=True,
            max_length=NOTES_MAX,
            placeholder="What was said, what they need",
        ),
    ]
    return _modal(ModalCallback.LOG_OUTCOME, "Log call outcome", "Save", blocks, origin)


def book_modal(
    lead_name: str, origin: ModalOrigin, *, warning: str | None = None, initial: datetime | None = None
) -> View:
    """When is the visit: a date and time, and notes (a closed day is warned about; a second submit books it)."""
    blocks = [
        _about(
            f":calendar: Book a visit for *{escape(lead_name)}*: the lead gets a confirmation, follow-up stops "
            "and reminders start."
        ),
        _when_input("Visit date and time", optional=False, initial=initial),
        _text_input(NOTES_BLOCK, "Notes", multiline=True, optional=True, max_length=NOTES_MAX),
    ]
    if warning:
        blocks.append(_about(f":warning: {escape(warning)}. Submit again to book it anyway."))
    return _modal(ModalCallback.BOOK, "Book a visit", "Book", blocks, origin)


DATE_BLOCK = "visit_date"
TIME_BLOCK = "visit_time"


def reschedule_modal(
    lead_name: str, current: str, origin: ModalOrigin, *, zone: tzinfo, initial: datetime, warning: str | None = None
) -> View:
    """Move the visit: a date and a time, both in the business's time zone where the visit happens."""
    local = initial.astimezone(zone)
    key = getattr(zone, "key", str(zone))
    blocks = [
        _about(
            f":arrows_counterclockwise: Move the visit of *{escape(lead_name)}* (now {escape(current)}). "
            "The lead gets the new time; reminders follow it."
        ),
        {
            "type": "input",
            "block_id": DATE_BLOCK,
            "label": _plain("New date", 2000),
            "element": {"type": "datepicker", "action_id": DATE_BLOCK, "initial_date": local.strftime("%Y-%m-%d")},
        },
        {
            "type": "input",
            "block_id": TIME_BLOCK,
            "label": _plain(f"New time ({key} time)", 2000),
            "element": {
                "type": "timepicker",
                "action_id": TIME_BLOCK,
                "initial_time": local.strftime("%H:%M"),
                "timezone": key,
            },
            "hint": _plain(f"In the business's time zone ({key}), where the visit happens.", 2000),
        },
    ]
    if warning:
        blocks.append(_about(f":warning: {escape(warning)}. Submit again to move it there anyway."))
    return _modal(ModalCallback.RESCHEDULE, "Reschedule visit", "Move it", blocks, origin)


def read_reschedule_form(values: Mapping[str, Any], *, now: datetime, zone: tzinfo) -> datetime:
    """Read the new visit time (date and time in the business's zone); FormErrors for a missing or past one."""
    day = _state(values, DATE_BLOCK).get("selected_date")
    clock = _state(values, TIME_BLOCK).get("selected_time")
    errors: dict[str, str] = {}
    try:
        parsed_day = date.fromisoformat(day) if isinstance(day, str) else None
    except ValueError:
        parsed_day = None
    try:
        parsed_time = time.fromisoformat(clock) if isinstance(clock, str) else None
    except ValueError:
        parsed_time = None
    if parsed_day is None:
        errors[DATE_BLOCK] = "Pick the new date."
    if parsed_time is None:
        errors[TIME_BLOCK] = "Pick the new time."
    if errors:
        raise FormErrors(errors)
    assert parsed_day is not None and parsed_time is not None
    start_at = datetime.combine(parsed_day, parsed_time, tzinfo=zone).astimezone(UTC)
    if start_at <= now:
        raise FormErrors({DATE_BLOCK: "That time has passed; pick a future date and time."})
    return start_at


def reply_modal(lead_name: str, channels: Sequence[str], origin: ModalOrigin) -> View:
    """Write to the lead by one of the channels still open to them (the first is preselected)."""
    if not channels:
        raise ValueError("a reply modal needs at least one channel the lead can be reached on")
    options = [_option(channel, CHANNEL_LABELS.get(channel, channel)) for channel in channels]
    blocks = [
        _about(f":outbox_tray: Reply to *{escape(lead_name)}*. This goes to the lead, not to the team."),
        {
            "type": "input",
            "block_id": CHANNEL_BLOCK,
            "label": _plain("Send as", 2000),
            "element": {
                "type": "radio_buttons",
                "action_id": CHANNEL_BLOCK,
                "options": options,
                "initial_option": options[0],
            },
        },
        _text_input(
            SUBJECT_BLOCK,
            "Email subject",
            multiline=False,
            optional=True,
            max_length=SUBJECT_MAX,
            placeholder="Only for email; left empty, a short default is used",
        ),
        _text_input(BODY_BLOCK, "Message", multiline=True, optional=False, max_length=EMAIL_MAX),
    ]
    return _modal(ModalCallback.REPLY, "Reply to lead", "Send", blocks, origin)


#: A modal holds at most 100 blocks; a section at most 3000 characters.
_MODAL_BLOCKS = 100
_SECTION = 3000


def email_modal(heading: str, subject: str | None, text: str) -> View:
    """A whole email, to read (no form): the thread shows its subject and first line only.

    `heading` is already mrkdwn (the bot's words); the subject and text are escaped here.
    """
    blocks: list[dict[str, Any]] = [_about(heading)]
    if subject:
        blocks.append(_about(f"*Subject:* {escape(subject)}"))
    blocks.append({"type": "divider"})
    body = escape(text.strip()) or "_(no text)_"
    chunks: list[str] = []
    for paragraph in body.split("\n\n"):
        while paragraph:
            piece, paragraph = paragraph[:_SECTION], paragraph[_SECTION:]
            if chunks and len(chunks[-1]) + len(piece) + 2 <= _SECTION:
                chunks[-1] += "\n\n" + piece
            else:
                chunks.append(piece)
    room = _MODAL_BLOCKS - len(blocks)
    if len(chunks) > room:
        chunks = chunks[: room - 1] + ["_… the rest is too long to show here; `followup leads show` has it all._"]
    blocks.extend(_about(chunk) for chunk in chunks)
    return {"type": "modal", "title": _plain("Email", 24), "close": _plain("Close", 24), "blocks": blocks}


# --- readers ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OutcomeForm:
    outcome: CallOutcome
    when: datetime | None
    notes: str


@dataclass(frozen=True)
class BookForm:
    start_at: datetime
    notes: str


@dataclass(frozen=True)
class ReplyForm:
    channel: str
    subject: str | None
    body: str


def _state(values: Mapping[str, Any], block_id: str) -> Mapping[str, Any]:
    block = values.get(block_id) or {}
    state = block.get(block_id) if isinstance(block, Mapping) else None
    return state if isinstance(state, Mapping) else {}


def _text(values: Mapping[str, Any], block_id: str) -> str:
    value = _state(values, block_id).get("value")
    return value.strip() if isinstance(value, str) else ""


def _selected(values: Mapping[str, Any], block_id: str) -> str | None:
    option = _state(values, block_id).get("selected_option")
    value = option.get("value") if isinstance(option, Mapping) else None
    return value if isinstance(value, str) else None


def _moment(values: Mapping[str, Any], block_id: str) -> datetime | None:
    stamp = _state(values, block_id).get("selected_date_time")
    if isinstance(stamp, bool) or not isinstance(stamp, (int, float)):
        return None
    return datetime.fromtimestamp(stamp, tz=UTC)


def read_outcome_form(values: Mapping[str, Any], *, now: datetime) -> OutcomeForm:
    """Read the log-outcome modal; booked and call back need a time in the future."""
    errors: dict[str, str] = {}
    try:
        outcome = CallOutcome(_selected(values, OUTCOME_BLOCK) or "")
    except ValueError:
        raise FormErrors({OUTCOME_BLOCK: "Pick how the call went."}) from None
    when = _moment(values, WHEN_BLOCK)
    if outcome in TIMED_OUTCOMES:
        what = "the visit" if outcome == CallOutcome.BOOKED else "the call back"
        if when is None:
            errors[WHEN_BLOCK] = f"Pick the date and time of {what}."
        elif when <= now:
            errors[WHEN_BLOCK] = f"That time has passed; pick a future date and time for {what}."
    else:
        when = None  # a time only means something for booked and call back
    if errors:
        raise FormErrors(errors)
    return OutcomeForm(outcome, when, _text(values, NOTES_BLOCK))


def read_book_form(values: Mapping[str, Any], *, now: datetime) -> BookForm:
    start_at = _moment(values, WHEN_BLOCK)
    if start_at is None:
        raise FormErrors({WHEN_BLOCK: "Pick the date and time of the visit."})
    if start_at <= now:
        raise FormErrors({WHEN_BLOCK: "That time has passed; pick a future date and time."})
    return BookForm(start_at, _text(values, NOTES_BLOCK))


def read_reply_form(values: Mapping[str, Any]) -> ReplyForm:
    channel = _selected(values, CHANNEL_BLOCK)
    body = _text(values, BODY_BLOCK)
    errors: dict[str, str] = {}
    if channel not in CHANNEL_LABELS:
        errors[CHANNEL_BLOCK] = "Pick SMS or email."
    if not body:
        errors[BODY_BLOCK] = "Write the message to send."
    elif channel == "sms" and len(body) > SMS_MAX:
        errors[BODY_BLOCK] = f"A text can be at most {SMS_MAX} characters; this one has {len(body)}."
    if errors:
        raise FormErrors(errors)
    assert channel is not None
    subject = _text(values, SUBJECT_BLOCK) if channel == "email" else ""
    return ReplyForm(channel, subject or None, body)
