"""Phone numbers and email addresses checked at the edge, so the core only sees E.164 and normalized email."""

from __future__ import annotations

from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from phonenumbers import NumberParseException, PhoneNumberType, ValidationResult
from phonenumbers.timezone import time_zones_for_number

#: What phonenumbers answers when it cannot place a number.
UNKNOWN_ZONE = "Etc/Unknown"

_PARSE_REASONS = {
    NumberParseException.INVALID_COUNTRY_CODE: "has a country code that does not exist",
    NumberParseException.NOT_A_NUMBER: "is not a phone number",
    NumberParseException.TOO_SHORT_AFTER_IDD: "is too short to be a phone number",
    NumberParseException.TOO_SHORT_NSN: "is too short to be a phone number",
    NumberParseException.TOO_LONG: "is too long to be a phone number (give one number only)",
}
_LENGTH_REASONS = {
    ValidationResult.INVALID_COUNTRY_CODE: "has a country code that does not exist",
    ValidationResult.TOO_SHORT: "is too short to be a phone number",
    ValidationResult.TOO_LONG: "is too long to be a phone number (give one number only)",
    ValidationResult.INVALID_LENGTH: "has the wrong number of digits",
    ValidationResult.IS_POSSIBLE_LOCAL_ONLY: "lacks its area code",
}
_MOBILE_TYPES = frozenset({PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE})

#: What people write for a US time zone, read as the place whose clock they mean (with its
#: daylight saving time). Where one abbreviation covers two clocks (MST: Denver, and Arizona which
#: keeps MST all year), the first is meant unless the lead's phone number rings in the other.
US_TIMEZONE_ABBREVIATIONS: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(("EST", "EDT", "ET", "EASTERN"), ("America/New_York",)),
    **dict.fromkeys(("CST", "CDT", "CT", "CENTRAL"), ("America/Chicago",)),
    **dict.fromkeys(("MST", "MT", "MOUNTAIN"), ("America/Denver", "America/Phoenix")),
    "MDT": ("America/Denver",),  # Arizona never keeps daylight time
    **dict.fromkeys(("PST", "PDT", "PT", "PACIFIC"), ("America/Los_Angeles",)),
    **dict.fromkeys(("AKST", "AKDT", "AKT", "ALASKA"), ("America/Anchorage",)),
    **dict.fromkeys(("HST", "HDT", "HT", "HAST", "HADT", "HAWAII"), ("Pacific/Honolulu",)),
}
_UTC_NAMES = frozenset({"Etc/UTC", "Etc/UCT", "Etc/Universal", "Etc/Zulu", "UCT", "Universal", "Zulu"})
_TIMEZONE_EXAMPLES = "an IANA name such as America/Chicago, or a US abbreviation such as ET, CT, MT, PT, AKST or HST"


class InvalidPhone(ValueError):
    """A phone number must be a real number with its area code, like (312) 555-0142 or +1 312 555 0142."""


class InvalidEmail(ValueError):
    """An email address must look like name@example.com."""


class InvalidTimezone(ValueError):
    """A time zone must be an IANA name such as America/Chicago, or a US abbreviation such as EST or PT."""


def normalize_phone(text: str, default_region: str = "US") -> str:
    """Turn a phone number as people write it into E.164 (+13125550142); raise InvalidPhone saying why not."""
    if not isinstance(text, str):
        raise InvalidPhone(f"{text!r} is not a phone number; give it as text")
    cleaned = text.strip()
    if not cleaned:
        raise InvalidPhone("no number given; write one like (312) 555-0142")
    try:
        number = phonenumbers.parse(cleaned, default_region)
    except NumberParseException as error:
        reason = _PARSE_REASONS.get(error.error_type, "is not a phone number")
        if error.error_type == NumberParseException.INVALID_COUNTRY_CODE and not cleaned.startswith("+"):
            reason = (
                f"has no country code and the default region {default_region!r} is unknown; "
                "start it with + and the country code, like +1 312 555 0142"
            )
        raise InvalidPhone(f"{cleaned!r} {reason}") from error
    length = phonenumbers.is_possible_number_with_reason(number)
    if length != ValidationResult.IS_POSSIBLE:
        raise InvalidPhone(f"{cleaned!r} {_LENGTH_REASONS.get(length, 'is not a phone number')}")
    if not phonenumbers.is_valid_number(number):
        # parse() sets the country code of every number it returns; the stubs allow None for an unfilled one.
        assert number.country_code is not None
        region = phonenumbers.region_code_for_country_code(number.country_code)
        raise InvalidPhone(f"{cleaned!r} is not a number in use in {region} (check the area code and digits)")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def phone_country(e164: str) -> str | None:
    """The country (ISO 3166 code, e.g. US) an E.164 number belongs to, or None when it cannot be placed."""
    number = _parse_e164(e164)
    return phonenumbers.region_code_for_number(number) if number is not None else None


