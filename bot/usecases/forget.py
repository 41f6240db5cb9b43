"""Erase a lead's personal data on a deletion request, keeping the anonymous counts (stages, sends)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from bot.store import audit, outbox
from bot.store.audit import Actor
from bot.store.consent import ConsentMethod, revoke_sms
from bot.store.db import rows_changed
from bot.store.lead_locks import taking_lead
from bot.store.models import (
    Appointment,
    AuditEntry,
    CallTask,
    ConsentEntry,
    Lead,
    Message,
    OutboundWebhook,
    OutboxEvent,
    Touch,
)
from bot.store.outbox import Notice
from bot.usecases.enrollment import end, open_enrollments

if TYPE_CHECKING:
    from bot.usecases.services import Services

#: What an erased lead is called wherever a name is shown.
ERASED_NAME = "(erased)"


@dataclass(frozen=True)
class Forgotten:
    lead_id: int
    messages: int
    touches: int
    call_tasks: int


class NoSuchLead(LookupError):
    """There is no lead with that id."""


def forget(services: Services, lead_id: int, *, actor: Actor) -> Forgotten:
    """Erase one lead, holding its lock so no send or reply interleaves with the erasure."""
    with taking_lead(services, lead_id) as (session, lead):
        if lead is None:
            raise NoSuchLead(f"there is no lead #{lead_id}")
        return forget_lead(session, lead, now=services.clock.now(), actor=actor)


def forget_lead(session: Session, lead: Lead, *, now: datetime, actor: Actor) -> Forgotten:
    """Erase every personal detail of one lead in this transaction; rows stay, so counts still add up.

    Kept: the lead's id, stage, source, dates and time zone; each message's direction, channel,
    status and provider id; each touch's step, channel and status. Erased: name, phone, email,
    what they wrote and what was sent to them, notes, scripts, and audit and notice details.
    Pending touches are cancelled first, so nothing goes to an address that no longer exists.
    What the bot posted in Slack (the card, its thread, the call tasks' copies) is queued to be
    edited to say the data was erased; on SQLite, `scrub_database_files` then clears the files.
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
    lead.unsubscribe_token = secrets.token_urlsafe(16)
    lead.updated_at = now
    messages = rows_changed(
        session.execute(
            update(Message).where(Message.lead_id == lead_id).values(body="", subject=None, details={}, author=None)
        )
    )
    touches = rows_changed(
        session.execute(
            update(Touch)
            .where(Touch.lead_id == lead_id)
            .values(subject=None, body_text=None, body_html=None, last_error=None, skip_reason=None)
        )
    )
    calls = rows_changed(
        session.execute(
            update(CallTask)
            .where(CallTask.lead_id == lead_id)
            .values(reason="(erased)", call_script="", voicemail_script="", notes="")
        )
    )
    session.execute(update(Appointment).where(Appointment.lead_id == lead_id).values(notes=""))
    session.execute(update(AuditEntry).where(AuditEntry.lead_id == lead_id).values(details={}))
    # How and when consent was given stays (it is the business's evidence); the words and notes go.
    session.execute(update(ConsentEntry).where(ConsentEntry.lead_id == lead_id).values(evidence=""))
    # Notices not yet posted would carry the old text into Slack: empty them and mark them done.
    session.execute(update(OutboxEvent).where(OutboxEvent.lead_id == lead_id).values(payload={}, delivered_at=now))
    # Only where the bot's posts are (no words): the poster edits each to say the data was erased.
    copies = [
        {"channel": channel, "ts": ts}
        for channel, ts in session.execute(
            select(CallTask.slack_channel, CallTask.slack_channel_ts).where(
                CallTask.lead_id == lead_id, CallTask.slack_channel_ts.is_not(None)
            )
        )
    ]
    if lead.slack_channel and lead.slack_ts or copies:
        outbox.publish(
            session,
            Notice.LEAD_ERASED,
            lead_id=lead_id,
            at=now,
            channel=lead.slack_channel,
            card_ts=lead.slack_ts,
            copies=copies,
        )
    # Events for the clinic's systems keep the lead's data too: erase them; those not yet sent never go.
    session.execute(
        update(OutboundWebhook)
        .where(OutboundWebhook.lead_id == lead_id, OutboundWebhook.delivered_at.is_(None))
        .values(payload={}, failed_at=now, last_error="the lead's data was erased before this event was sent")
    )
    session.execute(update(OutboundWebhook).where(OutboundWebhook.lead_id == lead_id).values(payload={}))
    audit.record(session, lead_id=lead_id, actor=actor, action="lead_forgotten", at=now)
    return Forgotten(lead_id, messages or 0, touches or 0, calls or 0)


def scrub_database_files(engine: Engine) -> str | None:
    """Make erased text gone from SQLite's files on disk; return what could not be done, or None.

    Every connection runs with `secure_delete` (bot.store.db), so the space an erased value took is
    zeroed as it is overwritten or freed; the old pages' copies in the write-ahead log are then
    checkpointed into the database and the log truncated to nothing. A process still reading
    (`followup run`) can keep the checkpoint from finishing: it is tried a few times, then said.
    PostgreSQL keeps old row versions until autovacuum reuses them; nothing is done there.
    """
    if engine.dialect.name != "sqlite":
        return None
    import time

    with engine.connect() as connection:
        for attempt in range(10):
            busy, _log_frames, _moved = connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").one()
            if not busy:
                return None
            time.sleep(0.2 * (attempt + 1))
    return (
        "another process holds the database open, so its write-ahead log could not be emptied yet; "
        "it is emptied at the next checkpoint (SQLite checkpoints on its own as it writes)"
    )
