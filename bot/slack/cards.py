"""What the Slack messages show, as plain values built from the store's rows (no Slack, no queries)."""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Sequence as Seq
from dataclasses import dataclass
from datetime import datetime, tzinfo
from enum import StrEnum

import phonenumbers

from bot.core.business import Business
from bot.core.display import First, team_time
from bot.core.planning import PHONE_CHANNELS
from bot.core.playbook import Channel, Sequence, default_sequence_label, step_label
from bot.core.reply_classifier import explain_reading
from bot.core.send_times import wait_of
from bot.core.states import CallTaskStatus, EnrollmentState, TouchStatus
from bot.store.consent import why_no_sms_consent
from bot.store.models import Appointment, CallTask, Enrollment, Lead, Message, Touch

#: Steps that are bookkeeping, not something sent to the lead: not counted in "touch N of M".
NOT_A_TOUCH = ("stage",)
#: Sequences whose touches are not the sales follow-up (the card shows the sales sequence's progress).
REMINDER_SEQUENCE = "appointment_reminders"
#: Sequences about one visit, not the follow-up a person pauses (as bot.usecases.enrollment.VISIT_SEQUENCES).
VISIT_SEQUENCES = (REMINDER_SEQUENCE, "appointment_confirmation")
#: Appointment states in which the visit is still ahead.
ACTIVE_VISIT = ("booked", "confirmed")


class Automation(StrEnum):
    """Whether the lead's automated follow-up can be paused or resumed from Slack."""

    RUNNING = "running"  #: a sales or nurture sequence is sending; Pause applies
    PAUSED = "paused"  #: a sequence is held for a person; Resume applies
    OFF = "off"  #: nothing automated is running; neither applies


@dataclass(frozen=True)
class SequenceProgress:
    """Where the lead is in its sequence: 'touch N of M, next: <step> <channel> at <time>', in words people read."""

    #: The playbook's label ("Standard follow-up"), never its file name.
    sequence: str
    state: str
    reason: str
    done: int
    total: int
    #: The next step's label ("Day-1 check-in text"), never its id.
    next_step: str | None = None
    next_channel: str | None = None
    next_at: str | None = None
    #: Why the next touch waits past its playbook time ("quiet hours"), when it does.
    next_wait: str | None = None


@dataclass(frozen=True)
class LeadCard:
    """The lead's parent message in the leads channel."""

    lead_id: int
    name: str
    phone: str | None
    phone_display: str | None
    email: str | None
    source: str
    first_message: str
    stage: str
    owner: str | None
    automation: Automation
    can_reply: bool
    progress: SequenceProgress | None = None
    #: The visit still ahead (booked or confirmed), in the business's time zone.
    appointment_at: str | None = None
    unreachable: str | None = None
    #: The lead's latest appointment (any state but rescheduled), for its buttons.
    appointment_id: int | None = None
    appointment_status: str | None = None
    #: Its time as people read it, whatever its state.
    appointment_when: str | None = None
    #: Its start time has come: it can be marked attended or a no-show.
    appointment_started: bool = False


@dataclass(frozen=True)
class OutboundEntry:
    """A message that went to the lead (a touch or a team reply), with its delivery status."""

    message_id: int | None
    channel: str
    text: str
    status: str
    #: The step's label ("First text"); None for a message a person wrote.
    step: str | None = None
    subject: str | None = None
    author: str | None = None
    error_code: str | None = None
    at: str | None = None


@dataclass(frozen=True)
class InboundEntry:
    """What the lead wrote, and how it was understood."""

    channel: str
    text: str
    classification: str | None
    subject: str | None = None
    requested_time: str | None = None
    at: str | None = None
    #: The stored message, so a long email can be opened whole.
    message_id: int | None = None
    #: Why the bot read it so ("read as: question (rule: pattern '\\?')"), for a person to check.
    why: str | None = None


@dataclass(frozen=True)
class DecisionEntry:
    """Something the system or a person decided (paused, stopped, booked, moved to nurture)."""

    text: str
    actor: str | None = None
    #: Who to alert (a formatted mention), when the team must act.
    mention: str | None = None


