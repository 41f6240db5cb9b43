"""Calendly and Cal.com webhooks: verify the vendor's signature, read its payload into a booking or a change, apply it.

Calendly (API v2 webhook subscriptions) signs with `Calendly-Webhook-Signature: t=<unix>,v1=<hex>`,
HMAC-SHA256 over "<t>.<raw body>" with the subscription's signing key; Cal.com with
`X-Cal-Signature-256`, the hex HMAC-SHA256 of the raw body with the webhook's secret. An unset
secret refuses everything (503); a missing or wrong signature is a 403 and changes nothing. Each
business has its own key and secret: the one that verifies says whose booking it is (a path with the
business's slug tries only that business's).

Both vendors retry anything but a 2xx, so a well-signed event the bot cannot use (an event type
it does not handle, a booking it never saw) is answered 200 with what was done, never an error.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.core.business import Business
from bot.core.contacts import InvalidEmail, InvalidPhone, normalize_email, normalize_phone
from bot.usecases.appointments import BookingRequest, CalendarChange, take_booking, take_calendar_change
from bot.usecases.lead_actions import LeadActionRefused
from bot.usecases.services import Services
from handlers.business_routing import keyed
from handlers.http_edge import BadRequest, appointment_start, endpoint, load_json, read_body

#: Whoever a signing key stands for: a business, or nothing (one secret checked alone).
_B = TypeVar("_B")

CALENDLY = "calendly"
CALCOM = "cal.com"
#: How old a Calendly signature's timestamp may be (either way) before the request is refused as a replay.
CALENDLY_TOLERANCE_SECONDS = 180
#: Words in a booking question that say its answer is a phone number.
PHONE_QUESTION_WORDS = ("phone", "mobile", "cell", "text", "sms", "number")
#: Cal.com's triggers for a no-show, as its payloads name them.
CALCOM_NO_SHOW_TRIGGERS = ("BOOKING_NO_SHOW_UPDATED", "AFTER_GUESTS_CAL_VIDEO_NO_SHOW")


def calendly_signature(signing_key: str, body: bytes, timestamp: int) -> str:
    """The header value Calendly sends for a body at a time: `t=<unix>,v1=<hex>`."""
    digest = hmac.new(signing_key.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def calcom_signature(secret: str, body: bytes) -> str:
    """The X-Cal-Signature-256 value Cal.com sends for a body: hex HMAC-SHA256 of the raw body."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_calendly(header: str | None, body: bytes, signing_key: str | None, *, now: float) -> None:
    if not signing_key:
        raise BadRequest(503, "CALENDLY_WEBHOOK_SIGNING_KEY is not configured on this server")
    calendly_business(header, body, [(None, signing_key)], now=now)


def calendly_business(header: str | None, body: bytes, keyed: Sequence[tuple[_B, str]], *, now: float) -> _B:
    """Whose signing key signed this Calendly request (each tried in constant time); 503 with none, else 403."""
    if not keyed:
        raise BadRequest(503, "CALENDLY_WEBHOOK_SIGNING_KEY is not configured on this server")
    if not header:
        raise BadRequest(403, "missing Calendly-Webhook-Signature header")
    parts = dict(part.strip().partition("=")[::2] for part in header.split(",") if "=" in part)
    stamp, given = parts.get("t", ""), parts.get("v1", "")
    if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= 12) or not given:
        raise BadRequest(403, "Calendly-Webhook-Signature must read t=<unix time>,v1=<signature>")
    if abs(now - int(stamp)) > CALENDLY_TOLERANCE_SECONDS:
        raise BadRequest(403, "stale Calendly-Webhook-Signature timestamp (a replay?)")
    # Every key is tried, so the time taken does not say which business was close.
    matches = [
        owner
        for owner, key in keyed
        if hmac.compare_digest(calendly_signature(key, body, int(stamp)).rpartition("v1=")[2], given.lower())
    ]
    if not matches:
        raise BadRequest(403, "invalid Calendly-Webhook-Signature")
    return matches[0]


def verify_calcom(header: str | None, body: bytes, secret: str | None) -> None:
    if not secret:
        raise BadRequest(503, "CALCOM_WEBHOOK_SECRET is not configured on this server")
    calcom_business(header, body, [(None, secret)])


def calcom_business(header: str | None, body: bytes, keyed: Sequence[tuple[_B, str]]) -> _B:
    """Whose secret signed this Cal.com request (each tried in constant time); 503 with none, else 403."""
    if not keyed:
        raise BadRequest(503, "CALCOM_WEBHOOK_SECRET is not configured on this server")
    if not header:
        raise BadRequest(403, "missing X-Cal-Signature-256 header (set a secret on the Cal.com webhook)")
    matches = [
        owner for owner, secret in keyed if hmac.compare_digest(calcom_signature(secret, body), header.strip().lower())
    ]
    if not matches:
        raise BadRequest(403, "invalid X-Cal-Signature-256")
    return matches[0]


