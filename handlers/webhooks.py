"""HTTP webhook routes: verify, parse into a typed value, call one use case, answer."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime, timedelta, timezone
from email.parser import HeaderParser
from email.utils import parseaddr
from typing import Any, Callable

from mailparser_reply import EmailReplyParser
from sqlalchemy import select
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from bot.usecases.appointments import BookingRequest, BookingResult, UnknownLead, take_booking, upcoming
from bot.store.audit import Actor
from bot.core.contacts import InvalidEmail, InvalidPhone, normalize_email, normalize_phone
from bot.usecases.conversations import (
    DirectMessageRefused,
    InboundMessage,
    MissedCallAnswer,
    send_direct,
    take_inbound,
    take_known_contact,
    take_missed_call,
    take_unverified_email,
)
from bot.store.db import is_reachable
from bot.core.email_auth import check_sender
from bot.usecases.delivery import SmsStatusReport, apply_email_events, apply_sms_status
from bot.usecases.enrollment import lead_timezones
from bot.usecases.lead_actions import LeadActionRefused, opt_out, record_booking_link_click
from bot.usecases.render_context import format_local
from bot.store.lead_locks import taking_lead
from bot.channels.twilio_sms import failure_kind
from bot.usecases.leads import InvalidLead, LeadInput, find_existing, take_in_lead
from bot.store.models import Lead
from bot.usecases.render_context import prefilled_booking_link
from bot.core.reply_classifier import ReplyRules, classify_reply, understood
from bot.core.rules import LeadSignal
from bot.usecases.services import Services
from bot.settings import Settings
from handlers.http_edge import (
    MAX_EMAIL_BODY,
    BadRequest,
    appointment_start,
    database_busy,
    form_fields,
    load_json,
    read_body,
    read_form,
    require_bearer,
    require_inbound_parse_token,
    require_twilio_signature,
)

#: What a lead's link token looks like (secrets.token_urlsafe); anything else is not worth a query.
_LINK_TOKEN = re.compile(r"[A-Za-z0-9_-]{8,64}")
#: SendGrid posts its events in batches of at most 768 KB; a post this big is not SendGrid's.
MAX_EVENTS_BODY = 2 * 1024 * 1024
#: Events in one post: a full 768 KB batch of the smallest events SendGrid sends is under this.
MAX_EVENTS_PER_POST = 10_000
#: Twilio delivers at most this many characters in one inbound message.
MAX_SMS_BODY = 1600
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
#: Twilio's own opt-out handling names what it matched; it outranks our reading of the words.
TWILIO_OPT_OUT_TYPES = {"STOP": LeadSignal.OPT_OUT, "START": LeadSignal.OPT_IN, "HELP": LeadSignal.HELP}


def twiml(body: str = EMPTY_TWIML) -> Response:
    return Response(body, media_type="text/xml")


def _endpoint(handler: Callable[[Request], Any]) -> Callable[[Request], Any]:
    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except BadRequest as error:
            return error.response()
        except PoolTimeout:
            return database_busy()

    return endpoint


class Webhooks:
    """The vendor-facing routes, bound to the services and settings they need."""

    def __init__(self, services: Services, settings: Settings, reply_rules: ReplyRules):
        self.services = services
        self.settings = settings
        self.reply_rules = reply_rules

    def routes(self) -> list[Route]:
        return [
            Route("/webhooks/leads", _endpoint(self.new_lead), methods=["POST"]),
            Route("/webhooks/twilio/sms", _endpoint(self.twilio_sms), methods=["POST"]),
            Route("/webhooks/twilio/status", _endpoint(self.twilio_status), methods=["POST"]),
            Route("/webhooks/twilio/voice", _endpoint(self.twilio_voice), methods=["POST"]),
            Route("/webhooks/sendgrid/inbound", _endpoint(self.sendgrid_inbound), methods=["POST"]),
            Route("/webhooks/sendgrid/events", _endpoint(self.sendgrid_events), methods=["POST"]),
            Route("/webhooks/booking", _endpoint(self.booking), methods=["POST"]),
            Route("/b/{token}", _endpoint(self.booking_link), methods=["GET"]),
            Route("/u/{token}", _endpoint(self.unsubscribe), methods=["GET", "POST"]),
            Route("/healthz", _endpoint(self.health), methods=["GET"]),
        ]

    # --- lead intake ---------------------------------------------------------------------------

    async def _fields(self, request: Request) -> dict[str, Any]:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            return form_fields(await read_form(request))
        payload = load_json(await read_body(request) or b"null")
        if not isinstance(payload, dict):
            raise BadRequest(400, "body must be a JSON object or a form")
        return payload

    async def new_lead(self, request: Request) -> Response:
        require_bearer(request, self.settings.lead_webhook_token, "LEAD_WEBHOOK_TOKEN")
        fields = await self._fields(request)
        try:
            data = LeadInput.parse(fields, default_region=self.services.default_region, default_source="web",
                                   sms_countries=self.services.sms_countries)
        except InvalidLead as error:
            raise BadRequest(422, "invalid lead", reasons=error.reasons) from error
        if data.sequence:
            # A name from the sequences directory, never a path; the folder is read off the event loop.
            known = await run_in_threadpool(self.services.playbooks.names)
            if data.sequence not in known or not await run_in_threadpool(self.services.playbooks.has, data.sequence):
                raise BadRequest(422, "invalid lead", known_sequences=known, reasons=[
                    f"sequence: no playbook named {data.sequence!r}; use one of: {', '.join(known) or 'none'}"])
        result = await run_in_threadpool(self._add_lead, data)
        return JSONResponse({"lead_id": result.lead_id, "created": result.created},
                            status_code=201 if result.created else 200)

    def _add_lead(self, data: LeadInput):  # noqa: ANN202 - returns add_lead's result
        services = self.services
        result = take_in_lead(services, data, sequence=services.playbooks.get(data.sequence), actor=Actor.lead(0))
        if result.enrolled:
            services.send_due_now(result.lead_id)
        elif not result.created:
            self._take_form_again(result.lead_id, data)
        return result

    def _take_form_again(self, lead_id: int, data: LeadInput) -> None:
        """An ongoing lead sent the form again: their thread has it, understood like any reply."""
        body = data.message or "(sent the web form again, with no message)"
        zone, ahead = self._reader_facts("email", phone=data.phone, email=data.email)
        understanding = classify_reply(data.message, rules=self.reply_rules, channel="email",
                                       now=self.services.clock.now(), lead_timezone=zone, appointment_ahead=ahead)
        take_known_contact(self.services, lead_id, InboundMessage(
            channel="form", sender=data.phone or data.email or "", body=body,
            signal=LeadSignal(understanding.reply_class.value), provider_id=None,
            requested_time=understanding.requested_time,
            details={**understood(understanding), "source": data.source},
            opt_out_channels=understanding.opt_out_channels, unclear_time=understanding.unclear_time,
        ))

    # --- Twilio --------------------------------------------------------------------------------

    async def _twilio_form(self, request: Request) -> dict[str, str]:
        if not self.settings.twilio_auth_token:  # closed before anything is read
            raise BadRequest(503, "TWILIO_AUTH_TOKEN is not configured on this server")
        params = form_fields(await read_form(request))
        require_twilio_signature(request, params, self.settings.twilio_auth_token, self.settings.public_base_url)
        return params

    async def twilio_sms(self, request: Request) -> Response:
        params = await self._twilio_form(request)
        sid, sender, body = params.get("MessageSid"), params.get("From"), params.get("Body", "")
        if not sid or not sender:
            raise BadRequest(400, "MessageSid and From are required")
        if len(body) > MAX_SMS_BODY:
            raise BadRequest(400, f"Body longer than Twilio's {MAX_SMS_BODY} characters")
        try:
            phone = normalize_phone(sender, self.services.default_region)
        except InvalidPhone as error:
            raise BadRequest(400, f"From: {error}") from error
        _media_of(params)  # a malformed MMS is refused here, before anything is stored
        await run_in_threadpool(self._take_sms, phone, body, sid, params)
        return twiml()

    def _take_sms(self, phone: str, body: str, sid: str, params: dict[str, str]) -> None:
        services = self.services
        zone, ahead = self._reader_facts("sms", phone=phone)
        understanding = classify_reply(body, rules=self.reply_rules, channel="sms", now=services.clock.now(),
                                       lead_timezone=zone, appointment_ahead=ahead)
        signal = TWILIO_OPT_OUT_TYPES.get(params.get("OptOutType", "").upper()) or LeadSignal(
            understanding.reply_class.value)
        media = _media_of(params)
        details: dict[str, Any] = {**understood(understanding), "num_media": params.get("NumMedia", "0")}
        if media:
            details["media"] = media
            if not body.strip() or signal == LeadSignal.AUTO_REPLY:
                # Phones send no photo by themselves: a photo is a person writing, and a person reads it.
                signal = LeadSignal.PLAIN
                details["read_as"] = "a photo: a person wrote, so a person answers"
        result = take_inbound(services, InboundMessage(
            channel="sms", sender=phone, body=body if body.strip() or not media else _photo_words(len(media)),
            signal=signal, provider_id=sid, requested_time=understanding.requested_time, details=details,
            opt_out_channels=understanding.opt_out_channels if signal == LeadSignal.OPT_OUT else (),
            unclear_time=understanding.unclear_time,
        ))
        if result.applied and signal == LeadSignal.HELP and "OptOutType" not in params:
            # Twilio answers HELP itself when its opt-out handling matched; otherwise we do, once.
            business = services.business
            try:
                send_direct(services, result.lead_id, channel="sms", author=Actor.lead(result.lead_id),
                            body=f"{business.name}: for help call {_national(business.phone)}. "
                                 "Reply STOP to opt out.")
            except DirectMessageRefused:
                pass  # opted out or unreachable: HELP gets no answer from us, by the same rule as everything

    def _reader_facts(self, channel: str, *, phone: str | None = None, email: str | None = None) -> tuple[str, bool]:
        """What reading a reply needs: the lead's time zone, and whether a visit is ahead (the visit rules apply).

        A lead opted out on this channel has no visit rules: their YES is the carrier's opt-in.
        """
        with self.services.session_factory() as session:
            lead = find_existing(session, phone, email)
            if lead is None:
                return self.services.business.timezone.key, False
            opted_out = lead.sms_opted_out_at if channel == "sms" else lead.email_opted_out_at
            ahead = opted_out is None and upcoming(session, lead.id) is not None
            return lead_timezones(lead, self.services.business)[0], ahead

    async def twilio_status(self, request: Request) -> Response:
        params = await self._twilio_form(request)
        sid, status = params.get("MessageSid"), params.get("MessageStatus") or params.get("SmsStatus")
        if not sid or not status:
            raise BadRequest(400, "MessageSid and MessageStatus are required")
        code = params.get("ErrorCode") or None
        report = SmsStatusReport(message_sid=sid, status=status.lower(), error_code=code, failure=failure_kind(code))
        await run_in_threadpool(apply_sms_status, self.services, report)
        return Response(status_code=204)

    async def twilio_voice(self, request: Request) -> Response:
        params = await self._twilio_form(request)
        call_sid, caller = params.get("CallSid"), params.get("From")
        if not call_sid or not caller:
            raise BadRequest(400, "CallSid and From are required")
        try:
            phone = normalize_phone(caller, self.services.default_region)
        except InvalidPhone:
            phone = None  # a withheld or odd caller id: nothing to text back, but still answer the call
        answer = await run_in_threadpool(take_missed_call, self.services, phone, call_sid) if phone else None
        from xml.sax.saxutils import escape

        say = self._missed_call_words(answer)
        return twiml(f'<?xml version="1.0" encoding="UTF-8"?><Response><Say>{escape(say)}</Say><Hangup/></Response>')

    def _missed_call_words(self, answer: MissedCallAnswer | None) -> str:
        """What the caller hears: exactly what happens next, no more."""
        business = self.services.business
        opening = f"Thanks for calling {business.name}. Sorry we missed you."
        if answer is None:
            return f"{opening} We could not see your number, so please call us again or leave us a text."
        if answer.call_back_at is not None:
            now = self.services.clock.now()
            if answer.call_back_at <= now + timedelta(minutes=1):
                return f"{opening} We have your number, and someone from our team will call you back shortly."
            with self.services.session_factory() as session:
                lead = session.get(Lead, answer.lead_id)
                zone = (lead.timezone if lead is not None and lead.timezone else None) or business.timezone
            return (f"{opening} We have your number, and someone from our team will call you back when we "
                    f"open, {format_local(answer.call_back_at, zone)}.")
        if answer.texted:
            return f"{opening} We will text you right away, and our team will follow up."
        return f"{opening} We have your number, and our team will follow up."

    # --- SendGrid ------------------------------------------------------------------------------

    async def sendgrid_inbound(self, request: Request) -> Response:
        require_inbound_parse_token(request, self.settings.sendgrid_inbound_token)
        fields = form_fields(await read_form(request, MAX_EMAIL_BODY))
        sender = _sender_address(fields)
        if not sender:
            raise BadRequest(400, "no sender address in 'from' or 'envelope'")
        try:
            email = normalize_email(sender)
        except InvalidEmail as error:
            raise BadRequest(400, f"from: {error}") from error
        headers = HeaderParser().parsestr(fields.get("headers", ""))
        header_map = {k: str(v) for k, v in headers.items()}
        text = fields.get("text") or _html_to_text(fields.get("html", ""))
        reply = _strip_quoted(text)
        message_id = headers.get("Message-ID") or hashlib.sha256(
            f"{email}\n{fields.get('subject', '')}\n{text}".encode()).hexdigest()
        sender_check = check_sender(email, fields.get("SPF"), fields.get("dkim"))
        if not sender_check.verified:
            # Anyone can write any From: an email that does not prove its sender changes nothing.
            await run_in_threadpool(take_unverified_email, self.services, email, fields.get("subject"), reply,
                                    sender_check.describe())
            return JSONResponse({"ok": True, "verified": False, "applied": False})
        await run_in_threadpool(self._take_email, email, reply, fields.get("subject"), str(message_id), header_map)
        return JSONResponse({"ok": True})

    def _take_email(self, email: str, body: str, subject: str | None, message_id: str,
                    headers: dict[str, str]) -> None:
        zone, ahead = self._reader_facts("email", email=email)
        understanding = classify_reply(body, rules=self.reply_rules, channel="email",
                                       now=self.services.clock.now(), lead_timezone=zone,
                                       headers=headers, subject=subject, appointment_ahead=ahead)
        take_inbound(self.services, InboundMessage(
            channel="email", sender=email, body=body, subject=subject,
            signal=LeadSignal(understanding.reply_class.value), provider_id=message_id[:100],
            requested_time=understanding.requested_time, details=understood(understanding),
            opt_out_channels=understanding.opt_out_channels, unclear_time=understanding.unclear_time,
        ))

    async def sendgrid_events(self, request: Request) -> Response:
        key = self.settings.sendgrid_webhook_public_key
        if not key:
            raise BadRequest(503, "SENDGRID_WEBHOOK_PUBLIC_KEY is not configured on this server")
        body = await read_body(request, MAX_EVENTS_BODY)
        _verify_sendgrid_signature(request, body, key)
        events = load_json(body)
        if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
            raise BadRequest(400, "body must be a JSON array of event objects")
        if len(events) > MAX_EVENTS_PER_POST:
            raise BadRequest(413, f"more than {MAX_EVENTS_PER_POST} events in one post")
        result = await run_in_threadpool(apply_email_events, self.services, events)
        return JSONResponse({"applied": result.applied, "ignored_stale": result.ignored_stale})

    # --- bookings and links ----------------------------------------------------------------------

    async def booking(self, request: Request) -> Response:
        require_bearer(request, self.settings.booking_webhook_token, "BOOKING_WEBHOOK_TOKEN")
        fields = await self._fields(request)
        booking = _booking_request(fields, self.services.default_region, self.services.clock.now())
        return await self._take_booking(booking)

    async def _take_booking(self, booking: BookingRequest) -> Response:
        result = await run_in_threadpool(self._book, booking)
        return JSONResponse({"lead_id": result.lead_id, "appointment_id": result.appointment_id,
                             "created": result.created, "lead_created": result.lead_created,
                             "warnings": list(result.warnings)}, status_code=201 if result.created else 200)

    def _book(self, booking: BookingRequest) -> BookingResult:
        try:
            result = take_booking(self.services, booking)
        except UnknownLead as error:
            raise BadRequest(404, str(error)) from error
        except LeadActionRefused as error:
            raise BadRequest(422, str(error)) from error
        if result.created:
            self.services.wake_dispatcher()
            self.services.wake_poster()
        return result

    async def booking_link(self, request: Request) -> Response:
        token = request.path_params["token"]
        target = self.services.business.booking_link
        if _LINK_TOKEN.fullmatch(token):
            # A HEAD (Starlette answers it on GET routes) and a link scanner's fetch are no person's click.
            person = request.method == "GET" and not is_link_scanner(request.headers.get("user-agent", ""))
            who = await run_in_threadpool(self._record_click, token, person)
            if who is not None:
                target = prefilled_booking_link(target, name=who[0], email=who[1])
        return RedirectResponse(target, status_code=302)

    def _record_click(self, token: str, person: bool) -> tuple[str, str | None] | None:
        services = self.services
        lead_id = self._lead_by_link(token)
        if lead_id is None:
            return None
        with taking_lead(services, lead_id) as (session, lead):
            assert lead is not None
            now = services.clock.now()
            if person and not _just_delivered(session, lead.id, now):
                record_booking_link_click(session, lead, now=now)
            return lead.name, lead.email

    def _lead_by_link(self, token: str, key: Any = Lead.link_token) -> int | None:
        """The lead a link's token names: the booking link's by default, the unsubscribe link's when asked."""
        with self.services.session_factory() as session:
            return session.scalar(select(Lead.id).where(key == token))

    async def unsubscribe(self, request: Request) -> Response:
        """GET (and HEAD) show the confirmation page; only its POST, or RFC 8058's one-click POST, unsubscribes."""
        token = request.path_params["token"]
        if request.method != "POST":
            return Response(_UNSUBSCRIBE_PAGE.format(name=_html(self.services.business.name)),
                            media_type="text/html")
        done = _LINK_TOKEN.fullmatch(token) is not None and await run_in_threadpool(self._unsubscribe, token)
        if not done:
            raise BadRequest(404, "unknown unsubscribe link")
        return Response(_UNSUBSCRIBED_PAGE.format(name=_html(self.services.business.name)), media_type="text/html")

    def _unsubscribe(self, token: str) -> bool:
        services = self.services
        lead_id = self._lead_by_link(token, Lead.unsubscribe_token)
        if lead_id is None:
            return False
        with taking_lead(services, lead_id) as (session, lead):
            assert lead is not None
            opt_out(session, lead, "email", now=services.clock.now(), actor=Actor.lead(lead.id))
            from bot.store import outbox
            from bot.store.outbox import Notice

            outbox.publish(session, Notice.DECISION, lead_id=lead.id, at=services.clock.now(),
                           text="unsubscribed from email by link: no more email")
            outbox.publish(session, Notice.LEAD_CHANGED, lead_id=lead.id, at=services.clock.now())
        return True

    async def health(self, request: Request) -> Response:
        try:
            await run_in_threadpool(is_reachable, self.services.session_factory.kw["bind"])
        except Exception as error:  # noqa: BLE001 - any database failure means not healthy
            return JSONResponse({"ok": False, "error": f"database: {type(error).__name__}"}, status_code=503)
        return JSONResponse({"ok": True})


