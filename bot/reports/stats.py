"""What the team reads about its leads: the numbers (stats for a period, today's) and the lists.

Queries return plain values; the arithmetic (median, 90th percentile, rates) is pure and works on
what the queries return. Every moment is UTC; `now` is passed in.

Each query takes `business`, a business's slug: it then counts that business's leads only (and what
belongs to them: their touches, messages, visits, calls). `None` counts every business: the agency's
numbers, and a single-business deployment's.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, tzinfo
from enum import StrEnum
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, exists, func, or_, select
from sqlalchemy.orm import Session

from bot.core.states import CallTaskStatus, EnrollmentState, Stage, TouchReroute, TouchStatus
from bot.store.models import Appointment, AuditEntry, CallTask, Enrollment, Lead, Message, Touch
from bot.usecases.closed_by_bot import ClosedByBot, closed_by_bot

T = TypeVar("T")

#: Delivery statuses that mean the message did not reach the lead (Twilio and SendGrid words).
FAILED_DELIVERY = frozenset({"failed", "undelivered", "bounce", "dropped"})
#: Inbound messages that are not a person answering.
NOT_A_REPLY = "auto_reply"
#: How a reply saying "I booked" is classified: a booking the lead reports counts as one.
SELF_REPORTED_BOOKING = "booked"
#: Stages in which nobody needs to do anything more for a lead.
CLOSED_STAGES = (Stage.LOST, Stage.OPTED_OUT)
OPEN_CALL_STATES = (CallTaskStatus.OPEN, CallTaskStatus.CLAIMED)
#: The sequence of appointment reminders: not the sales follow-up a person pauses.
REMINDER_SEQUENCE = "appointment_reminders"


# --- whose leads -------------------------------------------------------------------------------


def business_lead_ids(business: str | None):  # noqa: ANN201 - a select of lead ids
    """One business's leads, as a subquery (every lead for None)."""
    query = select(Lead.id)
    return query if business is None else query.where(Lead.business == business)


def of_business(lead_id: ColumnElement[int] | Any, business: str | None) -> list[ColumnElement[bool]]:
    """The condition keeping rows that belong, through their lead, to one business (none for every business)."""
    return [] if business is None else [lead_id.in_(business_lead_ids(business))]


