"""What a team member does to a lead, a call task or an appointment from Slack, made the one way.

Each change takes the lead as every use case does (`bot.store.lead_locks.taking_lead`: its lock, then
one transaction), refuses with `LeadActionRefused` when what it names is gone, and then wakes the
workers so that what it made due goes out and Slack shows it at once. The Slack listeners say which
change and to what; they never open a transaction or take a lock themselves.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.store.audit import Actor
from bot.store.lead_locks import taking_lead
from bot.store.models import Appointment, CallTask, Lead
from bot.usecases.lead_actions import LeadActionRefused
from bot.usecases.services import Services

T = TypeVar("T")

#: A change to one lead: the open transaction, the services, the lead (locked), now, and who.
LeadChange = Callable[[Session, Services, Lead, datetime, Actor], T]
#: A change to one call task (by id) of a locked lead.
TaskChange = Callable[[Session, Services, int, datetime, Actor], T]
#: A change to one appointment of a locked lead.
AppointmentChange = Callable[[Session, Services, Appointment, datetime, Actor], T]


def after_change(services: Services) -> None:
    """Let the change show at once: touches it made due go out, and the poster updates Slack."""
    services.wake_dispatcher()
    services.wake_poster()


def change_lead(
    services: Services,
    lead_id: int | None,
    change: LeadChange[T],
    actor: Actor,
    *,
    missing: str = "this lead no longer exists",
) -> T:
    """Apply one change to a lead under its lock, in one transaction; then wake the workers."""
    if lead_id is None:
        raise LeadActionRefused(missing)
    with taking_lead(services, lead_id) as (session, lead):
        if lead is None:
            raise LeadActionRefused(missing)
        result = change(session, services, lead, services.clock.now(), actor)
    after_change(services)
    return result


def change_task(services: Services, task_id: int | None, change: TaskChange[T], actor: Actor) -> T:
    """Apply one change to a call task under its lead's lock, so two clicks at once are served in turn.

    The lock is what makes a claim atomic on SQLite, where `FOR UPDATE` does nothing.
    """
    lead_id = task_lead_id(services, task_id)
    if task_id is None or lead_id is None:
        raise LeadActionRefused("this call task no longer exists")
    with taking_lead(services, lead_id) as (session, _lead):
        result = change(session, services, task_id, services.clock.now(), actor)
    after_change(services)
    return result


def change_appointment(services: Services, appointment_id: int | None, change: AppointmentChange[T], actor: Actor) -> T:
    """Apply one change to an appointment under its lead's lock; then wake the workers."""
    lead_id = appointment_lead_id(services, appointment_id)
    if appointment_id is None or lead_id is None:
        raise LeadActionRefused("this appointment no longer exists")
    with taking_lead(services, lead_id) as (session, _lead):
        appointment = session.get(Appointment, appointment_id)
        if appointment is None:
            raise LeadActionRefused("this appointment no longer exists")
        result = change(session, services, appointment, services.clock.now(), actor)
    after_change(services)
    return result


def task_lead_id(services: Services, task_id: int | None) -> int | None:
    if task_id is None:
        return None
    with services.session_factory() as session:
        return session.scalar(select(CallTask.lead_id).where(CallTask.id == task_id))


def appointment_lead_id(services: Services, appointment_id: int | None) -> int | None:
    if appointment_id is None:
        return None
    with services.session_factory() as session:
        return session.scalar(select(Appointment.lead_id).where(Appointment.id == appointment_id))