_UNSUBSCRIBE_PAGE = """<!doctype html><meta charset="utf-8"><title>Unsubscribe</title>
<body style="font-family:sans-serif;max-width:32em;margin:3em auto">
<h1>Unsubscribe from {name}</h1><p>Stop all email from {name}?</p>
<form method="post"><button type="submit">Unsubscribe</button></form></body>"""
_UNSUBSCRIBED_PAGE = """<!doctype html><meta charset="utf-8"><title>Unsubscribed</title>
<body style="font-family:sans-serif;max-width:32em;margin:3em auto">
<h1>You are unsubscribed</h1><p>{name} will not email you again.</p></body>"""


#: Mail and chat link scanners fetch every link in a message the moment it arrives; their fetches are
#: not a lead clicking. Matched case-insensitively anywhere in the User-Agent.
LINK_SCANNER_AGENTS = (
    "bot", "crawl", "spider", "preview", "scan", "slurp", "facebookexternalhit", "whatsapp", "skypeuripreview",
    "microsoft office", "ms-office", "outlook-ios", "safelinks", "proofpoint", "mimecast", "barracuda",
    "google-safety", "googleimageproxy", "yahoomailproxy", "curl/", "wget/", "python-", "go-http-client",
    "okhttp", "java/", "libwww", "httpclient",
)
#: A fetch this soon after the last message to the lead went out is a scanner's, not a person's.
SCANNER_WINDOW = timedelta(seconds=30)