# --- pure arithmetic ----------------------------------------------------------------------------


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """The nearest-rank percentile (0.9 for p90): a value that really occurred, None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


# --- stats for a period -------------------------------------------------------------------------


@dataclass(frozen=True)
class TouchResult:
    """One playbook step over the period's leads: how many got it, and how many replied or booked after it.

    Replies and bookings are credited by the one rule, ATTRIBUTION: a booking (made by the team, by a
    calendar or reported by the lead) to the last touch before the lead first answered.
    """

    sequence: str
    step_id: str
    position: int
    sent: int
    replies: int
    bookings: int = 0
    #: How the step went out (sms, email): the channel most of its touches took.
    channel: str = ""

    @property
    def reply_rate(self) -> float | None:
        return rate(self.replies, self.sent)

    @property
    def booking_rate(self) -> float | None:
        return rate(self.bookings, self.sent)


@dataclass(frozen=True)
class SubjectResult:
    """One subject option of an email step: how many got it, and how many first replies followed it."""

    sequence: str
    step_id: str
    option: int
    #: One subject as it went out, for when the playbook no longer has the option's template text.
    sent_subject: str
    sent: int
    replies: int

    @property
    def reply_rate(self) -> float | None:
        return rate(self.replies, self.sent)


@dataclass(frozen=True)
class ChannelDelivery:
    channel: str
    attempted: int
    failed: int


@dataclass(frozen=True)
class VisitNumbers:
    """How visits went in a period: those whose time came (and were marked), and those called off or moved."""

    attended: int = 0
    no_shows: int = 0
    #: Visits whose time came and nobody marked attended or a no-show yet.
    unmarked: int = 0
    cancellations: int = 0
    reschedules: int = 0

    @property
    def show_rate(self) -> float | None:
        return rate(self.attended, self.attended + self.no_shows)

    @property
    def no_show_rate(self) -> float | None:
        return rate(self.no_shows, self.attended + self.no_shows)


@dataclass(frozen=True)
class LeadStats:
    """The numbers for leads that came in during the last `days` days."""

    days: int
    since: datetime
    leads_in: int
    #: Leads something reached (a touch or a team message the provider took).
    contacted: int
    speed_to_lead_median: timedelta | None
    speed_to_lead_p90: timedelta | None
    #: Contacted leads who wrote back afterwards (automatic replies do not count).
    replied: int
    #: Leads who booked: an appointment not cancelled, or their own word that they booked.
    booked: int
    by_touch: tuple[TouchResult, ...]
    by_subject: tuple[SubjectResult, ...]
    #: Messages sent in the period, by channel (every lead, not only the new ones).
    deliveries: tuple[ChannelDelivery, ...]
    #: Every visit of the period, not only the new leads'.
    visits: VisitNumbers = VisitNumbers()

    @property
    def reply_rate(self) -> float | None:
        return rate(self.replied, self.contacted)

    @property
    def booking_rate(self) -> float | None:
        return rate(self.booked, self.leads_in)


def visit_numbers(session: Session, *, since: datetime, now: datetime, business: str | None = None) -> VisitNumbers:
    """Show and no-show by the visits due in the period; cancellations and reschedules by when they happened."""
    whose = [] if business is None else [Appointment.business == business]
    due = dict(
        session.execute(
            select(Appointment.status, func.count(Appointment.id))
            .where(
                Appointment.start_at >= since,
                Appointment.start_at <= now,
                Appointment.status.in_(("attended", "no_show", "booked", "confirmed")),
                *whose,
            )
            .group_by(Appointment.status)
        )
        .tuples()
        .all()
    )
    changed = dict(
        session.execute(
            select(Appointment.status, func.count(Appointment.id))
            .where(
                Appointment.status_changed_at >= since,
                Appointment.status_changed_at <= now,
                Appointment.status.in_(("cancelled", "rescheduled")),
                *whose,
            )
            .group_by(Appointment.status)
        )
        .tuples()
        .all()
    )
    return VisitNumbers(
        attended=due.get("attended", 0),
        no_shows=due.get("no_show", 0),
        unmarked=due.get("booked", 0) + due.get("confirmed", 0),
        cancellations=changed.get("cancelled", 0),
        reschedules=changed.get("rescheduled", 0),
    )


#: The one attribution rule, as every report states it (stats, the breakdowns, the digest, the README).
ATTRIBUTION = (
    "A reply counts for the last touch sent before the lead's first reply; a booking counts for the "
    "last touch sent before the lead first answered (their first reply, or the booking itself when "
    "they booked without writing)."
)


@dataclass(frozen=True)
class CohortHistory:
    """What happened to the leads that came in during a period: the moments every report counts from."""

    #: When each lead came in.
    arrived: dict[int, datetime]
    #: When something first reached each lead (a touch or a team message the provider took).
    first_touch: dict[int, datetime]
    #: Each lead's sent messages, oldest first, with the playbook touch they carried (None for a team message).
    sent: dict[int, list[tuple[datetime, int | None]]]
    #: When each contacted lead first wrote back (automatic replies left out).
    first_reply: dict[int, datetime]
    #: When each lead first booked: an appointment made (not cancelled), or their word that they booked.
    first_booking: dict[int, datetime]

    def reply_credits(self) -> dict[int, int]:
        """The touch each reply is credited to: the last one sent before the lead's first reply."""
        return _last_touch_before(self.first_reply, self.sent)

    def booking_credits(self) -> dict[int, int]:
        """The touch each booking is credited to: the last one sent before the lead first answered."""
        answered = {
            lead_id: min(booked_at, self.first_reply.get(lead_id, booked_at))
            for lead_id, booked_at in self.first_booking.items()
        }
        return _last_touch_before(answered, self.sent)


