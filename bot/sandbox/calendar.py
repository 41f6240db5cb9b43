"""The sandbox's calendar: book, move, cancel and mark no-shows as Calendly would tell the bot.

Each clinic has its own Calendly account. Each action becomes that clinic's Calendly webhook (API v2
payloads: an invitee with its scheduled event, in the clinic's time zone and at its address), signed
with the clinic's own subscription key and posted to its route, `/webhooks/calendly/<slug>`, so the
bot takes it exactly as it takes the real calendar's.
"""

from __future__ import annotations

import json
import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select

from bot.core.business import Business
from bot.sandbox.actions import BotAnswer, _answer
from bot.store.models import Appointment, Lead
from bot.usecases.services import Services
from handlers.calendar_webhooks import calendly_signature

#: The made-up Calendly organisation and event type the sandbox's bookings belong to.
ORGANIZATION = "https://api.calendly.com/organizations/SANDBOXORG"
EVENT_TYPE = "https://api.calendly.com/event_types/SANDBOXVISIT"
HOST = "https://api.calendly.com/users/SANDBOXHOST"
VISIT_LENGTH = timedelta(minutes=45)


class CalendarRefused(ValueError):
    """The calendar cannot do that (no such lead or booking); the message says why."""


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000000Z")


class CalendlyDesk:
    """Each clinic's Calendly page as the sandbox's people use it."""

    def __init__(self, services: Services, *, bot_url: str, timeout: float = 10.0):
        self.services = services
        self.bot_url = bot_url.rstrip("/")
        self.timeout = timeout

    def bookings(self) -> list[dict[str, Any]]:
        """The bookings made through the clinics' calendars, newest first, each with its clinic, for the page."""
        with self.services.session_factory() as session:
            rows = session.execute(
                select(Appointment, Lead.name, Lead.business)
                .join(Lead, Lead.id == Appointment.lead_id)
                .where(Appointment.source == "calendly")
                .order_by(Appointment.id.desc())
                .limit(50)
            ).all()
            return [
                {
                    "id": a.id,
                    "lead_id": a.lead_id,
                    "lead_name": name,
                    "start": a.start_at.timestamp(),
                    "status": str(a.status),
                    "clinic": business,
                }
                for a, name, business in rows
            ]

    def clinic_of(self, lead_id: int) -> Business:
        """The clinic whose calendar a lead books on: the lead's own."""
        with self.services.session_factory() as session:
            lead = session.get(Lead, lead_id)
            if lead is None:
                raise CalendarRefused(f"there is no lead #{lead_id}")
            return self.services.business_of(lead.business)

    def clinic_of_booking(self, appointment_id: int) -> Business:
        lead, _ = self._booking(appointment_id)
        return self.services.business_of(lead.business)

    # -- what a person does on the calendar page -----------------------------------------------

    def book(self, lead_id: int, start_at: datetime) -> BotAnswer:
        with self.services.session_factory() as session:
            lead = session.get(Lead, lead_id)
            if lead is None:
                raise CalendarRefused(f"there is no lead #{lead_id}")
            invitee = self._invitee(lead, start_at, uri=self._new_uri())
        return self._post("invitee.created", invitee, lead)

    def move(self, appointment_id: int, start_at: datetime) -> BotAnswer:
        """A reschedule, as Calendly sends it: the old invitee cancelled with rescheduled: true, then a new one."""
        lead, appointment = self._booking(appointment_id)
        new_uri = self._new_uri()
        cancelled = {
            **self._invitee(lead, appointment.start_at, uri=appointment.external_id or "", status="canceled"),
            "rescheduled": True,
            "new_invitee": new_uri,
            "cancellation": {"canceled_by": lead.name, "reason": None, "canceler_type": "invitee"},
        }
        answer = self._post("invitee.canceled", cancelled, lead)
        if not answer.ok:
            return answer
        return self._post(
            "invitee.created", self._invitee(lead, start_at, uri=new_uri, old_invitee=appointment.external_id), lead
        )

    def cancel(self, appointment_id: int) -> BotAnswer:
        lead, appointment = self._booking(appointment_id)
        invitee = {
            **self._invitee(lead, appointment.start_at, uri=appointment.external_id or "", status="canceled"),
            "cancellation": {
                "canceled_by": lead.name,
                "reason": "Cancelled on the calendar page",
                "canceler_type": "invitee",
            },
        }
        return self._post("invitee.canceled", invitee, lead)

    def no_show(self, appointment_id: int) -> BotAnswer:
        lead, appointment = self._booking(appointment_id)
        invitee = {
            **self._invitee(lead, appointment.start_at, uri=appointment.external_id or ""),
            "no_show": {
                "uri": f"https://api.calendly.com/invitee_no_shows/{secrets.token_hex(8).upper()}",
                "created_at": _iso(self.services.clock.now()),
            },
        }
        return self._post("invitee_no_show.created", invitee, lead)

    # -- Calendly's wire format ----------------------------------------------------------------

    def _booking(self, appointment_id: int) -> tuple[Lead, Appointment]:
        with self.services.session_factory() as session:
            appointment = session.get(Appointment, appointment_id)
            if appointment is None or appointment.source != "calendly" or not appointment.external_id:
                raise CalendarRefused(f"appointment #{appointment_id} was not booked on the calendar")
            lead = session.get(Lead, appointment.lead_id)
            assert lead is not None
            session.expunge_all()
            return lead, appointment

    @staticmethod
    def _new_uri() -> str:
        event = secrets.token_hex(8).upper()
        return f"https://api.calendly.com/scheduled_events/{event}/invitees/{secrets.token_hex(8).upper()}"

    def _invitee(
        self, lead: Lead, start_at: datetime, *, uri: str, status: str = "active", old_invitee: str | None = None
    ) -> dict[str, Any]:
        business = self.services.business_of(lead.business)
        now = _iso(self.services.clock.now())
        event_uri = uri.rsplit("/invitees/", 1)[0]
        first, _, last = (lead.name or "").partition(" ")
        answers = [{"question": "Mobile phone", "answer": lead.phone, "position": 0}] if lead.phone else []
        return {
            "uri": uri,
            "email": lead.email,
            "name": lead.name or None,
            "first_name": first or None,
            "last_name": last or None,
            "status": status,
            "timezone": business.timezone.key,
            "rescheduled": False,
            "old_invitee": old_invitee,
            "new_invitee": None,
            "questions_and_answers": answers,
            "text_reminder_number": None,
            "cancel_url": f"https://calendly.com/cancellations/{uri.rsplit('/', 1)[-1]}",
            "reschedule_url": f"https://calendly.com/reschedulings/{uri.rsplit('/', 1)[-1]}",
            "created_at": now,
            "updated_at": now,
            "tracking": {
                "utm_campaign": None,
                "utm_source": None,
                "utm_medium": None,
                "utm_content": None,
                "utm_term": None,
                "salesforce_uuid": None,
            },
            "scheduled_event": {
                "uri": event_uri,
                "name": "New patient visit",
                "status": status,
                "start_time": _iso(start_at),
                "end_time": _iso(start_at + VISIT_LENGTH),
                "event_type": EVENT_TYPE,
                "location": {"type": "physical", "location": business.address},
                "invitees_counter": {"total": 1, "active": 1 if status == "active" else 0, "limit": 1},
                "created_at": now,
                "updated_at": now,
                "event_memberships": [{"user": HOST, "user_email": business.email.from_address or None}],
                "event_guests": [],
            },
        }

    def _post(self, event: str, payload: dict[str, Any], lead: Lead) -> BotAnswer:
        """Post the webhook as the lead's clinic's Calendly does: to its route, signed with its key."""
        business = self.services.business_of(lead.business)
        body = json.dumps(
            {"event": event, "created_at": _iso(self.services.clock.now()), "created_by": HOST, "payload": payload}
        ).encode()
        # Calendly signs with real time; the bot checks it against real time, whatever the sandbox clock says.
        signature = calendly_signature(business.webhooks.calendly_signing_key, body, int(time.time()))
        response = httpx.post(
            f"{self.bot_url}/webhooks/calendly/{business.slug}",
            content=body,
            timeout=self.timeout,
            headers={"Content-Type": "application/json", "Calendly-Webhook-Signature": signature},
        )
        return _answer(response)
