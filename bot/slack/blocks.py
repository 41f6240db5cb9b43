"""Build the Block Kit for lead cards, thread entries and call tasks; pure, no Slack client.

Every piece of text that a lead (or a template rendered with a lead's details) supplied goes
through `escape` so `<!channel>`, `<@U123>` and `<http://x|link>` ping no one and link nowhere;
only mentions this module writes itself (owners, on-call, who clicked) are real.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any

from bot.slack.cards import (
    Automation,
    CallOutcomeEntry,
    CallTaskView,
    DecisionEntry,
    FailureEntry,
    InboundEntry,
    LeadCard,
    NeedsPersonEntry,
    OutboundEntry,
    SequenceProgress,
    ThreadEntry,
    ThreadReplyStatus,
)

Block = dict[str, Any]


class ActionId(StrEnum):
    """Every action_id a button in the bot's messages carries; each button's value is an id."""

    #: Take ownership of the lead (card button; value: lead id).
    LEAD_CLAIM = "lead_claim"
    #: Open the reply modal to write to the lead (card button; value: lead id).
    LEAD_REPLY = "lead_reply"
    #: Pause the lead's automated sequence (card button; value: lead id).
    LEAD_PAUSE = "lead_pause"
    #: Resume the lead's paused sequence (card button; value: lead id).
    LEAD_RESUME = "lead_resume"
    #: Record that the lead booked: opens the book modal (card button; value: lead id).
    LEAD_BOOKED = "lead_booked"
    LEAD_REOPEN = "lead_reopen"  #: undo the bot's closing of a lead (App Home, "closed by the bot")
    #: Stop the lead as not interested, after a confirm dialog (card button; value: lead id).
    LEAD_NOT_INTERESTED = "lead_not_interested"
    #: Claim a call task (task button; value: call task id).
    TASK_CLAIM = "task_claim"
    #: Open the log-outcome modal for a call task (task button; value: call task id).
    TASK_LOG_OUTCOME = "task_log_outcome"
    #: Pause the lead's automation from a call task (task button; value: call task id).
    TASK_PAUSE = "task_pause"
    #: Resume the lead's automation from a call task (task button; value: call task id).
    TASK_RESUME = "task_resume"
    #: Record that the lead booked, from a call task: opens the book modal (value: call task id).
    TASK_BOOKED = "task_booked"
    #: Stop the lead as not interested, from a call task, after a confirm dialog (value: call task id).
    TASK_NOT_INTERESTED = "task_not_interested"
    #: Put off a call task for a while (task button; value: call task id).
    TASK_SNOOZE = "task_snooze"
    #: Show a whole email in a modal (thread entry button; value: message id).
    EMAIL_OPEN = "email_open"
    #: Move the visit: opens the reschedule modal (card button; value: appointment id).
    APPOINTMENT_RESCHEDULE = "appointment_reschedule"
    #: Cancel the visit, after a confirm dialog (card button; value: appointment id).
    APPOINTMENT_CANCEL = "appointment_cancel"
    #: The lead came, once the start time has passed (card button; value: appointment id).
    APPOINTMENT_ATTENDED = "appointment_attended"
    #: The lead did not come, once the start time has passed (card button; value: appointment id).
    APPOINTMENT_NO_SHOW = "appointment_no_show"
    #: After a cancellation, back to the slow follow-up cadence (card button; value: lead id).
    LEAD_BACK_TO_FOLLOW_UP = "lead_back_to_follow_up"


class ModalCallback(StrEnum):
    """Every modal callback_id the bot opens."""

    #: Log a call outcome (outcome, time, notes); private_metadata carries the call task id.
    LOG_OUTCOME = "log_outcome_modal"
    #: Write an SMS or email to the lead; private_metadata carries the lead id.
    REPLY = "reply_modal"
    #: Book the lead at a date and time; private_metadata carries the lead id (or task id).
    BOOK = "book_modal"
    #: Move the lead's upcoming visit to a new date and time (business time zone); metadata: the lead id.
    RESCHEDULE = "reschedule_modal"


MODAL_CALLBACKS: tuple[str, ...] = tuple(m.value for m in ModalCallback)

# Block Kit limits (REFERENCE.md): checked here so Slack never refuses a message for its size.
MAX_BLOCKS = 50
SECTION_TEXT = 3000
FIELD_TEXT = 2000
CONTEXT_TEXT = 2000
HEADER_TEXT = 150
BUTTON_TEXT = 75
CONFIRM_TITLE = 100
CONFIRM_TEXT = 300
CONFIRM_BUTTON = 30
ACTIONS_ELEMENTS = 25
MESSAGE_TEXT = 4000
ELLIPSIS = "…"

CHANNEL_NAMES = {"sms": "SMS", "email": "Email", "call_task": "Call", "stage": "Stage"}
#: How long the first line of an email in a thread may be before "Show full email" takes over.
EMAIL_FIRST_LINE = 200
SIGNAL_LABELS = {
    "opt_out": "opted out",
    "opt_in": "opted back in",
    "help": "asked who is writing (HELP)",
    "not_interested": "not interested",
    "later": "later is better (moved to nurture)",
    "booked": "says they booked",
    "asks_time": "asked for a time",
    "asks_call": "asked to be called or booked",
    "question": "a question",
    "auto_reply": "an automatic reply, not a person",
    "plain": "a reply",
    "confirm_visit": "confirmed the visit",
    "reschedule_visit": "asks to move the visit",
    "cancel_visit": "asks to cancel the visit",
}
OUTCOME_LABELS = {
    "booked": "Booked",
    "call_back": "Call back",
    "left_voicemail": "Left voicemail",
    "no_answer": "No answer",
    "wrong_number": "Wrong number",
    "not_interested": "Not interested",
}
STAGE_LABELS = {
    "new": "New",
    "contacted": "Contacted",
    "engaged": "Engaged",
    "booked": "Booked",
    "nurture": "Nurture",
    "lost": "Lost",
    "opted_out": "Opted out",
}
FAILED_STATUSES = frozenset({"failed", "undelivered", "bounce", "dropped", "canceled"})
DELIVERED_STATUSES = frozenset({"delivered", "read", "open", "click"})


# --- text ---------------------------------------------------------------------------------------


def escape(text: str | None) -> str:
    """Escape text for mrkdwn: `&`, `<` and `>` only, as Slack asks."""
    return (text or "").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


#: How the core signs a reason with the person who acted: "paused by <@U0ALICE>" (bot.store.audit.Actor.describe).
_SIGNED_BY = re.compile(r"(?P<text>.*) by (?P<who><@[UW][A-Z0-9]{2,}>)", re.DOTALL)


def bot_text(text: str | None) -> str:
    """Escape a reason the core wrote, keeping real the mention of who acted that it ends with ("… by <@U0ALICE>").

    Only that one trailing mention stays a mention, so a lead's words inside a reason can never ping anyone.
    """
    signed = _SIGNED_BY.fullmatch(text or "")
    if signed is None:
        return escape(text)
    return f"{escape(signed['text'])} by {signed['who']}"


_PARTIAL_ENTITY = re.compile(r"&[a-z]{0,4}$")


def clip(text: str, limit: int) -> str:
    """Cut text to at most `limit` characters, ending in an ellipsis and never inside an entity."""
    if len(text) <= limit:
        return text
    cut = _PARTIAL_ENTITY.sub("", text[: limit - len(ELLIPSIS)])
    return cut + ELLIPSIS


def quote(text: str) -> str:
    """Quote escaped text as a block quote, line by line."""
    return "\n".join(f">{line}" for line in text.splitlines() or [""])


def channel_name(channel: str | None) -> str:
    return CHANNEL_NAMES.get(channel or "", escape(channel or ""))


def _mrkdwn(text: str, limit: int = SECTION_TEXT) -> dict[str, str]:
    return {"type": "mrkdwn", "text": clip(text, limit) or " "}


def _plain(text: str, limit: int) -> dict[str, Any]:
    return {"type": "plain_text", "text": clip(text, limit) or " ", "emoji": True}


def section(text: str) -> Block:
    return {"type": "section", "text": _mrkdwn(text)}


def fields_section(fields: list[str]) -> Block:
    return {"type": "section", "fields": [_mrkdwn(f, FIELD_TEXT) for f in fields[:10]]}


def header(text: str) -> Block:
    return {"type": "header", "text": _plain(text, HEADER_TEXT)}


def context(*parts: str) -> Block:
    return {"type": "context", "elements": [_mrkdwn(p, CONTEXT_TEXT) for p in parts[:10] if p]}


def button(
    label: str, action: ActionId, value: int, *, style: str | None = None, confirm: dict[str, Any] | None = None
) -> dict[str, Any]:
    element: dict[str, Any] = {
        "type": "button",
        "text": _plain(label, BUTTON_TEXT),
        "action_id": str(action),
        "value": str(value),
    }
    if style:
        element["style"] = style
    if confirm:
        element["confirm"] = confirm
    return element


def confirm_dialog(title: str, text: str, yes: str) -> dict[str, Any]:
    return {
        "title": _plain(title, CONFIRM_TITLE),
        "text": _plain(text, CONFIRM_TEXT),
        "confirm": _plain(yes, CONFIRM_BUTTON),
        "deny": _plain("Cancel", CONFIRM_BUTTON),
        "style": "danger",
    }


def actions(block_id: str, elements: list[dict[str, Any]]) -> list[Block]:
    """An actions block, or nothing when no button applies."""
    if not elements:
        return []
    return [{"type": "actions", "block_id": block_id, "elements": elements[:ACTIONS_ELEMENTS]}]


def finish(blocks: list[Block]) -> list[Block]:
    """Keep a message within Slack's block count, keeping its end (where the buttons are)."""
    if len(blocks) <= MAX_BLOCKS:
        return blocks
    return blocks[: MAX_BLOCKS - 2] + blocks[-2:]


