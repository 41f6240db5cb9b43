"""The links in our messages: a click on the tracked booking link, and unsubscribing by the email's link.

Each token names one lead (the booking link and the unsubscribe link carry different tokens), and each
change is made under that lead's lock, like every other change to a lead.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.store import outbox
from bot.store.audit import Actor
from bot.store.lead_locks import taking_lead
from bot.store.models import Lead, Message
from bot.store.outbox import Notice
from bot.usecases.lead_actions import opt_out, record_booking_link_click
from bot.usecases.services import Services

#: A fetch this soon after the last message to the lead went out is a link scanner's, not a person's.
SCANNER_WINDOW = timedelta(seconds=30)


def _lead_by_token(services: Services, token: str, key: Any) -> int | None:
    with services.session_factory() as session:
        return session.scalar(select(Lead.id).where(key == token))


def _just_delivered(session: Session, lead_id: int, now: datetime) -> bool:
    """Whether the lead's last message from us went out within SCANNER_WINDOW of now."""
    last = session.scalar(
        select(Message.created_at)
        .where(Message.lead_id == lead_id, Message.direction == "out")
        .order_by(Message.created_at.desc())
        .limit(1)
    )
    if last is None:
        return False
    if last.tzinfo is None:
        last = last.replace(tzinfo=UTC)
    return now - last < SCANNER_WINDOW


@dataclass(frozen=True)
class LinkFollower:
    """Whose booking link was followed: the lead's name and email (to fill in the page) and their business."""

    name: str
    email: str | None
    business: str


def follow_booking_link(services: Services, token: str, *, by_a_person: bool) -> LinkFollower | None:
    """A fetch of a lead's booking link: counted as their click when a person made it.

    Returns who the lead is (to send them to their business's booking page, filled in), or None for a
    token no lead has. A fetch within seconds of our last message is a scanner's however it presents itself.
    """
    lead_id = _lead_by_token(services, token, Lead.link_token)
    if lead_id is None:
        return None
    with taking_lead(services, lead_id) as (session, lead):
        assert lead is not None
        now = services.clock.now()
        if by_a_person and not _just_delivered(session, lead.id, now):
            record_booking_link_click(session, lead, now=now)
        return LinkFollower(lead.name, lead.email, lead.business)


def unsubscribe_link_business(services: Services, token: str) -> str | None:
    """The business of the lead an unsubscribe link is for (its page names it), or None for a token no lead has."""
    with services.session_factory() as session:
        return session.scalar(select(Lead.business).where(Lead.unsubscribe_token == token))


def unsubscribe_by_link(services: Services, token: str) -> bool:
    """The lead asked, by the email's unsubscribe link, for no more email. False for a token no lead has."""
    lead_id = _lead_by_token(services, token, Lead.unsubscribe_token)
    if lead_id is None:
        return False
    with taking_lead(services, lead_id) as (session, lead):
        assert lead is not None
        now = services.clock.now()
        opt_out(session, lead, "email", now=now, actor=Actor.lead(lead.id))
        outbox.publish(
            session, Notice.DECISION, lead_id=lead.id, at=now, text="unsubscribed from email by link: no more email"
        )
        outbox.publish(session, Notice.LEAD_CHANGED, lead_id=lead.id, at=now)
    return True
