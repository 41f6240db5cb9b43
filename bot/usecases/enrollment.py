"""Put a lead on a sequence, and pause, resume or end it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.core.business import Business
from bot.core.contacts import timezones_for_phone
from bot.core.planning import PlannedTouch, earliest_send_time, plan_touches
from bot.core.playbook import Channel, Sequence
from bot.core.send_times import NoSendTime, lead_timezones_or_business
from bot.store import audit, outbox
from bot.store.audit import Actor
from bot.store.models import Appointment, Enrollment, EnrollmentState, Lead, Touch, TouchStatus
from bot.store.outbox import Notice

NURTURE_SEQUENCE = "nurture"
REMINDER_SEQUENCE = "appointment_reminders"
#: Sent the moment a visit is booked: "you're booked for ...".
CONFIRMATION_SEQUENCE = "appointment_confirmation"
#: After a missed visit: "we missed you".
NO_SHOW_SEQUENCE = "no_show"
#: After a visit, when the business turns it on: a thank-you and a review request.
AFTER_VISIT_SEQUENCE = "after_visit"
#: Sequences about one booked visit: they run beside whatever the team or the lead does to sales follow-up.
VISIT_SEQUENCES = (REMINDER_SEQUENCE, CONFIRMATION_SEQUENCE)
OPEN_STATES = (EnrollmentState.ACTIVE, EnrollmentState.PAUSED)
PENDING_TOUCH = (TouchStatus.SCHEDULED,)


def lead_timezones(lead: Lead, business: Business) -> tuple[str, ...]:
    """The zones a lead may be in: the given one, else the phone's, else the business's."""
    return timezones_of(lead.timezone, lead.phone, business)


def timezones_of(timezone: str, phone: str | None, business: Business) -> tuple[str, ...]:
    """`lead_timezones` for a lead's zone and phone (a lead whose row is not stored yet)."""
    if timezone:
        return (timezone,)
    found = timezones_for_phone(phone) if phone else ()
    return lead_timezones_or_business(found, business)


def enroll(
    session: Session,
    lead: Lead,
    sequence: Sequence,
    *,
    business: Business,
    now: datetime,
    actor: Actor,
    appointment: Appointment | None = None,
) -> Enrollment:
    """Start a sequence for a lead, laying out every touch now so a restart forgets nothing."""
    enrollment = Enrollment(
        lead_id=lead.id,
        sequence_name=sequence.name,
        state=EnrollmentState.ACTIVE,
        enrolled_at=now,
        appointment_id=appointment.id if appointment else None,
    )
    session.add(enrollment)
    session.flush()
    plan = plan_touches(
        sequence,
        enrolled_at=now,
        business=business,
        lead_timezones=lead_timezones(lead, business),
        appointment_at=appointment.start_at if appointment else None,
    )
    for planned in plan:
        session.add(_touch_from_plan(enrollment, lead, planned))
    audit.record(session, lead_id=lead.id, actor=actor, action="enrolled", at=now, sequence=sequence.name)
    return enrollment


def _touch_from_plan(enrollment: Enrollment, lead: Lead, planned: PlannedTouch) -> Touch:
    return Touch(**touch_values(enrollment.id, lead.id, planned))


def touch_values(enrollment_id: int, lead_id: int, planned: PlannedTouch) -> dict[str, Any]:
    """A planned touch's row, as values (a Core insert writes a new lead's touches in one statement)."""
    return dict(
        enrollment_id=enrollment_id,
        lead_id=lead_id,
        step_id=planned.step.id,
        position=planned.position,
        channel=planned.step.channel,
        planned_at=planned.planned_at,
        due_at=planned.due_at,
        status=TouchStatus.SKIPPED if planned.skip_reason else TouchStatus.SCHEDULED,
        skip_reason=planned.skip_reason,
        attempts=0,
    )