def message_text(text: str) -> str:
    """The notification text of a message (already escaped), within Slack's recommended size."""
    return clip(text, MESSAGE_TEXT) or " "


def lead_label(name: str, phone_display: str | None, email: str | None, lead_id: int) -> str:
    """The lead's name as people see it (escaped), falling back to a contact point, then the id."""
    return escape(name.strip() or phone_display or email or f"Lead #{lead_id}")


def tel_link(phone: str | None, shown: str | None) -> str:
    """A tap-to-call link (mrkdwn); the number is E.164, checked to be digits before linking."""
    if not phone:
        return "no phone"
    if re.fullmatch(r"\+\d{6,15}", phone):
        return f"<tel:{phone}|{escape(shown or phone)}>"
    return escape(shown or phone)


def stage_label(stage: str) -> str:
    return STAGE_LABELS.get(stage, escape(stage))


def owner_text(owner: str | None) -> str:
    return f"<@{owner}>" if owner and re.fullmatch(r"[A-Z0-9]+", owner) else "unclaimed"


# --- the lead card ------------------------------------------------------------------------------


def progress_text(progress: SequenceProgress | None) -> str:
    """'Standard follow-up · touch N of M · next: <step> (<channel>) <when> — <why it waits>', in words people read."""
    if progress is None:
        return ":zzz: No sequence"
    sequence = escape(progress.sequence)
    counted = f"touch {progress.done} of {progress.total}"
    match progress.state:
        case "paused":
            why = f": {bot_text(progress.reason)}" if progress.reason else ""
            following = f" · next when resumed: {escape(progress.next_step or '')}" if progress.next_step else ""
            return f":double_vertical_bar: *Automation paused*{why} · {sequence}, {counted}{following}"
        case "stopped":
            why = f": {bot_text(progress.reason)}" if progress.reason else ""
            return f":black_square_for_stop: *Follow-up stopped*{why} · {sequence}, {counted}"
        case "completed":
            return f":checkered_flag: *{sequence} finished* · {counted}"
    if progress.next_step:
        wait = f" — {escape(progress.next_wait)}" if progress.next_wait else ""
        return (
            f":arrow_forward: {sequence} · {counted} · next: *{escape(progress.next_step)}* "
            f"({channel_name(progress.next_channel)}) {escape(progress.next_at or '')}{wait}"
        )
    return f":arrow_forward: {sequence} · {counted} · nothing more scheduled"


