"""Content for runs that must send at any hour: a business that never closes, zones near noon, phones."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from textwrap import dedent
from zoneinfo import ZoneInfo

#: Places around the world, one of which is near midday at any hour (leads must name a place, not an offset).
_PLACES = (
    "Pacific/Auckland",
    "Australia/Sydney",
    "Asia/Tokyo",
    "Asia/Shanghai",
    "Asia/Bangkok",
    "Asia/Dhaka",
    "Asia/Karachi",
    "Asia/Dubai",
    "Europe/Moscow",
    "Europe/Athens",
    "Europe/Berlin",
    "Europe/London",
    "Atlantic/Azores",
    "America/Noronha",
    "America/Sao_Paulo",
    "America/Halifax",
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Los_Angeles",
    "America/Anchorage",
    "Pacific/Honolulu",
)
#: Chicago area codes whose 555 exchange numbers pass phone validation (10,000 each).
_AREA_CODES = ("312", "773", "872", "630", "708", "847", "224", "331", "815", "779")


def midday_zone(now: datetime) -> str:
    """A place where it is around noon now: the lead's daytime rule never holds a touch back."""
    return min(_PLACES, key=lambda place: abs(now.astimezone(ZoneInfo(place)).hour + 0.5 - 12.5))


def phone(index: int) -> str:
    """A distinct valid E.164 number per lead, for up to 100,000 leads."""
    return f"+1{_AREA_CODES[index // 10_000 % len(_AREA_CODES)]}555{index % 10_000:04d}"


def always_open_business(folder: Path, *, sequence: str) -> Path:
    """Write a business.yml whose send window never holds a touch back, running the named playbook."""
    business = folder / "business.yml"
    business.write_text(
        dedent(f"""\
        name: Lakeside Chiropractic
        timezone: America/Chicago
        phone: "+13125550111"
        address: 1200 Lakeshore Dr, Chicago, IL 60610
        booking_link: https://example.com/book
        sequence: {sequence}
        send_window: always
        """)
    )
    return business
