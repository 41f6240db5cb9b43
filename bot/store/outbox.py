"""Decisions the adapters still have to carry out, queued in the same transaction as the decision."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from bot.store.models import OutboxEvent


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
    MEDIA_RECEIVED = "media_received"  #: the lead sent a photo: fetch it and put it in the thread
    NEEDS_PERSON = "needs_person"  #: something only a person can settle (an unknown send outcome)
    LEAD_ERASED = "lead_erased"  #: the lead's data was erased: edit its card, thread and call tasks to say so


def publish(session: Session, notice: Notice, *, lead_id: int | None, at: datetime, **payload: Any) -> None:
    """Queue a notice for the adapters inside the caller's transaction."""
    session.add(OutboxEvent(lead_id=lead_id, kind=notice, payload=payload, created_at=at))


@dataclass(frozen=True)
class Pending:
    """One notice not yet queued (for `publish_many`)."""

    notice: Notice
    lead_id: int | None
    at: datetime
    payload: dict[str, Any] = field(default_factory=dict)


#: Run with a list of rows: one executemany (a C loop on SQLite, one pipeline on PostgreSQL), no ORM.
_INSERT_MANY = insert(OutboxEvent.__table__)


def publish_many(session: Session, notices: list[Pending]) -> None:
    """Queue many notices inside the caller's transaction, in one round trip, in the order given."""
    if notices:
        session.connection().execute(_INSERT_MANY, [dict(
            lead_id=pending.lead_id, kind=pending.notice, payload=pending.payload, created_at=pending.at,
            attempts=0) for pending in notices])