def lead_card_text(card: LeadCard) -> str:
    """The card's notification text."""
    contact = escape(card.phone_display or card.email or "")
    return message_text(
        f"Lead: {lead_label(card.name, card.phone_display, card.email, card.lead_id)}"
        + (f" ({contact})" if contact else "")
        + f" · {stage_label(card.stage)}"
    )


def lead_card_blocks(card: LeadCard) -> list[Block]:
    """The lead's parent message, compact: who and how to reach them, what they asked, where they stand, the buttons."""
    blocks: list[Block] = [header(f"{_stage_emoji(card.stage)} " + _plain_name(card))]
    reach = [
        tel_link(card.phone, card.phone_display) if card.phone else None,
        escape(card.email) if card.email else None,
    ]
    lines = [" · ".join(part for part in reach if part) or "_no phone or email_"]
    if card.first_message.strip():
        lines.append(quote(escape(clip(" ".join(card.first_message.split()), 300))))
    blocks.append(section("\n".join(lines)))
    facts = [
        f"*{stage_label(card.stage)}*",
        owner_text(card.owner),
        f"from {escape(card.source) or 'unknown'}",
        f"lead #{card.lead_id}",
    ]
    if card.appointment_when and card.appointment_status:
        facts.insert(1, appointment_text(card.appointment_status, card.appointment_when))
    notes = [" · ".join(facts), progress_text(card.progress)]
    if card.appointment_status in ("booked", "confirmed") and card.appointment_started:
        notes.append("_The visit time has come: mark it Attended or No-show._")
    elif card.appointment_status == "cancelled":
        notes.append("_Nothing automated follows: Rebook, or Back to follow-up._")
    if card.unreachable:
        notes.append(f":no_entry: {escape(card.unreachable)}")
    blocks.append(context(*notes))
    blocks.extend(actions("lead_card_actions", _card_buttons(card)))
    return finish(blocks)


