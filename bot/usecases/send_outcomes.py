"""What a provider's answer to a send does: to the touch or message, to the lead, and in the lead's thread.

One copy for every path that sends: the dispatcher's touches, a one-off message (a team reply, the
HELP answer), a delivery report that comes later, and recovery after a crash. Vendor codes never
reach here: the channel adapters read them into a `FailureKind`, and this module reads only that.

`SendRecorder` is the one place a touch's send is written down. The dispatcher feeds it a group
of answers at a time, recorded in a few bulk statements; a send settled on its own (recovery
finding it at the provider, a lead whose group had a failure, SendGrid's event proving an email
whose outcome was unknown went out) is fed to it the same way, as a list of one.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from sqlalchemy import Connection, exists, select
from sqlalchemy.orm import Session

from bot.core.playbook import Step, step_label
from bot.core.ports import OUTCOME_UNKNOWN, FailureKind, SendError, SendReceipt, TransientSendError
from bot.core.rules import LeadSignal, decide_on_signal, stage_after_touch
from bot.core.states import TouchReroute
from bot.store import audit, outbox
from bot.store.audit import SYSTEM
from bot.store.models import Enrollment, EnrollmentState, Lead, Message, Stage, Touch, TouchStatus
from bot.store.outbox import Notice
from bot.usecases import dispatch_sql as sql
from bot.usecases.lead_actions import apply_decision, opt_out
from bot.usecases.services import Services

#: How many times a touch goes to a provider that could not take it now, before it fails for good.
MAX_ATTEMPTS = 5
#: A one-off message's status when the provider may or may not have it: a person checks, nothing resends.
UNKNOWN = "unknown"
#: The stages a sent touch moves a lead from, and to (`stage_after_touch`, the one rule, read once).
_MOVED_BY_A_TOUCH = {stage: stage_after_touch(stage) for stage in Stage if stage_after_touch(stage) != stage}


@dataclass
class DispatchReport:
    """What became of the touches one dispatch run handled."""

    sent: int = 0
    skipped: int = 0
    failed: int = 0
    retrying: int = 0
    rescheduled: int = 0
    details: list[str] = field(default_factory=list)

    @property
    def handled(self) -> int:
        return self.sent + self.skipped + self.failed + self.retrying + self.rescheduled


# --- reading an answer ----------------------------------------------------------------------------


class Answer(StrEnum):
    """What a provider's answer to one send means for that send."""

    #: The provider took it.
    SENT = "sent"
    #: The provider may or may not have it (a timeout after sending, a lost answer): a person checks.
    UNKNOWN = "unknown"
    #: The provider could not take it now: the same send may go again later.
    TRY_AGAIN = "try_again"
    #: It did not go and will not; `kind` says what that means for the lead.
    FAILED = "failed"


@dataclass(frozen=True)
class ReadAnswer:
    """A provider's answer, read: what it means, and the reason and code people are shown."""

    answer: Answer
    reason: str = ""
    code: str | None = None
    kind: FailureKind = FailureKind.OTHER
    retry_after: float | None = None

    @property
    def error_text(self) -> str:
        """The reason with its code, as a touch's error and the thread show it."""
        return self.reason + (f" (code {self.code})" if self.code else "")


def read_answer(outcome: SendReceipt | SendError, *, may_retry: bool) -> ReadAnswer:
    """Read a provider's answer; `may_retry` when the same send may still go again (a touch with attempts left)."""
    if isinstance(outcome, SendReceipt):
        return ReadAnswer(Answer.SENT)
    if isinstance(outcome, TransientSendError):
        if outcome.code == OUTCOME_UNKNOWN:
            # The provider may have taken it: never resend blindly, let a person look.
            return ReadAnswer(Answer.UNKNOWN, outcome.reason, outcome.code, outcome.kind)
        if may_retry:
            return ReadAnswer(Answer.TRY_AGAIN, outcome.reason, outcome.code, outcome.kind, outcome.retry_after)
    return ReadAnswer(Answer.FAILED, outcome.reason, outcome.code, outcome.kind)


def retry_delay(attempt: int, retry_after: float | None = None) -> timedelta:
    """Back off exponentially with jitter, honouring the provider's Retry-After when it gives one."""
    base = min(30 * 2 ** (attempt - 1), 1800)
    jittered = base * random.uniform(0.8, 1.2)
    return timedelta(seconds=max(jittered, retry_after or 0))


# --- what a failed text means for the lead ------------------------------------------------------


