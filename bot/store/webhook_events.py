"""What the clinic's own systems hear: lead events queued for outbound webhooks in the deciding transaction.

An event is queued in the same transaction as the change it reports, so it is never lost and never
reports a change that was rolled back. The receivers come from `FOLLOWUP_WEBHOOK_URL` through the
session factory's `info` (set once by the composition root), so the use cases need not know whether
anyone listens: with no receiver configured nothing is queued and nothing is read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from bot.core.states import Stage
from bot.store.lead_fields import lead_fields
from bot.store.models import Appointment, CallTask, Lead, OutboundWebhook

#: The key in `Session.info` under which the composition root lists the receivers.
RECEIVERS_KEY = "webhook_receivers"


class LeadEvent(StrEnum):
    CREATED = "lead.created"  #: a new lead came in, from any source
    REPLIED = "lead.replied"  #: the lead wrote back (text or email)
    ESCALATED = "lead.escalated"  #: the bot handed the lead to a person with a call task
    BOOKED = "lead.booked"  #: an appointment was booked
    CANCELLED = "lead.cancelled"  #: an appointment was cancelled
    ATTENDED = "lead.attended"  #: the lead came to the appointment
    NO_SHOW = "lead.no_show"  #: the lead missed the appointment
    LOST = "lead.lost"  #: the lead was closed as lost or not interested
    OPTED_OUT = "lead.opted_out"  #: the lead asked not to be texted or emailed (per channel)
    ERASED = "lead.erased"  #: the lead's personal data was erased on request: delete it too


#: Audit actions that are lead events by themselves. Others are decided below from their details.
_EVENT_FOR_ACTION = {
    "lead_created": LeadEvent.CREATED,
    "booked": LeadEvent.BOOKED,
    "opted_out": LeadEvent.OPTED_OUT,
    "lead_forgotten": LeadEvent.ERASED,
    "appointment_cancelled": LeadEvent.CANCELLED,
    "appointment_attended": LeadEvent.ATTENDED,
    "appointment_no_show": LeadEvent.NO_SHOW,
}

#: Audit details a receiver may see, per action (nothing else: free-text notes stay inside).
_DETAILS_FOR_ACTION = {
    "lead_created": ("source",),
    "booked": ("start", "appointment"),
    "opted_out": ("channel",),
    "stage_changed": ("old", "new", "reason"),
    "call_task_opened": ("reason", "task"),
    "appointment_cancelled": ("appointment", "start"),
    "appointment_attended": ("appointment", "start"),
    "appointment_no_show": ("appointment", "start"),
}


def receivers(session: Session) -> tuple[str, ...]:
    return tuple(session.info.get(RECEIVERS_KEY, ()))


def event_for_audit(session: Session, action: str, details: Mapping[str, Any]) -> LeadEvent | None:
    """The lead event an audit entry reports, if any."""
    if action in _EVENT_FOR_ACTION:
        return _EVENT_FOR_ACTION[action]
    if action == "stage_changed" and details.get("new") == Stage.LOST:
        return LeadEvent.LOST
    if action == "call_task_opened":
        # A call the playbook planned (the day-1 call) is routine; one opened for a reason is an escalation.
        task = session.get(CallTask, details.get("task")) if details.get("task") else None
        return LeadEvent.ESCALATED if task is None or task.touch_id is None else None
    return None


def queue_for_audit(
    session: Session, *, lead_id: int | None, action: str, at: datetime, details: Mapping[str, Any]
) -> None:
    """Queue the lead event an audit entry reports for every receiver (nothing when none is configured)."""
    if not receivers(session) or lead_id is None:
        return
    event = event_for_audit(session, action, details)
    if event is None:
        return
    shown = {key: details[key] for key in _DETAILS_FOR_ACTION.get(action, ()) if key in details}
    queue(session, event, lead_id=lead_id, at=at, details=shown)


def queue(
    session: Session, event: LeadEvent, *, lead_id: int, at: datetime, details: Mapping[str, Any] | None = None
) -> None:
    """Queue one lead event, with the lead as it stands now, for every receiver."""
    targets = receivers(session)
    if not targets:
        return
    session.flush()  # the lead as this transaction has changed it
    lead = session.get(Lead, lead_id)
    if lead is None:
        return
    payload = {
        "event": str(event),
        "occurred_at": at.isoformat(),
        "lead": lead_snapshot(session, lead) if event != LeadEvent.ERASED else {"id": lead.id},
        "details": dict(details or {}),
    }
    session.execute(
        insert(OutboundWebhook),
        [
            dict(
                business=lead.business,
                lead_id=lead_id,
                receiver=receiver,
                event=str(event),
                payload=payload,
                created_at=at,
                attempts=0,
            )
            for receiver in targets
        ],
    )


def lead_snapshot(session: Session, lead: Lead) -> dict[str, Any]:
    """The lead as a receiver sees it: its fields (bot.store.lead_fields) and its latest appointment."""
    appointment = session.scalars(
        select(Appointment).where(Appointment.lead_id == lead.id).order_by(Appointment.id.desc()).limit(1)
    ).first()
    return {
        **lead_fields(lead),
        "appointment": None
        if appointment is None
        else {
            "id": appointment.id,
            "start_at": appointment.start_at.isoformat(),
            "status": appointment.status,
        },
    }


def queue_many_for_audit(
    session: Session, entries: Iterable[tuple[int | None, str, datetime, Mapping[str, Any]]]
) -> None:
    if not receivers(session):
        return
    for lead_id, action, at, details in entries:
        queue_for_audit(session, lead_id=lead_id, action=action, at=at, details=details)
