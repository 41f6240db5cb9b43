"""Leads the bot closed by itself: who it moved to lost or nurture on reading a message, and reopening one."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.core.states import ActorType, Stage
from bot.store import audit, outbox
from bot.store.audit import Actor
from bot.store.models import AuditEntry, Lead, Message
from bot.store.outbox import Notice
from bot.usecases import enrollment
from bot.usecases.enrollment import NURTURE_SEQUENCE, open_enrollments

#: The stages a message alone can send a lead to that close it: not interested (lost), later (nurture).
CLOSING_STAGES = (Stage.LOST, Stage.NURTURE)
#: How far back the App Home looks.
THIS_WEEK = timedelta(days=7)


class NothingToReopen(Exception):
    """The lead is not closed (any more); the message says where it stands."""


@dataclass(frozen=True)
class ClosedByBot:
    """One lead the bot closed on its own reading of what the lead wrote."""

    lead_id: int
    name: str
    phone: str | None
    email: str | None
    stage: str
    at: datetime
    #: Why the bot decided (the decision's reason, e.g. "not interested").
    reason: str
    #: The lead's message that caused it, as they wrote it ("" when none is stored).
    message: str
    #: How that message was understood (its reply class).
    understood_as: str | None


def closed_by_bot(
    session: Session, *, now: datetime, since: timedelta = THIS_WEEK, limit: int = 20, business: str | None = None
) -> list[ClosedByBot]:
    """Leads the bot moved to lost or nurture by itself since `since` ago, still there, newest first.

    Of one business's leads when `business` (a slug) is given, else of every business's.
    """
    whose = [] if business is None else [AuditEntry.lead_id.in_(select(Lead.id).where(Lead.business == business))]
    moves = session.scalars(
        select(AuditEntry)
        .where(
            AuditEntry.action == "stage_changed",
            AuditEntry.actor_type == ActorType.LEAD,
            AuditEntry.at >= now - since,
            *whose,
        )
        .order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
    ).all()
    found: list[ClosedByBot] = []
    seen: set[int] = set()
    for move in moves:
        details = move.details or {}
        if move.lead_id is None or move.lead_id in seen or details.get("new") not in CLOSING_STAGES:
            continue
        seen.add(move.lead_id)
        lead = session.get(Lead, move.lead_id)
        if lead is None or lead.stage != details.get("new"):
            continue  # reopened, or moved on since
        cause = session.scalars(
            select(Message)
            .where(Message.lead_id == lead.id, Message.direction == "in", Message.created_at <= move.at)
            .order_by(Message.created_at.desc(), Message.id.desc())
        ).first()
        found.append(
            ClosedByBot(
                lead.id,
                lead.name,
                lead.phone,
                lead.email,
                str(lead.stage),
                move.at,
                str(details.get("reason") or ""),
                cause.body if cause else "",
                cause.classification if cause else None,
            )
        )
        if len(found) >= limit:
            break
    return found


def reopen_lead(session: Session, lead: Lead, *, now: datetime, actor: Actor) -> None:
    """Undo the bot's closing: the lead is a conversation again, for a person (no automation restarts)."""
    if lead.stage not in CLOSING_STAGES:
        raise NothingToReopen(f"this lead is {Stage(lead.stage).value.replace('_', ' ')}, not closed")
    for nurturing in open_enrollments(session, lead.id, sequence=NURTURE_SEQUENCE):
        enrollment.end(session, nurturing, now=now, reason=f"reopened by {actor.describe()}", actor=actor)
    audit.record(
        session,
        lead_id=lead.id,
        actor=actor,
        action="stage_changed",
        at=now,
        old=str(lead.stage),
        new=str(Stage.ENGAGED),
        reason="reopened",
    )
    lead.stage = Stage.ENGAGED
    lead.updated_at = now
    outbox.publish(
        session,
        Notice.DECISION,
        lead_id=lead.id,
        at=now,
        actor=actor.describe(),
        text=f"reopened by {actor.describe()}: the bot's closing is undone and a person takes it from here",
    )
    outbox.publish(session, Notice.LEAD_CHANGED, lead_id=lead.id, at=now)
