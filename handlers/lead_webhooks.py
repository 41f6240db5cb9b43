"""The clinic's own webhooks: a new lead from the web form (`/webhooks/leads`), a booking (`/webhooks/booking`).

Each is guarded by its business's bearer token, which also says whose lead or booking it is (a business's
own path, `/webhooks/leads/<slug>`, takes only that business's token; no business with a token: every
request is refused with 503), read into a typed value, taken by one use case for that business, and
answered with what became of it.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.core.business import Business
from bot.core.contacts import InvalidEmail, InvalidPhone, normalize_email, normalize_phone
from bot.core.reply_classifier import ReplyRules
from bot.store.audit import Actor
from bot.usecases.appointments import BookingRequest, BookingResult, UnknownLead, take_booking
from bot.usecases.intake import take_in_and_send
from bot.usecases.lead_actions import LeadActionRefused
from bot.usecases.leads import IntakeResult, InvalidLead, LeadInput
from bot.usecases.replies import take_form_again
from bot.usecases.services import Services
from handlers.business_routing import business_of_token
from handlers.http_edge import BadRequest, appointment_start, endpoint, request_fields


class LeadWebhooks:
    """POST /webhooks/leads and /webhooks/booking (each also under `/<slug>`), bound to the services and reply rules.

    The bearer token says whose lead or booking it is (each business's `webhooks.lead_token` and
    `webhooks.booking_token`; for a single business.yml, LEAD_WEBHOOK_TOKEN and BOOKING_WEBHOOK_TOKEN). On a
    business's own path only that business's token is taken.
    """

    def __init__(self, services: Services, *, reply_rules: ReplyRules):
        self.services = services
        self.reply_rules = reply_rules

    def routes(self) -> list[Route]:
        return [
            Route("/webhooks/leads", endpoint(self.new_lead), methods=["POST"]),
            Route("/webhooks/leads/{slug}", endpoint(self.new_lead), methods=["POST"]),
            Route("/webhooks/booking", endpoint(self.booking), methods=["POST"]),
            Route("/webhooks/booking/{slug}", endpoint(self.booking), methods=["POST"]),
        ]

    def _business(self, request: Request, kind: str) -> Business:
        businesses = self.services.businesses
        if kind == "lead":
            return business_of_token(
                self.services,
                request,
                slug=request.path_params.get("slug"),
                key=lambda business: business.webhooks.lead_token,
                lookup=businesses.by_lead_token,
                setting="LEAD_WEBHOOK_TOKEN",
            )
        return business_of_token(
            self.services,
            request,
            slug=request.path_params.get("slug"),
            key=lambda business: business.webhooks.booking_token,
            lookup=businesses.by_booking_token,
            setting="BOOKING_WEBHOOK_TOKEN",
        )

    async def new_lead(self, request: Request) -> Response:
        business = self._business(request, "lead")
        fields = await request_fields(request)
        try:
            data = LeadInput.parse(
                fields,
                default_region=self.services.default_region,
                default_source="web",
                sms_countries=self.services.sms_countries,
            )
        except InvalidLead as error:
            raise BadRequest(422, "invalid lead", reasons=error.reasons) from error
        playbooks = self.services.playbooks_of(business.slug)
        if data.sequence:
            # A name from the sequences directory, never a path; the folder is read off the event loop.
            known = await run_in_threadpool(playbooks.names)
            if data.sequence not in known or not await run_in_threadpool(playbooks.has, data.sequence):
                raise BadRequest(
                    422,
                    "invalid lead",
                    known_sequences=known,
                    reasons=[
                        f"sequence: no playbook named {data.sequence!r}; use one of: {', '.join(known) or 'none'}"
                    ],
                )
        result = await run_in_threadpool(self._add_lead, business, data)
        return JSONResponse(
            {"lead_id": result.lead_id, "created": result.created}, status_code=201 if result.created else 200
        )

    def _add_lead(self, business: Business, data: LeadInput) -> IntakeResult:
        services = self.services
        result = take_in_and_send(
            services,
            data,
            sequence=services.playbooks_of(business.slug).get(data.sequence),
            actor=Actor.lead(0),
            business=business.slug,
        )
        if not result.enrolled and not result.created:
            take_form_again(services, self.reply_rules, result.lead_id, data, business=business.slug)
        return result

    async def booking(self, request: Request) -> Response:
        business = self._business(request, "booking")
        fields = await request_fields(request)
        booking = booking_request(fields, self.services.default_region, self.services.clock.now())
        result = await run_in_threadpool(self._book, business, booking)
        return JSONResponse(
            {
                "lead_id": result.lead_id,
                "appointment_id": result.appointment_id,
                "created": result.created,
                "lead_created": result.lead_created,
                "warnings": list(result.warnings),
            },
            status_code=201 if result.created else 200,
        )

    def _book(self, business: Business, booking: BookingRequest) -> BookingResult:
        try:
            result = take_booking(self.services, booking, business=business.slug)
        except UnknownLead as error:
            raise BadRequest(404, str(error)) from error
        except LeadActionRefused as error:
            raise BadRequest(422, str(error)) from error
        if result.created:
            self.services.wake_dispatcher()
            self.services.wake_poster()
        return result


def booking_request(fields: dict[str, Any], default_region: str, now: datetime) -> BookingRequest:
    """Read the generic booking webhook's fields: who (lead_id, phone or email), when, and its optional id."""
    start = fields.get("start")
    if not isinstance(start, str) or not start:
        raise BadRequest(422, "start is required: an ISO 8601 date and time with offset")
    start_at = appointment_start(start, "start", now)
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
    if lead_id is not None and not (
        isinstance(lead_id, int)
        and not isinstance(lead_id, bool)
        and 0 < lead_id < 10**18
        or isinstance(lead_id, str)
        and re.fullmatch(r"[0-9]{1,18}", lead_id)
    ):
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
    return BookingRequest(
        source="booking",
        start_at=start_at,
        lead_id=int(lead_id) if lead_id is not None else None,
        phone=phone,
        email=email,
        name=texts["name"],
        notes=texts["notes"],
        external_id=texts["external_id"] or None,
    )
