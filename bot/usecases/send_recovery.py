"""After a crash mid-send: settle each send a stopped process left open by asking the provider, never blindly.

One recovery for both kinds of send: a playbook touch and a one-off message (a team reply, the
HELP answer) left `sending` longer than the lease. Each is taken under its lead's lock (a lead a
live process holds is left to it) and settled by one question to the texting provider: does it
hold the message we meant to send, and nothing else we have no record of? Found there, the send
is recorded with the provider's id; provably absent, a touch is scheduled again and a one-off
message is marked failed for a person (their words from a while ago may no longer fit);
otherwise a person is asked. The dispatcher runs it on its own ticks (`Dispatcher.run_due`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.core.ports import SendReceipt, SentSms, SentSmsLookup, TransientSendError
from bot.core.states import TouchReroute
from bot.store import audit, outbox
from bot.store.audit import SYSTEM
from bot.store.models import Lead, Message, Touch, TouchStatus
from bot.store.outbox import Notice
from bot.usecases.send_outcomes import (
    MAX_ATTEMPTS,
    DispatchReport,
    SendRecorder,
    TouchSend,
    described,
    direct_outcome_unknown,
)
from bot.usecases.services import Services

log = logging.getLogger(__name__)


class Found(StrEnum):
    """What the provider holds for the lead's number, against what followup recorded."""

    #: Our message, and nothing else unrecorded: it went, and is recorded with the provider's id.
    SENT = "sent"
    #: Nothing unrecorded: the provider never got ours.
    NOT_SENT = "not_sent"
    #: Message(s) followup has no record of that are not provably ours: a person looks.
    OTHERS = "others"
    #: The provider cannot be asked (SendGrid lists no mail; no texting provider; no phone).
    CANNOT_ASK = "cannot_ask"


@dataclass(frozen=True)
class Held:
    """The provider's answer about one number."""

    found: Found
    #: How many messages it holds for the number that followup has no record of.
    unrecorded: int = 0
    #: Ours, when `found` is SENT.
    ours: SentSms | None = None


def ask_provider(session: Session, services: Services, lead: Lead, body: str, *, channel: str) -> Held:
    """Ask the texting provider what it holds for the lead's number that followup has no record of.

    Raises TransientSendError when the provider does not answer now (ask again later).
    """
    lookup = services.sms if isinstance(services.sms, SentSmsLookup) else None
    if channel != "sms" or lookup is None or not lead.phone:
        return Held(Found.CANNOT_ASK)
    held = lookup.messages_to(lead.phone)
    known = set(
        session.scalars(
            select(Message.provider_id).where(
                Message.lead_id == lead.id, Message.direction == "out", Message.provider_id.is_not(None)
            )
        )
    )
    unrecorded = [sms for sms in held if sms.sid not in known]
    # Twilio may append to a body (a trial notice): ours starts with what we sent.
    ours = [sms for sms in unrecorded if body and sms.body.startswith(body)]
    if len(ours) == 1 and len(unrecorded) == 1:
        return Held(Found.SENT, 1, ours[0])
    return Held(Found.OTHERS, len(unrecorded)) if unrecorded else Held(Found.NOT_SENT)


@dataclass
class Recovered:
    """How many abandoned sends one recovery settled, of each kind."""

    touches: int = 0
    messages: int = 0


#: Why a send is left to a person when the provider cannot be asked.
CANNOT_ASK = "the process sending it stopped before recording the outcome, and the provider cannot be asked"


def _others_held(count: int) -> str:
    return (
        f"the process sending it stopped, and Twilio holds {count} message(s) to this number that followup "
        "has no record of"
    )


def recover_abandoned(
    services: Services,
    *,
    lease_seconds: float,
    limit: int = 100,
    recorder: SendRecorder | None = None,
    report: DispatchReport | None = None,
) -> Recovered:
    """Settle touches and one-off messages left `sending` longer than the lease; say how many of each.

    `report` counts the touches' outcomes like any others a dispatch run handled.
    """
    recorder = recorder or SendRecorder(services)
    report = report if report is not None else DispatchReport()
    now = services.clock.now()
    # The lease is in real seconds; the stored claim times are on the bot's (maybe scaled) clock.
    cutoff = now - timedelta(seconds=lease_seconds * getattr(services.clock, "scale", 1.0))
    with services.session_factory() as session:
        touches = session.execute(
            select(Touch.id, Touch.lead_id)
            .where(Touch.status == TouchStatus.SENDING, Touch.next_attempt_at <= cutoff)
            .order_by(Touch.id)
            .limit(limit)
        ).all()
        messages = session.execute(
            select(Message.id, Message.lead_id)
            .where(
                Message.direction == "out",
                Message.status == "sending",
                Message.touch_id.is_(None),
                Message.created_at <= cutoff,
            )
            .order_by(Message.id)
            .limit(limit)
        ).all()
    recovered = Recovered()
    for is_touch, row_id, lead_id in [(True, *row) for row in touches] + [(False, *row) for row in messages]:
        with services.lead_locks.hold(lead_id), services.session_factory.begin() as session:
            # A live process deciding about this lead holds the row: its send is not abandoned.
            lead = session.scalars(
                select(Lead)
                .where(Lead.id == lead_id)
                .with_for_update(skip_locked=True)
                .execution_options(populate_existing=True)
            ).first()
            if lead is None:
                continue
            if is_touch:
                touch = session.get(Touch, row_id, populate_existing=True)
                if (
                    touch is None
                    or touch.status != TouchStatus.SENDING
                    or touch.next_attempt_at is None
                    or touch.next_attempt_at > cutoff
                ):
                    continue
                recovered.touches += _settle_touch(session, services, recorder, touch, lead, report)
            else:
                message = session.get(Message, row_id, populate_existing=True)
                if message is None or message.status != "sending":
                    continue
                recovered.messages += _settle_message(session, services, lead, message)
    return recovered