def text_failure_for_lead(
    session: Session, services: Services, lead: Lead, kind: FailureKind, *, why: str, code: str | None, now: datetime
) -> bool:
    """Apply what a text the provider refused or could not deliver means for the lead.

    Opted out: the number told its carrier STOP, a STOP we never saw, so it is treated exactly
    like one. Unreachable: the number can never take texts, so the remaining texts go by email
    or as a call (`why` is what the thread says). Returns True when the lead was newly marked
    unreachable, so the caller can send the failed touch another way.
    """
    if kind == FailureKind.OPTED_OUT:
        opt_out(session, lead, "sms", now=now, actor=SYSTEM)
        apply_decision(
            session,
            services,
            lead,
            decide_on_signal(LeadSignal.OPT_OUT, current_stage=Stage(lead.stage)),
            now=now,
            actor=SYSTEM,
        )
        return False
    if kind != FailureKind.UNREACHABLE or lead.sms_opted_out_at is not None or lead.sms_unreachable_reason:
        return False
    lead.sms_unreachable_reason = why
    audit.record(session, lead_id=lead.id, actor=SYSTEM, action="sms_unreachable", at=now, code=code)
    outbox.publish(
        session, Notice.DECISION, lead_id=lead.id, at=now, text=f"{why}: remaining texts go by email or a call"
    )
    return True


def reroute_touch(session: Session, touch: Touch, *, now: datetime, error: str) -> bool:
    """Queue a text that cannot reach its number to go again another way, once; False when it already did."""
    if touch.channel != "sms" or touch.rerouted is not None:
        return False
    outbox.publish(
        session,
        Notice.TOUCH_FAILED,
        lead_id=touch.lead_id,
        at=now,
        touch_id=touch.id,
        error=f"{error}; sending it another way",
    )
    touch.status, touch.next_attempt_at, touch.last_error = TouchStatus.SCHEDULED, now, f"rerouted: {error}"
    touch.rerouted = TouchReroute.QUEUED
    audit.record(
        session, lead_id=touch.lead_id, actor=SYSTEM, action="touch_rerouted", at=now, touch=touch.id, error=error
    )
    return True


# --- touches --------------------------------------------------------------------------------------


def step_of(services: Services, enrollment: Enrollment, touch: Touch) -> Step | None:
    """The playbook step a touch carries out (in the lead's business's playbook), or None when it is no longer there."""
    try:
        sequence = services.playbooks_of(enrollment.lead.business).get(enrollment.sequence_name)
    except Exception:  # noqa: BLE001 - a playbook that no longer loads: the touch is skipped with the reason, never the loop crashed
        return None
    return next((s for s in sequence.steps if s.id == touch.step_id), None)


def show_skipped(session: Session, touch: Touch, reason: str, now: datetime, step: Step | None) -> None:
    """One short line in the lead's thread for a touch not sent, saying why (the step as people know it)."""
    label = step.label if step is not None else step_label(None, touch.step_id)
    if label[1:2].islower():  # "Thank-you email" reads "the thank-you email"; "SMS reminder" stays
        label = label[:1].lower() + label[1:]
    outbox.publish(
        session,
        Notice.DECISION,
        lead_id=touch.lead_id,
        at=now,
        touch_id=touch.id,
        text=f"Skipped the {label}: {reason}",
    )


@dataclass(frozen=True)
class TouchSend:
    """A touch handed to a provider: what its answer is recorded against."""

    touch_id: int
    lead_id: int
    enrollment_id: int
    #: The touch's attempt count when it was handed over: if it changed, recovery settled it meanwhile.
    attempt: int
    #: "sms" or "email", as the stored message says (an SMS step rerouted to email went as email).
    channel: str
    body: str
    subject: str | None = None


class Taken(Protocol):
    """What a provider gave for a send it took: a SendReceipt, or what a later event proved."""

    @property
    def provider_id(self) -> str | None: ...
    @property
    def status(self) -> str: ...


@dataclass(frozen=True)
class ProvedSent:
    """A send proved taken after the fact (SendGrid's event for an email whose outcome was unknown)."""

    #: None when the event's id is already another touch's: the record stays unique rather than guessed.
    provider_id: str | None
    status: str


class NotAllowed(Exception):
    """The lead opted out (or became unreachable) between the claim and its turn to be sent."""


NOT_ALLOWED = NotAllowed()
#: What became of a touch handed over: the provider's answer, not allowed, or None (never tried).
Outcome = SendReceipt | SendError | NotAllowed | None


