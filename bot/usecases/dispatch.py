"""Send the touches that are due, each exactly once, in order per lead, within the send windows."""

from __future__ import annotations

import logging
import random
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Callable, Collection

from sqlalchemy import Connection, Select, Update, bindparam, exists, func, insert, literal, or_, select, union_all
from sqlalchemy.orm import Session, aliased, joinedload

from bot.store import audit, outbox
from bot.store.audit import SYSTEM
from bot.usecases.call_tasks import open_call_task
from bot.store.consent import why_no_sms_consent
from bot.usecases.enrollment import NURTURE_SEQUENCE, lead_timezones
from bot.usecases.lead_actions import apply_decision, on_quiet_end, opt_out, set_stage
from bot.store.models import (
    Appointment,
    Enrollment,
    EnrollmentState,
    Lead,
    Message,
    Stage,
    Touch,
    TouchStatus,
)
from bot.store.outbox import Notice
from bot.core.states import TouchReroute
from bot.core.planning import PHONE_CHANNELS, earliest_send_time
from bot.core.playbook import Channel, LeadFacts, Step, skip_reason, step_label
from bot.core.ports import (
    FailureKind,
    OUTCOME_UNKNOWN,
    OutgoingEmail,
    OutgoingSms,
    PermanentSendError,
    SendReceipt,
    TransientSendError,
)
from bot.usecases.provider_lookup import ask_provider
from bot.usecases.render_context import lead_context
from bot.core.rules import LeadSignal, decide_on_signal, stage_after_touch
from bot.core.send_times import NoSendTime, may_send_at
from bot.usecases.services import Playbooks, Services
from bot.core.templating import RenderedEmail, TemplateProblem

log = logging.getLogger(__name__)

#: How late a touch may still go out after the bot was down; later than this it would confuse more than help.
GRACE = {
    Channel.SMS: timedelta(hours=2),
    Channel.EMAIL: timedelta(hours=12),
    Channel.CALL_TASK: timedelta(hours=24),
}
MAX_ATTEMPTS = 5
#: How a text the number could not take, said by phone instead, reads in the thread (`skip_reason`).
HANDED_TO_THE_TEAM = "handed to the team as a call"
#: Real seconds a busy dispatch run may take on top of the poll period before lateness counts as missed.
OWN_DELAY_SLACK_SECONDS = 10.0
#: Real seconds a touch may stay `sending` before it counts as abandoned by a process that died.
#: Far longer than a sender's timeout, so a request in flight when its process died has landed.
SEND_LEASE_SECONDS = 60.0
#: A touch whose channel has no provider configured waits with this as its next attempt: no claim
#: takes it, and `release_waiting_touches` lets it go once a restart brings the settings.
WAITING_FOR_SETTINGS = datetime(9999, 1, 1, tzinfo=timezone.utc)
#: What each channel needs set before its touches can go out.
CHANNEL_SETTINGS = {
    Channel.SMS: ("SMS", "TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and TWILIO_FROM_NUMBER (or "
                         "TWILIO_MESSAGING_SERVICE_SID)"),
    Channel.EMAIL: ("email", "SENDGRID_API_KEY and SENDGRID_FROM_EMAIL"),
}


def show_skipped(session: Session, touch: Touch, reason: str, now: datetime, step: Step | None) -> None:
    """One short line in the lead's thread for a touch not sent, saying why (the step as people know it)."""
    label = step.label if step is not None else step_label(None, touch.step_id)
    if label[1:2].islower():  # "Thank-you email" reads "the thank-you email"; "SMS reminder" stays
        label = label[:1].lower() + label[1:]
    outbox.publish(session, Notice.DECISION, lead_id=touch.lead_id, at=now, touch_id=touch.id,
                   text=f"Skipped the {label}: {reason}")


def reroute_touch(session: Session, touch: Touch, *, now: datetime, error: str) -> bool:
    """Queue a text that cannot reach its number to go again another way, once; False when it already did."""
    if touch.channel != Channel.SMS or touch.rerouted is not None:
        return False
    outbox.publish(session, Notice.TOUCH_FAILED, lead_id=touch.lead_id, at=now, touch_id=touch.id,
                   error=f"{error}; sending it another way")
    touch.status, touch.next_attempt_at, touch.last_error = TouchStatus.SCHEDULED, now, f"rerouted: {error}"
    touch.rerouted = TouchReroute.QUEUED
    audit.record(session, lead_id=touch.lead_id, actor=SYSTEM, action="touch_rerouted", at=now, touch=touch.id,
                 error=error)
    return True


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
    #: Its enrollment, so a group of sends can finish every sequence whose last step this was at once.
    enrollment_id: int = 0
    #: A text answering the lead's own text or call, allowed without consent to automated texts.
    answer: bool = False


# Dispatch's statements are built once: building one each time cost more than running it, which
# showed most when the fast lane claims and records one new lead at a time.
_touches, _leads, _enrollments = Touch.__table__, Lead.__table__, Enrollment.__table__
_earlier = aliased(Touch)
_DUE = (
    select(Touch.id)
    .join(Enrollment, Enrollment.id == Touch.enrollment_id)
    .where(
        Touch.status == TouchStatus.SCHEDULED,
        Touch.due_at <= bindparam("now"),
        (Touch.next_attempt_at.is_(None)) | (Touch.next_attempt_at <= bindparam("now")),
        Enrollment.state == EnrollmentState.ACTIVE,
        ~exists().where(  # an earlier touch of the same enrollment is still to go: this one waits
            _earlier.enrollment_id == Touch.enrollment_id,
            _earlier.position < Touch.position,
            _earlier.status.in_((TouchStatus.SCHEDULED, TouchStatus.SENDING)),
        ),
    )
    .order_by(Touch.due_at, Touch.id)
    .limit(bindparam("batch_size"))
    # Other processes' claims skip these rows instead of waiting for them (PostgreSQL).
    .with_for_update(skip_locked=True, of=Touch)
)