def cohort_history(session: Session, *, since: datetime, now: datetime, business: str | None = None) -> CohortHistory:
    """Arrivals, first touches, first replies and first bookings of the leads that came in between since and now."""
    in_period = (Lead.created_at >= since) & (Lead.created_at <= now)
    if business is not None:
        in_period &= Lead.business == business
    cohort = select(Lead.id).where(in_period)
    arrived = dict(session.execute(select(Lead.id, Lead.created_at).where(in_period)).tuples().all())

    first_touch: dict[int, datetime] = {}
    sent: dict[int, list[tuple[datetime, int | None]]] = defaultdict(list)
    for lead_id, at, touch_id in session.execute(
        select(Message.lead_id, Message.created_at, Message.touch_id)
        .where(
            Message.lead_id.in_(cohort),
            Message.direction == "out",
            Message.provider_id.is_not(None),
            Message.created_at <= now,
        )
        .order_by(Message.created_at, Message.id)
    ).tuples():
        first_touch.setdefault(lead_id, at)
        sent[lead_id].append((at, touch_id))

    first_reply: dict[int, datetime] = {}
    for lead_id, at in session.execute(
        select(Message.lead_id, Message.created_at)
        .where(
            Message.lead_id.in_(cohort),
            Message.direction == "in",
            Message.created_at <= now,
            or_(Message.classification.is_(None), Message.classification != NOT_A_REPLY),
        )
        .order_by(Message.created_at, Message.id)
    ).tuples():
        touched = first_touch.get(lead_id)
        if touched is not None and at >= touched:
            first_reply.setdefault(lead_id, at)
    return CohortHistory(arrived, first_touch, dict(sent), first_reply, _first_bookings(session, cohort, now=now))


def cohort_ids(*, since: datetime, now: datetime, business: str | None = None):  # noqa: ANN201 - a select of lead ids
    """The leads that came in during the period, as a subquery."""
    query = select(Lead.id).where(Lead.created_at >= since, Lead.created_at <= now)
    return query if business is None else query.where(Lead.business == business)


def lead_stats(session: Session, *, now: datetime, days: int, business: str | None = None) -> LeadStats:
    """Leads in, speed to lead, reply and booking rates, what got the replies, and delivery failures."""
    since = now - timedelta(days=days)
    history = cohort_history(session, since=since, now=now, business=business)
    arrived, first_touch = history.arrived, history.first_touch
    speeds = [max((first_touch[lead] - arrived[lead]).total_seconds(), 0.0) for lead in first_touch if lead in arrived]
    by_touch, by_subject = _touch_results(
        session,
        cohort_ids(since=since, now=now, business=business),
        history.reply_credits().values(),
        history.booking_credits().values(),
    )
    return LeadStats(
        days=days,
        since=since,
        leads_in=len(arrived),
        contacted=len(first_touch),
        speed_to_lead_median=_seconds(median(speeds)),
        speed_to_lead_p90=_seconds(percentile(speeds, 0.9)),
        replied=len(history.first_reply),
        booked=len(history.first_booking),
        by_touch=by_touch,
        by_subject=by_subject,
        deliveries=delivery_failures(session, since=since, until=now, business=business),
        visits=visit_numbers(session, since=since, now=now, business=business),
    )


def _seconds(value: float | None) -> timedelta | None:
    return None if value is None else timedelta(seconds=value)


def _last_touch_before(
    moments: dict[int, datetime], sent: dict[int, list[tuple[datetime, int | None]]]
) -> dict[int, int]:
    """For each lead with a moment: the last playbook touch sent at or before it."""
    origins = {}
    for lead_id, moment in moments.items():
        touches = [touch_id for at, touch_id in sent.get(lead_id, []) if touch_id is not None and at <= moment]
        if touches:
            origins[lead_id] = touches[-1]
    return origins


def _first_bookings(session: Session, cohort, *, now: datetime) -> dict[int, datetime]:  # noqa: ANN001 - the cohort is a select of lead ids
    """When each lead first booked: an appointment made (not cancelled), or a reply saying they booked."""
    first: dict[int, datetime] = {}
    for lead_id, at in session.execute(
        select(Appointment.lead_id, func.min(Appointment.created_at))
        .where(Appointment.lead_id.in_(cohort), Appointment.status != "cancelled", Appointment.created_at <= now)
        .group_by(Appointment.lead_id)
    ).tuples():
        first[lead_id] = at
    for lead_id, at in session.execute(
        select(Message.lead_id, func.min(Message.created_at))
        .where(
            Message.lead_id.in_(cohort),
            Message.direction == "in",
            Message.classification == SELF_REPORTED_BOOKING,
            Message.created_at <= now,
        )
        .group_by(Message.lead_id)
    ).tuples():
        first[lead_id] = min(first.get(lead_id, at), at)
    return first


