"""Send the touches that are due, each exactly once, in order per lead, within the send windows."""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import exists, func, select, update
from sqlalchemy.orm import Session, aliased, selectinload

from bot import audit, outbox
from bot.audit import SYSTEM
from bot.call_tasks import open_call_task
from bot.enrollment import NURTURE_SEQUENCE, lead_timezones
from bot.lead_actions import apply_decision, on_quiet_end, opt_out, set_stage
from bot.models import (
    Appointment,
    Enrollment,
    EnrollmentState,
    Lead,
    Message,
    Stage,
    Touch,
    TouchStatus,
)
from bot.outbox import Notice
from bot.planning import PHONE_CHANNELS, earliest_send_time
from bot.playbook import Channel, LeadFacts, Step, skip_reason
from bot.ports import (
    OUTCOME_UNKNOWN,
    OutgoingEmail,
    OutgoingSms,
    PermanentSendError,
    SendReceipt,
    TransientSendError,
)
from bot.render_context import lead_context
from bot.rules import LeadSignal, decide_on_signal, stage_after_touch
from bot.send_times import NoSendTime, may_send_at
from bot.services import Services
from bot.templating import TemplateProblem

log = logging.getLogger(__name__)

#: How late a touch may still go out after the bot was down; later than this it would confuse more than help.
GRACE = {
    Channel.SMS: timedelta(hours=2),
    Channel.EMAIL: timedelta(hours=12),
    Channel.CALL_TASK: timedelta(hours=24),
}
MAX_ATTEMPTS = 5
#: Provider codes that mean the number can never take SMS: remaining SMS touches go another way.
UNREACHABLE_SMS_CODES = frozenset({"21211", "21614", "21635", "30006", "21612", "21408"})
OPTED_OUT_SMS_CODES = frozenset({"21610"})
#: Real seconds a touch may stay `sending` before it counts as abandoned by a process that died.
#: Far longer than a sender's timeout, so a request in flight when its process died has landed.
SEND_LEASE_SECONDS = 60.0


def retry_delay(attempt: int, retry_after: float | None = None) -> timedelta:
    """Back off exponentially with jitter, honouring the provider's Retry-After when it gives one."""
    base = min(30 * 2 ** (attempt - 1), 1800)
    jittered = base * random.uniform(0.8, 1.2)
    return timedelta(seconds=max(jittered, retry_after or 0))


@dataclass
class DispatchReport:
    sent: int = 0
    skipped: int = 0
    failed: int = 0
    retrying: int = 0
    rescheduled: int = 0
    details: list[str] = field(default_factory=list)

    @property
    def handled(self) -> int:
        return self.sent + self.skipped + self.failed + self.retrying + self.rescheduled


@dataclass(frozen=True)
class _Claimed:
    touch_id: int
    lead_id: int
    outgoing: OutgoingSms | OutgoingEmail
    #: The touch's attempt count when claimed: if it changed, recovery settled the touch meanwhile.
    attempt: int = 0


class SentSmsLookup(Protocol):
    """A sender that can list what the provider holds for a number (Twilio can; SendGrid cannot)."""

    def messages_to(self, to: str) -> list[SentSms]: ...


class SentSms(Protocol):
    sid: str
    body: str
    status: str