def _settle_touch(
    session: Session, services: Services, recorder: SendRecorder, touch: Touch, lead: Lead, report: DispatchReport
) -> bool:
    now = services.clock.now()
    # An SMS step rerouted to email went to SendGrid, which cannot be asked.
    channel = "email" if touch.rerouted == TouchReroute.EMAIL else touch.channel
    try:
        held = ask_provider(session, services, lead, touch.body_text or "", channel=channel)
    except TransientSendError as error:
        log.warning("touch %s: cannot settle an abandoned send yet: %s", touch.id, error)
        touch.last_error = f"waiting to ask the provider: {error.reason}"
        return False
    match held.found:
        case Found.CANNOT_ASK:
            recorder.unknown(session, touch, lead, CANNOT_ASK, report)
        case Found.OTHERS:
            recorder.unknown(session, touch, lead, _others_held(held.unrecorded), report)
        case Found.SENT:
            assert held.ours is not None
            audit.record(
                session,
                lead_id=lead.id,
                actor=SYSTEM,
                action="touch_recovered",
                at=now,
                touch=touch.id,
                provider_id=held.ours.sid,
                found="sent",
            )
            send = TouchSend(
                touch.id, lead.id, touch.enrollment_id, touch.attempts, "sms", touch.body_text or "", touch.subject
            )
            recorder.record_sent(session, [(send, SendReceipt(held.ours.sid, held.ours.status))], report)
        case Found.NOT_SENT if touch.attempts >= MAX_ATTEMPTS:
            recorder.fail(
                session,
                touch,
                f"abandoned {touch.attempts} times by processes that stopped mid-send; never reached Twilio",
                report,
            )
        case Found.NOT_SENT:
            # Provably never reached the provider (it holds nothing unrecorded for the number): send it again.
            touch.status, touch.next_attempt_at = TouchStatus.SCHEDULED, now
            touch.last_error = "the process sending it stopped before Twilio got it; sending again"
            audit.record(
                session,
                lead_id=lead.id,
                actor=SYSTEM,
                action="touch_recovered",
                at=now,
                touch=touch.id,
                found="not sent",
            )
            report.retrying += 1
    return True


def _settle_message(session: Session, services: Services, lead: Lead, message: Message) -> bool:
    now = services.clock.now()
    try:
        held = ask_provider(session, services, lead, message.body or "", channel=message.channel)
    except TransientSendError as error:
        log.warning("message %s: cannot settle an abandoned send yet: %s", message.id, error)
        return False
    match held.found:
        case Found.CANNOT_ASK:
            direct_outcome_unknown(session, message, now, CANNOT_ASK)
            return True
        case Found.OTHERS:
            direct_outcome_unknown(session, message, now, _others_held(held.unrecorded))
        case Found.SENT:
            assert held.ours is not None
            message.provider_id, message.status = held.ours.sid, held.ours.status or "sent"
            audit.record(
                session,
                lead_id=lead.id,
                actor=SYSTEM,
                action="direct_message_recovered",
                at=now,
                message=message.id,
                provider_id=message.provider_id,
                found="sent",
            )
        case Found.NOT_SENT:
            why = "the process sending it stopped before Twilio got it"
            message.status = "failed"
            message.details = {**(message.details or {}), "error": why}
            outbox.publish(
                session,
                Notice.NEEDS_PERSON,
                lead_id=lead.id,
                at=now,
                message_id=message.id,
                text=f"The {described(message)} did not go out ({why}). It was not sent again: "
                "send it again if it still fits.",
            )
            audit.record(
                session,
                lead_id=lead.id,
                actor=SYSTEM,
                action="direct_message_recovered",
                at=now,
                message=message.id,
                found="not sent",
            )
    outbox.publish(
        session, Notice.MESSAGE_STATUS, lead_id=lead.id, at=now, message_id=message.id, status=message.status
    )
    return True