def _touch_results(
    session: Session,
    cohort,
    reply_touches: Iterable[int],  # noqa: ANN001 - the cohort is a select of lead ids
    booking_touches: Iterable[int],
) -> tuple[tuple[TouchResult, ...], tuple[SubjectResult, ...]]:
    """Per step and per subject option: sent to the period's leads, and the replies and bookings after it."""
    replies, bookings = Counter(reply_touches), Counter(booking_touches)
    rows = (
        session.execute(
            select(
                Touch.id,
                Enrollment.sequence_name,
                Touch.step_id,
                Touch.position,
                Touch.subject_option,
                Touch.subject,
                Touch.channel,
            )
            .join(Enrollment, Enrollment.id == Touch.enrollment_id)
            .where(
                Touch.lead_id.in_(cohort),
                Touch.status == TouchStatus.SENT,
                Touch.channel.in_(("sms", "email")),
                # A text the number could not take, handed to the team as a call, reached nobody by text.
                or_(Touch.rerouted.is_(None), Touch.rerouted != TouchReroute.CALL),
            )
        )
        .tuples()
        .all()
    )
    steps: dict[tuple[str, str, int], list[int]] = defaultdict(lambda: [0, 0, 0])
    subjects: dict[tuple[str, str, int], list[int]] = defaultdict(lambda: [0, 0])
    sent_subject: dict[tuple[str, str, int], str] = {}
    channels: dict[tuple[str, str, int], Counter[str]] = defaultdict(Counter)
    for touch_id, sequence, step_id, position, option, subject, channel in rows:
        channels[(sequence, step_id, position)][channel] += 1
        counts = steps[(sequence, step_id, position)]
        counts[0] += 1
        counts[1] += replies[touch_id]
        counts[2] += bookings[touch_id]
        if option is not None:
            key = (sequence, step_id, option)
            subjects[key][0] += 1
            subjects[key][1] += replies[touch_id]
            sent_subject.setdefault(key, subject or "")
    by_touch = tuple(
        TouchResult(
            sequence,
            step,
            position,
            sent=counts[0],
            replies=counts[1],
            bookings=counts[2],
            channel=channels[(sequence, step, position)].most_common(1)[0][0],
        )
        for (sequence, step, position), counts in sorted(steps.items(), key=lambda item: (item[0][0], item[0][2]))
    )
    by_subject = tuple(
        SubjectResult(sequence, step, option, sent_subject[(sequence, step, option)], *counts)
        for (sequence, step, option), counts in sorted(subjects.items())
    )
    return by_touch, by_subject


def delivery_failures(
    session: Session, *, since: datetime, until: datetime, business: str | None = None
) -> tuple[ChannelDelivery, ...]:
    """Per channel: messages handed to the provider or given up on in the period, and how many failed."""
    attempted: Counter[str] = Counter()
    failed: Counter[str] = Counter()
    for channel, status, count in session.execute(
        select(Message.channel, Message.status, func.count(Message.id))
        .where(
            Message.direction == "out",
            Message.created_at >= since,
            Message.created_at <= until,
            *of_business(Message.lead_id, business),
        )
        .group_by(Message.channel, Message.status)
    ).tuples():
        attempted[channel] += count
        if status in FAILED_DELIVERY:
            failed[channel] += count
    # A touch refused before any provider took it leaves no message, only its audit entry.
    for channel, count in session.execute(
        select(Touch.channel, func.count(AuditEntry.id))
        .join(Touch, Touch.id == AuditEntry.details["touch"].as_integer())
        .where(
            AuditEntry.action == "touch_failed",
            AuditEntry.at >= since,
            AuditEntry.at <= until,
            *of_business(Touch.lead_id, business),
        )
        .group_by(Touch.channel)
    ).tuples():
        attempted[channel] += count
        failed[channel] += count
    return tuple(ChannelDelivery(channel, attempted[channel], failed[channel]) for channel in sorted(attempted))


# --- today --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DayNumbers:
    """What happened today, in the business's time zone."""

    leads_in: int
    messages_sent: int
    replies: int
    booked: int
    open_calls: int


