"""Post queued lead events to the clinic's receivers: signed, in order per lead, retried with backoff.

The signature lets a receiver check that a post came from this deployment and is fresh:
`Followup-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>" with FOLLOWUP_WEBHOOK_SECRET>`.
Each post also carries `Followup-Event` and `Followup-Delivery` (the same on every retry of one event,
so a receiver can drop repeats). A receiver answers 2xx to take it; anything else is retried.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from sqlalchemy import or_, select, update

from bot.store import outbox
from bot.store.db import rows_changed
from bot.store.models import OutboundWebhook
from bot.store.outbox import Notice
from bot.usecases.services import Services

log = logging.getLogger(__name__)

#: Waits between attempts (the last repeats): a receiver down for a day still gets every event.
BACKOFF = (
    timedelta(seconds=10),
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=6),
)
#: How long one process holds an event it is posting before another may take it (a crash mid-post).
CLAIM = timedelta(minutes=2)
#: Events looked at per run: enough for a burst, bounded so one run never holds everything.
BATCH = 200


def signature(secret: str, body: bytes, timestamp: int) -> str:
    """The `Followup-Signature` header value for this body at this time."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(secret: str, body: bytes, header: str, *, now: float, tolerance_seconds: int = 300) -> bool:
    """What a receiver does with a post (documented in the README; the tests use it as a receiver would)."""
    parts = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance_seconds:
        return False
    expected = signature(secret, body, timestamp).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


@dataclass(frozen=True)
class DeliveryReport:
    delivered: int = 0
    retrying: int = 0
    failed: int = 0


class WebhookDeliverer:
    """Drains the outbound webhook queue; one run posts every event that is due and next in its lead's line."""

    def __init__(
        self,
        services: Services,
        *,
        secret: str,
        max_attempts: int = 10,
        timeout_seconds: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ):
        self.services = services
        self.secret = secret
        self.max_attempts = max_attempts
        self._client = httpx.Client(timeout=timeout_seconds, transport=transport, follow_redirects=False)

    def close(self) -> None:
        self._client.close()

    def deliver_once(self) -> DeliveryReport:
        delivered = retrying = failed = 0
        now = self.services.clock.now()
        with self.services.session_factory() as session:
            pending = session.scalars(
                select(OutboundWebhook)
                .where(OutboundWebhook.delivered_at.is_(None), OutboundWebhook.failed_at.is_(None))
                .order_by(OutboundWebhook.id)
                .limit(BATCH)
            ).all()
        # In order per lead and receiver: an event waits while an earlier one for the same pair is pending.
        blocked: set[tuple[int | None, str]] = set()
        for event in pending:
            line = (event.lead_id, event.receiver)
            if line in blocked:
                continue
            blocked.add(line)
            if event.next_attempt_at is not None and event.next_attempt_at > now:
                continue
            if not self._claim(event.id, now):
                continue  # another process is posting it
            outcome = self._post(event)
            if outcome is None:
                self._mark_delivered(event.id)
                blocked.discard(line)  # the next event for this lead may go in the same run
                delivered += 1
            elif event.attempts + 1 >= self.max_attempts:
                self._mark_failed(event, outcome)
                blocked.discard(line)
                failed += 1
            else:
                self._schedule_retry(event, outcome)
                retrying += 1
        return DeliveryReport(delivered, retrying, failed)

    def _claim(self, event_id: int, now: datetime) -> bool:
        with self.services.session_factory.begin() as session:
            claimed = rows_changed(
                session.execute(
                    update(OutboundWebhook)
                    .where(
                        OutboundWebhook.id == event_id,
                        OutboundWebhook.delivered_at.is_(None),
                        OutboundWebhook.failed_at.is_(None),
                        or_(OutboundWebhook.claimed_until.is_(None), OutboundWebhook.claimed_until < now),
                    )
                    .values(claimed_until=now + CLAIM)
                )
            )
        return bool(claimed)

    def _post(self, event: OutboundWebhook) -> str | None:
        """Post one event; None when the receiver took it, else why not."""
        body = json.dumps({"id": event.id, **event.payload}, separators=(",", ":"), sort_keys=True).encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "followup-webhooks/1",
            "Followup-Event": event.event,
            "Followup-Delivery": str(event.id),
            "Followup-Signature": signature(self.secret, body, int(time.time())),
        }
        try:
            answer = self._client.post(event.receiver, content=body, headers=headers)
        except httpx.HTTPError as error:
            return f"{type(error).__name__}: {error}"[:300]
        if 200 <= answer.status_code < 300:
            return None
        return f"HTTP {answer.status_code}"

    def _mark_delivered(self, event_id: int) -> None:
        now = self.services.clock.now()
        with self.services.session_factory.begin() as session:
            session.execute(
                update(OutboundWebhook)
                .where(OutboundWebhook.id == event_id)
                .values(delivered_at=now, attempts=OutboundWebhook.attempts + 1, claimed_until=None, last_error=None)
            )

    def _schedule_retry(self, event: OutboundWebhook, why: str) -> None:
        now = self.services.clock.now()
        wait = BACKOFF[min(event.attempts, len(BACKOFF) - 1)]
        with self.services.session_factory.begin() as session:
            session.execute(
                update(OutboundWebhook)
                .where(OutboundWebhook.id == event.id)
                .values(
                    attempts=OutboundWebhook.attempts + 1,
                    next_attempt_at=now + wait,
                    claimed_until=None,
                    last_error=why,
                )
            )
        log.warning("outbound webhook %s (%s) not taken (%s); retrying in %s", event.id, event.event, why, wait)

    def _mark_failed(self, event: OutboundWebhook, why: str) -> None:
        now = self.services.clock.now()
        attempts = event.attempts + 1
        with self.services.session_factory.begin() as session:
            session.execute(
                update(OutboundWebhook)
                .where(OutboundWebhook.id == event.id)
                .values(attempts=attempts, failed_at=now, claimed_until=None, last_error=why)
            )
            if event.lead_id is not None:
                outbox.publish(
                    session,
                    Notice.NEEDS_PERSON,
                    lead_id=event.lead_id,
                    at=now,
                    text=(
                        f"The {event.event} event for this lead never reached {_host(event.receiver)} "
                        f"({attempts} attempts, last: {why}). The clinic's other system may be missing it."
                    ),
                )
        log.error(
            "outbound webhook %s (%s) to %s failed for good after %d attempts: %s",
            event.id,
            event.event,
            _host(event.receiver),
            attempts,
            why,
        )
        self.services.wake_poster()


def _host(url: str) -> str:
    """The receiver as a person can name it, without any secret the URL may carry."""
    return httpx.URL(url).host or "the receiver"
