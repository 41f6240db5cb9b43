"""Delivery reports from the providers: statuses only move forward, and failures change the lead."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, delete, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from bot.core.business import SINGLE_BUSINESS_SLUG
from bot.core.ports import FailureKind
from bot.core.states import TouchStatus
from bot.store import audit, outbox
from bot.store.audit import SYSTEM
from bot.store.lead_locks import taking_lead
from bot.store.models import Lead, Message, ProcessedDelivery, Touch
from bot.store.outbox import Notice
from bot.usecases.lead_actions import opt_out
from bot.usecases.send_outcomes import (
    DispatchReport,
    ProvedSent,
    SendRecorder,
    TouchSend,
    reroute_touch,
    text_failure_for_lead,
)
from bot.usecases.services import Services

#: How far along a message is; a report never moves a message back (callbacks repeat and cross).
SMS_PROGRESS = {
    "accepted": 0,
    "scheduled": 0,
    "queued": 1,
    "sending": 2,
    "sent": 3,
    "delivered": 4,
    "undelivered": 4,
    "failed": 4,
    "canceled": 4,
    "read": 5,
}
EMAIL_PROGRESS = {
    "queued": 1,
    "processed": 2,
    "deferred": 3,
    "delivered": 4,
    "bounce": 5,
    "dropped": 5,
    "open": 6,
    "click": 6,
}
#: Email events after which nothing more may be emailed to the address.
EMAIL_STOPPERS = {
    "bounce": "bounced",
    "dropped": "dropped by SendGrid",
    "spamreport": "marked as spam",
    "unsubscribe": "unsubscribed",
    "group_unsubscribe": "unsubscribed",
}


#: SendGrid retries an event post for up to 24 hours; an event older than this is stale or a replay, and is
#: ignored (so its dedupe row need not be kept longer, see DELIVERY_RETENTION).
MAX_EMAIL_EVENT_AGE = timedelta(days=3)
#: An event stamped further ahead than this is impossible (clocks differ by seconds, not hours).
EMAIL_EVENT_CLOCK_SKEW = timedelta(hours=1)
#: How long each kind of delivery id is kept to refuse redeliveries. Each outlives its sender's retries:
#: Slack retries an event for minutes and Bolt refuses a signature older than 5 minutes; Twilio retries
#: a voice webhook within seconds; SendGrid's events older than MAX_EMAIL_EVENT_AGE are ignored anyway.
#: Keys not named here (a visit's "started" marker) are facts, not deliveries, and are kept.
DELIVERY_RETENTION: dict[str, timedelta] = {
    "slack": timedelta(days=1),
    "slack-request": timedelta(days=1),
    "twilio-call": timedelta(days=2),
    "sendgrid-event": MAX_EMAIL_EVENT_AGE + timedelta(days=1),
}
#: Rows deleted per statement, so pruning never holds a long write lock.
PRUNE_BATCH = 5000


def prune_processed_deliveries(services: Services) -> int:
    """Forget delivery ids older than their retention, so the table stays as small as replay protection allows."""
    now = services.clock.now()
    removed = 0
    for provider, retention in DELIVERY_RETENTION.items():
        while True:
            with services.session_factory.begin() as session:
                ids = (
                    select(ProcessedDelivery.id)
                    .where(
                        ProcessedDelivery.provider == provider,
                        ProcessedDelivery.received_at < now - retention,
                    )
                    .limit(PRUNE_BATCH)
                )
                deleted = session.execute(
                    delete(ProcessedDelivery).where(ProcessedDelivery.id.in_(ids.scalar_subquery()))
                )
                count = cast(CursorResult, deleted).rowcount or 0  # a DELETE's result is a cursor's
            removed += count
            if count < PRUNE_BATCH:
                break
    return removed


def first_delivery(
    session: Session, provider: str, delivery_id: str, now: datetime, *, business: str = SINGLE_BUSINESS_SLUG
) -> bool:
    """Record a delivery id for a business (its slug); False when it was already applied (a redelivery).

    Per business: the same id delivered for two businesses is two deliveries. Ids that are no business's
    in particular (Slack's event ids, the digest's claims) are kept under the single business's slug.
    """
    insert = postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    result = session.execute(
        insert(ProcessedDelivery)
        .values(business=business, provider=provider, delivery_id=delivery_id[:200], received_at=now)
        .on_conflict_do_nothing(index_elements=["business", "provider", "delivery_id"])
        .returning(ProcessedDelivery.id)
    )
    # RETURNING gives a row only when the insert happened; rowcount is not reliable across drivers.
    return result.scalar() is not None


def _advance(message: Message, status: str, progress: Mapping[str, int]) -> bool:
    if progress.get(status, -1) < progress.get(message.status, -1):
        return False
    if progress.get(status) == progress.get(message.status) and status != message.status:
        return False  # two final answers: the first one stands
    message.status = status
    return True


@dataclass(frozen=True)
class SmsStatusReport:
    message_sid: str
    status: str
    error_code: str | None = None
    #: What the error means for the lead, as the SMS adapter reads the provider's code.
    failure: FailureKind = FailureKind.OTHER


def apply_sms_status(services: Services, report: SmsStatusReport) -> bool:
    """Update the stored text with Twilio's status; return False when the report changed nothing."""
    now = services.clock.now()
    find = select(Message).where(Message.channel == "sms", Message.provider_id == report.message_sid)
    with services.session_factory() as session:
        lead_id = session.scalar(find.with_only_columns(Message.lead_id))
    if lead_id is None:
        return False
    with taking_lead(services, lead_id) as (session, _):
        message = session.scalars(find).first()
        if message is None or not _advance(message, report.status, SMS_PROGRESS):
            return False
        if report.error_code:
            message.error_code = report.error_code
        outbox.publish(
            session,
            Notice.MESSAGE_STATUS,
            lead_id=message.lead_id,
            at=now,
            message_id=message.id,
            touch_id=message.touch_id,
            status=report.status,
            error_code=report.error_code,
        )
        lead = session.get(Lead, message.lead_id)
        assert lead is not None
        rerouted = False
        if report.status in ("undelivered", "failed") and report.error_code:
            rerouted = _sms_failure_consequence(session, services, lead, report, now, message)
    if rerouted:
        services.wake_dispatcher()
    return True