def is_link_scanner(user_agent: str) -> bool:
    """Whether a User-Agent is a machine's (or absent, as no browser's is)."""
    agent = user_agent.strip().lower()
    return not agent or any(marker in agent for marker in LINK_SCANNER_AGENTS)


def _just_delivered(session, lead_id: int, now: datetime) -> bool:  # noqa: ANN001 - a Session
    """Whether the lead's last message from us went out within SCANNER_WINDOW of now."""
    from bot.store.models import Message

    last = session.scalar(select(Message.created_at).where(Message.lead_id == lead_id, Message.direction == "out")
                          .order_by(Message.created_at.desc()).limit(1))
    if last is None:
        return False
    if last.tzinfo is None:
        last = last.replace(tzinfo=timezone.utc)
    return now - last < SCANNER_WINDOW


#: Twilio sends at most this many media items with one message.
MAX_MEDIA = 10


def _media_of(params: dict[str, str]) -> list[dict[str, str]]:
    """The media items of an inbound MMS (MediaUrl{N} and MediaContentType{N}), as stored with the message."""
    count = params.get("NumMedia", "0")
    if not re.fullmatch(r"[0-9]{1,4}", count) or int(count) == 0:
        return []
    if int(count) > MAX_MEDIA:
        raise BadRequest(400, f"NumMedia above Twilio's {MAX_MEDIA}")
    media = []
    for index in range(int(count)):
        url = params.get(f"MediaUrl{index}")
        if not url:
            raise BadRequest(400, f"NumMedia is {count} but MediaUrl{index} is missing")
        media.append({"url": url, "content_type": params.get(f"MediaContentType{index}", "")})
    return media