#: How the card names each appointment state.
APPOINTMENT_LABELS = {
    "booked": ":calendar: Booked for",
    "confirmed": ":white_check_mark: Confirmed for",
    "attended": ":tada: Attended",
    "no_show": ":ghost: No-show",
    "cancelled": ":x: Cancelled",
}


def appointment_text(status: str, when: str) -> str:
    """The card's words about the lead's appointment."""
    return f"{APPOINTMENT_LABELS.get(status, escape(status))} {escape(when)}"


def _plain_name(card: LeadCard) -> str:
    return escape(card.name.strip() or card.phone_display or card.email or f"Lead #{card.lead_id}")


def _stage_emoji(stage: str) -> str:
    return {
        "new": "🆕",
        "contacted": "📨",
        "engaged": "💬",
        "booked": "📅",
        "nurture": "🌱",
        "lost": "🚫",
        "opted_out": "🔕",
    }.get(stage, "👤")


def _card_buttons(card: LeadCard) -> list[dict[str, Any]]:
    closed = card.stage in ("lost", "opted_out")
    buttons = []
    if not card.owner:
        buttons.append(button("Claim", ActionId.LEAD_CLAIM, card.lead_id, style="primary"))
    if card.can_reply:
        buttons.append(button("Reply", ActionId.LEAD_REPLY, card.lead_id))
    if card.automation == Automation.RUNNING:
        buttons.append(button("Pause automation", ActionId.LEAD_PAUSE, card.lead_id))
    elif card.automation == Automation.PAUSED:
        buttons.append(button("Resume", ActionId.LEAD_RESUME, card.lead_id))
    visit = card.appointment_id
    ahead = card.appointment_status in ("booked", "confirmed")
    if ahead and visit is not None:
        if card.appointment_started:
            buttons.append(button("Attended", ActionId.APPOINTMENT_ATTENDED, visit, style="primary"))
            buttons.append(button("No-show", ActionId.APPOINTMENT_NO_SHOW, visit))
        buttons.append(button("Reschedule", ActionId.APPOINTMENT_RESCHEDULE, visit))
        buttons.append(
            button(
                "Cancel visit",
                ActionId.APPOINTMENT_CANCEL,
                visit,
                confirm=confirm_dialog(
                    "Cancel the visit?",
                    "Reminders stop. Nothing is sent to the lead; you choose what happens next.",
                    "Cancel visit",
                ),
            )
        )
    elif card.appointment_status == "cancelled" and not closed and card.automation == Automation.OFF:
        buttons.append(button("Rebook", ActionId.LEAD_BOOKED, card.lead_id, style="primary"))
        buttons.append(button("Back to follow-up", ActionId.LEAD_BACK_TO_FOLLOW_UP, card.lead_id))
    elif card.stage != "booked":
        buttons.append(button("Booked", ActionId.LEAD_BOOKED, card.lead_id))
    if not closed:
        buttons.append(
            button(
                "Not interested",
                ActionId.LEAD_NOT_INTERESTED,
                card.lead_id,
                style="danger",
                confirm=confirm_dialog(
                    "Not interested?", "Stop all follow-up for this lead and mark them lost.", "Stop follow-up"
                ),
            )
        )
    return buttons


