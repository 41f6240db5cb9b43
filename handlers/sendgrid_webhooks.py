"""SendGrid's webhooks: replies by email (Inbound Parse) and delivery events (the signed Event Webhook).

Inbound Parse is guarded by a token (in the URL or as basic auth's password, since Parse can post to
`https://user:pass@host/...`); the Event Webhook by SendGrid's ECDSA signature. An unset secret closes
its route (503). An inbound email belongs to the business whose inbound address it was sent to (to
each, when sent to several); an address of no business here is refused (404), nothing stored. An email
that proves no sender (no SPF or DKIM pass) changes nothing: a person sees it.
"""

from __future__ import annotations

import hashlib
import json
import re
from email.parser import HeaderParser
from email.utils import parseaddr
from html import unescape

from mailparser_reply import EmailReplyParser
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.core.contacts import InvalidEmail, normalize_email
from bot.core.email_auth import check_sender
from bot.core.reply_classifier import ReplyRules
from bot.usecases.conversations import take_unverified_email
from bot.usecases.delivery import apply_email_events
from bot.usecases.replies import IncomingEmail, take_email
from bot.usecases.services import Services
from handlers.business_routing import businesses_emailed
from handlers.http_edge import (
    MAX_EMAIL_BODY,
    BadRequest,
    endpoint,
    form_fields,
    load_json,
    read_body,
    read_form,
    require_inbound_parse_token,
)

#: SendGrid posts its events in batches of at most 768 KB; a post this big is not SendGrid's.
MAX_EVENTS_BODY = 2 * 1024 * 1024
#: Events in one post: a full 768 KB batch of the smallest events SendGrid sends is under this.
MAX_EVENTS_PER_POST = 10_000
#: What is kept of a reply's text: the words the lead wrote now.
MAX_REPLY_TEXT = 5000


class SendgridWebhooks:
    """POST /webhooks/sendgrid/inbound and /events, bound to the services, the two secrets and the reply rules."""

    def __init__(
        self, services: Services, *, inbound_token: str | None, events_public_key: str | None, reply_rules: ReplyRules
    ):
        self.services = services
        self.inbound_token = inbound_token
        self.events_public_key = events_public_key
        self.reply_rules = reply_rules

    def routes(self) -> list[Route]:
        return [
            Route("/webhooks/sendgrid/inbound", endpoint(self.inbound), methods=["POST"]),
            Route("/webhooks/sendgrid/events", endpoint(self.events), methods=["POST"]),
        ]

    async def inbound(self, request: Request) -> Response:
        require_inbound_parse_token(request, self.inbound_token)
        fields = form_fields(await read_form(request, MAX_EMAIL_BODY))
        sender = sender_address(fields)
        if not sender:
            raise BadRequest(400, "no sender address in 'from' or 'envelope'")
        try:
            email = normalize_email(sender)
        except InvalidEmail as error:
            raise BadRequest(400, f"from: {error}") from error
        headers = HeaderParser().parsestr(fields.get("headers", ""))
        text = fields.get("text") or html_to_text(fields.get("html", ""))
        reply = latest_reply(text)
        message_id = (
            headers.get("Message-ID")
            or hashlib.sha256(f"{email}\n{fields.get('subject', '')}\n{text}".encode()).hexdigest()
        )
        businesses = businesses_emailed(self.services, fields)
        sender_check = check_sender(email, fields.get("SPF"), fields.get("dkim"))
        if not sender_check.verified:
            # Anyone can write any From: an email that does not prove its sender changes nothing.
            for business in businesses:
                await run_in_threadpool(
                    take_unverified_email,
                    self.services,
                    email,
                    fields.get("subject"),
                    reply,
                    sender_check.describe(),
                    business=business.slug,
                )
            return JSONResponse({"ok": True, "verified": False, "applied": False})
        for business in businesses:
            # Sent to two clinics' inbound addresses, it is a message to each: each reads and takes it as its own.
            incoming = IncomingEmail(
                email=email,
                body=reply,
                subject=fields.get("subject"),
                message_id=str(message_id),
                headers={key: str(value) for key, value in headers.items()},
            )
            await run_in_threadpool(take_email, self.services, self.reply_rules, incoming, business=business.slug)
        return JSONResponse({"ok": True})

    async def events(self, request: Request) -> Response:
        if not self.events_public_key:
            raise BadRequest(503, "SENDGRID_WEBHOOK_PUBLIC_KEY is not configured on this server")
        body = await read_body(request, MAX_EVENTS_BODY)
        verify_event_signature(request, body, self.events_public_key)
        events = load_json(body)
        if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
            raise BadRequest(400, "body must be a JSON array of event objects")
        if len(events) > MAX_EVENTS_PER_POST:
            raise BadRequest(413, f"more than {MAX_EVENTS_PER_POST} events in one post")
        result = await run_in_threadpool(apply_email_events, self.services, events)
        return JSONResponse({"applied": result.applied, "ignored_stale": result.ignored_stale})


def sender_address(fields: dict[str, str]) -> str | None:
    """Who sent the email: the envelope's sender when Parse gives one, else the From header's address."""
    try:
        envelope = json.loads(fields.get("envelope") or "{}")
    except json.JSONDecodeError:
        envelope = {}
    if isinstance(envelope, dict) and isinstance(envelope.get("from"), str) and envelope["from"]:
        return envelope["from"]
    address = parseaddr(fields.get("from", ""))[1]
    return address or None


def html_to_text(html: str) -> str:
    return unescape(re.sub(r"<[^>]+>", " ", html)).strip()


def latest_reply(text: str) -> str:
    """Keep only what the lead wrote now: quoted history and signatures go."""
    if not text.strip():
        return ""
    try:
        parsed = EmailReplyParser(languages=["en"]).read(text)
        latest = parsed.replies[0].body if parsed.replies else text
    except Exception:  # noqa: BLE001 - a parser failure must not lose the message: keep it whole
        latest = text
    return (latest or text).strip()[:MAX_REPLY_TEXT]


def verify_event_signature(request: Request, body: bytes, public_key: str) -> None:
    """Check the Event Webhook's ECDSA signature over timestamp + body, as SendGrid's own helper does."""
    from sendgrid.helpers.eventwebhook import EventWebhook

    signature = request.headers.get("x-twilio-email-event-webhook-signature")
    timestamp = request.headers.get("x-twilio-email-event-webhook-timestamp")
    if not signature or not timestamp:
        raise BadRequest(403, "missing SendGrid event webhook signature headers")
    try:
        verified = EventWebhook(public_key).verify_signature(body.decode("utf-8"), signature, timestamp)
    except Exception:  # noqa: BLE001 - a malformed key, signature or body all mean "not verified"
        verified = False
    if not verified:
        raise BadRequest(403, "invalid SendGrid event webhook signature")