def _photo_words(count: int) -> str:
    return "(sent a photo)" if count == 1 else f"(sent {count} photos)"


def _national(phone: str) -> str:
    import phonenumbers

    return phonenumbers.format_number(phonenumbers.parse(phone), phonenumbers.PhoneNumberFormat.NATIONAL)


def _html(text: str) -> str:
    from html import escape

    return escape(text)


def _sender_address(fields: dict[str, str]) -> str | None:
    try:
        envelope = json.loads(fields.get("envelope") or "{}")
    except json.JSONDecodeError:
        envelope = {}
    if isinstance(envelope, dict) and isinstance(envelope.get("from"), str) and envelope["from"]:
        return envelope["from"]
    address = parseaddr(fields.get("from", ""))[1]
    return address or None


def _html_to_text(html: str) -> str:
    import re
    from html import unescape

    return unescape(re.sub(r"<[^>]+>", " ", html)).strip()


def _strip_quoted(text: str) -> str:
    """Keep only what the lead wrote now: quoted history and signatures go."""
    if not text.strip():
        return ""
    try:
        parsed = EmailReplyParser(languages=["en"]).read(text)
        latest = parsed.replies[0].body if parsed.replies else text
    except Exception:  # noqa: BLE001 - a parser failure must not lose the message: keep it whole
        latest = text
    return (latest or text).strip()[:5000]