# --- thread entries -----------------------------------------------------------------------------


def status_text(status: str, error_code: str | None = None) -> str:
    """A delivery status as the team reads it."""
    if status in FAILED_STATUSES:
        code = f" (error {escape(error_code)})" if error_code else ""
        return f":x: {escape(status)}{code}"
    if status in DELIVERED_STATUSES:
        return f":white_check_mark: {escape(status)}"
    return f":hourglass_flowing_sand: {escape(status)}"


def thread_entry_text(entry: ThreadEntry) -> str:
    """The notification text of a thread entry."""
    match entry:
        case OutboundEntry():
            return message_text(f"{channel_name(entry.channel)} sent: {escape(entry.subject or entry.text)}")
        case InboundEntry():
            return message_text(f"Reply by {channel_name(entry.channel)}: {escape(entry.text)}")
        case DecisionEntry():
            return message_text(_with_mention(entry.mention, decision_text(entry)))
        case FailureEntry():
            return message_text(
                _with_mention(entry.mention, f"{channel_name(entry.channel)} failed: {escape(entry.error)}")
            )
        case NeedsPersonEntry():
            return message_text(_with_mention(entry.mention, escape(entry.text)))
        case CallOutcomeEntry():
            return message_text(f"Call outcome: {OUTCOME_LABELS.get(entry.outcome, escape(entry.outcome))}")
        case ThreadReplyStatus():
            return message_text(_reply_status_line(entry, emoji=False))
    raise TypeError(f"not a thread entry: {entry!r}")


def thread_entry_blocks(entry: ThreadEntry) -> list[Block]:
    """One line of the lead's story in its thread."""
    match entry:
        case OutboundEntry():
            return _outbound_blocks(entry)
        case InboundEntry():
            return _inbound_blocks(entry)
        case DecisionEntry():
            return [section(_with_mention(entry.mention, f":gear: {decision_text(entry)}"))]
        case FailureEntry():
            step = f" · {escape(entry.step)}" if entry.step else ""
            return [
                section(
                    _with_mention(
                        entry.mention,
                        f":warning: *{channel_name(entry.channel)} not sent*{step}\n" + escape(entry.error),
                    )
                )
            ]
        case NeedsPersonEntry():
            return [section(_with_mention(entry.mention, f":rotating_light: *Needs a person*\n{escape(entry.text)}"))]
        case CallOutcomeEntry():
            return _call_outcome_blocks(entry)
        case ThreadReplyStatus():
            return [context(_reply_status_line(entry, emoji=True))]
    raise TypeError(f"not a thread entry: {entry!r}")


def _reply_status_line(entry: ThreadReplyStatus, *, emoji: bool) -> str:
    """One line under a `!reply`: where it went and how it fared, never its words again."""
    who = f"<@{entry.author}>'s" if entry.author and re.fullmatch(r"[UW][A-Z0-9]+", entry.author) else "The"
    how = "text" if entry.channel == "sms" else channel_name(entry.channel).lower()
    if entry.status in FAILED_STATUSES:
        why = escape(entry.error) if entry.error else escape(entry.status)
        code = f" (error {escape(entry.error_code)})" if entry.error_code else ""
        return f"{':x: ' if emoji else ''}{who} {how} to the lead failed: {why}{code}"
    if entry.status == "unknown":  # the provider may or may not have it; a "Needs a person" entry follows
        why = f": {escape(entry.error)}" if entry.error else ""
        return f"{':grey_question: ' if emoji else ''}{who} {how} to the lead · outcome unknown{why}"
    status = status_text(entry.status) if emoji else escape(entry.status)
    return f"{':outbox_tray: ' if emoji else ''}{who} {how} to the lead · {status}"


def decision_text(entry: DecisionEntry) -> str:
    """A decision's text, escaped; the actor's own mention (written by the core) stays a mention."""
    text = escape(entry.text)
    actor = entry.actor or ""
    if not re.fullmatch(r"<@[UW][A-Z0-9]+>", actor):
        return text  # followup itself, the lead or an operator: the text says enough
    if escape(actor) in text:
        return text.replace(escape(actor), actor)
    return f"{text} · by {actor}"


def _with_mention(who: str | None, text: str) -> str:
    return f"{who} {text}" if who else text


