"""An appointment's life: booked, confirmed, attended or missed, cancelled or moved, from every source.

Every change is one audit entry, a note in the lead's thread and a fresh card. Bookings from the
calendars and the generic webhook come through `take_booking`, which finds or creates the lead and
treats a redelivery as the booking it already is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.core.business import Business
from bot.core.rules import (
    RESCHEDULE_CALL,
    Decision,
    LeadSignal,
    SequenceChange,
    VisitChange,
    decide_on_booking,
    decide_on_visit_reply,
)
from bot.core.states import ActorType
from bot.store import audit, outbox
from bot.store.audit import SYSTEM as SYSTEM_ACTOR
from bot.store.audit import Actor
from bot.store.lead_locks import taking_lead
from bot.store.models import Appointment, AppointmentStatus, Enrollment, EnrollmentState, Lead, Stage
from bot.store.outbox import Notice
from bot.usecases import enrollment
from bot.usecases.call_tasks import open_call_task
from bot.usecases.enrollment import (
    AFTER_VISIT_SEQUENCE,
    CONFIRMATION_SEQUENCE,
    NO_SHOW_SEQUENCE,
    NURTURE_SEQUENCE,
    REMINDER_SEQUENCE,
    lead_timezones,
    open_enrollments,
)
from bot.usecases.lead_actions import LeadActionRefused, apply_decision, set_stage
from bot.usecases.leads import LeadInput, add_lead, business_named, find_existing
from bot.usecases.render_context import visit_time
from bot.usecases.services import Services

#: States in which the visit is still ahead: reminders run, and it can be moved, cancelled or marked.
ACTIVE = (AppointmentStatus.BOOKED, AppointmentStatus.CONFIRMED)
#: Where a booking came from, as people read it in the thread.
SOURCE_LABELS = {"team": "the team", "booking": "the booking webhook", "calendly": "Calendly", "cal.com": "Cal.com"}
#: Why a call task is opened after the visit was missed.
NO_SHOW_CALL = "missed the visit"


class AppointmentRefused(LeadActionRefused):
    """The change does not apply to this appointment as it stands; the message says why."""


@dataclass(frozen=True)
class Booked:
    """What booking did: the appointment, and anything the person booking should know."""

    appointment: Appointment
    #: E.g. "Thu Dec 24 is a closed day (closed date)": booked anyway; the person may move it.
    warnings: tuple[str, ...] = ()


def closed_day_warning(business: Business, start_at: datetime) -> str | None:
    """Say why the business is closed on the visit's day (a closed date, a holiday, a day it does not open)."""
    local = start_at.astimezone(business.timezone)
    day = local.date()
    label = f"{local:%a} {local:%b} {day.day}"
    reason = business.closed_reason(day)
    if reason:
        return f"{label} is a closed day ({reason})"
    window = business.send_window
    if not window.always and day.weekday() not in window.days:
        return f"{label} is not an opening day ({window.describe()})"
    return None


def upcoming(session: Session, lead_id: int) -> Appointment | None:
    """The lead's next appointment still ahead (booked or confirmed), if any."""
    return session.scalars(
        select(Appointment)
        .where(Appointment.lead_id == lead_id, Appointment.status.in_(ACTIVE))
        .order_by(Appointment.start_at.desc(), Appointment.id.desc())
    ).first()


def latest(session: Session, lead_id: int) -> Appointment | None:
    """The lead's most recent appointment whatever its state (the card shows it)."""
    return session.scalars(
        select(Appointment)
        .where(Appointment.lead_id == lead_id, Appointment.status != AppointmentStatus.RESCHEDULED)
        .order_by(Appointment.id.desc())
    ).first()


def _when(services: Services, lead: Lead, appointment: Appointment) -> str:
    business = services.business_of(lead.business)
    return visit_time(appointment.start_at, business, lead_timezones(lead, business))


def _note(session: Session, lead: Lead, text: str, *, now: datetime, actor: Actor, alert: bool = False) -> None:
    outbox.publish(
        session, Notice.DECISION, lead_id=lead.id, at=now, text=text, alert_team=alert, actor=actor.describe()
    )
    outbox.publish(session, Notice.LEAD_CHANGED, lead_id=lead.id, at=now)
    lead.updated_at = now


