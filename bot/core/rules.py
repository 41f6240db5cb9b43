"""What happens to a lead when something happens: stop, pause and escalation rules as pure decisions.

Each decision says how the sales sequence changes, the lead's new stage, and what the team must
be told or handed (a call task). The use cases apply it to the store; adapters carry out its
notices. Nothing here knows about Slack, Twilio or the database.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from bot.core.states import Stage


class SequenceChange(StrEnum):
    KEEP = "keep"  #: the sequence goes on as planned
    PAUSE = "pause"  #: hold every pending touch until a person resumes
    RESUME = "resume"  #: go on, shifted by the time spent paused
    STOP = "stop"  #: end the sales sequence for good


class LeadSignal(StrEnum):
    """Something the lead did, as understood."""

    OPT_OUT = "opt_out"  #: revoked consent on a channel
    OPT_IN = "opt_in"  #: gave consent back on a channel
    HELP = "help"  #: asked who is texting them
    NOT_INTERESTED = "not_interested"  #: declined
    LATER = "later"  #: would rather hear from us later than now
    BOOKED = "booked"  #: says they booked (no time known yet)
    ASKS_TIME = "asks_time"  #: asked for a time or an opening, or to book
    ASKS_CALL = "asks_call"  #: asked to be called or booked ("call me", "book me in")
    QUESTION = "question"  #: asked a detailed question
    AUTO_REPLY = "auto_reply"  #: an out-of-office or delivery notice, not a person
    PLAIN = "plain"  #: any other human reply
    CANCEL_VISIT = "cancel_visit"  #: asks to cancel the visit ahead
    RESCHEDULE_VISIT = "reschedule_visit"  #: asks to move the visit ahead, or cannot come
    CONFIRM_VISIT = "confirm_visit"  #: confirms the visit ahead


class CallOutcome(StrEnum):
    BOOKED = "booked"  #: booked on the call, with a date and time
    CALL_BACK = "call_back"  #: asked to be called back at a time
    LEFT_VOICEMAIL = "left_voicemail"  #: left the voicemail script
    NO_ANSWER = "no_answer"  #: nobody picked up, no voicemail
    WRONG_NUMBER = "wrong_number"  #: the number is not the lead's
    NOT_INTERESTED = "not_interested"  #: declined on the call


@dataclass(frozen=True)
class Decision:
    sequence: SequenceChange
    reason: str
    stage: Stage | None = None
    #: Hand the team a call now, for this reason.
    call_task: str | None = None
    #: Tell the team in the lead's thread, mentioning the owner or on-call.
    alert_team: bool = False
    #: Cancel open call tasks (nobody needs to call any more).
    close_call_tasks: bool = False
    #: Start the nurture sequence's slow cadence (unless the lead is already in it).
    start_nurture: bool = False


def signal_for_lead(signal: LeadSignal, *, opted_out: bool) -> LeadSignal:
    """Read an opt-in keyword as a plain reply from a lead who is not opted out on that channel.

    Carriers treat YES like START, but "Yes" from someone who never opted out answers a question
    of ours ("can we call you?"): a person should take it, like any other reply.
    """
    return LeadSignal.PLAIN if signal == LeadSignal.OPT_IN and not opted_out else signal


#: What a person answers: the lead asked something or for something, or wrote words no rule settles.
FOR_A_PERSON = frozenset({LeadSignal.ASKS_TIME, LeadSignal.ASKS_CALL, LeadSignal.QUESTION, LeadSignal.PLAIN})


def decide_on_signal(signal: LeadSignal, *, current_stage: Stage) -> Decision:
    """Decide what a message from the lead changes."""
    if current_stage == Stage.OPTED_OUT and signal not in (LeadSignal.OPT_IN, LeadSignal.OPT_OUT):
        # Someone who opted out and writes again is a person to talk to, never a sequence to restart.
        return Decision(SequenceChange.KEEP, "opted-out lead wrote in", stage=Stage.ENGAGED, alert_team=True)
    if current_stage == Stage.BOOKED and signal in FOR_A_PERSON:
        # A question from someone with a visit booked is answered by a person; the booking stands.
        return replace(decide_on_signal(signal, current_stage=Stage.ENGAGED), stage=None)
    match signal:
        case LeadSignal.OPT_OUT:
            return Decision(SequenceChange.STOP, "opted out", stage=Stage.OPTED_OUT, close_call_tasks=True)
        case LeadSignal.OPT_IN:
            return Decision(SequenceChange.KEEP, "opted back in", alert_team=True)
        case LeadSignal.HELP:
            return Decision(SequenceChange.KEEP, "asked for help")
        case LeadSignal.AUTO_REPLY:
            return Decision(SequenceChange.KEEP, "automatic reply; not a person")
        case LeadSignal.NOT_INTERESTED:
            return Decision(SequenceChange.STOP, "not interested", stage=Stage.LOST, close_call_tasks=True)
        case LeadSignal.LATER if current_stage == Stage.BOOKED:
            # A booked visit is not put off by a word: a person asks what they mean.
            return decide_on_signal(LeadSignal.PLAIN, current_stage=current_stage)
        case LeadSignal.LATER if current_stage == Stage.NURTURE:
            return Decision(SequenceChange.KEEP, "would rather hear from us later; nurture goes on")
        case LeadSignal.LATER:
            return Decision(
                SequenceChange.STOP,
                "would rather hear from us later; moved to nurture",
                stage=Stage.NURTURE,
                close_call_tasks=True,
                start_nurture=True,
            )
        case LeadSignal.BOOKED:
            return Decision(
                SequenceChange.STOP,
                "says they booked; confirm the time",
                stage=Stage.BOOKED,
                alert_team=True,
                close_call_tasks=True,
            )
        case LeadSignal.ASKS_TIME:
            return Decision(
                SequenceChange.PAUSE,
                "asked for a time or to book",
                stage=Stage.ENGAGED,
                call_task="asked for a time or to book",
                alert_team=True,
            )
        case LeadSignal.ASKS_CALL:
            return Decision(
                SequenceChange.PAUSE,
                "asked to be called or booked",
                stage=Stage.ENGAGED,
                call_task="asked to be called or booked",
                alert_team=True,
            )
        case LeadSignal.QUESTION:
            return Decision(
                SequenceChange.PAUSE,
                "asked a question",
                stage=Stage.ENGAGED,
                call_task="asked a question",
                alert_team=True,
            )
        case LeadSignal.PLAIN:
            return Decision(SequenceChange.PAUSE, "replied; a person takes over", stage=Stage.ENGAGED, alert_team=True)
        case LeadSignal.CANCEL_VISIT | LeadSignal.RESCHEDULE_VISIT | LeadSignal.CONFIRM_VISIT:
            # About a visit (bot.usecases.appointments acts on it); with none ahead it is a reply like any other.
            return decide_on_signal(LeadSignal.PLAIN, current_stage=current_stage)
    raise ValueError(f"unknown signal {signal!r}")


#: Why a call task is opened when the lead asks to move or cancel the visit.
RESCHEDULE_CALL = "wants to reschedule"


class VisitChange(StrEnum):
    CONFIRM = "confirm"  #: the visit is marked confirmed; reminders go on
    HOLD = "hold"  #: reminders pause; the visit stands, unchanged, until a person has spoken to the lead


@dataclass(frozen=True)
class VisitDecision:
    """What a reply about the visit ahead changes, and what a person must answer."""

    change: VisitChange
    reason: str
    #: Hand the team a call for this reason (None: nobody needs to call).
    call_task: str | None = None
    #: Tell the team in the lead's thread (the call task's own post does, when there is one).
    alert_team: bool = False


def decide_on_visit_reply(signal: LeadSignal, *, also: LeadSignal | None = None) -> VisitDecision:
    """Decide what a confirmation, or a request to move or cancel, changes, with what else the lead asked.

    `also` is a request beside the visit reading ("yes! do I need to bring my card?"): the visit
    is still confirmed (or held), and the request reaches a person in the same call.
    """
    asked = decide_on_signal(also, current_stage=Stage.ENGAGED).call_task if also in FOR_A_PERSON else None
    match signal:
        case LeadSignal.CONFIRM_VISIT if asked:
            return VisitDecision(
                VisitChange.CONFIRM, f"confirmed the visit and {asked}", call_task=asked, alert_team=True
            )
        case LeadSignal.CONFIRM_VISIT:
            return VisitDecision(VisitChange.CONFIRM, "confirmed the visit")
        case LeadSignal.CANCEL_VISIT | LeadSignal.RESCHEDULE_VISIT:
            wants = "asked to cancel the visit" if signal == LeadSignal.CANCEL_VISIT else "asked to move the visit"
            call = f"{RESCHEDULE_CALL}; also: {asked}" if asked else RESCHEDULE_CALL
            return VisitDecision(VisitChange.HOLD, wants, call_task=call, alert_team=True)
    raise ValueError(f"{signal!r} is not a reply about a visit")


def decide_on_booking() -> Decision:
    """Decide what an appointment changes: sales follow-up ends, reminders begin."""
    return Decision(SequenceChange.STOP, "booked", stage=Stage.BOOKED, close_call_tasks=True)


def decide_on_call_outcome(outcome: CallOutcome, *, paused: bool) -> Decision:
    """Decide what a logged call outcome changes."""
    match outcome:
        case CallOutcome.BOOKED:
            return decide_on_booking()
        case CallOutcome.CALL_BACK:
            return Decision(SequenceChange.PAUSE, "asked to be called back", stage=Stage.ENGAGED)
        case CallOutcome.LEFT_VOICEMAIL | CallOutcome.NO_ANSWER:
            label = "left a voicemail" if outcome == CallOutcome.LEFT_VOICEMAIL else "no answer"
            return Decision(SequenceChange.RESUME if paused else SequenceChange.KEEP, f"{label}; sequence continues")
        case CallOutcome.WRONG_NUMBER:
            return Decision(SequenceChange.STOP, "wrong number", stage=Stage.LOST, close_call_tasks=True)
        case CallOutcome.NOT_INTERESTED:
            return Decision(SequenceChange.STOP, "not interested", stage=Stage.LOST, close_call_tasks=True)
    raise ValueError(f"unknown call outcome {outcome!r}")


def decide_on_quiet_end() -> Decision:
    """Decide what happens when the sales sequence ran to its end with no answer."""
    return Decision(SequenceChange.STOP, "sequence ended with no reply", stage=Stage.NURTURE)


def stage_after_touch(current: Stage) -> Stage:
    """A lead we have reached out to is contacted; later stages stay as they are."""
    return Stage.CONTACTED if current == Stage.NEW else current