def _outbound_blocks(entry: OutboundEntry) -> list[Block]:
    if entry.author and re.fullmatch(r"[UW][A-Z0-9]+", entry.author):
        title = f":outbox_tray: *{channel_name(entry.channel)} from <@{entry.author}>*"
    else:
        step = f" · {escape(entry.step)}" if entry.step else ""
        title = f":outbox_tray: *{channel_name(entry.channel)} sent*{step}"
    meta = [f"Status: {status_text(entry.status, entry.error_code)}"]
    if entry.at:
        meta.append(escape(entry.at))
    if entry.channel == "email":
        return [*_email_summary(title, entry.subject, entry.text, entry.message_id), context(" · ".join(meta))]
    body = quote(escape(entry.text)) if entry.text.strip() else "_(no text)_"
    return [section(f"{title}\n{body}"), context(" · ".join(meta))]


def first_line(text: str, limit: int = EMAIL_FIRST_LINE) -> str:
    """The first line with words in it, cut to `limit` characters (the rest is a click away)."""
    for line in text.splitlines():
        if line.strip():
            return clip(" ".join(line.split()), limit)
    return ""


def _email_summary(title: str, subject: str | None, text: str, message_id: int | None) -> list[Block]:
    """An email in a thread: its subject and first line, and a button that shows the whole of it."""
    lines = [title]
    if subject:
        lines.append(f"*Subject:* {escape(subject)}")
    opening = first_line(text)
    lines.append(quote(escape(opening)) if opening else "_(no text)_")
    block: Block = section("\n".join(lines))
    if message_id is not None and text.strip() and (opening != text.strip()):
        block["accessory"] = button("Show full email", ActionId.EMAIL_OPEN, message_id)
    return [block]


def _inbound_blocks(entry: InboundEntry) -> list[Block]:
    understood = SIGNAL_LABELS.get(entry.classification or "", escape(entry.classification or "not classified"))
    title = f":speech_balloon: *Reply by {channel_name(entry.channel)}* — understood as _{understood}_"
    if entry.channel == "email":
        blocks = _email_summary(title, entry.subject, entry.text, entry.message_id)
    else:
        blocks = [section(title + "\n" + (quote(escape(entry.text)) if entry.text.strip() else "_(no text)_"))]
    meta = []
    if entry.requested_time:
        meta.append(f":calendar: Asked for *{escape(entry.requested_time)}*")
    if entry.at:
        meta.append(escape(entry.at))
    if meta:
        blocks.append(context(" · ".join(meta)))
    if entry.why:
        blocks.append(context(f":mag: {escape(entry.why)}"))
    return blocks


def _call_outcome_blocks(entry: CallOutcomeEntry) -> list[Block]:
    label = OUTCOME_LABELS.get(entry.outcome, escape(entry.outcome))
    by = f" — logged by {owner_text(entry.logged_by)}" if entry.logged_by else ""
    lines = [f":telephone_receiver: *Call outcome: {label}*{by}"]
    if entry.consequence:
        lines[0] += f" · {bot_text(entry.consequence)}"
    if entry.callback_at:
        lines.append(f"Call back at {escape(entry.callback_at)}")
    if entry.notes.strip():
        lines.append(quote(escape(entry.notes)))
    return [section("\n".join(lines))]


# --- call tasks ---------------------------------------------------------------------------------


def call_task_text(task: CallTaskView) -> str:
    """The task's notification text: who is asked to call whom, and why."""
    name = lead_label(task.lead_name, task.phone_display, task.email, task.lead_id)
    return message_text(_with_mention(task.mention, f"Call {name}: {escape(task.reason)} ({_task_state_words(task)})"))


