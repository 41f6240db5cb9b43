"""Decisions the adapters still have to carry out, queued in the same transaction as the decision."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy.orm import Session

from bot.models import OutboxEvent


class Notice(StrEnum):
    LEAD_CREATED = "lead_created"  #: post the lead's card
    LEAD_CHANGED = "lead_changed"  #: refresh the lead's card
    TOUCH_SENT = "touch_sent"  #: a touch went out; mirror it into the thread
    TOUCH_FAILED = "touch_failed"  #: a touch failed for good; show it in the thread
    MESSAGE_RECEIVED = "message_received"  #: the lead wrote; mirror it with how it was understood
    MESSAGE_STATUS = "message_status"  #: a delivery status changed
    DECISION = "decision"  #: the system decided something (paused, stopped, booked, nurture)
    CALL_TASK = "call_task"  #: a call to hand the team, with scripts and buttons
    CALL_TASK_CHANGED = "call_task_changed"  #: a call task was claimed, done or cancelled
    NEEDS_PERSON = "needs_person"  #: something only a person can settle (an unknown send outcome)


def publish(session: Session, notice: Notice, *, lead_id: int | None, at: datetime, **payload: Any) -> None:
    """Queue a notice for the adapters inside the caller's transaction."""
    session.add(OutboxEvent(lead_id=lead_id, kind=notice, payload=payload, created_at=at))