@dataclass(frozen=True)
class FailureEntry:
    """A touch that could not be sent, for good."""

    channel: str
    error: str
    #: The step's label ("First text").
    step: str | None = None
    mention: str | None = None


@dataclass(frozen=True)
class NeedsPersonEntry:
    """Something only a person can settle, such as a send whose outcome is unknown."""

    text: str
    mention: str | None = None


@dataclass(frozen=True)
class CallOutcomeEntry:
    """How a call went and who logged it."""

    task_id: int
    outcome: str
    logged_by: str | None
    notes: str = ""
    callback_at: str | None = None
    #: What follows from it for the lead's follow-up ("left voicemail; sequence continues").
    consequence: str | None = None


@dataclass(frozen=True)
class ThreadReplyStatus:
    """How a team member's `!reply` fared: their own message already shows the words, so only this is added."""

    channel: str
    author: str | None
    status: str
    error_code: str | None = None
    error: str | None = None


ThreadEntry = (
    OutboundEntry
    | InboundEntry
    | DecisionEntry
    | FailureEntry
    | NeedsPersonEntry
    | CallOutcomeEntry
    | ThreadReplyStatus
)


@dataclass(frozen=True)
class CallTaskView:
    """A call handed to the team: why, who, what to say, and where it stands."""

    task_id: int
    lead_id: int
    lead_name: str
    phone: str | None
    phone_display: str | None
    email: str | None
    source: str
    stage: str
    first_message: str
    reason: str
    status: str
    call_script: str
    voicemail_script: str
    automation: Automation
    due_at: str | None = None
    requested_time: str | None = None
    last_reply: str | None = None
    claimed_by: str | None = None
    outcome: str | None = None
    notes: str = ""
    logged_by: str | None = None
    callback_at: str | None = None
    #: Who this copy pings while the call is open (a formatted mention); None for a quiet copy.
    mention: str | None = None


# --- building the views from rows -----------------------------------------------------------------


def display_phone(e164: str | None) -> str | None:
    """Write a stored E.164 number the way people read it (+1 312-555-0142)."""
    if not e164:
        return None
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return e164
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


def mention(target: str | None) -> str | None:
    """Format a Slack user id (U.., W..) or user group id (S..) as a mention; None for nobody."""
    target = (target or "").strip()
    if not target:
        return None
    if target.startswith("<") and target.endswith(">"):
        return target
    if target.startswith("S"):
        return f"<!subteam^{target}>"
    return f"<@{target}>"


def _local(moment: datetime | None, zone: tzinfo, lead_zone: tzinfo | str | None = None) -> str | None:
    """A time as the team reads it (bot.core.display.team_time), the lead's beside it when theirs differs."""
    return team_time(moment, zone, lead_zone) if moment is not None else None


def automation_of(enrollments: Iterable[Enrollment]) -> Automation:
    """Pause applies while a follow-up sequence runs; Resume while one is paused."""
    followups = [e for e in enrollments if e.sequence_name not in VISIT_SEQUENCES]
    if any(e.state == EnrollmentState.PAUSED for e in followups):
        return Automation.PAUSED
    if any(e.state == EnrollmentState.ACTIVE for e in followups):
        return Automation.RUNNING
    return Automation.OFF