def _sms_failure_consequence(
    session: Session, services: Services, lead: Lead, report: SmsStatusReport, now: datetime, message: Message
) -> bool:
    """Apply what a failed text means for the lead; True when the touch was queued to go another way."""
    code = report.error_code
    newly_unreachable = text_failure_for_lead(
        session,
        services,
        lead,
        report.failure,
        why=f"texts are not delivered to this number (error {code})",
        code=code,
        now=now,
    )
    touch = session.get(Touch, message.touch_id) if newly_unreachable and message.touch_id else None
    if touch is not None and touch.status == TouchStatus.SENT:
        return reroute_touch(session, touch, now=now, error=f"not delivered (error {code})")
    return False


@dataclass(frozen=True)
class EmailEventsResult:
    """What became of one post of SendGrid events."""

    applied: int
    #: Events too old (or stamped in the future, or unstamped) to act on: a replay or a stale retry.
    ignored_stale: int


def event_is_current(event: Mapping[str, Any], now: datetime) -> bool:
    """Whether an event's own `timestamp` (unix seconds) is recent enough to act on."""
    stamp = event.get("timestamp")
    if isinstance(stamp, bool) or not isinstance(stamp, (int, float)):
        return False
    try:
        at = datetime.fromtimestamp(stamp, UTC)
    except (OverflowError, OSError, ValueError):
        return False
    return now - MAX_EMAIL_EVENT_AGE <= at <= now + EMAIL_EVENT_CLOCK_SKEW


def apply_email_events(services: Services, events: list[Mapping[str, Any]]) -> EmailEventsResult:
    """Apply SendGrid Event Webhook entries once each; say how many changed something and how many were stale."""
    applied = stale = 0
    now = services.clock.now()
    for event in events:
        if not event_is_current(event, now):
            stale += 1
            continue
        event_id = str(event.get("sg_event_id") or "")
        kind = str(event.get("event") or "")
        if not event_id:
            continue
        with services.session_factory() as session:
            lead_id = _email_lead_for(session, event)
        if lead_id is None:
            with services.session_factory.begin() as session:
                first_delivery(session, "sendgrid-event", event_id, now)  # for no lead of ours: nothing to do
            continue
        with taking_lead(services, lead_id) as (session, owner):
            # SendGrid numbers its events across the account; the event is the business's whose lead it is.
            business = owner.business if owner is not None else SINGLE_BUSINESS_SLUG
            if not first_delivery(session, "sendgrid-event", event_id, now, business=business):
                continue
            message = _email_message_for(session, event) or _settle_unknown_email(session, services, event, now)
            if message is None or message.lead_id != lead_id:
                continue
            if kind in EMAIL_PROGRESS:
                if kind in ("open", "click"):
                    message.details = {**(message.details or {}), kind: int(event.get("timestamp") or 0)}
                else:
                    _advance(message, kind, EMAIL_PROGRESS)
            lead = session.get(Lead, message.lead_id)
            assert lead is not None
            if kind in EMAIL_STOPPERS and lead.email_allowed:
                reason = EMAIL_STOPPERS[kind]
                if kind in ("spamreport", "unsubscribe", "group_unsubscribe"):
                    opt_out(session, lead, "email", now=now, actor=SYSTEM)
                else:
                    lead.email_consent = False
                    audit.record(
                        session, lead_id=lead.id, actor=SYSTEM, action="email_unreachable", at=now, reason=reason
                    )
                outbox.publish(
                    session,
                    Notice.DECISION,
                    lead_id=lead.id,
                    at=now,
                    text=f"email {reason}: no more email to {lead.email}",
                )
                outbox.publish(session, Notice.LEAD_CHANGED, lead_id=lead.id, at=now)
            outbox.publish(
                session,
                Notice.MESSAGE_STATUS,
                lead_id=lead.id,
                at=now,
                message_id=message.id,
                touch_id=message.touch_id,
                status=message.status,
                event=kind,
            )
            applied += 1
    return EmailEventsResult(applied, stale)


