"""Who changed what: every state change is written to the audit log with its actor."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table
from sqlalchemy.orm import Session

from bot.store import webhook_events
from bot.store.bulk import ManyRows
from bot.store.models import ActorType, AuditEntry


@dataclass(frozen=True)
class Actor:
    type: ActorType
    id: str = ""

    @classmethod
    def slack_user(cls, user_id: str) -> Actor:
        return cls(ActorType.SLACK_USER, user_id)

    @classmethod
    def lead(cls, lead_id: int) -> Actor:
        return cls(ActorType.LEAD, str(lead_id))

    def describe(self) -> str:
        if self.type == ActorType.SLACK_USER:
            return f"<@{self.id}>"
        return {ActorType.SYSTEM: "followup", ActorType.LEAD: "the lead", ActorType.CLI: "an operator"}[self.type]


SYSTEM = Actor(ActorType.SYSTEM)
CLI = Actor(ActorType.CLI)


def record(session: Session, *, lead_id: int | None, actor: Actor, action: str, at: datetime, **details: Any) -> None:
    """Append one audit entry inside the caller's transaction."""
    session.add(
        AuditEntry(lead_id=lead_id, at=at, actor_type=actor.type, actor_id=actor.id, action=action, details=details)
    )
    webhook_events.queue_for_audit(session, lead_id=lead_id, action=action, at=at, details=details)


@dataclass(frozen=True)
class Entry:
    """One audit entry not yet written (for `record_many`)."""

    lead_id: int | None
    actor: Actor
    action: str
    at: datetime
    details: dict[str, Any]


#: Run with a list of rows: one executemany on SQLite, one statement on PostgreSQL (bot.store.bulk), no ORM.
_INSERT_MANY = ManyRows(
    cast(Table, AuditEntry.__table__), ["lead_id", "actor_type", "actor_id", "action", "details"], ["at"]
)


def entry_values(entry: Entry) -> dict[str, Any]:
    """An entry's row, as values for a Core insert."""
    return dict(
        lead_id=entry.lead_id,
        at=entry.at,
        actor_type=entry.actor.type,
        actor_id=entry.actor.id,
        action=entry.action,
        details=entry.details,
    )


def record_many(session: Session, entries: list[Entry]) -> None:
    """Append many audit entries inside the caller's transaction, in one round trip."""
    if entries:
        _INSERT_MANY.execute(session.connection(), [entry_values(entry) for entry in entries])
        webhook_events.queue_many_for_audit(
            session, ((entry.lead_id, entry.action, entry.at, entry.details) for entry in entries)
        )