def sequence_progress(
    enrollment: Enrollment | None,
    touches: Seq[Touch],
    zone: tzinfo,
    *,
    wont_run: frozenset[str] = frozenset(),
    playbook: Sequence | None = None,
    business: Business | None = None,
    lead_zones: tuple[str, ...] = (),
) -> SequenceProgress | None:
    """Count the touches of one enrollment carried out, of those that apply to this lead, and name the next.

    `wont_run` names steps that will be skipped for this lead as things stand (no email for an
    email step, an alternative for leads without email...): they are neither counted nor next.
    A touch carried out counts whether it was delivered or failed, so N only ever grows.
    `playbook` gives the words people read; `business` and `lead_zones` say why the next touch waits.
    """
    if enrollment is None:
        return None
    own = [
        t
        for t in touches
        if t.enrollment_id == enrollment.id
        and t.channel not in NOT_A_TOUCH
        and t.status not in (TouchStatus.SKIPPED, TouchStatus.CANCELLED)
        and not (t.status == TouchStatus.SCHEDULED and t.step_id in wont_run)
    ]
    done = sum(1 for t in own if t.status in (TouchStatus.SENT, TouchStatus.FAILED))
    upcoming = sorted((t for t in own if t.status == TouchStatus.SCHEDULED), key=lambda t: (t.due_at, t.position))
    running = enrollment.state in (EnrollmentState.ACTIVE, EnrollmentState.PAUSED)
    following = upcoming[0] if upcoming and running else None
    lead_zone = lead_zones[0] if lead_zones else None
    next_at = next_wait = None
    if following is not None:
        phone = Channel(following.channel) in PHONE_CHANNELS if following.channel in tuple(Channel) else False
        wait = None
        if business is not None and following.planned_at is not None:
            wait = wait_of(
                following.due_at,
                following.planned_at,
                business=business,
                respect_lead_daytime=phone,
                lead_timezones=lead_zones,
            )
        next_wait = wait.words if wait is not None else None
        first: First = "lead" if wait is not None and wait.for_lead_daytime else "business"
        next_at = team_time(following.due_at, zone, lead_zone, first=first)
    return SequenceProgress(
        sequence=playbook.label if playbook is not None else default_sequence_label(enrollment.sequence_name),
        state=str(enrollment.state),
        reason=enrollment.state_reason or "",
        done=done,
        total=len(own),
        next_step=step_label(playbook, following.step_id) if following else None,
        next_channel=following.channel if following else None,
        next_at=next_at,
        next_wait=next_wait,
    )


def shown_enrollment(enrollments: Seq[Enrollment]) -> Enrollment | None:
    """The enrollment the card reports on: the latest follow-up one, else the latest of any."""
    ordered = sorted(enrollments, key=lambda e: e.id)
    followups = [e for e in ordered if e.sequence_name not in VISIT_SEQUENCES]
    return (followups or ordered)[-1] if ordered else None


def lead_card(
    lead: Lead,
    *,
    enrollments: Seq[Enrollment],
    touches: Seq[Touch],
    appointment: Appointment | None,
    zone: tzinfo,
    wont_run: frozenset[str] = frozenset(),
    playbook: Sequence | None = None,
    business: Business | None = None,
    lead_zones: tuple[str, ...] = (),
    now: datetime | None = None,
) -> LeadCard:
    """The card for a lead, with the progress of the enrollment `shown_enrollment` picks."""
    shown = shown_enrollment(enrollments)
    lead_zone = lead_zones[0] if lead_zones else None
    open_ones = [e for e in enrollments if e.state in (EnrollmentState.ACTIVE, EnrollmentState.PAUSED)]
    return LeadCard(
        lead_id=lead.id,
        name=lead.name,
        phone=lead.phone,
        phone_display=display_phone(lead.phone),
        email=lead.email,
        source=lead.source,
        first_message=lead.first_message,
        stage=str(lead.stage),
        owner=lead.owner,
        automation=automation_of(open_ones),
        can_reply=lead.sms_answer_allowed or lead.email_allowed,
        progress=sequence_progress(
            shown, touches, zone, wont_run=wont_run, playbook=playbook, business=business, lead_zones=lead_zones
        ),
        appointment_at=(
            _local(appointment.start_at, zone, lead_zone)
            if appointment and appointment.status in ACTIVE_VISIT
            else None
        ),
        unreachable=_unreachable(lead),
        appointment_id=appointment.id if appointment else None,
        appointment_status=str(appointment.status) if appointment else None,
        appointment_when=_local(appointment.start_at, zone, lead_zone) if appointment else None,
        appointment_started=bool(appointment and now is not None and now >= appointment.start_at),
    )


def _unreachable(lead: Lead) -> str | None:
    reasons = []
    if lead.sms_opted_out_at is not None:
        reasons.append("opted out of texts")
    elif lead.sms_unreachable_reason:
        reasons.append(lead.sms_unreachable_reason)
    elif why := why_no_sms_consent(lead):
        reasons.append(f"{why}: automated texts go by email or as calls")
    if lead.email_opted_out_at is not None:
        reasons.append("unsubscribed from email")
    return "; ".join(reasons) or None


