"""Leads as people and scripts read them: plain dicts built from the store."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.core.playbook import Sequence, default_sequence_label, step_label
from bot.core.reply_classifier import explain_reading
from bot.store.consent import consent_record
from bot.store.lead_fields import lead_fields
from bot.store.models import Appointment, CallTask, Enrollment, Lead, Message, Touch

#: Finds a playbook by name (Services.playbooks.get), for the labels people read beside the ids.
PlaybookLookup = Callable[[str], Sequence]


#: What one row of `leads list` shows of the lead itself (the rest of lead_fields is in `leads show`).
SUMMARY_FIELDS = ("id", "name", "phone", "email", "source", "stage", "owner")


def _playbook(name: str, playbook_of: PlaybookLookup | None) -> Sequence | None:
    if playbook_of is None:
        return None
    try:
        return playbook_of(name)
    except Exception:  # noqa: BLE001 - a playbook that no longer loads: its ids read as words
        return None


def _iso(moment: Any) -> str | None:
    return moment.isoformat() if moment is not None else None


def current_enrollment(session: Session, lead_id: int) -> Enrollment | None:
    return session.scalars(
        select(Enrollment).where(Enrollment.lead_id == lead_id).order_by(Enrollment.id.desc())
    ).first()


def lead_summary(session: Session, lead: Lead, playbook_of: PlaybookLookup | None = None) -> dict[str, Any]:
    """One row of `leads list`; `playbook_of` adds the labels people read (sequence_label, next_touch.label)."""
    enrollment = current_enrollment(session, lead.id)
    next_touch = None
    if enrollment is not None:
        next_touch = session.scalars(
            select(Touch)
            .where(Touch.enrollment_id == enrollment.id, Touch.status == "scheduled")
            .order_by(Touch.due_at, Touch.position)
        ).first()
    fields = lead_fields(lead)
    return {
        **{key: fields[key] for key in SUMMARY_FIELDS},
        "business": lead.business,
        "sequence": enrollment.sequence_name if enrollment else None,
        "sequence_label": None
        if enrollment is None
        else (
            getattr(_playbook(enrollment.sequence_name, playbook_of), "label", None)
            or default_sequence_label(enrollment.sequence_name)
        ),
        "enrollment_state": str(enrollment.state) if enrollment else None,
        "enrollment_reason": enrollment.state_reason if enrollment else None,
        "next_touch": None
        if next_touch is None
        else {
            "step": next_touch.step_id,
            "channel": next_touch.channel,
            "due_at": _iso(next_touch.due_at),
            "label": step_label(
                _playbook(enrollment.sequence_name, playbook_of) if enrollment else None, next_touch.step_id
            ),
        },
        "created_at": fields["created_at"],
    }


def lead_detail(session: Session, lead: Lead, playbook_of: PlaybookLookup | None = None) -> dict[str, Any]:
    """Everything `leads show` tells: the lead, its sequences, touches, messages, calls, appointments."""
    detail = {**lead_summary(session, lead, playbook_of), **lead_fields(lead)}
    detail.update(
        consent=consent_record(session, lead),
        enrollments=[
            {
                "id": e.id,
                "sequence": e.sequence_name,
                "state": str(e.state),
                "reason": e.state_reason,
                "enrolled_at": _iso(e.enrolled_at),
                "ended_at": _iso(e.ended_at),
            }
            for e in session.scalars(select(Enrollment).where(Enrollment.lead_id == lead.id).order_by(Enrollment.id))
        ],
        touches=[
            {
                "id": t.id,
                "enrollment": t.enrollment_id,
                "step": t.step_id,
                "channel": t.channel,
                "due_at": _iso(t.due_at),
                "status": str(t.status),
                "attempts": t.attempts,
                "sent_at": _iso(t.sent_at),
                "reason": t.skip_reason or t.last_error,
                "subject": t.subject,
            }
            for t in session.scalars(
                select(Touch).where(Touch.lead_id == lead.id).order_by(Touch.enrollment_id, Touch.position)
            )
        ],
        messages=[
            {
                "id": m.id,
                "direction": m.direction,
                "channel": m.channel,
                "at": _iso(m.created_at),
                "status": m.status,
                "class": m.classification,
                "subject": m.subject,
                "body": m.body,
                "why": explain_reading(m.classification, m.details) if m.direction == "in" else None,
            }
            for m in session.scalars(select(Message).where(Message.lead_id == lead.id).order_by(Message.id))
        ],
        call_tasks=[
            {
                "id": c.id,
                "reason": c.reason,
                "status": str(c.status),
                "claimed_by": c.claimed_by,
                "outcome": c.outcome,
                "notes": c.notes,
                "due_at": _iso(c.due_at),
            }
            for c in session.scalars(select(CallTask).where(CallTask.lead_id == lead.id).order_by(CallTask.id))
        ],
        appointments=[
            {"id": a.id, "start_at": _iso(a.start_at), "status": a.status, "notes": a.notes}
            for a in session.scalars(select(Appointment).where(Appointment.lead_id == lead.id).order_by(Appointment.id))
        ],
    )
    return detail