# --- reading the payloads ----------------------------------------------------------------------


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadRequest(422, f"{where} must be a JSON object")
    return value


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _start(value: Any, where: str, now: datetime) -> datetime:
    return appointment_start(_text(value), where, now)


def _contact(emails: Iterable[Any], phones: Iterable[Any], default_region: str) -> tuple[str | None, str | None]:
    """The first email and phone that read as valid, from the likeliest fields first."""
    email = phone = None
    for candidate in emails:
        try:
            email = normalize_email(_text(candidate)) if _text(candidate) else None
        except InvalidEmail:
            continue
        if email:
            break
    for candidate in phones:
        try:
            phone = normalize_phone(_text(candidate), default_region) if _text(candidate) else None
        except InvalidPhone:
            continue
        if phone:
            break
    if not email and not phone:
        raise BadRequest(422, "the booking carries no valid email or phone for the invitee")
    return email, phone


def _looks_like_phone(question: str) -> bool:
    return any(word in question.lower() for word in PHONE_QUESTION_WORDS)


def calendly_booking(payload: dict[str, Any], default_region: str, now: datetime) -> BookingRequest:
    """Read an invitee.created payload (the invitee, with its scheduled_event) into a booking."""
    invitee_uri = _text(payload.get("uri"))
    if not invitee_uri:
        raise BadRequest(422, "payload.uri (the invitee) is required")
    event = _object(payload.get("scheduled_event"), "payload.scheduled_event")
    answers = [a for a in payload.get("questions_and_answers") or [] if isinstance(a, dict)]
    phones = [
        payload.get("text_reminder_number"),
        *(a.get("answer") for a in answers if _looks_like_phone(_text(a.get("question")))),
    ]
    email, phone = _contact([payload.get("email")], phones, default_region)
    notes = "\n".join(
        f"{_text(a.get('question'))}: {_text(a.get('answer'))}"
        for a in answers
        if not _looks_like_phone(_text(a.get("question"))) and _text(a.get("answer"))
    )
    name = _text(payload.get("name")) or " ".join(
        filter(None, (_text(payload.get("first_name")), _text(payload.get("last_name"))))
    )
    return BookingRequest(
        source=CALENDLY,
        start_at=_start(event.get("start_time"), "scheduled_event.start_time", now),
        email=email,
        phone=phone,
        name=name[:200],
        notes=notes[:5000],
        external_id=invitee_uri[:200],
        replaces=_text(payload.get("old_invitee"))[:200] or None,
    )


def calcom_booking(payload: dict[str, Any], default_region: str, now: datetime) -> BookingRequest:
    """Read a BOOKING_CREATED or BOOKING_RESCHEDULED payload into a booking (keyed by the booking's uid)."""
    uid = _text(payload.get("uid"))
    if not uid:
        raise BadRequest(422, "payload.uid (the booking) is required")
    attendees = [a for a in payload.get("attendees") or [] if isinstance(a, dict)]
    responses = given if isinstance(given := payload.get("responses"), dict) else {}

    def response(key: str) -> Any:
        value = responses.get(key)
        return value.get("value") if isinstance(value, dict) else value

    phone_answers = [response(key) for key in responses if _looks_like_phone(str(key))]
    email, phone = _contact(
        [response("email"), *(a.get("email") for a in attendees)],
        [
            response("attendeePhoneNumber"),
            payload.get("smsReminderNumber"),
            *(a.get("phoneNumber") for a in attendees),
            *phone_answers,
        ],
        default_region,
    )
    name = _text(response("name")) or next((_text(a.get("name")) for a in attendees if _text(a.get("name"))), "")
    notes = _text(response("notes")) or _text(payload.get("additionalNotes"))
    replaces = _text(payload.get("rescheduleUid")) or _text(payload.get("fromReschedule"))
    return BookingRequest(
        source=CALCOM,
        start_at=_start(payload.get("startTime"), "payload.startTime", now),
        email=email,
        phone=phone,
        name=name[:200],
        notes=notes[:5000],
        external_id=uid[:200],
        replaces=(replaces if replaces and replaces != uid else "")[:200] or None,
    )


# --- the routes --------------------------------------------------------------------------------


