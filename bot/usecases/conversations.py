"""Messages outside the playbook: what a lead sends in, and what a person or the bot answers directly."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.core.business import Business
from bot.core.ports import OutgoingEmail, OutgoingSms, PermanentSendError, SendReceipt, TransientSendError
from bot.core.requested_time import UnclearTime
from bot.core.rules import Decision, LeadSignal, signal_for_lead
from bot.store import audit, consent, outbox
from bot.store.audit import Actor
from bot.store.consent import ConsentMethod
from bot.store.lead_locks import taking_lead
from bot.store.models import CallTask, Lead, Message
from bot.store.outbox import Notice
from bot.usecases.intake import take_in_and_send
from bot.usecases.lead_actions import on_missed_call, publish_media, receive_message
from bot.usecases.leads import LeadInput, add_lead, business_named, find_existing
from bot.usecases.render_context import lead_context
from bot.usecases.send_outcomes import record_direct_answer
from bot.usecases.senders import email_from, sms_from
from bot.usecases.services import Services

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InboundMessage:
    """A message from a lead, already authenticated and understood."""

    channel: str  # "sms" or "email"
    sender: str  # E.164 phone or email address
    body: str
    signal: LeadSignal
    provider_id: str | None
    subject: str | None = None
    requested_time: datetime | None = None
    details: dict | None = None
    #: The channels an opt-out ends (bot.core.reply_classifier.Understanding); empty: the one it came on.
    opt_out_channels: tuple[str, ...] = ()
    #: A time named but not settled ("3pm or tuesday"): the call task shows the words and candidates.
    unclear_time: UnclearTime | None = None


@dataclass(frozen=True)
class InboundResult:
    lead_id: int
    decision: Decision | None
    #: False when the same provider message was already applied (a redelivery).
    applied: bool
    lead_created: bool = False


def already_received(session: Session, channel: str, provider_id: str | None, *, lead_id: int) -> bool:
    """Whether the lead already has this provider message (one email to two businesses is one to each)."""
    if not provider_id:
        return False
    return (
        session.scalar(
            select(Message.id).where(
                Message.lead_id == lead_id, Message.channel == channel, Message.provider_id == provider_id
            )
        )
        is not None
    )


def take_inbound(services: Services, message: InboundMessage, *, business: str | None = None) -> InboundResult:
    """Apply a message from a lead once: find (or create) the lead, store it, change course.

    The message was sent to `business` (its slug; None: the deployment's single business): its sender is
    that business's lead (or becomes one), whatever other businesses know the same phone or email. A
    STOP stops only that business's texts.
    """
    owner = business_named(services, business)
    now = services.clock.now()
    with services.session_factory.begin() as session:
        lead = find_existing(session, *_contact(message), business=owner.slug)
        if lead is not None and already_received(session, message.channel, message.provider_id, lead_id=lead.id):
            return InboundResult(lead.id, None, applied=False)
        created = False
        if lead is None:
            enroll = message.signal not in (LeadSignal.OPT_OUT, LeadSignal.AUTO_REPLY)
            lead = _new_lead(session, services, message, now, enroll=enroll, business=owner)
            created = True
            # Noted before anything is dispatched: the instant answer to this text may go by text.
            _note_lead_started(session, lead, message, now)
        lead_id = lead.id
    # The lead lock makes a STOP wait for a send already under way, and every later send see the STOP.
    try:
        with taking_lead(services, lead_id) as (session, lead):
            assert lead is not None
            if already_received(session, message.channel, message.provider_id, lead_id=lead_id):
                return InboundResult(lead_id, None, applied=False)
            if not created:
                _note_lead_started(session, lead, message, now)
            message = _as_read_for(lead, message)
            if created and message.signal not in (LeadSignal.OPT_OUT, LeadSignal.OPT_IN, LeadSignal.HELP):
                # A new lead's first words are the inquiry itself, not a reply to pause on.
                _store_only(session, lead, message, now)
                decision = None
            else:
                decision = receive_message(
                    session,
                    services,
                    lead,
                    channel=message.channel,
                    body=message.body,
                    signal=message.signal,
                    now=now,
                    provider_id=message.provider_id,
                    subject=message.subject,
                    requested_time=message.requested_time,
                    details=message.details,
                    opt_out_channels=message.opt_out_channels,
                    unclear_time=message.unclear_time,
                )
    except IntegrityError:
        # Another process stored the same provider message first: a redelivery, already applied.
        return InboundResult(lead_id, None, applied=False)
    if created:
        services.send_due_now(lead_id)  # a lead who texted or emailed first gets the instant answer at once
    else:
        services.wake_dispatcher()
    return InboundResult(lead_id, decision, applied=True, lead_created=created)


#: How much of an unverified email the team sees in the thread (the rest may be anything at all).
UNVERIFIED_EXCERPT = 300


def take_unverified_email(
    services: Services, sender: str, subject: str | None, body: str, verdict: str, *, business: str | None = None
) -> int | None:
    """An email whose sender is not proven: the lead's thread shows it, and nothing about the lead changes.

    No opt-out, no new lead, no reply read into it, no email back: a person decides whether it is real.
    Returns the lead it was shown to, if the address is a lead's of `business` (its slug; None: the
    deployment's single business).
    """
    slug = business_named(services, business).slug
    now = services.clock.now()
    with services.session_factory.begin() as session:
        lead = find_existing(session, None, sender, business=slug)
        if lead is None:
            log.warning("an email whose sender could not be verified (%s) matched no lead: ignored", verdict)
            return None
        excerpt = " ".join(body.split())
        if len(excerpt) > UNVERIFIED_EXCERPT:
            excerpt = excerpt[:UNVERIFIED_EXCERPT] + "…"
        outbox.publish(
            session,
            Notice.NEEDS_PERSON,
            lead_id=lead.id,
            at=now,
            text=(
                f"An email in this lead's name could not be verified as theirs ({verdict}), so it changed nothing: "
                f"not read as a reply, no opt-out, nothing sent back. If it is really from them, answer them yourself. "
                f"Subject: {subject or '(none)'}. It said: {excerpt or '(no text)'}"
            ),
        )
        return lead.id


def take_known_contact(services: Services, lead_id: int, message: InboundMessage) -> Decision:
    """A known lead got in touch another way (the web form again): their thread has it, read like a reply."""
    now = services.clock.now()
    with taking_lead(services, lead_id) as (session, lead):
        assert lead is not None
        decision = receive_message(
            session,
            services,
            lead,
            channel=message.channel,
            body=message.body,
            signal=message.signal,
            now=now,
            provider_id=message.provider_id,
            subject=message.subject,
            requested_time=message.requested_time,
            details=message.details,
            opt_out_channels=message.opt_out_channels,
            unclear_time=message.unclear_time,
        )
    services.wake_dispatcher()
    return decision


@dataclass(frozen=True)
class MissedCallAnswer:
    """What became of a missed call, so the voice answer says what will happen."""

    lead_id: int
    #: When the team calls back (a known lead), or None (a new lead: the sequence's text goes out).
    call_back_at: datetime | None
    texted: bool


def take_missed_call(services: Services, phone: str, call_sid: str, *, business: str | None = None) -> MissedCallAnswer:
    """Apply a missed call once: a known ongoing lead gets a call-back task, anyone else the instant text.

    The call was to `business` (its slug; None: the deployment's single business), and the caller is
    that business's lead or becomes one.
    The call is noted as applied in the same transaction as what it did, so a call Twilio asks
    about again is answered the same way and never does anything twice, even across a crash.
    """
    from bot.usecases.delivery import first_delivery
    from bot.usecases.leads import ONGOING_STAGES

    slug = business_named(services, business).slug
    now = services.clock.now()
    with services.session_factory() as session:
        known = find_existing(session, phone, None, business=slug)
        ongoing = known is not None and (known.stage in ONGOING_STAGES or known.sms_opted_out_at is not None)
        known_id = known.id if known is not None else None
    if not ongoing:
        texted: list[bool] = []

        def text_back_answers_the_call(session: Session, lead: Lead, _result: object) -> None:
            if not first_delivery(session, "twilio-call", call_sid, now, business=slug):
                raise _CallAlreadyTaken
            if lead.phone == phone:
                consent.lead_started(
                    session, lead, ConsentMethod.LEAD_CALLED, now=now, evidence=f"the lead called us (call {call_sid})"
                )
            texted.append(lead.sms_answer_allowed)

        data = LeadInput(phone=phone, source="missed_call", message="Called and could not get through")
        try:
            result = take_in_and_send(
                services, data, actor=Actor.lead(0), also=text_back_answers_the_call, business=slug
            )
        except _CallAlreadyTaken:  # Twilio asked again about the same call: say the same, do nothing twice
            with services.session_factory() as session:
                lead = find_existing(session, phone, None, business=slug)
                return MissedCallAnswer(lead.id if lead else 0, None, texted=bool(lead and lead.sms_answer_allowed))
        return MissedCallAnswer(result.lead_id, None, texted=texted[0])
    assert known_id is not None
    with taking_lead(services, known_id) as (session, lead):
        assert lead is not None
        task: CallTask | None
        if first_delivery(session, "twilio-call", call_sid, now, business=slug):
            task = on_missed_call(session, services, lead, now=now, provider_id=call_sid)
        else:  # Twilio asked again about the same call: say the same, do nothing twice
            from bot.usecases.call_tasks import open_tasks

            task = next(iter(sorted(open_tasks(session, known_id), key=lambda t: t.id, reverse=True)), None)
        due = task.due_at if task is not None else now
    services.wake_dispatcher()
    return MissedCallAnswer(known_id, due, texted=False)


class _CallAlreadyTaken(Exception):
    """This call was applied before: what the first time did stands."""


def _note_lead_started(session: Session, lead: Lead, message: InboundMessage, now: datetime) -> None:
    """A text from the lead (not STOP, not an automatic reply, not opting back in) lets us answer it by text."""
    opting_in = message.signal == LeadSignal.OPT_IN and lead.sms_opted_out_at is not None  # consent by keyword
    if message.channel == "sms" and message.signal not in (LeadSignal.OPT_OUT, LeadSignal.AUTO_REPLY) and not opting_in:
        consent.lead_started(
            session,
            lead,
            ConsentMethod.LEAD_TEXTED,
            now=now,
            evidence=f"the lead texted us first (message {message.provider_id})",
        )


def _as_read_for(lead: Lead, message: InboundMessage) -> InboundMessage:
    """Read the message as this lead means it: YES is an opt-in only from a lead who opted out."""
    opted_out = lead.sms_opted_out_at if message.channel == "sms" else lead.email_opted_out_at
    signal = signal_for_lead(message.signal, opted_out=opted_out is not None)
    if signal == message.signal:
        return message
    details = {**(message.details or {}), "read_as": f"{signal}: an opt-in keyword from a lead who had not opted out"}
    return replace(message, signal=signal, details=details)


def _contact(message: InboundMessage) -> tuple[str | None, str | None]:
    return (message.sender, None) if message.channel == "sms" else (None, message.sender)


def _new_lead(
    session: Session, services: Services, message: InboundMessage, now: datetime, *, enroll: bool, business: Business
) -> Lead:
    fields = {"phone": message.sender} if message.channel == "sms" else {"email": message.sender}
    data = LeadInput.parse(
        {**fields, "message": message.body, "source": message.channel}, default_region=services.default_region
    )
    result = add_lead(
        session,
        data,
        business=business,
        sequence=services.playbooks_of(business.slug).get(),
        now=now,
        actor=Actor.lead(0),
        enroll=enroll,
    )
    lead = session.get(Lead, result.lead_id)
    assert lead is not None
    return lead


def _store_only(session: Session, lead: Lead, message: InboundMessage, now: datetime) -> None:
    stored = Message(
        lead_id=lead.id,
        direction="in",
        channel=message.channel,
        provider_id=message.provider_id,
        subject=message.subject,
        body=message.body,
        classification=str(message.signal),
        status="received",
        details=message.details or {},
        created_at=now,
    )
    session.add(stored)
    session.flush()
    outbox.publish(
        session,
        Notice.MESSAGE_RECEIVED,
        lead_id=lead.id,
        at=now,
        message_id=stored.id,
        channel=message.channel,
        reply_class=str(message.signal),
        requested_time=None,
    )
    publish_media(session, stored, now=now)


class DirectMessageRefused(Exception):
    """This message cannot go to the lead; the message says why."""


def send_direct(
    services: Services,
    lead_id: int,
    *,
    body: str,
    author: Actor,
    channel: str | None = None,
    subject: str | None = None,
    thread_message_ts: str | None = None,
) -> Message:
    """Send a one-off message to a lead (a team reply, the HELP answer), never past an opt-out.

    `thread_message_ts` is the team member's own Slack message holding the text (a `!reply` in the
    lead's thread): Slack then shows only how the send fared, not the words a second time.
    """
    now = services.clock.now()
    with services.lead_locks.hold(lead_id):
        with services.session_factory.begin() as session:
            lead = services.lead_locks.lock_row(session, lead_id)
            if lead is None:
                raise DirectMessageRefused(f"there is no lead {lead_id}")
            channel = channel or ("sms" if lead.phone else "email")
            if channel == "sms" and not lead.sms_answer_allowed:
                raise DirectMessageRefused(_why_not(lead, "sms"))
            if channel == "email" and not lead.email_allowed:
                raise DirectMessageRefused(_why_not(lead, "email"))
            message = Message(
                lead_id=lead.id,
                direction="out",
                channel=channel,
                body=body,
                subject=subject,
                status="sending",
                author=author.id or str(author.type),
                created_at=now,
                details={"thread_message_ts": thread_message_ts} if thread_message_ts else {},
            )
            session.add(message)
            session.flush()
            message_id, to = message.id, (lead.phone if channel == "sms" else lead.email)
            # From the lead's business, in its wording: never another clinic's number or address.
            business = services.business_of(lead.business)
            context = lead_context(lead, business, services.public_base_url) if channel == "email" else None
        outcome = _send(services, business, channel, to, body, subject, message_id, context)
        with services.session_factory.begin() as session:
            answered = session.get(Message, message_id)
            assert answered is not None
            record_direct_answer(session, answered, outcome, now=now)
            audit.record(
                session,
                lead_id=lead_id,
                actor=author,
                action="direct_message",
                at=now,
                channel=channel,
                status=answered.status,
            )
            outbox.publish(
                session, Notice.MESSAGE_STATUS, lead_id=lead_id, at=now, message_id=message_id, status=answered.status
            )
    return answered


def _why_not(lead: Lead, channel: str) -> str:
    if channel == "sms":
        if not lead.phone:
            return "this lead has no phone number"
        if lead.sms_opted_out_at is not None:
            return "this lead opted out of texts; nothing can be texted to them until they text START"
        if lead.sms_unreachable_reason:
            return f"texts cannot reach this lead: {lead.sms_unreachable_reason}"
        return (
            "there is no SMS consent on record for this lead and they have not texted or called us: "
            f'reply by email, or record their consent with `/followup consent {lead.id} verbal "what they said"`'
        )
    if not lead.email:
        return "this lead has no email address"
    return "this lead unsubscribed from email"


def _send(
    services: Services,
    business: Business,
    channel: str,
    to: str | None,
    body: str,
    subject: str | None,
    message_id: int,
    context: dict | None,
) -> SendReceipt | PermanentSendError | TransientSendError:
    assert to is not None
    reference = f"message-{message_id}"
    try:
        if channel == "sms":
            if services.sms is None:
                return PermanentSendError("SMS is not configured (set the TWILIO_* settings)")
            return services.sms.send_sms(
                OutgoingSms(
                    to=to,
                    body=body,
                    reference=reference,
                    status_callback=f"{services.public_base_url}/webhooks/twilio/status",
                    sender=sms_from(services, business),
                )
            )
        if services.email is None:
            return PermanentSendError("email is not configured (set the SENDGRID_* settings)")
        assert context is not None
        # The subject is a person's words (or ours around the business's name): a value, never a template.
        rendered = services.renderer_of(business.slug).render_email_as_written(
            "_direct_message", subject or f"A note from {business.name}", {**context, "body": body}
        )
        return services.email.send_email(
            OutgoingEmail.to_lead(
                to=to,
                subject=rendered.subject,
                text=rendered.text,
                html=rendered.html,
                reference=reference,
                unsubscribe_url=context["links"]["unsubscribe"],
                custom_args={"message_id": str(message_id)},
                sender=email_from(services, business),
            )
        )
    except (PermanentSendError, TransientSendError) as error:
        return error
