"""The variables templates see, built from a lead and the business."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from bot.core.business import Business
from bot.store.models import Lead
from bot.usecases.enrollment import lead_timezones


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
    return f"{public_base_url}/u/{lead.unsubscribe_token}"


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


#: What a lead-facing template (SMS, email) may see, by variable: an allow-list, so a field added for
#: the team later (a note typed in Slack, a call's reason) can never reach a patient by default.
#: The lead's own words (`message`) and the form's extra fields (`custom`) are not among them: whoever
#: filled in the form typed them, with any address or number, and a message quoting them would carry a
#: stranger's text to that inbox or phone under the business's name.
LEAD_FACING: dict[str, tuple[str, ...]] = {
    "lead": ("name", "first_name", "phone", "email", "source"),
    "business": ("name", "phone", "address", "booking_link", "review_link", "timezone"),
    "links": ("booking", "unsubscribe"),
    "appointment": ("start_local",),
}
#: Variables only the team's call scripts see (typed by staff, or about the call), and why.
INTERNAL_FIELDS: dict[str, str] = {
    "lead.message": "the lead's own words, never repeated back to an address or number typed into a form",
    "lead.custom": "the form's extra fields, typed by whoever filled it in",
    "appointment.notes": "the team's notes on the booking",
    "call": "the call the team is asked to make",
    "call.reason": "why the team is asked to call",
    "call.requested_time": "the time the lead asked for, as the team reads it",
}


#: A name as people write theirs: letters (any script), spaces, and the marks names use. Anything else
#: (a link, an address, digits, markup) is not greeted by: "Hi there" instead. A dot ends an initial only.
_NAME_LIKE = re.compile(r"[^\W\d_]+(?:(?:\.? |['’-])[^\W\d_]+)*\.?")
#: Longer than any name a form needs; a sentence in the name field is not a name.
MAX_GREETING_NAME = 60


def greeting_name(name: str) -> str:
    """The name a lead-facing message may use: the lead's as typed when it reads as a name, else "there"."""
    name = " ".join(name.split())
    return name if len(name) <= MAX_GREETING_NAME and _NAME_LIKE.fullmatch(name) else "there"


def lead_facing(context: dict[str, Any]) -> dict[str, Any]:
    """Keep only what a lead may read: the allow-listed variables of a full context."""
    kept: dict[str, Any] = {}
    for name, fields in LEAD_FACING.items():
        value = context.get(name)
        kept[name] = None if value is None else {field: value[field] for field in fields if field in value}
    lead = kept.get("lead")
    if lead is not None:
        # A name goes to whatever address was typed beside it: only a name-shaped one is repeated, and the
        # first name is the first word of such a name ("Win $500 at evil.example" greets nobody by "Win").
        greeted = greeting_name(str(lead.get("name") or lead.get("first_name") or ""))
        if "name" in lead:
            lead["name"] = greeted
        if "first_name" in lead:
            lead["first_name"] = greeted.split()[0] if greeted != "there" else "there"
    return kept


def lead_context(
    lead: Lead,
    business: Business,
    public_base_url: str,
    *,
    appointment_at: datetime | None = None,
) -> dict[str, Any]:
    """Build the variables a lead-facing template (an SMS, an email) sees for one lead: nothing internal."""
    return lead_facing(call_script_context(lead, business, public_base_url, appointment_at=appointment_at))


def call_script_context(
    lead: Lead,
    business: Business,
    public_base_url: str,
    *,
    appointment_at: datetime | None = None,
    appointment_notes: str = "",
    call_reason: str | None = None,
    requested_time: str | None = None,
) -> dict[str, Any]:
    """Build the variables a call script (read by the team, never sent) sees for one lead."""
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
        else {
            "start_local": visit_time(appointment_at, business, lead_timezones(lead, business)),
            "notes": appointment_notes,
        },
        "call": None if call_reason is None else {"reason": call_reason, "requested_time": requested_time},
    }