def _take(due: Select) -> Update:
    """Mark the due touches `sending` in the statement that finds them, and return their ids.

    Two claims, in this process or another, can never both take a touch: SQLite runs the
    statement under its one write lock; PostgreSQL's claims skip the rows another claim holds.
    """
    return (_touches.update().where(_touches.c.id.in_(due.scalar_subquery()))
            .values(status=TouchStatus.SENDING, attempts=_touches.c.attempts + 1)
            .returning(_touches.c.id))


_TAKE_DUE = _take(_DUE)
_TAKE_DUE_FOR_LEADS = _take(_DUE.where(Touch.lead_id.in_(bindparam("only_lead_ids", expanding=True))))
_TAKEN = (
    select(Touch).where(Touch.id.in_(bindparam("ids", expanding=True))).order_by(Touch.due_at, Touch.id)
    .execution_options(populate_existing=True)
    # One query for the batch's touches, enrollments and leads.
    .options(joinedload(Touch.enrollment, innerjoin=True).joinedload(Enrollment.lead, innerjoin=True))
)
_REPLIED = select(literal("replied"), Enrollment.id).distinct().join(
    Message, Message.lead_id == Enrollment.lead_id).where(
    Enrollment.id.in_(bindparam("enrollment_ids", expanding=True)), Message.direction == "in",
    Message.created_at >= Enrollment.enrolled_at,
    (Message.classification.is_(None)) | (Message.classification != "auto_reply"))
_BOOKED = select(literal("booked"), Appointment.lead_id).distinct().where(
    Appointment.lead_id.in_(bindparam("lead_ids", expanding=True)), Appointment.status.in_(("booked", "confirmed")))
#: Leads already sent a text that did not fail.
_TEXTED = select(literal("texted"), Message.lead_id).distinct().where(
    Message.lead_id.in_(bindparam("lead_ids", expanding=True)), Message.direction == "out",
    Message.channel == "sms", Message.status != "failed")
#: Ordered and limited rather than min(): PostgreSQL then reads `ix_touches_due` from its start and
#: stops at the first active one, instead of joining every scheduled touch (90 ms with 100,000).
_NEXT_DUE = (
    select(Touch.due_at).join(Enrollment, Enrollment.id == Touch.enrollment_id)
    .where(Touch.status == TouchStatus.SCHEDULED, Enrollment.state == EnrollmentState.ACTIVE)
    .order_by(Touch.due_at).limit(1)
)
#: Leads already texted since they last texted or called first: their message has its answer.
_ANSWERED = select(literal("answered"), Message.lead_id).distinct().join(
    Lead, Lead.id == Message.lead_id).where(
    Message.lead_id.in_(bindparam("lead_ids", expanding=True)), Message.direction == "out",
    Message.channel == "sms", Message.status != "failed", Lead.sms_lead_started_at.is_not(None),
    Message.created_at >= Lead.sms_lead_started_at)
#: The four in one round trip, each row tagged with the fact it stands for.
_FACTS = union_all(_REPLIED, _BOOKED, _TEXTED, _ANSWERED)


# What a group's check and recording run.
_MARK_SENT = (
    _touches.update().where(_touches.c.id == bindparam("sent_id"))
    .values(status=TouchStatus.SENT, provider_id=bindparam("sent_provider_id"), sent_at=bindparam("sent_at_"),
            last_error=None)
)
#: Run with a list of rows: one executemany (a C loop on SQLite, one pipeline on PostgreSQL), no ORM.
_RECORD_MESSAGES = insert(Message.__table__)
_LEAD_STAGES = select(_leads.c.id, _leads.c.stage).where(
    _leads.c.id.in_(bindparam("lead_ids", expanding=True)))
#: Leads moving to one stage: a statement per stage reached, not per lead.
_MOVE_STAGE = (
    _leads.update().where(_leads.c.id.in_(bindparam("moved_ids", expanding=True)))
    .values(stage=bindparam("moved_stage"), updated_at=bindparam("moved_at"))
)
_FINISHED = select(_enrollments.c.id, _enrollments.c.lead_id, _enrollments.c.sequence_name).where(
    _enrollments.c.id.in_(bindparam("enrollment_ids", expanding=True)),
    _enrollments.c.state.in_((EnrollmentState.ACTIVE, EnrollmentState.PAUSED)),
    ~exists().where(_touches.c.enrollment_id == _enrollments.c.id,
                    _touches.c.status.in_((TouchStatus.SCHEDULED, TouchStatus.SENDING))),
)
_COMPLETE = (
    _enrollments.update().where(_enrollments.c.id.in_(bindparam("completed_ids", expanding=True)))
    .values(state=EnrollmentState.COMPLETED, state_reason="every step ran", ended_at=bindparam("ended_at_"))
)
_HAND_BACK = (
    _touches.update()
    .where(_touches.c.id == bindparam("claimed_id"), _touches.c.status == TouchStatus.SENDING,
           _touches.c.attempts == bindparam("claimed_attempt"))
    .values(status=TouchStatus.SCHEDULED, attempts=bindparam("claimed_attempt") - 1)
)


def _touch_email(touch: Touch, lead: Lead, rendered: RenderedEmail, context: dict) -> OutgoingEmail:
    """A touch's email; its ids ride along in custom_args, so SendGrid's events find the touch again."""
    assert lead.email is not None
    return OutgoingEmail.to_lead(to=lead.email, subject=rendered.subject, text=rendered.text, html=rendered.html,
                                 reference=f"touch-{touch.id}", unsubscribe_url=context["links"]["unsubscribe"],
                                 custom_args={"touch_id": str(touch.id), "lead_id": str(lead.id)})