class SendRecorder:
    """Writes down what became of touches: every send, however it was settled, is recorded here."""

    def __init__(self, services: Services):
        self.services = services

    def record(self, session: Session, answered: Sequence[tuple[TouchSend, Outcome]], report: DispatchReport) -> None:
        """Record answers in the caller's transaction: plain sends in bulk, a lead with any failure one by one."""
        self.hand_back(session, [send for send, outcome in answered if outcome is None])
        # A lead with any failure takes the careful path for all its touches, in order: the failure may opt it out.
        troubled = {
            send.lead_id for send, outcome in answered if outcome is not None and not isinstance(outcome, SendReceipt)
        }
        in_bulk: list[tuple[TouchSend, Taken]] = []
        for send, outcome in answered:
            if outcome is None:
                continue
            if isinstance(outcome, SendReceipt):
                if send.lead_id in troubled:
                    self.record_sent(session, [(send, outcome)], report)
                else:
                    in_bulk.append((send, outcome))
                continue
            touch = session.get(Touch, send.touch_id, populate_existing=True)
            lead = session.get(Lead, send.lead_id, populate_existing=True)
            assert touch is not None and lead is not None
            if isinstance(outcome, NotAllowed):
                touch.status = TouchStatus.SKIPPED
                touch.skip_reason = "the lead opted out (or became unreachable) just before sending"
                show_skipped(
                    session,
                    touch,
                    touch.skip_reason,
                    self.services.clock.now(),
                    step_of(self.services, touch.enrollment, touch),
                )
                report.skipped += 1
                self.complete_if_done(session, touch.enrollment, self.services.clock.now())
            else:
                self._record_failure(session, touch, lead, send, outcome, report)
        if in_bulk:
            self.record_sent(session, in_bulk, report)

    def record_sent(self, session: Session, sent: Sequence[tuple[TouchSend, Taken]], report: DispatchReport) -> None:
        """Record sends the providers took, in a few statements whether they are one or a group's hundred.

        The touch is marked sent, its message stored, a new lead becomes contacted, the thread and
        card hear of it, and a sequence whose every step ran is completed.
        """
        now = self.services.clock.now()
        session.flush()  # what the unit of work holds goes first, so these statements see it
        connection = session.connection()
        if connection.dialect.name == "postgresql" and len(sent) > 1:
            connection.execute(
                sql.MARK_ALL_SENT,
                {
                    "sent_ids": [send.touch_id for send, _ in sent],
                    "sent_provider_ids": [receipt.provider_id for _, receipt in sent],
                    "sent_at_": now,
                },
            )
        else:
            connection.execute(
                sql.MARK_SENT,
                [
                    {"sent_id": send.touch_id, "sent_provider_id": receipt.provider_id, "sent_at_": now}
                    for send, receipt in sent
                ],
            )
        sql.RECORD_MESSAGES.execute(
            connection,
            [
                dict(
                    lead_id=send.lead_id,
                    direction="out",
                    channel=send.channel,
                    touch_id=send.touch_id,
                    provider_id=receipt.provider_id,
                    subject=send.subject,
                    body=send.body,
                    status=receipt.status,
                    created_at=now,
                    details={},
                )
                for send, receipt in sent
            ],
        )
        lead_ids = sorted({send.lead_id for send, _ in sent})
        # Each stage a touch moves a lead from, in one UPDATE that returns the leads it moved (nearly always
        # one statement: only a new lead moves); written in the statement that reads it, so the stage moved
        # is the stage stored.
        moved: list[tuple[int, Stage, Stage]] = []
        for old, new in _MOVED_BY_A_TOUCH.items():
            moved += [
                (lead_id, old, new)
                for lead_id in sorted(
                    connection.execute(
                        sql.CONTACT_NEW,
                        {"lead_ids": lead_ids, "from_stage": str(old), "to_stage": str(new), "moved_at": now},
                    ).scalars()
                )
            ]
        moved.sort()
        outbox.publish_many(
            session,
            [
                notice
                for send, _ in sent
                for notice in (
                    outbox.Pending(
                        Notice.TOUCH_SENT, lead_id=send.lead_id, at=now, payload={"touch_id": send.touch_id}
                    ),
                    outbox.Pending(Notice.LEAD_CHANGED, lead_id=send.lead_id, at=now, payload={}),
                )
            ],
        )
        report.sent += len(sent)
        completed = self._complete_finished(connection, {send.enrollment_id for send, _ in sent}, now)
        audit.record_many(
            session,
            [
                audit.Entry(
                    lead_id=lead_id,
                    actor=SYSTEM,
                    action="stage_changed",
                    at=now,
                    details={"old": str(old), "new": str(new), "reason": "first touch sent"},
                )
                for lead_id, old, new in moved
            ]
            + completed,
        )
        if session.identity_map:
            # Rows the unit of work holds may have changed underneath it: read them afresh when next used.
            session.expire_all()

    @staticmethod
    def hand_back(session: Session, unsent: Sequence[TouchSend]) -> None:
        """Give touches handed over but never tried back, so any process sends them now instead of after the lease."""
        if unsent:
            session.connection().execute(
                sql.HAND_BACK,
                [
                    {"claimed_id": send.touch_id, "claimed_attempt": send.attempt, "attempts_before": send.attempt - 1}
                    for send in unsent
                ],
            )

    @staticmethod
    def _complete_finished(connection: Connection, enrollment_ids: set[int], now: datetime) -> list[audit.Entry]:
        """Complete the enrollments among these whose every step ran; return their audit entries."""
        finished = sorted(
            connection.execute(
                sql.COMPLETE_FINISHED, {"enrollment_ids": sorted(enrollment_ids), "ended_at_": now}
            ).all()
        )
        return [
            audit.Entry(
                lead_id=row.lead_id,
                actor=SYSTEM,
                action="sequence_completed",
                at=now,
                details={"sequence": row.sequence_name, "enrollment": row.id},
            )
            for row in finished
        ]

    def _record_failure(
        self, session: Session, touch: Touch, lead: Lead, send: TouchSend, outcome: SendError, report: DispatchReport
    ) -> None:
        now = self.services.clock.now()
        answer = read_answer(outcome, may_retry=touch.attempts < MAX_ATTEMPTS)
        if answer.answer == Answer.UNKNOWN:
            self.unknown(session, touch, lead, answer.error_text, report)
            return
        if answer.answer == Answer.TRY_AGAIN:
            touch.status = TouchStatus.SCHEDULED
            touch.next_attempt_at = now + retry_delay(touch.attempts, answer.retry_after)
            touch.last_error = answer.error_text
            report.retrying += 1
            return
        why = f"SMS cannot reach this number ({answer.error_text})"
        if send.channel == "sms" and answer.kind == FailureKind.UNREACHABLE and lead.sms_opted_out_at is None:
            text_failure_for_lead(session, self.services, lead, answer.kind, why=why, code=answer.code, now=now)
            self._reroute_later(session, touch, now, answer.error_text, report)
            return
        self.fail(session, touch, answer.error_text, report)
        if send.channel == "sms":
            text_failure_for_lead(session, self.services, lead, answer.kind, why=why, code=answer.code, now=now)

    def _reroute_later(self, session: Session, touch: Touch, now: datetime, error: str, report: DispatchReport) -> None:
        """The text could not reach the number: show the failure, and send this same touch another way, once.

        The touch goes back in the queue at once; with the number marked unreachable, its next
        turn says it by email, or hands the team a call (bot.usecases.touch_policy).
        """
        if not reroute_touch(session, touch, now=now, error=error):
            self.fail(session, touch, error, report)
            return
        # The text itself failed (stats count it) before its words go another way.
        audit.record(
            session, lead_id=touch.lead_id, actor=SYSTEM, action="touch_failed", at=now, touch=touch.id, error=error
        )
        report.retrying += 1
        report.details.append(f"touch {touch.id} rerouted: {error}")

    def skip(self, session: Session, touch: Touch, reason: str, report: DispatchReport) -> None:
        """Record a touch not sent, with why, in the thread and the audit trail."""
        now = self.services.clock.now()
        touch.status, touch.skip_reason = TouchStatus.SKIPPED, reason
        show_skipped(session, touch, reason, now, step_of(self.services, touch.enrollment, touch))
        report.skipped += 1
        report.details.append(f"touch {touch.id} skipped: {reason}")
        audit.record(
            session,
            lead_id=touch.lead_id,
            actor=SYSTEM,
            action="touch_skipped",
            at=now,
            touch=touch.id,
            step=touch.step_id,
            reason=reason,
        )
        self.complete_if_done(session, touch.enrollment, now)

    def fail(self, session: Session, touch: Touch, error: str, report: DispatchReport) -> None:
        """Record a touch that failed for good, in the thread and the audit trail."""
        now = self.services.clock.now()
        touch.status, touch.last_error = TouchStatus.FAILED, error
        report.failed += 1
        report.details.append(f"touch {touch.id} failed: {error}")
        outbox.publish(session, Notice.TOUCH_FAILED, lead_id=touch.lead_id, at=now, touch_id=touch.id, error=error)
        audit.record(
            session, lead_id=touch.lead_id, actor=SYSTEM, action="touch_failed", at=now, touch=touch.id, error=error
        )
        self.complete_if_done(session, touch.enrollment, now)

    def unknown(self, session: Session, touch: Touch, lead: Lead, why: str, report: DispatchReport) -> None:
        """Record a touch the provider may or may not have: a person checks, and nothing resends it."""
        now = self.services.clock.now()
        touch.status, touch.last_error = TouchStatus.UNKNOWN, why
        step = step_of(self.services, touch.enrollment, touch)
        what = f"the {step.label.lower()}" if step is not None else "a touch"
        outbox.publish(
            session,
            Notice.NEEDS_PERSON,
            lead_id=lead.id,
            at=now,
            touch_id=touch.id,
            text=f"It is not known whether {what} reached the lead ({why}); check before sending anything by hand.",
        )
        audit.record(
            session, lead_id=lead.id, actor=SYSTEM, action="touch_outcome_unknown", at=now, touch=touch.id, reason=why
        )
        report.failed += 1
        self.complete_if_done(session, touch.enrollment, now)

    @staticmethod
    def complete_if_done(session: Session, enrollment: Enrollment, now: datetime) -> None:
        """Complete the enrollment when every one of its steps ran."""
        if enrollment.state not in (EnrollmentState.ACTIVE, EnrollmentState.PAUSED):
            return
        session.flush()
        pending = session.scalar(
            select(
                exists().where(
                    Touch.enrollment_id == enrollment.id, Touch.status.in_((TouchStatus.SCHEDULED, TouchStatus.SENDING))
                )
            )
        )
        if not pending:
            enrollment.state = EnrollmentState.COMPLETED
            enrollment.state_reason = "every step ran"
            enrollment.ended_at = now
            audit.record(
                session,
                lead_id=enrollment.lead_id,
                actor=SYSTEM,
                action="sequence_completed",
                at=now,
                sequence=enrollment.sequence_name,
                enrollment=enrollment.id,
            )


