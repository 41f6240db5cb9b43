"""The variables templates see, built from a lead and the business."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.business import Business
from bot.enrollment import lead_timezones
from bot.models import Lead


def booking_link(public_base_url: str, lead: Lead) -> str:
    return f"{public_base_url}/b/{lead.link_token}"


#: Booking pages that fill in the booker's name and email from `?name=&email=`.
PREFILL_HOSTS = ("calendly.com", "cal.com")


def prefilled_booking_link(link: str, *, name: str, email: str | None) -> str:
    """The business's booking page with the lead's name and email filled in, for Calendly and Cal.com pages."""
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    parts = urlsplit(link)
    host = (parts.hostname or "").lower()
    if not any(host == known or host.endswith("." + known) for known in PREFILL_HOSTS):
        return link
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    if name.strip():
        query["name"] = name.strip()
    if email:
        query["email"] = email
    return urlunsplit(parts._replace(query=urlencode(query)))


def unsubscribe_link(public_base_url: str, lead: Lead) -> str:
    return f"{public_base_url}/u/{lead.link_token}"


def format_local(moment: datetime, timezone: str | Any) -> str:
    """Say a moment the way people read it: 'Tuesday, Dec 1 at 3:00 PM'."""
    from zoneinfo import ZoneInfo

    zone = timezone if not isinstance(timezone, str) else ZoneInfo(timezone)
    local = moment.astimezone(zone)
    hour = local.strftime("%I").lstrip("0")
    return f"{local:%A}, {local:%b} {local.day} at {hour}:{local:%M} {local:%p}"


def visit_time(start_at: datetime, business: Business, lead_zones: tuple[str, ...] = ()) -> str:
    """Say when a visit is, in the business's time zone where it happens, naming the zone when the lead's differs.

    The one rendering of a visit's time: reminders, confirmations, `followup preview` and Slack all use it.
    """
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    text = format_local(start_at, business.timezone)
    here = start_at.astimezone(business.timezone)
    for name in lead_zones:
        try:
            there = start_at.astimezone(ZoneInfo(name))
        except (ZoneInfoNotFoundError, ValueError):
            continue
        if there.utcoffset() != here.utcoffset():
            abbreviation = here.tzname() or ""
            city = business.timezone.key.rsplit("/", 1)[-1].replace("_", " ")
            # Abbreviations such as CST are what people read; zones without one show "+03".
            return f"{text} {abbreviation}" if abbreviation.isalpha() else f"{text} ({city} time)"
    return text


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
            "review_link": business.review_link,
            "timezone": business.timezone.key,
        },
        "links": {
            "booking": booking_link(public_base_url, lead),
            "unsubscribe": unsubscribe_link(public_base_url, lead),
        },
        "appointment": None
        if appointment_at is None
        else {"start_local": visit_time(appointment_at, business, lead_timezones(lead, business)),
              "notes": appointment_notes},
        "call": None if call_reason is None else {"reason": call_reason, "requested_time": requested_time},
    }