def start_of_day(now: datetime, zone: tzinfo) -> datetime:
    local = now.astimezone(zone)
    return datetime.combine(local.date(), time(0), tzinfo=zone).astimezone(UTC)


def day_numbers(session: Session, *, now: datetime, zone: tzinfo, business: str | None = None) -> DayNumbers:
    since = start_of_day(now, zone)
    whose_lead = [] if business is None else [Lead.business == business]

    def count(column, *conditions) -> int:  # noqa: ANN001 - a mapped column
        return session.scalar(select(func.count(column)).where(*conditions)) or 0

    return DayNumbers(
        leads_in=count(Lead.id, Lead.created_at >= since, Lead.created_at <= now, *whose_lead),
        messages_sent=count(
            Message.id,
            Message.direction == "out",
            Message.provider_id.is_not(None),
            Message.created_at >= since,
            Message.created_at <= now,
            *of_business(Message.lead_id, business),
        ),
        replies=count(
            Message.id,
            Message.direction == "in",
            Message.created_at >= since,
            Message.created_at <= now,
            or_(Message.classification.is_(None), Message.classification != NOT_A_REPLY),
            *of_business(Message.lead_id, business),
        ),
        booked=count(
            Appointment.id,
            Appointment.created_at >= since,
            Appointment.created_at <= now,
            *([] if business is None else [Appointment.business == business]),
        ),
        open_calls=count(CallTask.id, CallTask.status.in_(OPEN_CALL_STATES), *of_business(CallTask.lead_id, business)),
    )


# --- lists --------------------------------------------------------------------------------------


class StepKind(StrEnum):
    CALL = "call"  #: a call task is open for the lead
    VISIT = "visit"  #: a visit is booked
    PAUSED = "paused"  #: automation is paused: a person has the conversation
    TOUCH = "touch"  #: the next automated touch
    NOTHING = "nothing"  #: nothing is scheduled


@dataclass(frozen=True)
class NextStep:
    kind: StepKind
    #: What it is, as stored (a reason, a step id); not escaped.
    detail: str = ""
    at: datetime | None = None
    channel: str | None = None
    #: The playbook a touch belongs to, so its step reads by its label.
    sequence: str | None = None


@dataclass(frozen=True)
class LeadLine:
    lead_id: int
    name: str
    phone: str | None
    email: str | None
    stage: str
    owner: str | None
    next_step: NextStep


@dataclass(frozen=True)
class CallLine:
    task_id: int
    lead_id: int
    lead_name: str
    phone: str | None
    reason: str
    due_at: datetime
    claimed_by: str | None


@dataclass(frozen=True)
class Page(Generic[T]):
    """Some rows, and how many there are in all."""

    rows: tuple[T, ...]
    total: int

    @property
    def more(self) -> int:
        return self.total - len(self.rows)


def lead_lines(
    session: Session,
    *,
    now: datetime,
    stages: Sequence[str] | None = None,
    owner: str | None = None,
    paused: bool = False,
    limit: int = 20,
    business: str | None = None,
) -> Page[LeadLine]:
    """Leads matching a filter, most recently changed first, each with its next step."""
    conditions: list[ColumnElement[bool]] = [] if business is None else [Lead.business == business]
    if stages is not None:
        conditions.append(Lead.stage.in_(list(stages)))
    if owner is not None:
        conditions.extend([Lead.owner == owner, Lead.stage.not_in(list(CLOSED_STAGES))])
    if paused:
        conditions.append(exists().where(Enrollment.lead_id == Lead.id, Enrollment.state == EnrollmentState.PAUSED))
    total = session.scalar(select(func.count(Lead.id)).where(*conditions)) or 0
    leads = session.scalars(
        select(Lead).where(*conditions).order_by(Lead.updated_at.desc(), Lead.id.desc()).limit(limit)
    ).all()
    steps = next_steps(session, [lead.id for lead in leads], now=now)
    rows = tuple(
        LeadLine(
            lead.id,
            lead.name,
            lead.phone,
            lead.email,
            str(lead.stage),
            lead.owner,
            steps.get(lead.id, NextStep(StepKind.NOTHING)),
        )
        for lead in leads
    )
    return Page(rows, total)