def _set_status(
    session: Session,
    appointment: Appointment,
    status: AppointmentStatus,
    *,
    now: datetime,
    actor: Actor,
    **details: object,
) -> None:
    old = appointment.status
    appointment.status = status
    appointment.status_changed_at = now
    audit.record(
        session,
        lead_id=appointment.lead_id,
        actor=actor,
        action=f"appointment_{status}",
        at=now,
        appointment=appointment.id,
        old=str(old),
        start=appointment.start_at.isoformat(),
        **details,
    )


def _visit_enrollments(session: Session, appointment: Appointment) -> list[Enrollment]:
    return list(
        session.scalars(
            select(Enrollment).where(
                Enrollment.appointment_id == appointment.id, Enrollment.state.in_(enrollment.OPEN_STATES)
            )
        )
    )


def _end_visit_sequences(
    session: Session, appointment: Appointment, *, now: datetime, reason: str, actor: Actor
) -> None:
    for running in _visit_enrollments(session, appointment):
        enrollment.end(session, running, now=now, reason=reason, actor=actor)


def _enroll(
    session: Session,
    services: Services,
    lead: Lead,
    name: str,
    appointment: Appointment,
    *,
    now: datetime,
    actor: Actor,
) -> bool:
    # The lead's business's reminders, in its wording and hours.
    playbooks = services.playbooks_of(lead.business)
    if not playbooks.has(name):
        return False
    enrollment.enroll(
        session,
        lead,
        playbooks.get(name),
        business=services.business_of(lead.business),
        now=now,
        actor=actor,
        appointment=appointment,
    )
    return True


# --- booked -----------------------------------------------------------------------------------


def book(
    session: Session,
    services: Services,
    lead: Lead,
    *,
    start_at: datetime,
    now: datetime,
    actor: Actor,
    notes: str = "",
    source: str = "team",
    external_id: str | None = None,
) -> Booked:
    """Book a visit: a confirmation goes to the lead, sales follow-up stops, reminders start.

    A visit still ahead is moved: it becomes `rescheduled`, pointing at the new one.
    """
    if start_at <= now:
        raise AppointmentRefused("the appointment time is in the past; give a future date and time")
    appointment = Appointment(
        business=lead.business,
        lead_id=lead.id,
        start_at=start_at,
        notes=notes,
        booked_by=actor.describe()[:60],
        created_at=now,
        status_changed_at=now,
        source=source,
        external_id=external_id,
        status=AppointmentStatus.BOOKED,
    )
    session.add(appointment)
    session.flush()
    moved_from = [
        a
        for a in session.scalars(
            select(Appointment).where(
                Appointment.lead_id == lead.id, Appointment.status.in_(ACTIVE), Appointment.id != appointment.id
            )
        )
    ]
    for previous in moved_from:
        _set_status(session, previous, AppointmentStatus.RESCHEDULED, now=now, actor=actor, to=appointment.id)
        previous.replaced_by_id = appointment.id
        _end_visit_sequences(session, previous, now=now, reason="appointment rescheduled", actor=actor)
    audit.record(
        session,
        lead_id=lead.id,
        actor=actor,
        action="booked",
        at=now,
        start=start_at.isoformat(),
        appointment=appointment.id,
        source=source,
    )
    # The booking's own note below says it (when, by whom): no bare "booked" note beside it.
    apply_decision(session, services, lead, decide_on_booking(), now=now, actor=actor, announce=False)
    warning = closed_day_warning(services.business_of(lead.business), start_at)
    when = _when(services, lead, appointment)
    what = "moved to" if moved_from else "booked for"
    origin = f" (from {SOURCE_LABELS.get(source, source)})" if source != "team" else ""
    text = f":calendar: Appointment {what} {when}{origin} by {actor.describe()}."
    if warning:
        text += f" :warning: {warning}."
    # A visit on a closed day that nobody on the team chose is for a person to look at.
    _note(session, lead, text, now=now, actor=actor, alert=bool(warning) and source != "team")
    _enroll(session, services, lead, CONFIRMATION_SEQUENCE, appointment, now=now, actor=actor)
    _enroll(session, services, lead, REMINDER_SEQUENCE, appointment, now=now, actor=actor)
    return Booked(appointment, (warning,) if warning else ())


