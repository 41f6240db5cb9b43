"""A lead's words, read and taken: a text, an email, or the web form sent again by someone already a lead.

The webhooks hand over what the vendor sent, already authenticated and checked; this module reads it
with the reply rules (with what reading needs: the lead's zone, and whether a visit is ahead), takes
it through the one use case for inbound messages, and answers HELP when the carrier did not. The
routes only verify, parse and answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import phonenumbers

from bot.core.clock import utc
from bot.core.reply_classifier import ReplyRules, Understanding, classify_reply, understood
from bot.core.rules import LeadSignal
from bot.store.audit import Actor
from bot.usecases.appointments import upcoming
from bot.usecases.conversations import (
    DirectMessageRefused,
    InboundMessage,
    send_direct,
    take_inbound,
    take_known_contact,
)
from bot.usecases.enrollment import lead_timezones
from bot.usecases.leads import LeadInput, business_named, find_existing
from bot.usecases.services import Services

#: A carrier's own opt-out handling (Twilio's Advanced Opt-Out) names what it matched; it outranks our reading.
CARRIER_OPT_OUT_TYPES = {"STOP": LeadSignal.OPT_OUT, "START": LeadSignal.OPT_IN, "HELP": LeadSignal.HELP}


@dataclass(frozen=True)
class IncomingText:
    """A text from a phone: its E.164 sender, its words, the provider's id and any photos."""

    phone: str
    body: str
    provider_id: str
    #: Each photo or file of an MMS: {"url": ..., "content_type": ...}.
    media: tuple[dict[str, str], ...] = ()
    #: What the carrier's own opt-out handling matched ("STOP", "START", "HELP"), when it did.
    carrier_opt_out: str | None = None


@dataclass(frozen=True)
class IncomingEmail:
    """An email whose sender is verified (SPF or DKIM), with the quoted history already cut."""

    email: str
    body: str
    subject: str | None
    message_id: str
    headers: dict[str, str] = field(default_factory=dict)


def reader_facts(
    services: Services,
    channel: str,
    *,
    phone: str | None = None,
    email: str | None = None,
    business: str | None = None,
) -> tuple[str, datetime | None]:
    """What reading a message needs: the lead's time zone, and when the visit ahead is (the visit rules apply).

    The lead is `business`'s (its slug; None: the deployment's single business).
    A lead opted out on this channel has no visit rules: their YES is the carrier's opt-in.
    """
    owner = business_named(services, business)
    with services.session_factory() as session:
        lead = find_existing(session, phone, email, business=owner.slug)
        if lead is None:
            return owner.timezone.key, None
        opted_out = lead.sms_opted_out_at if channel == "sms" else lead.email_opted_out_at
        visit = upcoming(session, lead.id) if opted_out is None else None
        return lead_timezones(lead, owner)[0], (utc(visit.start_at) if visit is not None else None)


def _read(
    services: Services,
    rules: ReplyRules,
    body: str,
    channel: str,
    *,
    phone: str | None = None,
    email: str | None = None,
    business: str | None = None,
    **extra: Any,
) -> Understanding:
    zone, visit_at = reader_facts(services, channel, phone=phone, email=email, business=business)
    return classify_reply(
        body,
        rules=rules,
        channel=channel,
        now=services.clock.now(),
        lead_timezone=zone,
        appointment_ahead=visit_at is not None,
        visit_at=visit_at,
        **extra,
    )


def take_text(services: Services, rules: ReplyRules, text: IncomingText, *, business: str | None = None) -> None:
    """A text from a lead (or someone new): read, taken once, and HELP answered when the carrier did not.

    The text was sent to `business`'s number (its slug; None: the deployment's single business).
    """
    owner = business_named(services, business)
    understanding = _read(services, rules, text.body, "sms", phone=text.phone, business=owner.slug)
    signal = CARRIER_OPT_OUT_TYPES.get((text.carrier_opt_out or "").upper()) or LeadSignal(
        understanding.reply_class.value
    )
    details: dict[str, Any] = {**understood(understanding), "num_media": str(len(text.media))}
    if text.media:
        details["media"] = list(text.media)
        if not text.body.strip() or signal == LeadSignal.AUTO_REPLY:
            # Phones send no photo by themselves: a photo is a person writing, and a person reads it.
            signal = LeadSignal.PLAIN
            details["read_as"] = "a photo: a person wrote, so a person answers"
    body = text.body if text.body.strip() or not text.media else _photo_words(len(text.media))
    result = take_inbound(
        services,
        InboundMessage(
            channel="sms",
            sender=text.phone,
            body=body,
            signal=signal,
            provider_id=text.provider_id,
            requested_time=understanding.requested_time,
            details=details,
            opt_out_channels=understanding.opt_out_channels if signal == LeadSignal.OPT_OUT else (),
            unclear_time=understanding.unclear_time,
        ),
        business=owner.slug,
    )
    if result.applied and signal == LeadSignal.HELP and text.carrier_opt_out is None:
        # The carrier answers HELP itself when its opt-out handling matched; otherwise we do, once.
        try:
            send_direct(
                services,
                result.lead_id,
                channel="sms",
                author=Actor.lead(result.lead_id),
                body=f"{owner.name}: for help call {_national(owner.phone)}. Reply STOP to opt out.",
            )
        except DirectMessageRefused:
            pass  # opted out or unreachable: HELP gets no answer from us, by the same rule as everything


def take_email(services: Services, rules: ReplyRules, email: IncomingEmail, *, business: str | None = None) -> None:
    """An email from a lead (or someone new) whose sender is verified: read and taken once.

    The email was sent to `business`'s inbound address (its slug; None: the deployment's single business).
    """
    slug = business_named(services, business).slug
    understanding = _read(
        services,
        rules,
        email.body,
        "email",
        email=email.email,
        business=slug,
        headers=email.headers,
        subject=email.subject,
    )
    take_inbound(
        services,
        InboundMessage(
            channel="email",
            sender=email.email,
            body=email.body,
            subject=email.subject,
            signal=LeadSignal(understanding.reply_class.value),
            provider_id=email.message_id[:100],
            requested_time=understanding.requested_time,
            details=understood(understanding),
            opt_out_channels=understanding.opt_out_channels,
            unclear_time=understanding.unclear_time,
        ),
        business=slug,
    )


def take_form_again(
    services: Services, rules: ReplyRules, lead_id: int, data: LeadInput, *, business: str | None = None
) -> None:
    """An ongoing lead sent `business`'s form again (its slug; None: the deployment's single business):
    their thread has it, understood like any reply."""
    body = data.message or "(sent the web form again, with no message)"
    understanding = _read(
        services, rules, data.message or "", "email", phone=data.phone, email=data.email, business=business
    )
    take_known_contact(
        services,
        lead_id,
        InboundMessage(
            channel="form",
            sender=data.phone or data.email or "",
            body=body,
            signal=LeadSignal(understanding.reply_class.value),
            provider_id=None,
            requested_time=understanding.requested_time,
            details={**understood(understanding), "source": data.source},
            opt_out_channels=understanding.opt_out_channels,
            unclear_time=understanding.unclear_time,
        ),
    )


def _photo_words(count: int) -> str:
    return "(sent a photo)" if count == 1 else f"(sent {count} photos)"


def _national(phone: str) -> str:
    return phonenumbers.format_number(phonenumbers.parse(phone), phonenumbers.PhoneNumberFormat.NATIONAL)