def _settle_unknown_email(
    session: Session, services: Services, event: Mapping[str, Any], now: datetime
) -> Message | None:
    """An event for an email whose send outcome was unknown proves SendGrid took it: record it as sent.

    A process that died mid-send (or a send whose answer was lost) leaves the touch `unknown` and
    a person asked to check; SendGrid's events carry the touch id, so the first one settles it.
    """
    touch_id = _row_id(event.get("touch_id"))
    touch = session.get(Touch, touch_id) if touch_id is not None else None
    if touch is None or touch.status != TouchStatus.UNKNOWN or touch.subject is None:
        return None
    lead = session.get(Lead, touch.lead_id)
    assert lead is not None
    provider_id = str(event.get("sg_message_id") or "").split(".")[0] or None
    if provider_id and session.scalar(select(Touch.id).where(Touch.provider_id == provider_id)) is not None:
        provider_id = None  # already another touch's: keep the record unique rather than guess
    by = f"sendgrid {event.get('event')} event"
    audit.record(
        session,
        lead_id=lead.id,
        actor=SYSTEM,
        action="touch_recovered",
        at=now,
        touch=touch.id,
        provider_id=provider_id,
        found="sent",
        by=by,
    )
    # Recorded as every send is (bot.usecases.send_outcomes), with SendGrid's first word on it: queued.
    send = TouchSend(
        touch.id, lead.id, touch.enrollment_id, touch.attempts, "email", touch.body_text or "", touch.subject
    )
    SendRecorder(services).record_sent(session, [(send, ProvedSent(provider_id, "queued"))], DispatchReport())
    outbox.publish(
        session,
        Notice.DECISION,
        lead_id=lead.id,
        at=now,
        text=f"Settled: SendGrid reports the email “{touch.subject or 'without a subject'}” as "
        f"{event.get('event')}, so it was sent once; nothing to check.",
    )
    return session.scalars(select(Message).where(Message.touch_id == touch.id, Message.channel == "email")).first()


def _email_lead_for(session: Session, event: Mapping[str, Any]) -> int | None:
    """The lead an email event is about (by its message, or the touch whose send was left unknown)."""
    message = _email_message_for(session, event)
    if message is not None:
        return message.lead_id
    touch_id = _row_id(event.get("touch_id"))
    return session.scalar(select(Touch.lead_id).where(Touch.id == touch_id)) if touch_id is not None else None


def _row_id(value: Any) -> int | None:
    """A row id from an event's custom_args: ASCII digits that fit a database integer, else None."""
    text = str(value or "")
    return int(text) if re.fullmatch(r"[0-9]{1,18}", text) else None


def _email_message_for(session: Session, event: Mapping[str, Any]) -> Message | None:
    touch_id = _row_id(event.get("touch_id"))
    if touch_id is not None:
        found = session.scalars(select(Message).where(Message.touch_id == touch_id, Message.channel == "email")).first()
        if found:
            return found
    message_id = _row_id(event.get("message_id"))
    if message_id is not None:
        found = session.get(Message, message_id)
        if found and found.channel == "email":
            return found
    sg_message_id = str(event.get("sg_message_id") or "")
    if sg_message_id:
        # sg_message_id is the send's X-Message-Id followed by ".filter..." parts.
        return session.scalars(
            select(Message).where(Message.channel == "email", Message.provider_id == sg_message_id.split(".")[0])
        ).first()
    return None