def outbound_entry(
    message: Message,
    touch: Touch | None,
    zone: tzinfo,
    *,
    step: str | None = None,
    lead_zone: tzinfo | str | None = None,
) -> OutboundEntry:
    """A message to the lead; `step` is the label of the touch it carried (bot.core.playbook.step_label)."""
    return OutboundEntry(
        message_id=message.id,
        channel=message.channel,
        text=message.body,
        status=message.status,
        step=(step or step_label(None, touch.step_id)) if touch else None,
        subject=message.subject,
        author=message.author if touch is None else None,
        error_code=message.error_code,
        at=_local(message.created_at, zone, lead_zone),
    )


def written_in_thread(message: Message) -> bool:
    """The message's words are a team member's own message in the lead's thread (a `!reply`)."""
    return bool((message.details or {}).get("thread_message_ts"))


def thread_reply_status(message: Message) -> ThreadReplyStatus:
    error = (message.details or {}).get("error")
    return ThreadReplyStatus(
        channel=message.channel,
        author=message.author,
        status=message.status,
        error_code=message.error_code,
        error=str(error) if error else None,
    )


def touch_entry(
    touch: Touch, zone: tzinfo, *, step: str | None = None, lead_zone: tzinfo | str | None = None
) -> OutboundEntry:
    """A sent touch whose message row is missing (should not happen; shown from the touch itself)."""
    return OutboundEntry(
        message_id=None,
        channel=touch.channel,
        text=touch.body_text or "",
        status=str(touch.status),
        step=step or step_label(None, touch.step_id),
        subject=touch.subject,
        at=_local(touch.sent_at, zone, lead_zone),
    )


def inbound_entry(
    message: Message, requested_time: datetime | None, zone: tzinfo, *, lead_zone: tzinfo | str | None = None
) -> InboundEntry:
    return InboundEntry(
        channel=message.channel,
        text=message.body,
        classification=message.classification,
        subject=message.subject,
        requested_time=_local(requested_time, zone, lead_zone),
        at=_local(message.created_at, zone, lead_zone),
        message_id=message.id,
        why=explain_reading(message.classification, message.details),
    )


def call_task_view(
    task: CallTask,
    lead: Lead,
    *,
    automation: Automation,
    zone: tzinfo,
    last_reply: str | None = None,
    logged_by: str | None = None,
    mention_to: str | None = None,
    lead_zone: tzinfo | str | None = None,
) -> CallTaskView:
    return CallTaskView(
        task_id=task.id,
        lead_id=lead.id,
        lead_name=lead.name,
        phone=lead.phone,
        phone_display=display_phone(lead.phone),
        email=lead.email,
        source=lead.source,
        stage=str(lead.stage),
        first_message=lead.first_message,
        reason=task.reason,
        status=str(task.status),
        call_script=task.call_script,
        voicemail_script=task.voicemail_script,
        automation=automation,
        due_at=_local(task.due_at, zone, lead_zone),
        # A time the lead asked for is theirs first, ours beside it: one function says it, as the script does.
        requested_time=team_time(task.requested_time, zone, lead_zone, first="lead") if task.requested_time else None,
        last_reply=last_reply,
        claimed_by=task.claimed_by,
        outcome=task.outcome,
        notes=task.notes,
        logged_by=logged_by or (task.claimed_by if task.status == CallTaskStatus.DONE else None),
        callback_at=_local(task.callback_at, zone, lead_zone),
        mention=mention_to if task.status == CallTaskStatus.OPEN else None,
    )


def call_outcome_entry(
    task: CallTask,
    *,
    logged_by: str | None,
    zone: tzinfo,
    lead_zone: tzinfo | str | None = None,
    consequence: str | None = None,
) -> CallOutcomeEntry:
    return CallOutcomeEntry(
        task_id=task.id,
        outcome=task.outcome or "",
        logged_by=logged_by or task.claimed_by,
        notes=task.notes,
        callback_at=_local(task.callback_at, zone, lead_zone),
        consequence=consequence,
    )