def _active(appointment: Appointment | None, what: str) -> Appointment:
    if appointment is None:
        raise AppointmentRefused(f"there is no upcoming appointment to {what}")
    if appointment.status not in ACTIVE:
        raise AppointmentRefused(f"this appointment is already {str(appointment.status).replace('_', ' ')}")
    return appointment


def reschedule(
    session: Session,
    services: Services,
    appointment: Appointment | None,
    *,
    start_at: datetime,
    now: datetime,
    actor: Actor,
    source: str | None = None,
    external_id: str | None = None,
) -> Booked:
    """Move a visit to a new time: a new appointment (confirmed to the lead, reminded) replaces it."""
    current = _active(appointment, "reschedule")
    if start_at == current.start_at and external_id in (None, current.external_id):
        raise AppointmentRefused("the appointment is already at that time")
    lead = session.get(Lead, current.lead_id)
    assert lead is not None
    return book(
        session,
        services,
        lead,
        start_at=start_at,
        now=now,
        actor=actor,
        notes=current.notes,
        source=source or current.source,
        external_id=external_id,
    )


# --- confirmed, cancelled ---------------------------------------------------------------------


def confirm(
    session: Session, services: Services, appointment: Appointment | None, *, now: datetime, actor: Actor
) -> Appointment:
    """The lead said they will come."""
    current = _active(appointment, "confirm")
    if current.status == AppointmentStatus.CONFIRMED:
        return current
    lead = session.get(Lead, current.lead_id)
    assert lead is not None
    _set_status(session, current, AppointmentStatus.CONFIRMED, now=now, actor=actor)
    _note(
        session,
        lead,
        f":white_check_mark: Appointment {_when(services, lead, current)} confirmed by {actor.describe()}.",
        now=now,
        actor=actor,
    )
    return current


def cancel(
    session: Session,
    services: Services,
    appointment: Appointment | None,
    *,
    now: datetime,
    actor: Actor,
    reason: str = "",
) -> Appointment:
    """Call a visit off: reminders stop, and the team chooses to rebook or go back to follow-up."""
    current = _active(appointment, "cancel")
    lead = session.get(Lead, current.lead_id)
    assert lead is not None
    _set_status(session, current, AppointmentStatus.CANCELLED, now=now, actor=actor, reason=reason)
    _end_visit_sequences(session, current, now=now, reason="appointment cancelled", actor=actor)
    if lead.stage == Stage.BOOKED:
        set_stage(session, lead, Stage.ENGAGED, now=now, actor=actor, reason="appointment cancelled")
    why = f" ({reason})" if reason else ""
    _note(
        session,
        lead,
        f":x: Appointment {_when(services, lead, current)} cancelled by {actor.describe()}{why}. "
        "Nothing automated follows: Rebook, or put the lead back to follow-up.",
        now=now,
        actor=actor,
        alert=actor.type != ActorType.SLACK_USER,
    )
    return current


def mark_moved_elsewhere(
    session: Session, services: Services, appointment: Appointment, *, now: datetime, actor: Actor
) -> Appointment:
    """A calendar says this booking was moved and its new time follows in a booking of its own."""
    if appointment.status not in ACTIVE:
        return appointment
    lead = session.get(Lead, appointment.lead_id)
    assert lead is not None
    _set_status(session, appointment, AppointmentStatus.RESCHEDULED, now=now, actor=actor)
    _end_visit_sequences(session, appointment, now=now, reason="appointment rescheduled", actor=actor)
    _note(
        session,
        lead,
        f":arrows_counterclockwise: Appointment {_when(services, lead, appointment)} is being "
        f"moved by {actor.describe()}; the new time follows from the calendar.",
        now=now,
        actor=actor,
    )
    return appointment


# --- after the start time ---------------------------------------------------------------------


def _after_start(appointment: Appointment | None, what: str, now: datetime) -> Appointment:
    current = _active(appointment, what)
    if now < current.start_at:
        raise AppointmentRefused(f"the visit has not started yet; mark it {what} after its start time")
    return current