@dataclass
class _BatchFacts:
    """What the playbook's `when` rules and the templates ask about a batch's leads, read in four queries."""

    replied_enrollments: set[int]
    booked_leads: set[int]
    #: Leads already sent a text that did not fail: their texts leave out the opt-out line.
    texted_leads: set[int]
    #: Held here so the appointments stay loaded while the batch renders.
    appointments: dict[int, Appointment]
    #: Leads whose own text or call has had its answer (or gets it in this batch).
    answered_leads: set[int] = field(default_factory=set)

    @classmethod
    def load(cls, session: Session, batch: list[Touch]) -> _BatchFacts:
        ids = {"enrollment_ids": list({touch.enrollment_id for touch in batch}),
               "lead_ids": list({touch.lead_id for touch in batch})}
        found: dict[str, set[int]] = {"replied": set(), "booked": set(), "texted": set(), "answered": set()}
        # Plain columns: Core answers them without the ORM's overhead.
        for fact, fact_id in session.connection().execute(_FACTS, ids):
            found[fact].add(fact_id)
        replied, booked, texted = found["replied"], found["booked"], found["texted"]
        appointment_ids = [touch.enrollment.appointment_id for touch in batch if touch.enrollment.appointment_id]
        appointments = {appointment.id: appointment for appointment in session.scalars(
            select(Appointment).where(Appointment.id.in_(appointment_ids)))} if appointment_ids else {}
        return cls(replied, booked, texted, appointments, found["answered"])

    def about(self, lead: Lead, enrollment: Enrollment) -> LeadFacts:
        return LeadFacts(
            has_email=bool(lead.email), has_phone=bool(lead.phone),
            has_replied=enrollment.id in self.replied_enrollments, has_booked=lead.id in self.booked_leads,
            sms_allowed=lead.sms_allowed, email_allowed=lead.email_allowed,
        )


def _channel_of(item: _Claimed) -> str:
    return "sms" if isinstance(item.outgoing, OutgoingSms) else "email"


def _subject_of(item: _Claimed) -> str | None:
    return item.outgoing.subject if isinstance(item.outgoing, OutgoingEmail) else None


def _body_of(item: _Claimed) -> str:
    return item.outgoing.body if isinstance(item.outgoing, OutgoingSms) else item.outgoing.text


#: What `Lead.sms_allowed`, `Lead.sms_answer_allowed` and `Lead.email_allowed` read.
_REACHABILITY = (Lead.phone, Lead.email, Lead.sms_consent, Lead.email_consent, Lead.sms_opted_out_at,
                 Lead.email_opted_out_at, Lead.sms_unreachable_reason, Lead.sms_lead_started_at)

#: Claimed touches as they stand now, and whether their leads may still be written to.
_LEADS_CHECK = (
    select(_touches.c.id, _touches.c.status, _touches.c.attempts,
           *(_leads.c[column.key] for column in _REACHABILITY))
    .join(_leads, _leads.c.id == _touches.c.lead_id)
    .where(_touches.c.id.in_(bindparam("touch_ids", expanding=True)))
    # Locked in lead id order, as every group and the fast lane take them, so two never deadlock.
    .order_by(_leads.c.id)
    # Held until the group's transaction ends: another process's STOP for these leads waits.
    .with_for_update(of=_leads)
)


class _NotAllowed(Exception):
    """The lead opted out (or became unreachable) between the claim and its turn to be sent."""


_NOT_ALLOWED = _NotAllowed()
#: What became of a claimed touch in its group: the provider's answer, not allowed, or None (not tried).
_Outcome = SendReceipt | TransientSendError | PermanentSendError | _NotAllowed | None


@dataclass
class _GroupInFlight:
    """A group whose leads are held and checked, waiting for its provider calls to come back."""

    holding: ExitStack
    session: Session
    decided: list[tuple[_Claimed, _Outcome]] = field(default_factory=list)
    sending: list[tuple[list[_Claimed], Future[list[_Outcome]]]] = field(default_factory=list)

    def answered(self) -> bool:
        return all(future.done() for _, future in self.sending)

    def outcomes(self) -> list[tuple[_Claimed, _Outcome]]:
        return self.decided + [(item, outcome) for items, future in self.sending
                               for item, outcome in zip(items, future.result(), strict=True)]


#: How many claimed touches are recorded together (one transaction, a few bulk statements). Bigger
#: groups cost less per touch; smaller ones keep short the wait of a STOP for a lead already sent to.
SEND_GROUP_SIZE = 25