def _parse_start(value: Any, now: datetime) -> datetime:
    if not isinstance(value, str) or not value:
        raise BadRequest(422, "start is required: an ISO 8601 date and time with offset")
    return appointment_start(value, "start", now)


def _booking_request(fields: dict[str, Any], default_region: str, now: datetime) -> BookingRequest:
    """Read the generic booking webhook's fields: who (lead_id, phone or email), when, and its optional id."""
    start = _parse_start(fields.get("start"), now)
    texts = {}
    for key, limit in (("notes", 5000), ("name", 200), ("external_id", 200)):
        value = fields.get(key)
        if value is not None and not isinstance(value, (str, int)) or isinstance(value, bool):
            raise BadRequest(422, f"{key} must be text")
        text = "" if value is None else str(value).strip()
        if len(text) > limit:
            raise BadRequest(422, f"{key} is longer than {limit} characters")
        texts[key] = text
    lead_id = fields.get("lead_id")
    # A database integer: ASCII digits, at most 18 of them (a bigger one is no lead's, and no database's).
    if lead_id is not None and not (isinstance(lead_id, int) and not isinstance(lead_id, bool) and 0 < lead_id < 10**18
                                    or isinstance(lead_id, str) and re.fullmatch(r"[0-9]{1,18}", lead_id)):
        raise BadRequest(422, "lead_id must be a lead's number")
    phone = email = None
    try:
        if isinstance(fields.get("phone"), str) and fields["phone"].strip():
            phone = normalize_phone(fields["phone"], default_region)
        if isinstance(fields.get("email"), str) and fields["email"].strip():
            email = normalize_email(fields["email"])
    except (InvalidPhone, InvalidEmail) as error:
        raise BadRequest(422, str(error)) from error
    if lead_id is None and not phone and not email:
        raise BadRequest(422, "give lead_id, phone or email to find the lead")
    return BookingRequest(source="booking", start_at=start, lead_id=int(lead_id) if lead_id is not None else None,
                          phone=phone, email=email, name=texts["name"], notes=texts["notes"],
                          external_id=texts["external_id"] or None)


def _verify_sendgrid_signature(request: Request, body: bytes, public_key: str) -> None:
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