def mark_attended(
    session: Session, services: Services, appointment: Appointment | None, *, now: datetime, actor: Actor
) -> Appointment:
    """The lead came: reminders end; the after-visit playbook starts when the business turned it on."""
    current = _after_start(appointment, "attended", now)
    lead = session.get(Lead, current.lead_id)
    assert lead is not None
    _set_status(session, current, AppointmentStatus.ATTENDED, now=now, actor=actor)
    _end_visit_sequences(session, current, now=now, reason="the visit took place", actor=actor)
    followed = services.business_of(lead.business).after_visit and _enroll(
        session, services, lead, AFTER_VISIT_SEQUENCE, current, now=now, actor=actor
    )
    _note(
        session,
        lead,
        f":tada: Attended the visit {_when(services, lead, current)} (marked by {actor.describe()})."
        + (" The after-visit thank-you starts." if followed else ""),
        now=now,
        actor=actor,
    )
    return current


def mark_no_show(
    session: Session, services: Services, appointment: Appointment | None, *, now: datetime, actor: Actor
) -> Appointment:
    """The lead did not come: the "we missed you" playbook starts and the team gets a call."""
    current = _after_start(appointment, "a no-show", now)
    lead = session.get(Lead, current.lead_id)
    assert lead is not None
    _set_status(session, current, AppointmentStatus.NO_SHOW, now=now, actor=actor)
    _end_visit_sequences(session, current, now=now, reason="the lead did not come", actor=actor)
    set_stage(session, lead, Stage.ENGAGED, now=now, actor=actor, reason="missed the visit")
    _note(
        session,
        lead,
        f":ghost: No-show for the visit {_when(services, lead, current)} (marked by {actor.describe()}).",
        now=now,
        actor=actor,
    )
    _enroll(session, services, lead, NO_SHOW_SEQUENCE, current, now=now, actor=actor)
    open_call_task(session, services, lead, reason=NO_SHOW_CALL, now=now, actor=actor)
    return current


#: How long after its start a visit still gets its "time to mark it" note (a bot that was down catches up).
STARTED_NOTICE_WINDOW = timedelta(days=2)


def announce_started_visits(session: Session, services: Services, *, now: datetime) -> int:
    """Once per visit whose start time has come: refresh the card (Attended / No-show appear) and say so."""
    from bot.usecases.delivery import first_delivery

    started = session.scalars(
        select(Appointment).where(
            Appointment.status.in_(ACTIVE),
            Appointment.start_at <= now,
            Appointment.start_at > now - STARTED_NOTICE_WINDOW,
        )
    ).all()
    announced = 0
    for appointment in started:
        if not first_delivery(session, "visit-started", str(appointment.id), now, business=appointment.business):
            continue
        lead = session.get(Lead, appointment.lead_id)
        assert lead is not None
        _note(
            session,
            lead,
            f":hourglass: The visit {_when(services, lead, appointment)} has started: mark it "
            "Attended or No-show on the card.",
            now=now,
            actor=SYSTEM_ACTOR,
        )
        announced += 1
    return announced


# --- the lead asks by reply -------------------------------------------------------------------


def hold_for_the_team(
    session: Session,
    services: Services,
    appointment: Appointment,
    *,
    now: datetime,
    actor: Actor,
    wants: str,
    call: str = RESCHEDULE_CALL,
    requested_time: datetime | None = None,
) -> None:
    """The lead asked to move or cancel: reminders pause and the team gets a call; the visit itself stands."""
    lead = session.get(Lead, appointment.lead_id)
    assert lead is not None
    for running in _visit_enrollments(session, appointment):
        if running.sequence_name == REMINDER_SEQUENCE:
            enrollment.pause(session, running, now=now, reason=f"the lead {wants}", actor=actor)
    audit.record(
        session,
        lead_id=lead.id,
        actor=actor,
        action="appointment_change_asked",
        at=now,
        appointment=appointment.id,
        wants=wants,
    )
    _note(
        session,
        lead,
        f":raised_hand: The lead {wants} (visit {_when(services, lead, appointment)}): reminders "
        "paused; nothing is changed until someone calls.",
        now=now,
        actor=actor,
    )
    open_call_task(session, services, lead, reason=call, now=now, actor=actor, requested_time=requested_time)