def next_steps(session: Session, lead_ids: Sequence[int], *, now: datetime) -> dict[int, NextStep]:
    """What happens next for each lead: an open call, else a booked visit, else paused, else the next touch."""
    if not lead_ids:
        return {}
    found: dict[int, NextStep] = {}
    for task in session.scalars(
        select(CallTask)
        .where(CallTask.lead_id.in_(lead_ids), CallTask.status.in_(OPEN_CALL_STATES))
        .order_by(CallTask.due_at, CallTask.id)
    ):
        found.setdefault(task.lead_id, NextStep(StepKind.CALL, task.reason, task.due_at))
    for visit in session.scalars(
        select(Appointment)
        .where(Appointment.lead_id.in_(lead_ids), Appointment.status == "booked", Appointment.start_at >= now)
        .order_by(Appointment.start_at)
    ):
        found.setdefault(visit.lead_id, NextStep(StepKind.VISIT, visit.notes, visit.start_at))
    for held in session.scalars(
        select(Enrollment)
        .where(
            Enrollment.lead_id.in_(lead_ids),
            Enrollment.state == EnrollmentState.PAUSED,
            Enrollment.sequence_name != REMINDER_SEQUENCE,
        )
        .order_by(Enrollment.id)
    ):
        found.setdefault(held.lead_id, NextStep(StepKind.PAUSED, held.state_reason, held.paused_at))
    for touch, sequence in session.execute(
        select(Touch, Enrollment.sequence_name)
        .join(Enrollment, Enrollment.id == Touch.enrollment_id)
        .where(
            Touch.lead_id.in_(lead_ids),
            Touch.status == TouchStatus.SCHEDULED,
            Enrollment.state == EnrollmentState.ACTIVE,
        )
        .order_by(Touch.due_at, Touch.position)
    ).tuples():
        found.setdefault(touch.lead_id, NextStep(StepKind.TOUCH, touch.step_id, touch.due_at, touch.channel, sequence))
    return found


def open_call_lines(session: Session, *, limit: int = 15, business: str | None = None) -> Page[CallLine]:
    """Calls the team still has to make, the most overdue first."""
    conditions = [CallTask.status.in_(OPEN_CALL_STATES), *of_business(CallTask.lead_id, business)]
    total = session.scalar(select(func.count(CallTask.id)).where(*conditions)) or 0
    rows = (
        session.execute(
            select(CallTask, Lead)
            .join(Lead, Lead.id == CallTask.lead_id)
            .where(*conditions)
            .order_by(CallTask.due_at, CallTask.id)
            .limit(limit)
        )
        .tuples()
        .all()
    )
    return Page(
        tuple(
            CallLine(task.id, lead.id, lead.name, lead.phone, task.reason, task.due_at, task.claimed_by)
            for task, lead in rows
        ),
        total,
    )


@dataclass(frozen=True)
class HomeSnapshot:
    """One person's App Home: their leads, the team's open calls, today's numbers."""

    user_id: str
    business_name: str
    my_leads: Page[LeadLine]
    open_calls: Page[CallLine]
    today: DayNumbers
    #: How visits went over the last VISIT_DAYS days.
    visits: VisitNumbers = VisitNumbers()
    #: Leads the bot moved to lost or nurture by itself this week, on reading a message.
    closed_by_bot: tuple[ClosedByBot, ...] = ()


#: The period App Home reports visits over.
VISIT_DAYS = 30


def home_snapshot(
    session: Session,
    *,
    user_id: str,
    business_name: str,
    now: datetime,
    zone: tzinfo,
    limit: int = 15,
    business: str | None = None,
) -> HomeSnapshot:
    """One person's App Home numbers and lists: of one business's leads, or of every business's for None."""
    return HomeSnapshot(
        user_id=user_id,
        business_name=business_name,
        my_leads=lead_lines(session, now=now, owner=user_id, limit=limit, business=business),
        open_calls=open_call_lines(session, limit=limit, business=business),
        today=day_numbers(session, now=now, zone=zone, business=business),
        visits=visit_numbers(session, since=now - timedelta(days=VISIT_DAYS), now=now, business=business),
        closed_by_bot=tuple(closed_by_bot(session, now=now, limit=limit, business=business)),
    )