def served_country_problem(e164: str, countries: frozenset[str]) -> str | None:
    """Why the business does not text this number (it is in a country it does not serve), or None."""
    country = phone_country(e164)
    if country in countries:
        return None
    served = ", ".join(sorted(countries)) or "none"
    return (
        f"{e164} is a number in {country or 'no known country'}, and this business texts only numbers in "
        f"{served} (FOLLOWUP_SMS_COUNTRIES)"
    )


def normalize_email(text: str) -> str:
    """Check an email address's form (not its mailbox) and return it normalized; raise InvalidEmail saying why not."""
    if not isinstance(text, str):
        raise InvalidEmail(f"{text!r} is not an email address; give it as text")
    try:
        # Deliverability needs DNS: that is I/O at intake time, and a bounce tells us anyway.
        return validate_email(text.strip(), check_deliverability=False).normalized
    except EmailNotValidError as error:
        raise InvalidEmail(f"{text.strip()!r}: {error}") from error


def normalize_timezone(text: str, *, phone_zones: tuple[str, ...] = ()) -> str:
    """Turn a time zone as people write it into an IANA name with daylight saving; raise InvalidTimezone saying why not.

    `EST`, `PST` and the like name a season's clock, not a place (the database's `EST` never
    moves for daylight saving): they are read as the US place they stand for. Every other name
    must be a region/city IANA name (case does not matter) or UTC.
    """
    if not isinstance(text, str):
        raise InvalidTimezone(f"{text!r} is not a time zone; give {_TIMEZONE_EXAMPLES}")
    name = text.strip()
    if not name:
        raise InvalidTimezone(f"no time zone given; give {_TIMEZONE_EXAMPLES}")
    key = " ".join(name.upper().replace(".", "").split()).removesuffix(" TIME")
    if (places := US_TIMEZONE_ABBREVIATIONS.get(key)) is not None:
        return next((place for place in places if place in phone_zones), places[0])
    if key == "UTC":
        return "UTC"
    canonical = _iana_names().get(name.lower())
    if canonical is None:
        raise InvalidTimezone(f"{name!r} is not a time zone this bot knows; give {_TIMEZONE_EXAMPLES}")
    if canonical in _UTC_NAMES:
        return "UTC"
    if "/" not in canonical:
        raise InvalidTimezone(f"{name!r} is a legacy alias, not a place; give {_TIMEZONE_EXAMPLES}")
    if canonical.startswith("Etc/"):
        raise InvalidTimezone(
            f"{name!r} is a fixed offset with no daylight saving; give the place instead, such as America/Chicago"
        )
    try:
        ZoneInfo(canonical)
    except (ZoneInfoNotFoundError, ValueError, OSError) as error:
        raise InvalidTimezone(f"{name!r} is not a time zone this bot knows; give {_TIMEZONE_EXAMPLES}") from error
    return canonical


@lru_cache(maxsize=1)
def _iana_names() -> dict[str, str]:
    """Every IANA zone name by its lower-case spelling, so 'america/chicago' reads as America/Chicago."""
    return {zone.lower(): zone for zone in available_timezones() if zone not in ("localtime", "Factory")}


def timezones_for_phone(e164: str) -> tuple[str, ...]:
    """Name the time zones a number may ring in; () when the number's place is unknown."""
    number = _parse_e164(e164)
    if number is None:
        return ()
    return tuple(zone for zone in time_zones_for_number(number) if zone != UNKNOWN_ZONE)


def is_mobile_capable(e164: str) -> bool | None:
    """Say whether a number can take texts: False for a landline, None when the numbering plan cannot tell."""
    number = _parse_e164(e164)
    if number is None:
        return None
    kind = phonenumbers.number_type(number)
    if kind == PhoneNumberType.FIXED_LINE:
        return False
    return True if kind in _MOBILE_TYPES else None


def _parse_e164(e164: str) -> phonenumbers.PhoneNumber | None:
    try:
        return phonenumbers.parse(e164, None)
    except NumberParseException:
        return None