def on_visit_reply(
    session: Session,
    services: Services,
    lead: Lead,
    signal: LeadSignal,
    *,
    now: datetime,
    also: LeadSignal | None = None,
    requested_time: datetime | None = None,
    call_reason: Callable[[str], str] = str,
) -> Decision | None:
    """The lead confirmed, or asked to move or cancel, the visit ahead; None when there is none (a plain reply).

    What else they asked (`also`: a question, a call, a time) reaches a person in the same call task,
    with the time they named; `call_reason` adds what the call must settle (an unclear time's candidates).
    """
    appointment = upcoming(session, lead.id)
    if appointment is None:
        return None
    actor = Actor.lead(lead.id)
    decided = decide_on_visit_reply(signal, also=also)
    call = call_reason(decided.call_task) if decided.call_task else None
    if decided.change == VisitChange.CONFIRM:
        confirm(session, services, appointment, now=now, actor=actor)
        if call:
            # Nothing to pause: sales follow-up ended at the booking, and a confirmed visit's reminders go on.
            open_call_task(session, services, lead, reason=call, now=now, actor=actor, requested_time=requested_time)
            outbox.publish(session, Notice.LEAD_CHANGED, lead_id=lead.id, at=now)
    else:
        assert call is not None
        hold_for_the_team(
            session,
            services,
            appointment,
            now=now,
            actor=actor,
            wants=decided.reason,
            call=call,
            requested_time=requested_time,
        )
    return Decision(SequenceChange.KEEP, decided.reason, alert_team=decided.alert_team, call_task=call)


# --- the team decides after a cancellation ----------------------------------------------------


def back_to_follow_up(session: Session, services: Services, lead: Lead, *, now: datetime, actor: Actor) -> None:
    """After a cancellation, put the lead back on follow-up: the slow nurture cadence, never the first-day texts."""
    if upcoming(session, lead.id) is not None:
        raise AppointmentRefused("the lead has an upcoming appointment; cancel it first")
    if lead.stage in (Stage.LOST, Stage.OPTED_OUT):
        raise AppointmentRefused(f"this lead is {Stage(lead.stage).value.replace('_', ' ')}")
    if any(
        e.sequence_name not in (REMINDER_SEQUENCE, CONFIRMATION_SEQUENCE)
        for e in open_enrollments(session, lead.id)
        if e.state == EnrollmentState.ACTIVE
    ):
        raise AppointmentRefused("follow-up is already running for this lead")
    playbooks = services.playbooks_of(lead.business)
    if not playbooks.has(NURTURE_SEQUENCE):
        raise AppointmentRefused("there is no nurture playbook to go back to")
    enrollment.enroll(
        session,
        lead,
        playbooks.get(NURTURE_SEQUENCE),
        business=services.business_of(lead.business),
        now=now,
        actor=actor,
    )
    set_stage(session, lead, Stage.NURTURE, now=now, actor=actor, reason="back to follow-up after a cancellation")
    _note(session, lead, f"Back to follow-up (nurture) by {actor.describe()}.", now=now, actor=actor)


# --- bookings from calendars and the generic webhook ------------------------------------------


@dataclass(frozen=True)
class BookingRequest:
    """A booking as a calendar or the generic webhook sends it, validated at the edge."""

    source: str
    start_at: datetime
    lead_id: int | None = None
    phone: str | None = None
    email: str | None = None
    name: str = ""
    notes: str = ""
    #: The calendar's own id for this booking: the idempotency key.
    external_id: str | None = None
    #: The calendar's id of the booking this one replaces (a reschedule).
    replaces: str | None = None
    custom_fields: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class BookingResult:
    lead_id: int
    appointment_id: int
    #: True when a new appointment was made (False: a redelivery of one already booked).
    created: bool
    lead_created: bool = False
    warnings: tuple[str, ...] = ()


class UnknownLead(LookupError):
    """No lead has that id."""


def _by_external(session: Session, business: str, source: str, external_id: str | None) -> Appointment | None:
    """The business's appointment a calendar knows by this id (another business's same id is another booking)."""
    if not external_id:
        return None
    return session.scalars(
        select(Appointment).where(
            Appointment.business == business, Appointment.source == source, Appointment.external_id == external_id
        )
    ).first()