class Dispatcher:
    """Claims due touches and carries them out through the senders."""

    def __init__(self, services: Services, *, batch_size: int = 200,
                 send_lease_seconds: float = SEND_LEASE_SECONDS):
        self.services = services
        self.batch_size = batch_size
        self.send_lease_seconds = send_lease_seconds
        self._next_recovery = 0.0  # monotonic seconds
        self._stopping = threading.Event()

    def run_due(self) -> DispatchReport:
        """Carry out everything due now; return what happened."""
        report = DispatchReport()
        if time.monotonic() >= self._next_recovery:
            # Cheap (an indexed look at `sending` touches), but no need to do it on every wake.
            self._next_recovery = time.monotonic() + min(self.send_lease_seconds / 2, 5.0)
            self.recover_abandoned(report)
        while not self._stopping.is_set():
            before = report.handled
            claimed = self._claim_batch(report)
            for index, item in enumerate(claimed):
                if self._stopping.is_set():
                    self._release(claimed[index:])
                    return report
                self._deliver(item, report)
            # A handled touch may unblock the next one of the same lead: go again until nothing moves.
            if report.handled == before:
                return report
        return report

    def stop(self) -> None:
        """Finish the send in progress, hand back the rest of the batch, and run no more (shutdown)."""
        self._stopping.set()

    def _release(self, unsent: list[_Claimed]) -> None:
        """Give claimed touches back untouched, so any process sends them now instead of after the lease."""
        with self.services.session_factory.begin() as session:
            for item in unsent:
                session.execute(
                    update(Touch)
                    .where(Touch.id == item.touch_id, Touch.status == TouchStatus.SENDING,
                           Touch.attempts == item.attempt)
                    .values(status=TouchStatus.SCHEDULED, attempts=item.attempt - 1)
                )

    def next_due_at(self) -> datetime | None:
        with self.services.session_factory() as session:
            return session.scalar(
                select(func.min(Touch.due_at))
                .join(Enrollment, Enrollment.id == Touch.enrollment_id)
                .where(Touch.status == TouchStatus.SCHEDULED, Enrollment.state == EnrollmentState.ACTIVE)
            )

    # --- claiming: one short transaction decides each due touch -----------------------------------

    def _claim_batch(self, report: DispatchReport) -> list[_Claimed]:
        now = self.services.clock.now()
        earlier = aliased(Touch)
        blocked_by_earlier = exists().where(
            earlier.enrollment_id == Touch.enrollment_id,
            earlier.position < Touch.position,
            earlier.status.in_((TouchStatus.SCHEDULED, TouchStatus.SENDING)),
        )
        query = (
            select(Touch)
            .join(Enrollment, Enrollment.id == Touch.enrollment_id)
            .where(
                Touch.status == TouchStatus.SCHEDULED,
                Touch.due_at <= now,
                (Touch.next_attempt_at.is_(None)) | (Touch.next_attempt_at <= now),
                Enrollment.state == EnrollmentState.ACTIVE,
                ~blocked_by_earlier,
            )
            .order_by(Touch.due_at, Touch.id)
            .limit(self.batch_size)
            .with_for_update(skip_locked=True, of=Touch)
            # Two queries for the whole batch instead of two lazy loads per touch.
            .options(selectinload(Touch.enrollment).selectinload(Enrollment.lead))
        )
        claimed: list[_Claimed] = []
        with self.services.session_factory.begin() as session:
            for touch in session.scalars(query).all():
                item = self._decide(session, touch, now, report)
                if item is not None:
                    claimed.append(item)
        return claimed

    def _decide(self, session: Session, touch: Touch, now: datetime, report: DispatchReport) -> _Claimed | None:
        enrollment = touch.enrollment
        lead = enrollment.lead
        channel = Channel(touch.channel)
        step = self._step(enrollment, touch)
        if step is None:
            return self._skip(session, touch, now, "the step is no longer in the playbook", report)
        grace = GRACE.get(channel)
        if grace is not None and touch.attempts == 0 and now - touch.due_at > grace:
            return self._skip(session, touch, now, f"missed: due {touch.due_at:%Y-%m-%d %H:%M} UTC, "
                              f"more than {grace} ago (the bot was not running)", report)
        zones = lead_timezones(lead, self.services.business)
        if channel != Channel.STAGE and not may_send_at(
            now, business=self.services.business, respect_lead_daytime=channel in PHONE_CHANNELS,
            lead_timezones=zones,
        ):
            try:
                touch.due_at = earliest_send_time(now, channel, self.services.business, zones)
            except NoSendTime as error:
                return self._skip(session, touch, now, f"no time to send: {error}", report)
            report.rescheduled += 1
            return None
        if channel == Channel.SMS and lead.sms_unreachable_reason and lead.sms_opted_out_at is None:
            try:
                return self._reroute_sms(session, touch, lead, enrollment, step, now, report)
            except TemplateProblem as problem:
                self._fail(session, touch, now, f"could not render {step.template}: {problem}", report)
                return None
        reason = skip_reason(step, self._facts(session, lead, enrollment))
        if reason:
            return self._skip(session, touch, now, reason, report)
        try:
            match channel:
                case Channel.SMS:
                    return self._claim_sms(session, touch, lead, step, now)
                case Channel.EMAIL:
                    return self._claim_email(session, touch, lead, enrollment, step, now)
                case Channel.CALL_TASK:
                    self._open_call(session, touch, lead, step, now)
                case Channel.STAGE:
                    self._move_stage(session, touch, lead, enrollment, step, now)
        except TemplateProblem as problem:
            self._fail(session, touch, now, f"could not render {step.template}: {problem}", report)
            return None
        report.sent += 1
        self._complete_if_done(session, enrollment, now)
        return None

    def _step(self, enrollment: Enrollment, touch: Touch) -> Step | None:
        try:
            sequence = self.services.playbooks.get(enrollment.sequence_name)
        except Exception:  # noqa: BLE001 - a playbook that no longer loads: skip with the reason, never crash the loop
            return None
        return next((s for s in sequence.steps if s.id == touch.step_id), None)

    def _facts(self, session: Session, lead: Lead, enrollment: Enrollment) -> LeadFacts:
        replied = session.scalar(
            select(exists().where(Message.lead_id == lead.id, Message.direction == "in",
                                  Message.created_at >= enrollment.enrolled_at,
                                  (Message.classification.is_(None)) | (Message.classification != "auto_reply")))
        )
        booked = session.scalar(
            select(exists().where(Appointment.lead_id == lead.id, Appointment.status == "booked"))
        )
        return LeadFacts(
            has_email=bool(lead.email), has_phone=bool(lead.phone), has_replied=bool(replied),
            has_booked=bool(booked), sms_allowed=lead.sms_allowed, email_allowed=lead.email_allowed,
        )

    def _context(self, session: Session, lead: Lead, enrollment: Enrollment) -> dict:
        appointment = session.get(Appointment, enrollment.appointment_id) if enrollment.appointment_id else None
        return lead_context(
            lead, self.services.business, self.services.public_base_url,
            appointment_at=appointment.start_at if appointment else None,
            appointment_notes=appointment.notes if appointment else "",
        )

    def _claim_sms(self, session: Session, touch: Touch, lead: Lead, step: Step, now: datetime) -> _Claimed:
        first = not session.scalar(
            select(exists().where(Message.lead_id == lead.id, Message.direction == "out", Message.channel == "sms",
                                  Message.status != "failed"))
        )
        assert step.template is not None and lead.phone is not None
        body = self.services.renderer.render_sms(step.template, self._context(session, lead, touch.enrollment),
                                                 first_to_number=first)
        touch.body_text = body
        self._mark_sending(touch, now)
        callback = f"{self.services.public_base_url}/webhooks/twilio/status"
        return _Claimed(touch.id, lead.id, OutgoingSms(to=lead.phone, body=body, reference=f"touch-{touch.id}",
                                                       status_callback=callback), touch.attempts)

    def _claim_email(self, session: Session, touch: Touch, lead: Lead, enrollment: Enrollment, step: Step,
                     now: datetime) -> _Claimed:
        assert step.template is not None and lead.email is not None
        if touch.subject_option is None:
            touch.subject_option = self._rotation(session, enrollment, step)
        context = self._context(session, lead, enrollment)
        subject = step.subjects[touch.subject_option % len(step.subjects)]
        rendered = self.services.renderer.render_email(step.template, subject, context)
        touch.subject, touch.body_text, touch.body_html = rendered.subject, rendered.text, rendered.html
        self._mark_sending(touch, now)
        unsubscribe = context["links"]["unsubscribe"]
        return _Claimed(touch.id, lead.id, OutgoingEmail(
            to=lead.email, subject=rendered.subject, text=rendered.text, html=rendered.html,
            reference=f"touch-{touch.id}",
            headers={"List-Unsubscribe": f"<{unsubscribe}>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"},
            custom_args={"touch_id": str(touch.id), "lead_id": str(lead.id)},
        ), touch.attempts)

    def _reroute_sms(self, session: Session, touch: Touch, lead: Lead, enrollment: Enrollment, step: Step,
                     now: datetime, report: DispatchReport) -> _Claimed | None:
        """Texts cannot reach this number: say the same thing by email, or hand the team a call."""
        assert step.template is not None
        context = self._context(session, lead, enrollment)
        text = self.services.renderer.render_sms(step.template, context, first_to_number=False)
        if lead.email_allowed:
            assert lead.email is not None
            rendered = self.services.renderer.render_email(
                "_direct_message", f"A note from {self.services.business.name}", {**context, "body": text})
            touch.subject, touch.body_text, touch.body_html = rendered.subject, rendered.text, rendered.html
            touch.skip_reason = f"sent by email: {lead.sms_unreachable_reason}"
            self._mark_sending(touch, now)
            unsubscribe = context["links"]["unsubscribe"]
            return _Claimed(touch.id, lead.id, OutgoingEmail(
                to=lead.email, subject=rendered.subject, text=rendered.text, html=rendered.html,
                reference=f"touch-{touch.id}",
                headers={"List-Unsubscribe": f"<{unsubscribe}>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"},
                custom_args={"touch_id": str(touch.id), "lead_id": str(lead.id)},
            ), touch.attempts)
        open_call_task(session, self.services, lead, now=now, actor=SYSTEM, touch=touch,
                       reason=f"texts cannot reach this number; say it by phone: {text}")
        touch.status, touch.sent_at = TouchStatus.SENT, now
        touch.skip_reason = f"handed to the team as a call: {lead.sms_unreachable_reason}"
        report.sent += 1
        self._complete_if_done(session, enrollment, now)
        return None

    @staticmethod
    def _rotation(session: Session, enrollment: Enrollment, step: Step) -> int:
        """Give each lead the next subject option in turn, so every option is tried on similar leads."""
        used = session.scalar(
            select(func.count(Touch.id)).join(Enrollment, Enrollment.id == Touch.enrollment_id).where(
                Enrollment.sequence_name == enrollment.sequence_name, Touch.step_id == step.id,
                Touch.subject_option.is_not(None))
        ) or 0
        return used % len(step.subjects)

    @staticmethod
    def _mark_sending(touch: Touch, now: datetime) -> None:
        # Recorded before the provider is called: a crash after this can never lead to a blind resend.
        touch.status = TouchStatus.SENDING
        touch.attempts += 1
        touch.next_attempt_at = now

    def _open_call(self, session: Session, touch: Touch, lead: Lead, step: Step, now: datetime) -> None:
        open_call_task(session, self.services, lead, reason=f"scheduled follow-up call ({step.id})", now=now,
                       actor=SYSTEM, template=step.template, touch=touch)
        touch.status, touch.sent_at = TouchStatus.SENT, now

    def _move_stage(self, session: Session, touch: Touch, lead: Lead, enrollment: Enrollment, step: Step,
                    now: datetime) -> None:
        touch.status, touch.sent_at = TouchStatus.SENT, now
        target = Stage(step.stage) if step.stage else None
        if target == Stage.NURTURE and enrollment.sequence_name != NURTURE_SEQUENCE:
            on_quiet_end(session, self.services, lead, now=now)
        elif target is not None:
            set_stage(session, lead, target, now=now, actor=SYSTEM, reason=f"playbook step {step.id}")
            outbox.publish(session, Notice.LEAD_CHANGED, lead_id=lead.id, at=now)

    def _skip(self, session: Session, touch: Touch, now: datetime, reason: str, report: DispatchReport) -> None:
        touch.status, touch.skip_reason = TouchStatus.SKIPPED, reason
        report.skipped += 1
        report.details.append(f"touch {touch.id} skipped: {reason}")
        audit.record(session, lead_id=touch.lead_id, actor=SYSTEM, action="touch_skipped", at=now,
                     touch=touch.id, step=touch.step_id, reason=reason)
        self._complete_if_done(session, touch.enrollment, now)
        return None

    def _fail(self, session: Session, touch: Touch, now: datetime, error: str, report: DispatchReport) -> None:
        touch.status, touch.last_error = TouchStatus.FAILED, error
        report.failed += 1
        report.details.append(f"touch {touch.id} failed: {error}")
        outbox.publish(session, Notice.TOUCH_FAILED, lead_id=touch.lead_id, at=now, touch_id=touch.id, error=error)
        audit.record(session, lead_id=touch.lead_id, actor=SYSTEM, action="touch_failed", at=now,
                     touch=touch.id, error=error)
        self._complete_if_done(session, touch.enrollment, now)

    def _complete_if_done(self, session: Session, enrollment: Enrollment, now: datetime) -> None:
        if enrollment.state not in (EnrollmentState.ACTIVE, EnrollmentState.PAUSED):
            return
        session.flush()
        pending = session.scalar(
            select(exists().where(Touch.enrollment_id == enrollment.id,
                                  Touch.status.in_((TouchStatus.SCHEDULED, TouchStatus.SENDING))))
        )
        if not pending:
            enrollment.state = EnrollmentState.COMPLETED
            enrollment.state_reason = "every step ran"
            enrollment.ended_at = now
            audit.record(session, lead_id=enrollment.lead_id, actor=SYSTEM, action="sequence_completed", at=now,
                         sequence=enrollment.sequence_name, enrollment=enrollment.id)

    # --- delivering: the provider call, guarded against a STOP arriving meanwhile ---------------------

    def _deliver(self, item: _Claimed, report: DispatchReport) -> None:
        services = self.services
        with services.lead_locks.hold(item.lead_id):
            with services.session_factory.begin() as session:
                lead = services.lead_locks.lock_row(session, item.lead_id)
                touch = session.get(Touch, item.touch_id, populate_existing=True)
                assert lead is not None and touch is not None
                if touch.status != TouchStatus.SENDING or touch.attempts != item.attempt:
                    return  # recovery settled it while it waited in this batch: it is not ours to send
                allowed = lead.sms_allowed if isinstance(item.outgoing, OutgoingSms) else lead.email_allowed
                if not allowed:
                    touch.status = TouchStatus.SKIPPED
                    touch.skip_reason = "the lead opted out (or became unreachable) just before sending"
                    report.skipped += 1
                    self._complete_if_done(session, touch.enrollment, services.clock.now())
                    return
                if session.bind.dialect.name == "postgresql":
                    # Keep the row lock across the provider call: another process's STOP waits for it.
                    outcome = self._call_provider(item)
                    self._record(session, touch, lead, item, outcome, report)
                    return
            outcome = self._call_provider(item)
            with services.session_factory.begin() as session:
                touch = session.get(Touch, item.touch_id)
                lead = session.get(Lead, item.lead_id)
                assert touch is not None and lead is not None
                self._record(session, touch, lead, item, outcome, report)

    def _call_provider(self, item: _Claimed) -> SendReceipt | Exception:
        try:
            if isinstance(item.outgoing, OutgoingSms):
                if self.services.sms is None:
                    return PermanentSendError("SMS is not configured (set the TWILIO_* settings)")
                return self.services.sms.send_sms(item.outgoing)
            if self.services.email is None:
                return PermanentSendError("email is not configured (set the SENDGRID_* settings)")
            return self.services.email.send_email(item.outgoing)
        except (TransientSendError, PermanentSendError) as error:
            return error

    def _record(self, session: Session, touch: Touch, lead: Lead, item: _Claimed,
                outcome: SendReceipt | Exception, report: DispatchReport) -> None:
        now = self.services.clock.now()
        channel = "sms" if isinstance(item.outgoing, OutgoingSms) else "email"
        if isinstance(outcome, SendReceipt):
            touch.status, touch.provider_id, touch.sent_at, touch.last_error = (
                TouchStatus.SENT, outcome.provider_id, now, None)
            session.add(Message(
                lead_id=lead.id, direction="out", channel=channel, touch_id=touch.id,
                provider_id=outcome.provider_id, subject=touch.subject, body=touch.body_text or "",
                status=outcome.status, created_at=now,
            ))
            set_stage(session, lead, stage_after_touch(Stage(lead.stage)), now=now, actor=SYSTEM,
                      reason="first touch sent")
            outbox.publish(session, Notice.TOUCH_SENT, lead_id=lead.id, at=now, touch_id=touch.id)
            outbox.publish(session, Notice.LEAD_CHANGED, lead_id=lead.id, at=now)
            report.sent += 1
            self._complete_if_done(session, touch.enrollment, now)
            return
        assert isinstance(outcome, (TransientSendError, PermanentSendError))
        error_text = f"{outcome.reason}" + (f" (code {outcome.code})" if outcome.code else "")
        if isinstance(outcome, TransientSendError) and outcome.code == OUTCOME_UNKNOWN:
            # The provider may have taken it: never resend blindly, let a person look.
            self._unknown(session, touch, lead, now, error_text, report)
            return
        if isinstance(outcome, TransientSendError) and touch.attempts < MAX_ATTEMPTS:
            touch.status = TouchStatus.SCHEDULED
            touch.next_attempt_at = now + retry_delay(touch.attempts, outcome.retry_after)
            touch.last_error = error_text
            report.retrying += 1
            return
        self._fail(session, touch, now, error_text, report)
        if channel == "sms" and outcome.code in OPTED_OUT_SMS_CODES:
            # Twilio knows of a STOP we never saw: treat it exactly like one.
            opt_out(session, lead, "sms", now=now, actor=SYSTEM)
            apply_decision(session, self.services, lead,
                           decide_on_signal(LeadSignal.OPT_OUT, current_stage=Stage(lead.stage)), now=now, actor=SYSTEM)
        elif channel == "sms" and outcome.code in UNREACHABLE_SMS_CODES:
            lead.sms_unreachable_reason = f"SMS cannot reach this number ({error_text})"
            outbox.publish(session, Notice.DECISION, lead_id=lead.id, at=now,
                           text=f"{lead.sms_unreachable_reason}: remaining texts go by email or a call")

    # --- recovering: touches a process left in `sending` when it died --------------------------------

    def recover_abandoned(self, report: DispatchReport | None = None) -> DispatchReport:
        """Settle touches claimed longer ago than the lease that no live process is sending.

        Each is settled by asking the provider: found there, it is recorded as sent; provably
        absent, it is scheduled again; otherwise a person is asked. Never resent blindly.
        """
        report = report or DispatchReport()
        services = self.services
        now = services.clock.now()
        # The lease is in real seconds; the stored claim times are on the bot's (maybe scaled) clock.
        cutoff = now - timedelta(seconds=self.send_lease_seconds * getattr(services.clock, "scale", 1.0))
        with services.session_factory() as session:
            abandoned = session.execute(
                select(Touch.id, Touch.lead_id)
                .where(Touch.status == TouchStatus.SENDING, Touch.next_attempt_at <= cutoff)
                .order_by(Touch.id)
                .limit(self.batch_size)
            ).all()
        for touch_id, lead_id in abandoned:
            with services.lead_locks.hold(lead_id):
                with services.session_factory.begin() as session:
                    # A live process sending to this lead holds the row: its touch is not abandoned.
                    lead = session.scalars(
                        select(Lead).where(Lead.id == lead_id).with_for_update(skip_locked=True)
                        .execution_options(populate_existing=True)
                    ).first()
                    touch = session.get(Touch, touch_id, populate_existing=True) if lead else None
                    if lead is None or touch is None or touch.status != TouchStatus.SENDING \
                            or touch.next_attempt_at is None or touch.next_attempt_at > cutoff:
                        continue
                    self._settle_abandoned(session, touch, lead, report)
        return report

    def _settle_abandoned(self, session: Session, touch: Touch, lead: Lead, report: DispatchReport) -> None:
        now = self.services.clock.now()
        sender = self.services.sms if touch.channel == Channel.SMS and lead.phone else None
        if touch.skip_reason and touch.skip_reason.startswith("sent by email"):
            sender = None  # an SMS step rerouted to email: SendGrid cannot be asked
        lookup: SentSmsLookup | None = sender if hasattr(sender, "messages_to") else None  # type: ignore[assignment]
        if lookup is None:
            self._unknown(session, touch, lead, now, "the process sending it stopped before recording the "
                          "outcome, and the provider cannot be asked", report)
            return
        try:
            held = lookup.messages_to(lead.phone)
        except TransientSendError as error:
            log.warning("touch %s: cannot settle an abandoned send yet: %s", touch.id, error)
            touch.last_error = f"waiting to ask the provider: {error.reason}"
            return
        known = set(session.scalars(select(Message.provider_id).where(
            Message.lead_id == lead.id, Message.direction == "out", Message.provider_id.is_not(None))))
        unrecorded = [m for m in held if m.sid not in known]
        body = touch.body_text or ""
        ours = [m for m in unrecorded if body and m.body.startswith(body)]
        if len(ours) == 1 and len(unrecorded) == 1:
            item = _Claimed(touch.id, lead.id, OutgoingSms(to=lead.phone, body=body,  # type: ignore[arg-type]
                                                           reference=f"touch-{touch.id}"), touch.attempts)
            audit.record(session, lead_id=lead.id, actor=SYSTEM, action="touch_recovered", at=now,
                         touch=touch.id, provider_id=ours[0].sid, found="sent")
            self._record(session, touch, lead, item, SendReceipt(ours[0].sid, ours[0].status), report)
            return
        if unrecorded:
            self._unknown(session, touch, lead, now, f"the process sending it stopped, and Twilio holds "
                          f"{len(unrecorded)} message(s) to this number that followup has no record of", report)
            return
        if touch.attempts >= MAX_ATTEMPTS:
            self._fail(session, touch, now, f"abandoned {touch.attempts} times by processes that stopped "
                       "mid-send; never reached Twilio", report)
            return
        # Provably never reached Twilio (it holds nothing unrecorded for the number): send it again.
        touch.status, touch.next_attempt_at = TouchStatus.SCHEDULED, now
        touch.last_error = "the process sending it stopped before Twilio got it; sending again"
        audit.record(session, lead_id=lead.id, actor=SYSTEM, action="touch_recovered", at=now,
                     touch=touch.id, found="not sent")
        report.retrying += 1

    def _unknown(self, session: Session, touch: Touch, lead: Lead, now: datetime, why: str,
                 report: DispatchReport) -> None:
        touch.status, touch.last_error = TouchStatus.UNKNOWN, why
        outbox.publish(session, Notice.NEEDS_PERSON, lead_id=lead.id, at=now, touch_id=touch.id,
                       text=f"It is not known whether {touch.step_id} reached the lead ({why}); "
                            "check before sending anything by hand.")
        audit.record(session, lead_id=lead.id, actor=SYSTEM, action="touch_outcome_unknown", at=now,
                     touch=touch.id, reason=why)
        report.failed += 1
        self._complete_if_done(session, touch.enrollment, now)