# --- one-off messages -----------------------------------------------------------------------------


def record_direct_answer(
    session: Session, message: Message, outcome: SendReceipt | SendError, *, now: datetime
) -> None:
    """Record what the provider answered to a one-off message.

    A one-off message is never sent again by the bot: a person's words from a while ago may no
    longer fit, so what could not go now has failed, and the team decides.
    """
    if isinstance(outcome, SendReceipt):
        message.provider_id, message.status = outcome.provider_id, outcome.status
        return
    answer = read_answer(outcome, may_retry=False)
    if answer.answer == Answer.UNKNOWN:
        # The provider may have it: "failed" would invite a person to send it a second time.
        message.error_code = answer.code
        direct_outcome_unknown(session, message, now, answer.reason)
        return
    # Nothing is concluded about the lead from a one-off message's failure (the thread shows it, and
    # a person reads it); a touch's failure with the same kind does change the lead (SendRecorder).
    message.status, message.error_code = "failed", answer.code
    message.details = {**(message.details or {}), "error": answer.reason}


def direct_outcome_unknown(session: Session, message: Message, now: datetime, why: str) -> None:
    """Mark a one-off message's outcome unknown and ask a person to check before anything is resent."""
    message.status = UNKNOWN
    message.details = {**(message.details or {}), "error": why}
    outbox.publish(
        session,
        Notice.NEEDS_PERSON,
        lead_id=message.lead_id,
        at=now,
        message_id=message.id,
        text=f"It is not known whether the {described(message)} reached the lead ({why}); "
        "check with the lead before sending it again.",
    )
    audit.record(
        session,
        lead_id=message.lead_id,
        actor=SYSTEM,
        action="direct_message_outcome_unknown",
        at=now,
        message=message.id,
        reason=why,
    )


def described(message: Message) -> str:
    """A one-off message as the thread names it: its kind and the start of its words."""
    kind = "text" if message.channel == "sms" else "email"
    words = " ".join((message.body or "").split())
    excerpt = words if len(words) <= 80 else words[:79] + "…"
    return f'{kind} "{excerpt}"'