def open_enrollments(session: Session, lead_id: int, *, sequence: str | None = None) -> list[Enrollment]:
    query = select(Enrollment).where(Enrollment.lead_id == lead_id, Enrollment.state.in_(OPEN_STATES))
    if sequence is not None:
        query = query.where(Enrollment.sequence_name == sequence)
    return list(session.scalars(query.order_by(Enrollment.id)))


def pause(session: Session, enrollment: Enrollment, *, now: datetime, reason: str, actor: Actor) -> bool:
    """Hold every pending touch; return False when there was nothing active to pause."""
    if enrollment.state != EnrollmentState.ACTIVE:
        return False
    enrollment.state = EnrollmentState.PAUSED
    enrollment.state_reason = reason
    enrollment.paused_at = now
    audit.record(
        session,
        lead_id=enrollment.lead_id,
        actor=actor,
        action="paused",
        at=now,
        reason=reason,
        enrollment=enrollment.id,
    )
    return True


def resume(
    session: Session, enrollment: Enrollment, *, now: datetime, reason: str, actor: Actor, business: Business
) -> bool:
    """Go on where the lead left off, shifting what remains by the pause so nothing bursts out."""
    if enrollment.state != EnrollmentState.PAUSED:
        return False
    paused_for = now - (enrollment.paused_at or now)
    lead = enrollment.lead
    zones = lead_timezones(lead, business)
    previous_due = now
    for touch in _pending_touches(session, enrollment):
        shifted = max(touch.due_at + paused_for, previous_due)
        try:
            touch.due_at = earliest_send_time(shifted, Channel(touch.channel), business, zones)
        except NoSendTime as error:
            touch.status, touch.skip_reason = TouchStatus.SKIPPED, f"no time to send: {error}"
            continue
        previous_due = touch.due_at
    enrollment.state = EnrollmentState.ACTIVE
    enrollment.state_reason = reason
    enrollment.paused_at = None
    audit.record(
        session,
        lead_id=enrollment.lead_id,
        actor=actor,
        action="resumed",
        at=now,
        reason=reason,
        enrollment=enrollment.id,
        paused_seconds=int(paused_for.total_seconds()),
    )
    return True


def end(
    session: Session,
    enrollment: Enrollment,
    *,
    now: datetime,
    reason: str,
    actor: Actor,
    state: EnrollmentState = EnrollmentState.STOPPED,
    announce: bool = True,
) -> bool:
    """End a sequence: what is still pending is cancelled and never goes out.

    `announce=False` when the caller tells the team itself (one note per action, not one per sequence).
    """
    if enrollment.state not in OPEN_STATES:
        return False
    for touch in _pending_touches(session, enrollment):
        touch.status = TouchStatus.CANCELLED
        touch.skip_reason = reason
    enrollment.state = state
    enrollment.state_reason = reason
    enrollment.ended_at = now
    enrollment.paused_at = None
    audit.record(
        session,
        lead_id=enrollment.lead_id,
        actor=actor,
        action=f"sequence_{state}",
        at=now,
        reason=reason,
        enrollment=enrollment.id,
        sequence=enrollment.sequence_name,
    )
    if announce:
        outbox.publish(
            session,
            Notice.DECISION,
            lead_id=enrollment.lead_id,
            at=now,
            text=f"{reason}: {state_words(state)}",
            sequence=enrollment.sequence_name,
            actor=actor.describe(),
        )
    return True


def state_words(state: EnrollmentState) -> str:
    """How the end of a sequence reads in a thread note."""
    return {EnrollmentState.STOPPED: "follow-up stopped", EnrollmentState.COMPLETED: "follow-up finished"}.get(
        state, str(state)
    )


def _pending_touches(session: Session, enrollment: Enrollment) -> list[Touch]:
    return list(
        session.scalars(
            select(Touch)
            .where(Touch.enrollment_id == enrollment.id, Touch.status.in_(PENDING_TOUCH))
            .order_by(Touch.position)
        )
    )
