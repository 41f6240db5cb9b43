"""How times are shown to the team: one time, labelled with its zone, and the lead's beside it when it differs.

Every place the team reads a time (Slack cards, thread entries, call tasks, App Home, the CLI, the
sandbox) goes through `team_time`, so a front desk in Chicago never has to guess whether "8:00 AM"
was theirs or the lead's. Pure: standard library only.
"""

from __future__ import annotations

from datetime import datetime, timedelta, tzinfo
from typing import Literal
from zoneinfo import ZoneInfo

#: Which zone leads a time: the business's (most times) or the lead's (a wait for the lead's daytime).
First = Literal["business", "lead"]


def _zone(zone: tzinfo | str) -> tzinfo:
    return ZoneInfo(zone) if isinstance(zone, str) else zone


def zone_label(moment: datetime, zone: tzinfo | str) -> str:
    """The zone's abbreviation at that moment (CST, EDT), or its name when it has none (Asia/Dubai +04)."""
    local = moment.astimezone(_zone(zone))
    abbreviation = local.strftime("%Z")
    if abbreviation and not abbreviation.startswith(("+", "-")):
        return abbreviation
    offset = local.utcoffset() or timedelta(0)
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    hours, rest = divmod(abs(minutes), 60)
    return f"UTC{sign}{hours}" + (f":{rest:02d}" if rest else "")


def _clock(local: datetime) -> str:
    hour = local.strftime("%I").lstrip("0")
    return f"{hour}:{local:%M} {local:%p}"


def _day(local: datetime) -> str:
    return f"{local:%a}, {local:%b} {local.day}"


def same_time_zone(moment: datetime, one: tzinfo | str, other: tzinfo | str) -> bool:
    """Say whether two zones show the same clock and the same label at that moment."""
    a, b = moment.astimezone(_zone(one)), moment.astimezone(_zone(other))
    return a.utcoffset() == b.utcoffset() and zone_label(moment, one) == zone_label(moment, other)


def team_time(
    moment: datetime, business_zone: tzinfo | str, lead_zone: tzinfo | str | None = None, *, first: First = "business"
) -> str:
    """Show a moment to the team: 'Tue, Mar 2 at 3:00 PM CST', plus '(4:00 PM EST their time)' when the lead's differs.

    With first="lead" the lead's local time leads and the business's follows ('8:00 AM EST their time
    (7:00 AM CST here)'), for waits that are about the lead's clock.
    """
    business = _zone(business_zone)
    lead = _zone(lead_zone) if lead_zone is not None else None
    if lead is None or same_time_zone(moment, business, lead):
        local = moment.astimezone(business)
        return f"{_day(local)} at {_clock(local)} {zone_label(moment, business)}"
    primary, secondary = (lead, business) if first == "lead" else (business, lead)
    shown = moment.astimezone(primary)
    other = moment.astimezone(secondary)
    other_day = "" if other.date() == shown.date() else f"{other:%a} "
    main = f"{_day(shown)} at {_clock(shown)} {zone_label(moment, primary)}"
    beside = f"{other_day}{_clock(other)} {zone_label(moment, secondary)}"
    if first == "lead":
        return f"{main} their time ({beside} here)"
    return f"{main} ({beside} their time)"