class CalendarWebhooks:
    """POST /webhooks/calendly and /webhooks/calcom (each also under `/<slug>`), bound to the services.

    Each business has its own Calendly signing key and Cal.com secret (`webhooks.calendly_signing_key`,
    `webhooks.calcom_secret`; for a single business.yml, CALENDLY_WEBHOOK_SIGNING_KEY and
    CALCOM_WEBHOOK_SECRET): the key that verifies the signature says whose booking it is. On a business's
    own path only that business's key is tried.
    """

    def __init__(self, services: Services, *, wall_clock: Callable[[], float] = time.time):
        self.services = services
        #: Signature timestamps are real time, not the bot's (possibly sped-up) clock.
        self.wall_clock = wall_clock

    def routes(self) -> list[Route]:
        return [
            Route("/webhooks/calendly", endpoint(self.calendly), methods=["POST"]),
            Route("/webhooks/calendly/{slug}", endpoint(self.calendly), methods=["POST"]),
            Route("/webhooks/calcom", endpoint(self.calcom), methods=["POST"]),
            Route("/webhooks/calcom/{slug}", endpoint(self.calcom), methods=["POST"]),
        ]

    async def calendly(self, request: Request) -> Response:
        candidates = keyed(
            self.services, request.path_params.get("slug"), lambda business: business.webhooks.calendly_signing_key
        )
        body = await read_body(request)
        business = calendly_business(
            request.headers.get("calendly-webhook-signature"), body, candidates, now=self.wall_clock()
        )
        envelope = _object(load_json(body), "the body")
        event = _text(envelope.get("event"))
        payload = _object(envelope.get("payload"), "payload")
        region = self.services.default_region
        match event:
            case "invitee.created":
                now = self.services.clock.now()
                return await self._book(calendly_booking(payload, region, now), business)
            case "invitee.canceled":
                uri = _text(payload.get("uri"))
                cancellation = given if isinstance(given := payload.get("cancellation"), dict) else {}
                moved = payload.get("rescheduled") is True
                return await self._change(
                    CalendarChange(
                        CALENDLY,
                        uri,
                        "moved" if moved else "cancel",
                        _text(cancellation.get("reason"))[:200],
                    ),
                    business,
                )
            case "invitee_no_show.created":
                # The payload is the invitee (with its no_show), or a no-show naming its invitee.
                uri = _text(payload.get("invitee")) or _text(payload.get("uri"))
                return await self._change(CalendarChange(CALENDLY, uri, "no_show"), business)
        return JSONResponse({"ignored": f"event {event!r} is not one followup acts on"})

    async def calcom(self, request: Request) -> Response:
        candidates = keyed(
            self.services, request.path_params.get("slug"), lambda business: business.webhooks.calcom_secret
        )
        body = await read_body(request)
        business = calcom_business(request.headers.get("x-cal-signature-256"), body, candidates)
        envelope = _object(load_json(body), "the body")
        trigger = _text(envelope.get("triggerEvent"))
        if trigger == "PING":
            return JSONResponse({"ok": True})
        payload = _object(envelope.get("payload"), "payload")
        region = self.services.default_region
        match trigger:
            case "BOOKING_CREATED" | "BOOKING_RESCHEDULED":
                now = self.services.clock.now()
                return await self._book(calcom_booking(payload, region, now), business)
            case "BOOKING_CANCELLED":
                return await self._change(
                    CalendarChange(
                        CALCOM,
                        _text(payload.get("uid")),
                        "cancel",
                        _text(payload.get("cancellationReason"))[:200],
                    ),
                    business,
                )
            case trigger if trigger in CALCOM_NO_SHOW_TRIGGERS:
                uid = _text(payload.get("bookingUid")) or _text(payload.get("uid"))
                attendees = [a for a in payload.get("attendees") or [] if isinstance(a, dict)]
                if attendees and not any(a.get("noShow") is True for a in attendees):
                    return JSONResponse({"ignored": "no attendee is marked a no-show"})
                return await self._change(CalendarChange(CALCOM, uid, "no_show"), business)
        return JSONResponse({"ignored": f"trigger {trigger!r} is not one followup acts on"})

    async def _book(self, booking: BookingRequest, business: Business) -> Response:
        try:
            result = await run_in_threadpool(take_booking, self.services, booking, business=business.slug)
        except LeadActionRefused as refused:
            # A booking in the past (a very late redelivery): nothing to book, and nothing to retry.
            return JSONResponse({"ignored": str(refused)})
        if result.created:
            self.services.wake_dispatcher()
            self.services.wake_poster()
        return JSONResponse(
            {
                "lead_id": result.lead_id,
                "appointment_id": result.appointment_id,
                "created": result.created,
                "lead_created": result.lead_created,
                "warnings": list(result.warnings),
            }
        )

    async def _change(self, change: CalendarChange, business: Business) -> Response:
        if not change.external_id:
            raise BadRequest(422, "the payload names no booking")
        outcome = await run_in_threadpool(take_calendar_change, self.services, change, business=business.slug)
        self.services.wake_dispatcher()
        self.services.wake_poster()
        return JSONResponse({"result": outcome})