class Dispatcher:
    """Claims due touches and carries them out through the senders.

    A batch is claimed with one statement and decided and rendered in one transaction (the
    playbook's `when` facts read once for the batch), then carried out in groups of whole leads:
    each lead is taken and checked just before its sends, and a group's outcomes are recorded
    together in a few bulk statements. With `senders` > 1, that many groups are in flight at
    once and their provider calls overlap; a lead's touches always stay in one group, in order.
    """

    def __init__(self, services: Services, *, batch_size: int = 200,
                 send_lease_seconds: float = SEND_LEASE_SECONDS, senders: int = 1,
                 group_size: int = SEND_GROUP_SIZE, poll_seconds: float = 0.0):
        self.services = services
        self.batch_size = batch_size
        self.send_lease_seconds = send_lease_seconds
        self.group_size = group_size
        #: Real seconds between looks at the queue: a touch may wait that long before it is seen.
        self.poll_seconds = poll_seconds
        self._next_recovery = 0.0  # monotonic seconds
        self._stopping = threading.Event()
        self._senders = ThreadPoolExecutor(senders, thread_name_prefix="sender") if senders > 1 else None

    def run_due(self) -> DispatchReport:
        """Carry out everything due now; return what happened."""
        report = DispatchReport()
        if time.monotonic() >= self._next_recovery:
            # Cheap (an indexed look at `sending` touches), but no need to do it on every wake.
            self._next_recovery = time.monotonic() + min(self.send_lease_seconds / 2, 5.0)
            self.recover_abandoned(report)
        self._run_until_still(report)
        return report

    def run_leads(self, lead_ids: Collection[int]) -> DispatchReport:
        """Carry out what is due for these leads now, in the caller's thread (new leads' instant texts).

        Claims exclude each other, so this may run while a batch is being sent: neither waits for
        the other, and no touch is claimed twice.
        """
        report = DispatchReport()
        self._run_until_still(report, lead_ids=list(lead_ids))
        return report

    def _run_until_still(self, report: DispatchReport, *, lead_ids: list[int] | None = None) -> None:
        while not self._stopping.is_set():
            before = report.handled
            self._deliver_all(self._claim_batch(report, lead_ids=lead_ids), report)
            # A handled touch may unblock the next one of the same lead: go again until nothing moves.
            if report.handled == before:
                return

    def stop(self) -> None:
        """Finish the sends in progress, hand back the rest of the batch, and run no more (shutdown)."""
        self._stopping.set()

    def close(self) -> None:
        """Stop, and let the sender threads go once their sends are recorded."""
        self.stop()
        if self._senders is not None:
            self._senders.shutdown(wait=True)

    @staticmethod
    def _hand_back(session: Session, unsent: list[_Claimed]) -> None:
        """Give claimed touches back untouched, so any process sends them now instead of after the lease."""
        if unsent:
            session.connection().execute(_HAND_BACK, [{"claimed_id": item.touch_id, "claimed_attempt": item.attempt}
                                                      for item in unsent])

    def next_due_at(self) -> datetime | None:
        """When the earliest scheduled touch of an active sequence falls due (asked after every tick)."""
        with self.services.session_factory() as session:
            return session.connection().execute(_NEXT_DUE).scalar()

    # --- claiming: one statement takes the batch, one transaction decides it ----------------------

    def _claim_batch(self, report: DispatchReport, *, lead_ids: list[int] | None = None) -> list[_Claimed]:
        now = self.services.clock.now()
        take, params = _TAKE_DUE, {"now": now, "batch_size": self.batch_size}
        if lead_ids is not None:
            take, params = _TAKE_DUE_FOR_LEADS, {**params, "only_lead_ids": lead_ids}
        claimed: list[_Claimed] = []
        with self.services.session_factory() as session, self._writing(session), ExitStack() as holding, \
                session.begin():
            # `_decide` then settles each taken touch; most stay `sending`.
            # Core, not the ORM's bulk-update path: that rebuilt the statement on every claim.
            taken = session.connection().execute(take, params).scalars().all()
            if not taken:
                return claimed
            batch = session.scalars(_TAKEN, {"ids": list(taken)}).unique().all()
            # Deciding changes leads (a skip, a call task, a stage): only under each lead's lock, like
            # every other change. A lead someone else is deciding about now is handed back untouched.
            free = holding.enter_context(self.services.lead_locks.hold_free(session, {t.lead_id for t in batch}))
            busy = [touch for touch in batch if touch.lead_id not in free]
            if busy:
                session.connection().execute(_HAND_BACK, [{"claimed_id": t.id, "claimed_attempt": t.attempts}
                                                          for t in busy])
                batch = [touch for touch in batch if touch.lead_id in free]
            facts = _BatchFacts.load(session, batch)
            with session.no_autoflush:
                for touch in batch:
                    # Undo the claim's marks: `_decide` marks only what really goes out.
                    touch.status, touch.attempts = TouchStatus.SCHEDULED, touch.attempts - 1
                    item = self._decide(session, touch, now, report, facts)
                    if item is not None:
                        claimed.append(item)
        return claimed

    def _decide(self, session: Session, touch: Touch, now: datetime, report: DispatchReport,
                facts: _BatchFacts) -> _Claimed | None:
        enrollment = touch.enrollment
        lead = enrollment.lead
        channel = Channel(touch.channel)
        step = self._step(enrollment, touch)
        if step is None:
            return self._skip(session, touch, now, "the step is no longer in the playbook", report)
        grace = GRACE.get(channel)
        if grace is not None:
            grace = max(grace, self._own_delay())
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
                return self._reroute_sms(session, touch, lead, enrollment, step, now, report, facts,
                                         why=lead.sms_unreachable_reason, call_reason="texts cannot reach this number")
            except TemplateProblem as problem:
                self._fail(session, touch, now, f"could not render {step.template}: {problem}", report)
                return None
        lead_facts = facts.about(lead, enrollment)
        answer = False
        if channel == Channel.SMS and lead.sms_reachable and not lead.sms_consent:
            # Texts could reach the lead, but automated ones need consent on record (TCPA).
            lead_facts = replace(lead_facts, sms_allowed=True)
            reason = skip_reason(step, lead_facts)
            if reason:
                return self._skip(session, touch, now, reason, report)
            if lead.sms_lead_started_at is not None and lead.id not in facts.answered_leads:
                answer = True  # the lead texted or called first: this text answers them
                facts.answered_leads.add(lead.id)
            else:
                why = why_no_sms_consent(lead) or "no SMS consent on record"
                try:
                    return self._reroute_sms(session, touch, lead, enrollment, step, now, report, facts,
                                             why=why, call_reason=why)
                except TemplateProblem as problem:
                    self._fail(session, touch, now, f"could not render {step.template}: {problem}", report)
                    return None
        reason = skip_reason(step, lead_facts)
        if reason:
            return self._skip(session, touch, now, reason, report)
        if channel in CHANNEL_SETTINGS and self._sender(channel) is None:
            return self._wait_for_settings(session, touch, channel, now, report)
        try:
            match channel:
                case Channel.SMS:
                    return self._claim_sms(touch, lead, step, now, facts, answer=answer)
                case Channel.EMAIL:
                    return self._claim_email(session, touch, lead, enrollment, step, now, facts)
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

    def _own_delay(self) -> timedelta:
        """How late, on the bot's clock, a touch can be found while the bot runs normally.

        A touch due just after one look is found at the next, and a busy run takes a few seconds
        more; with a sped-up clock those real seconds are hours. Lateness up to this is the bot's
        own doing, never "the bot was not running".
        """
        scale = getattr(self.services.clock, "scale", 1.0)
        return timedelta(seconds=scale * (2 * self.poll_seconds + OWN_DELAY_SLACK_SECONDS))

    def _step(self, enrollment: Enrollment, touch: Touch) -> Step | None:
        try:
            sequence = self.services.playbooks.get(enrollment.sequence_name)
        except Exception:  # noqa: BLE001 - a playbook that no longer loads: skip with the reason, never crash the loop
            return None
        return next((s for s in sequence.steps if s.id == touch.step_id), None)

    def _context(self, lead: Lead, enrollment: Enrollment, facts: _BatchFacts) -> dict:
        appointment = facts.appointments.get(enrollment.appointment_id) if enrollment.appointment_id else None
        return lead_context(
            lead, self.services.business, self.services.public_base_url,
            appointment_at=appointment.start_at if appointment else None,
        )

    def _sender(self, channel: Channel) -> object | None:
        return self.services.sms if channel == Channel.SMS else self.services.email

    def _wait_for_settings(self, session: Session, touch: Touch, channel: Channel, now: datetime,
                           report: DispatchReport) -> None:
        """Hold a touch whose channel is not configured, say why in the thread once, and fail nothing."""
        what, settings = CHANNEL_SETTINGS[channel]
        why = (f"waiting: {what} is not configured (set {settings}); it goes out once it is and followup "
               "is restarted")
        touch.next_attempt_at = WAITING_FOR_SETTINGS
        if touch.last_error != why:
            touch.last_error = why
            step = self._step(touch.enrollment, touch)
            label = step.label if step is not None else step_label(None, touch.step_id)
            outbox.publish(session, Notice.DECISION, lead_id=touch.lead_id, at=now, text=f"{label} is {why}")
            audit.record(session, lead_id=touch.lead_id, actor=SYSTEM, action="touch_waiting", at=now,
                         touch=touch.id, reason=why)
        report.rescheduled += 1
        report.details.append(f"touch {touch.id} {why}")
        return None

    def _claim_sms(self, touch: Touch, lead: Lead, step: Step, now: datetime, facts: _BatchFacts, *,
                   answer: bool = False) -> _Claimed:
        assert step.template is not None and lead.phone is not None
        body = self.services.renderer.render_sms(step.template, self._context(lead, touch.enrollment, facts),
                                                 first_to_number=lead.id not in facts.texted_leads)
        touch.body_text = body
        self._mark_sending(touch, now)
        callback = f"{self.services.public_base_url}/webhooks/twilio/status"
        return _Claimed(touch.id, lead.id, OutgoingSms(to=lead.phone, body=body, reference=f"touch-{touch.id}",
                                                       status_callback=callback), touch.attempts,
                        touch.enrollment_id, answer=answer)

    def _claim_email(self, session: Session, touch: Touch, lead: Lead, enrollment: Enrollment, step: Step,
                     now: datetime, facts: _BatchFacts) -> _Claimed:
        assert step.template is not None and lead.email is not None
        if touch.subject_option is None:
            touch.subject_option = self._rotation(session, enrollment, step)
        context = self._context(lead, enrollment, facts)
        subject = step.subjects[touch.subject_option % len(step.subjects)]
        rendered = self.services.renderer.render_email(step.template, subject, context)
        touch.subject, touch.body_text, touch.body_html = rendered.subject, rendered.text, rendered.html
        self._mark_sending(touch, now)
        return _Claimed(touch.id, lead.id, _touch_email(touch, lead, rendered, context), touch.attempts,
                        touch.enrollment_id)

    def _reroute_sms(self, session: Session, touch: Touch, lead: Lead, enrollment: Enrollment, step: Step,
                     now: datetime, report: DispatchReport, facts: _BatchFacts, *, why: str,
                     call_reason: str) -> _Claimed | None:
        """Texts may not go to this lead (`why`): say the same thing by email, or hand the team a call."""
        assert step.template is not None
        context = self._context(lead, enrollment, facts)
        text = self.services.renderer.render_sms(step.template, context, first_to_number=False)
        if lead.email_allowed:
            assert lead.email is not None
            if self.services.email is None:
                return self._wait_for_settings(session, touch, Channel.EMAIL, now, report)
            rendered = self.services.renderer.render_email_as_written(
                "_direct_message", f"A note from {self.services.business.name}", {**context, "body": text})
            touch.subject, touch.body_text, touch.body_html = rendered.subject, rendered.text, rendered.html
            touch.skip_reason, touch.rerouted = f"sent by email: {why}", TouchReroute.EMAIL
            self._mark_sending(touch, now)
            return _Claimed(touch.id, lead.id, _touch_email(touch, lead, rendered, context), touch.attempts,
                            touch.enrollment_id)
        open_call_task(session, self.services, lead, now=now, actor=SYSTEM, touch=touch,
                       reason=f"{call_reason}; say it by phone: {text}")
        touch.status, touch.sent_at = TouchStatus.SENT, now
        touch.skip_reason, touch.rerouted = f"{HANDED_TO_THE_TEAM}: {why}", TouchReroute.CALL
        report.sent += 1
        self._complete_if_done(session, enrollment, now)
        return None

    @staticmethod
    def _rotation(session: Session, enrollment: Enrollment, step: Step) -> int:
        """Give each lead the next subject option in turn, so every option is tried on similar leads."""
        session.flush()  # count the options given earlier in this batch too
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
        open_call_task(session, self.services, lead, reason=f"{step.label}: scheduled follow-up call", now=now,
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
        show_skipped(session, touch, reason, now, self._step(touch.enrollment, touch))
        report.skipped += 1
        report.details.append(f"touch {touch.id} skipped: {reason}")
        audit.record(session, lead_id=touch.lead_id, actor=SYSTEM, action="touch_skipped", at=now,
                     touch=touch.id, step=touch.step_id, reason=reason)
        self._complete_if_done(session, touch.enrollment, now)
        return None

    def _reroute_later(self, session: Session, touch: Touch, now: datetime, error: str,
                       report: DispatchReport) -> None:
        """The text could not reach the number: show the failure, and send this same touch another way, once.

        The touch goes back in the queue at once; with the number marked unreachable, its next
        turn says it by email, or hands the team a call (`_reroute_sms`).
        """
        if not reroute_touch(session, touch, now=now, error=error):
            self._fail(session, touch, now, error, report)
            return
        # The text itself failed (stats count it) before its words go another way.
        audit.record(session, lead_id=touch.lead_id, actor=SYSTEM, action="touch_failed", at=now,
                     touch=touch.id, error=error)
        report.retrying += 1
        report.details.append(f"touch {touch.id} rerouted: {error}")

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

    # --- delivering: the provider calls, guarded against a STOP arriving meanwhile -----------------

    def _deliver_all(self, claimed: list[_Claimed], report: DispatchReport) -> None:
        """Carry out a claimed batch in groups; with several senders, overlap the groups' provider calls.

        All database work stays on this thread (threads contending for SQLite's one write lock,
        or for the GIL around many short driver calls, only slow each other down); the senders
        only wait on the providers. A few groups are in flight at once and each is recorded as
        soon as its own calls are back, so one slow call holds up its own group and no other.
        """
        groups = self._groups(claimed)
        if self._senders is None or len(groups) < 2:
            for items in groups:  # one group (a new lead's fast lane) goes at once, queued behind nothing
                self._finish_group(self._start_group(items, self._call_now), report)
            return
        senders = self._senders
        in_flight: list[_GroupInFlight] = []
        try:
            for items in groups:
                while len(in_flight) >= senders._max_workers:  # noqa: SLF001 - as many groups as senders
                    self._finish_first(in_flight, report)
                in_flight.append(self._start_group(items, lambda to_send: senders.submit(self._call_in_order,
                                                                                           to_send)))
            while in_flight:
                self._finish_first(in_flight, report)
        finally:
            for group in in_flight:  # only after an error: still record the sends that went out
                try:
                    self._finish_group(group, report)
                except Exception:  # noqa: BLE001 - the first error is the one raised; this one is logged
                    log.exception("dispatch: could not record a group of sends; recovery settles them")

    def _groups(self, claimed: list[_Claimed]) -> list[list[_Claimed]]:
        """Split a batch into groups of whole leads, each lead's touches in claim (due) order."""
        by_lead: dict[int, list[_Claimed]] = {}
        for item in claimed:
            by_lead.setdefault(item.lead_id, []).append(item)
        workers = self._senders._max_workers if self._senders is not None else 1  # noqa: SLF001 - ThreadPoolExecutor exposes its size nowhere else
        # Enough groups to keep every sender busy, none bigger than the group size.
        size = max(1, min(self.group_size, -(-len(claimed) // workers)))
        groups: list[list[_Claimed]] = [[]]
        for items in by_lead.values():
            if groups[-1] and len(groups[-1]) + len(items) > size:
                groups.append([])
            groups[-1].extend(items)
        return [group for group in groups if group]

    def _deliver(self, item: _Claimed, report: DispatchReport) -> None:
        """Carry out one claimed touch."""
        self._finish_group(self._start_group([item], self._call_now), report)

    def _start_group(self, items: list[_Claimed],
                     send: Callable[[list[_Claimed]], Future[list[_Outcome]]]) -> _GroupInFlight:
        """Take and check the group's leads and hand each one's sends to `send`; hold them until recorded.

        Leads are taken (this process's locks, and their rows on PostgreSQL) just before their
        sends and checked afresh, then held until the group is recorded: a STOP stored before a
        lead's check is seen; one that arrives later waits, then is respected. When `send` runs
        the calls at once, each lead is checked after the previous lead's calls are back, so a
        STOP that arrives meanwhile still counts; when it hands them to the sender threads, all
        go at once, and the whole group is checked in one statement.
        """
        by_lead: dict[int, list[_Claimed]] = {}
        for item in items:
            by_lead.setdefault(item.lead_id, []).append(item)
        # Leads taken in id order: two groups (or a group and the fast lane) never wait on each other.
        lead_ids = sorted(by_lead)
        sent_in_line = send == self._call_now
        turns = [[lead_id] for lead_id in lead_ids] if sent_in_line else [lead_ids]
        holding = ExitStack()
        group = _GroupInFlight(holding, holding.enter_context(self.services.session_factory()))
        try:
            for turn in turns:
                if self._stopping.is_set():
                    group.decided.extend((item, None) for lead_id in turn for item in by_lead[lead_id])
                    continue
                for lead_id in turn:
                    holding.enter_context(self.services.lead_locks.hold(lead_id))
                allowed = self._check_leads(group.session, [item for lead_id in turn for item in by_lead[lead_id]],
                                            group.decided)
                for lead_id in turn:
                    to_send = [item for item in by_lead[lead_id] if item.touch_id in allowed]
                    if to_send:
                        group.sending.append((to_send, send(to_send)))
        except BaseException:
            holding.close()
            raise
        return group

    def _finish_first(self, in_flight: list[_GroupInFlight], report: DispatchReport) -> None:
        """Record whichever group in flight has all its provider answers first."""
        while (ready := next((group for group in in_flight if group.answered()), None)) is None:
            wait([future for group in in_flight for _, future in group.sending], return_when=FIRST_COMPLETED)
        in_flight.remove(ready)
        self._finish_group(ready, report)

    def _finish_group(self, group: _GroupInFlight, report: DispatchReport) -> None:
        with group.holding:  # the leads are let go only once their outcomes are committed
            outcomes = group.outcomes()
            # SQLite has one write lock for the whole database: only now, after the calls, is it taken.
            with self._writing(group.session):
                self._record_group(group.session, outcomes, report)
                group.session.commit()

    def _writing(self, session: Session) -> AbstractContextManager[object]:
        """Take turns writing to SQLite with the process's other writers (intake too): `Services.writing`."""
        return self.services.writing(session)

    def _check_leads(self, session: Session, items: list[_Claimed],
                     decided: list[tuple[_Claimed, _Outcome]]) -> set[int]:
        """Check claimed touches afresh: return the ids of those to send, note in `decided` those not to."""
        rows = session.connection().execute(_LEADS_CHECK, {"touch_ids": [item.touch_id for item in items]}).all()
        now_reachable = {row.id: row for row in rows}
        to_send = set()
        for item in items:
            row = now_reachable.get(item.touch_id)
            if row is None or (row.status, row.attempts) != (TouchStatus.SENDING, item.attempt):
                continue  # recovery settled it while it waited in this batch: it is not ours to send
            # The model's own rule, read off the row: one definition of "may we text/email them".
            if isinstance(item.outgoing, OutgoingSms):
                allowed = Lead.sms_answer_allowed.fget if item.answer else Lead.sms_allowed.fget
            else:
                allowed = Lead.email_allowed.fget
            if allowed(row):  # type: ignore[misc]  # a property's fget called on a row: the checker cannot type it
                to_send.add(item.touch_id)
            else:
                decided.append((item, _NOT_ALLOWED))
        return to_send

    def _call_in_order(self, items: list[_Claimed]) -> list[_Outcome]:
        """Call the provider for one lead's touches in order; once stopping, leave the rest unsent (None)."""
        return [None if self._stopping.is_set() else self._call_provider(item) for item in items]

    def _call_now(self, items: list[_Claimed]) -> Future[list[_Outcome]]:
        done: Future[list[_Outcome]] = Future()
        done.set_result(self._call_in_order(items))
        return done

    def _record_group(self, session: Session, outcomes: list[tuple[_Claimed, _Outcome]],
                      report: DispatchReport) -> None:
        """Record a group's outcomes in the caller's transaction: plain sends in bulk, the rest one by one."""
        self._hand_back(session, [item for item, outcome in outcomes if outcome is None])
        # A lead with any failure takes the careful path for all its touches: the failure may opt it out.
        troubled = {item.lead_id for item, outcome in outcomes
                    if outcome is not None and not isinstance(outcome, SendReceipt)}
        sent: list[tuple[_Claimed, SendReceipt]] = []
        for item, outcome in outcomes:
            if outcome is None:
                continue
            if item.lead_id not in troubled:
                assert isinstance(outcome, SendReceipt)
                sent.append((item, outcome))
                continue
            touch = session.get(Touch, item.touch_id, populate_existing=True)
            lead = session.get(Lead, item.lead_id, populate_existing=True)
            assert touch is not None and lead is not None
            if outcome is _NOT_ALLOWED:
                touch.status = TouchStatus.SKIPPED
                touch.skip_reason = "the lead opted out (or became unreachable) just before sending"
                show_skipped(session, touch, touch.skip_reason, self.services.clock.now(),
                             self._step(touch.enrollment, touch))
                report.skipped += 1
                self._complete_if_done(session, touch.enrollment, self.services.clock.now())
            else:
                self._record(session, touch, lead, item, outcome, report)
        if sent:
            session.flush()
            self._record_sent(session, sent, report)

    def _record_sent(self, session: Session, sent: list[tuple[_Claimed, SendReceipt]],
                     report: DispatchReport) -> None:
        """Record sends the providers took, as `_record` would one by one, in a few statements."""
        now = self.services.clock.now()
        connection = session.connection()
        connection.execute(_MARK_SENT, [{"sent_id": item.touch_id, "sent_provider_id": receipt.provider_id,
                                         "sent_at_": now} for item, receipt in sent])
        connection.execute(_RECORD_MESSAGES, [dict(
            lead_id=item.lead_id, direction="out", channel=_channel_of(item), touch_id=item.touch_id,
            provider_id=receipt.provider_id, subject=_subject_of(item), body=_body_of(item),
            status=receipt.status, created_at=now, details={},
        ) for item, receipt in sent])
        lead_ids = sorted({item.lead_id for item, _ in sent})
        # Read inside this write transaction, so the stage moved is the stage stored.
        stages = dict(connection.execute(_LEAD_STAGES, {"lead_ids": lead_ids}).all())
        moved = [(lead_id, Stage(stages[lead_id]), stage_after_touch(Stage(stages[lead_id])))
                 for lead_id in lead_ids]
        moved = [(lead_id, old, new) for lead_id, old, new in moved if old != new]
        if moved:
            for stage in sorted({new for _, _, new in moved}):
                connection.execute(_MOVE_STAGE, {"moved_ids": [lead_id for lead_id, _, new in moved if new == stage],
                                                 "moved_stage": str(stage), "moved_at": now})
        outbox.publish_many(session, [notice for item, _ in sent for notice in (
            outbox.Pending(Notice.TOUCH_SENT, lead_id=item.lead_id, at=now, payload={"touch_id": item.touch_id}),
            outbox.Pending(Notice.LEAD_CHANGED, lead_id=item.lead_id, at=now, payload={}),
        )])
        report.sent += len(sent)
        completed = self._complete_finished(connection, {item.enrollment_id for item, _ in sent}, now)
        audit.record_many(session, [audit.Entry(
            lead_id=lead_id, actor=SYSTEM, action="stage_changed", at=now,
            details={"old": str(old), "new": str(new), "reason": "first touch sent"})
            for lead_id, old, new in moved] + completed)

    @staticmethod
    def _complete_finished(connection: Connection, enrollment_ids: set[int], now: datetime) -> list[audit.Entry]:
        """Complete the enrollments among these whose every step ran (`_complete_if_done`, for many).

        Returns their audit entries, for the caller to record with its own.
        """
        finished = connection.execute(_FINISHED, {"enrollment_ids": list(enrollment_ids)}).all()
        if not finished:
            return []
        connection.execute(_COMPLETE, {"completed_ids": [row.id for row in finished], "ended_at_": now})
        return [audit.Entry(lead_id=row.lead_id, actor=SYSTEM, action="sequence_completed", at=now,
                            details={"sequence": row.sequence_name, "enrollment": row.id}) for row in finished]

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
        if channel == "sms" and outcome.kind == FailureKind.UNREACHABLE and not lead.sms_opted_out_at:
            lead.sms_unreachable_reason = f"SMS cannot reach this number ({error_text})"
            outbox.publish(session, Notice.DECISION, lead_id=lead.id, at=now,
                           text=f"{lead.sms_unreachable_reason}: remaining texts go by email or a call")
            self._reroute_later(session, touch, now, error_text, report)
            return
        self._fail(session, touch, now, error_text, report)
        if channel == "sms" and outcome.kind == FailureKind.OPTED_OUT:
            # Twilio knows of a STOP we never saw: treat it exactly like one.
            opt_out(session, lead, "sms", now=now, actor=SYSTEM)
            apply_decision(session, self.services, lead,
                           decide_on_signal(LeadSignal.OPT_OUT, current_stage=Stage(lead.stage)), now=now, actor=SYSTEM)

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
        # An SMS step rerouted to email went to SendGrid, which cannot be asked.
        rerouted = touch.rerouted == TouchReroute.EMAIL
        try:
            held = (ask_provider(session, self.services, lead, touch.body_text or "")
                    if touch.channel == Channel.SMS and not rerouted else None)
        except TransientSendError as error:
            log.warning("touch %s: cannot settle an abandoned send yet: %s", touch.id, error)
            touch.last_error = f"waiting to ask the provider: {error.reason}"
            return
        if held is None:
            self._unknown(session, touch, lead, now, "the process sending it stopped before recording the "
                          "outcome, and the provider cannot be asked", report)
            return
        if held.ours is not None:
            item = _Claimed(touch.id, lead.id, OutgoingSms(to=lead.phone, body=touch.body_text or "",  # type: ignore[arg-type]  # a recovered SMS touch's lead has a phone
                                                           reference=f"touch-{touch.id}"), touch.attempts)
            audit.record(session, lead_id=lead.id, actor=SYSTEM, action="touch_recovered", at=now,
                         touch=touch.id, provider_id=held.ours.sid, found="sent")
            self._record(session, touch, lead, item, SendReceipt(held.ours.sid, held.ours.status), report)
            return
        if held.unrecorded:
            self._unknown(session, touch, lead, now, f"the process sending it stopped, and Twilio holds "
                          f"{held.unrecorded} message(s) to this number that followup has no record of", report)
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
        step = self._step(touch.enrollment, touch)
        what = f"the {step.label.lower()}" if step is not None else "a touch"
        outbox.publish(session, Notice.NEEDS_PERSON, lead_id=lead.id, at=now, touch_id=touch.id,
                       text=f"It is not known whether {what} reached the lead ({why}); "
                            "check before sending anything by hand.")
        audit.record(session, lead_id=lead.id, actor=SYSTEM, action="touch_outcome_unknown", at=now,
                     touch=touch.id, reason=why)
        report.failed += 1
        self._complete_if_done(session, touch.enrollment, now)


def configured_channels(services: Services) -> set[Channel]:
    """The channels with a provider to send through."""
    return {channel for channel, sender in ((Channel.SMS, services.sms), (Channel.EMAIL, services.email))
            if sender is not None}


def release_waiting_touches(services: Services) -> int:
    """Let touches that waited for a channel's settings go out now that the channel is configured.

    Run at start: settings are read once, so a channel configured since the touches began waiting
    needs a restart. They fall due now (their wait is not "the bot was not running") and keep
    their order. Returns how many were let go.
    """
    configured = sorted(configured_channels(services))
    if not configured:
        return 0
    now = services.clock.now()
    with services.session_factory.begin() as session:
        # An SMS step rerouted to email waits for email, whatever its channel says: its reason says which.
        released = session.execute(
            _touches.update()
            .where(_touches.c.status == TouchStatus.SCHEDULED, _touches.c.next_attempt_at == WAITING_FOR_SETTINGS,
                   or_(*(_touches.c.last_error.like(f"waiting: {CHANNEL_SETTINGS[Channel(name)][0]} is not %")
                         for name in configured)))
            .values(next_attempt_at=None, due_at=now, last_error=None)
        ).rowcount
    return released or 0


def waiting_channels_warnings(playbooks: Playbooks, configured: Collection[Channel]) -> list[str]:
    """Say, for each channel a playbook uses but no provider is configured for, what waits and why."""
    from bot.core.playbook import list_sequences

    used: dict[Channel, list[str]] = {}
    names = dict.fromkeys([playbooks.default, *list_sequences(playbooks.sequences_dir)])
    for name in names:
        try:
            sequence = playbooks.get(name)
        except Exception:  # noqa: BLE001 - `followup check` reports a playbook that does not load
            continue
        for step in sequence.steps:
            if step.channel in CHANNEL_SETTINGS and sequence.name not in used.setdefault(step.channel, []):
                used[step.channel].append(sequence.name)
    warnings = []
    for channel, names_using in used.items():
        if channel in configured:
            continue
        what, settings = CHANNEL_SETTINGS[channel]
        warnings.append(f"{what} is not configured (set {settings}), but playbook(s) {', '.join(names_using)} "
                        f"send {what}: those touches wait, each lead's thread says why, and they go out once "
                        f"it is configured and followup is restarted")
    return warnings
