"""The variables templates see, built from a lead and the business."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.business import Business
from bot.models import Lead


def booking_link(public_base_url: str, lead: Lead) -> str:
    return f"{public_base_url}/b/{lead.link_token}"


def unsubscribe_link(public_base_url: str, lead: Lead) -> str:
    return f"{public_base_url}/u/{lead.link_token}"


def format_local(moment: datetime, timezone: str | Any) -> str:
    """Say a moment the way people read it: 'Tuesday, Dec 1 at 3:00 PM'."""
    from zoneinfo import ZoneInfo

    zone = timezone if not isinstance(timezone, str) else ZoneInfo(timezone)
    local = moment.astimezone(zone)
    hour = local.strftime("%I").lstrip("0")
    return f"{local:%A}, {local:%b} {local.day} at {hour}:{local:%M} {local:%p}"


def lead_context(
    lead: Lead,
    business: Business,
    public_base_url: str,
    *,
    appointment_at: datetime | None = None,
    appointment_notes: str = "",
    call_reason: str | None = None,
    requested_time: str | None = None,
) -> dict[str, Any]:
    """Build the template variables for one lead."""
    return {
        "lead": {
            "name": lead.name or "there",
            "first_name": lead.first_name,
            "phone": lead.phone or "",
            "email": lead.email or "",
            "source": lead.source,
            "message": lead.first_message or "",
            "custom": dict(lead.custom_fields or {}),
        },
        "business": {
            "name": business.name,
            "phone": business.phone,
            "address": business.address,
            "booking_link": business.booking_link,
            "timezone": business.timezone.key,
        },
        "links": {
            "booking": booking_link(public_base_url, lead),
            "unsubscribe": unsubscribe_link(public_base_url, lead),
        },
        "appointment": None
        if appointment_at is None
        else {"start_local": format_local(appointment_at, lead.timezone or business.timezone),
              "notes": appointment_notes},
        "call": None if call_reason is None else {"reason": call_reason, "requested_time": requested_time},
    }
