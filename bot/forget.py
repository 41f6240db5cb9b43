"""Erase a lead's personal data on a deletion request, keeping the anonymous counts (stages, sends)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.orm import Session

from bot import audit
from bot.audit import Actor
from bot.enrollment import end, open_enrollments
from bot.consent import ConsentMethod, revoke_sms
from bot.models import Appointment, AuditEntry, CallTask, ConsentEntry, Lead, Message, OutboxEvent, Touch

#: What an erased lead is called wherever a name is shown.
ERASED_NAME = "(erased)"


@dataclass(frozen=True)
class Forgotten:
    lead_id: int
    messages: int
    touches: int
    call_tasks: int


def forget_lead(session: Session, lead: Lead, *, now: datetime, actor: Actor) -> Forgotten:
    """Erase every personal detail of one lead in this transaction; rows stay, so counts still add up.

    Kept: the lead's id, stage, source, dates and time zone; each message's direction, channel,
    status and provider id; each touch's step, channel and status. Erased: name, phone, email,
    what they wrote and what was sent to them, notes, scripts, and audit and notice details.
    Pending touches are cancelled first, so nothing goes to an address that no longer exists.
    """
    for enrollment in open_enrollments(session, lead.id):
        end(session, enrollment, now=now, reason="the lead's data was erased on request", actor=actor)
    session.flush()
    lead_id = lead.id
    lead.name, lead.phone, lead.email = ERASED_NAME, None, None
    lead.first_message, lead.custom_fields, lead.owner = "", {}, None
    revoke_sms(session, lead, ConsentMethod.ERASED, evidence="", actor=actor, now=now)
    lead.email_consent = False
    lead.sms_unreachable_reason = None
    # The old link token is in sent emails and texts: a new one makes those links lead nowhere.
    lead.link_token = secrets.token_urlsafe(16)
    lead.updated_at = now
    messages = session.execute(update(Message).where(Message.lead_id == lead_id).values(
        body="", subject=None, details={}, author=None)).rowcount
    touches = session.execute(update(Touch).where(Touch.lead_id == lead_id).values(
        subject=None, body_text=None, body_html=None, last_error=None, skip_reason=None)).rowcount
    calls = session.execute(update(CallTask).where(CallTask.lead_id == lead_id).values(
        reason="(erased)", call_script="", voicemail_script="", notes="")).rowcount
    session.execute(update(Appointment).where(Appointment.lead_id == lead_id).values(notes=""))
    session.execute(update(AuditEntry).where(AuditEntry.lead_id == lead_id).values(details={}))
    # How and when consent was given stays (it is the business's evidence); the words and notes go.
    session.execute(update(ConsentEntry).where(ConsentEntry.lead_id == lead_id).values(evidence=""))
    # Notices not yet posted would carry the old text into Slack: empty them and mark them done.
    session.execute(update(OutboxEvent).where(OutboxEvent.lead_id == lead_id).values(
        payload={}, delivered_at=now))
    audit.record(session, lead_id=lead_id, actor=actor, action="lead_forgotten", at=now)
    return Forgotten(lead_id, messages or 0, touches or 0, calls or 0)