def call_task_blocks(task: CallTaskView) -> list[Block]:
    """A call for the team: why, the lead's context, the scripts, tap-to-call, and the buttons that apply."""
    name = lead_label(task.lead_name, task.phone_display, task.email, task.lead_id)
    finished = task.status in ("done", "cancelled")
    blocks: list[Block] = [header(f"📞 Call {name}")]
    why = [f"*Why:* {escape(task.reason)}", f"*Phone:* {tel_link(task.phone, task.phone_display)}"]
    if task.requested_time:
        why.append(f"*They asked for:* {escape(task.requested_time)}")
    if task.due_at and not finished:
        why.append(f"*Due:* {escape(task.due_at)}")
    blocks.append(section("\n".join(why)))
    if not finished:
        blocks.append(
            fields_section(
                [
                    f"*Email*\n{escape(task.email) if task.email else 'none'}",
                    f"*Source*\n{escape(task.source) or 'unknown'}",
                    f"*Stage*\n{stage_label(task.stage)}",
                    f"*Lead*\n#{task.lead_id}",
                ]
            )
        )
        if task.first_message.strip():
            blocks.append(section("*What they asked*\n" + quote(escape(task.first_message))))
        if task.last_reply and task.last_reply.strip():
            blocks.append(section("*Their last reply*\n" + quote(escape(task.last_reply))))
        if task.call_script.strip():
            blocks.append(section(":memo: *Call script*\n" + escape(task.call_script)))
        if task.voicemail_script.strip():
            blocks.append(section(":mailbox_with_mail: *Voicemail script*\n" + escape(task.voicemail_script)))
    blocks.append(section(_task_state_line(task)))
    blocks.extend(actions("call_task_actions", _task_buttons(task)))
    return finish(blocks)


def call_task_pointer_text(task: CallTaskView) -> str:
    """The one line the lead's thread carries for a call task posted in the channel."""
    return message_text(f"Call task in the channel: {escape(task.reason)} ({_task_state_words(task)})")


def call_task_pointer_blocks(task: CallTaskView) -> list[Block]:
    """One line in the lead's thread pointing at the call task in the channel, where people act on it."""
    match task.status:
        case "open":
            where = "open — claim it in the channel"
        case "claimed":
            where = f"claimed by {owner_text(task.claimed_by)}"
        case "done":
            where = f"done: {OUTCOME_LABELS.get(task.outcome or '', escape(task.outcome or 'done'))}"
        case _:
            where = _task_state_words(task)
    due = f" · due {escape(task.due_at)}" if task.due_at and task.status in ("open", "claimed") else ""
    return [context(f":telephone_receiver: *Call task:* {escape(task.reason)} · {where}{due}")]


def _task_state_words(task: CallTaskView) -> str:
    return {"open": "open", "claimed": "claimed", "done": "done", "cancelled": "cancelled"}.get(
        task.status, escape(task.status)
    )


def _task_state_line(task: CallTaskView) -> str:
    match task.status:
        case "open":
            return _with_mention(task.mention, ":large_orange_circle: *Open* — nobody has this call yet.")
        case "claimed":
            return f":large_blue_circle: *Claimed by {owner_text(task.claimed_by)}*"
        case "done":
            label = OUTCOME_LABELS.get(task.outcome or "", escape(task.outcome or "done"))
            by = f" — logged by {owner_text(task.logged_by)}" if task.logged_by else ""
            lines = [f":white_check_mark: *Done: {label}*{by}"]
            if task.callback_at:
                lines.append(f"Call back at {escape(task.callback_at)}")
            if task.notes.strip():
                lines.append(quote(escape(task.notes)))
            return "\n".join(lines)
        case "cancelled":
            why = f"\n{quote(escape(task.notes))}" if task.notes.strip() else ""
            return f":no_entry_sign: *Cancelled* — no longer needed.{why}"
    return escape(task.status)


def _task_buttons(task: CallTaskView) -> list[dict[str, Any]]:
    if task.status not in ("open", "claimed"):
        return []
    buttons = []
    if task.status == "open":
        buttons.append(button("Claim", ActionId.TASK_CLAIM, task.task_id, style="primary"))
    buttons.append(button("Log outcome", ActionId.TASK_LOG_OUTCOME, task.task_id))
    if task.automation == Automation.RUNNING:
        buttons.append(button("Pause automation", ActionId.TASK_PAUSE, task.task_id))
    elif task.automation == Automation.PAUSED:
        buttons.append(button("Resume", ActionId.TASK_RESUME, task.task_id))
    if task.stage != "booked":
        buttons.append(button("Booked", ActionId.TASK_BOOKED, task.task_id))
    buttons.append(
        button(
            "Not interested",
            ActionId.TASK_NOT_INTERESTED,
            task.task_id,
            style="danger",
            confirm=confirm_dialog(
                "Not interested?", "Stop all follow-up for this lead and mark them lost.", "Stop follow-up"
            ),
        )
    )
    buttons.append(button("Snooze", ActionId.TASK_SNOOZE, task.task_id))
    return buttons