def _lead_for(
    session: Session, services: Services, request: BookingRequest, now: datetime, owner: Business
) -> tuple[int, bool]:
    known = _by_external(session, owner.slug, request.source, request.external_id) or _by_external(
        session, owner.slug, request.source, request.replaces
    )
    if known is not None:
        return known.lead_id, False
    if request.lead_id is not None:
        named = session.get(Lead, request.lead_id)
        if named is None or named.business != owner.slug:
            raise UnknownLead(f"no lead with id {request.lead_id}")
        return request.lead_id, False
    lead = find_existing(session, request.phone, request.email, business=owner.slug)
    if lead is not None:
        return lead.id, False
    # Booked straight from the calendar page: a lead with an appointment, not a lost booking.
    result = add_lead(
        session,
        LeadInput(
            name=request.name,
            phone=request.phone,
            email=request.email,
            source=request.source,
            message=request.notes,
            custom_fields=request.custom_fields,
        ),
        business=owner,
        sequence=services.playbooks_of(owner.slug).get(),
        now=now,
        actor=Actor.lead(0),
        enroll=False,
    )
    return result.lead_id, True


def take_booking(services: Services, request: BookingRequest, *, business: str | None = None) -> BookingResult:
    """Apply a booking from outside: the same booking twice is one appointment; a new time for it moves it.

    The booking is for `business` (its slug; None: the deployment's single business): it is matched to
    that business's leads and appointments only.
    """
    owner = business_named(services, business)
    now = services.clock.now()
    with services.session_factory.begin() as session:
        lead_id, lead_created = _lead_for(session, services, request, now, owner)
    with taking_lead(services, lead_id) as (session, lead):
        assert lead is not None
        actor = Actor.lead(lead.id)
        same = _by_external(session, owner.slug, request.source, request.external_id)
        if same is None and not request.external_id:
            # Without the calendar's id, the same lead at the same time is the same booking.
            same = session.scalars(
                select(Appointment).where(
                    Appointment.lead_id == lead.id,
                    Appointment.start_at == request.start_at,
                    Appointment.status.in_(ACTIVE),
                )
            ).first()
        if same is not None and (same.start_at == request.start_at or same.status not in ACTIVE):
            return BookingResult(lead.id, same.id, created=False, lead_created=lead_created)
        if same is not None:
            # The same booking at a new time (the generic webhook's way of moving it).
            booked = reschedule(session, services, same, start_at=request.start_at, now=now, actor=actor)
            same.external_id, booked.appointment.external_id = None, request.external_id
            session.flush()
        else:
            booked = book(
                session,
                services,
                lead,
                start_at=request.start_at,
                now=now,
                actor=actor,
                notes=request.notes,
                source=request.source,
                external_id=request.external_id,
            )
        return BookingResult(
            lead.id, booked.appointment.id, created=True, lead_created=lead_created, warnings=booked.warnings
        )


@dataclass(frozen=True)
class CalendarChange:
    """A calendar's word about a booking it sent before: cancelled, moved elsewhere, or missed."""

    source: str
    external_id: str
    #: cancel | moved | no_show
    kind: str
    reason: str = ""


def take_calendar_change(services: Services, change: CalendarChange, *, business: str | None = None) -> str:
    """Apply a cancellation, a move or a no-show a calendar reports; say what happened (for the answer).

    Only `business`'s bookings (its slug; None: the deployment's single business) are looked at.
    """
    slug = business_named(services, business).slug
    now = services.clock.now()
    with services.session_factory() as session:
        found = _by_external(session, slug, change.source, change.external_id)
        if found is None:
            return "unknown booking: nothing to change"
        lead_id = found.lead_id
    with taking_lead(services, lead_id) as (session, _):
        appointment = _by_external(session, slug, change.source, change.external_id)
        assert appointment is not None
        if appointment.status not in ACTIVE:
            return f"already {appointment.status}"
        actor = Actor.lead(lead_id)
        try:
            if change.kind == "cancel":
                cancel(session, services, appointment, now=now, actor=actor, reason=change.reason)
            elif change.kind == "moved":
                mark_moved_elsewhere(session, services, appointment, now=now, actor=actor)
            else:
                mark_no_show(session, services, appointment, now=now, actor=Actor(ActorType.SYSTEM, change.source))
        except AppointmentRefused as refused:
            return str(refused)
        return str(appointment.status)
