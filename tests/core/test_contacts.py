"""Phone numbers and email addresses as people write them, checked and normalized at the edge."""

from __future__ import annotations

import pytest

from bot.core.contacts import (
    InvalidEmail,
    InvalidPhone,
    InvalidTimezone,
    is_mobile_capable,
    normalize_email,
    normalize_phone,
    normalize_timezone,
    timezones_for_phone,
)


@pytest.mark.parametrize(
    ("text", "region", "e164"),
    [
        ("(312) 555-0142", "US", "+13125550142"),
        ("312.555.0142", "US", "+13125550142"),
        ("312-555-0142", "US", "+13125550142"),
        ("  312 555 0142\n", "US", "+13125550142"),
        ("+1 312 555 0142", "US", "+13125550142"),
        ("1 (212) 555-1234", "US", "+12125551234"),
        ("+1-415-555-2671", "US", "+14155552671"),
        ("+13125550142", "GB", "+13125550142"),
        ("020 7946 0958", "GB", "+442079460958"),
        ("07911 123456", "GB", "+447911123456"),
    ],
)
def test_phone_numbers_in_any_common_format_become_e164(text, region, e164):
    assert normalize_phone(text, region) == e164


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "no number given"),
        ("   ", "no number given"),
        ("not a phone", "is not a phone number"),
        ("12", "too short"),
        ("312-555-014", "too short"),
        ("+1 312 555 01422", "too long"),
        ("312 555 0142 or 312 555 0143", "give one number only"),
        ("555-0142", "lacks its area code"),
        ("(555) 010-1234", "not a number in use in US"),
        ("+44 20 7946 095", "not a number in use in GB"),
        ("+999 123 4567", "country code that does not exist"),
    ],
)
def test_a_phone_number_that_cannot_be_texted_is_refused_with_the_reason(text, reason):
    with pytest.raises(InvalidPhone, match=reason):
        normalize_phone(text)


def test_a_number_without_country_code_needs_a_known_default_region():
    with pytest.raises(InvalidPhone, match="default region 'XX' is unknown"):
        normalize_phone("312 555 0142", "XX")


def test_a_refused_phone_number_is_a_value_error_naming_what_was_given():
    with pytest.raises(ValueError, match="'12'"):
        normalize_phone("12")


@pytest.mark.parametrize(
    ("text", "normalized"),
    [
        ("dana@example.com", "dana@example.com"),
        ("  Dana.Lee@Example.COM ", "Dana.Lee@example.com"),
        ("dana+leads@clinic.example.org", "dana+leads@clinic.example.org"),
    ],
)
def test_email_addresses_are_trimmed_and_their_domain_lowercased(text, normalized):
    assert normalize_email(text) == normalized


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("dana", "@-sign"),
        ("dana@", "after the @-sign"),
        ("dana@localhost", "should have a period"),
        ("dana lee@example.com", "invalid characters"),
        ("", "@-sign"),
    ],
)
def test_an_email_address_that_cannot_work_is_refused_with_the_reason(text, reason):
    with pytest.raises(InvalidEmail, match=reason):
        normalize_email(text)


@pytest.mark.parametrize(
    ("e164", "zones"),
    [
        ("+13125550142", ("America/Chicago",)),
        ("+14155552671", ("America/Los_Angeles",)),
        ("+12125551234", ("America/New_York",)),
        ("+442079460958", ("Europe/London",)),
        ("+15555551234", ()),  # 555 is no real area code: place unknown
        ("not a number", ()),
    ],
)
def test_a_phone_number_tells_the_time_zone_it_rings_in(e164, zones):
    assert timezones_for_phone(e164) == zones


def test_a_toll_free_number_may_ring_in_every_north_american_zone():
    zones = timezones_for_phone("+18005551234")
    assert {"America/New_York", "America/Chicago", "America/Los_Angeles", "Pacific/Honolulu"} <= set(zones)
    assert "Etc/Unknown" not in zones


@pytest.mark.parametrize(
    ("e164", "mobile"),
    [
        ("+447911123456", True),  # a UK mobile
        ("+13125550142", True),  # North American numbers may be either, and most take texts
        ("+442079460958", False),  # a London landline
        ("+18005551234", None),  # toll-free: cannot tell
        ("not a number", None),
    ],
)
def test_whether_a_number_can_take_texts_is_told_from_its_numbering_plan(e164, mobile):
    assert is_mobile_capable(e164) is mobile


# --- time zones -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "zone"),
    [
        ("America/Chicago", "America/Chicago"),
        (" america/new_york ", "America/New_York"),
        ("Europe/London", "Europe/London"),
        ("UTC", "UTC"),
        ("Etc/UTC", "UTC"),
        ("EST", "America/New_York"),
        ("edt", "America/New_York"),
        ("ET", "America/New_York"),
        ("Eastern Time", "America/New_York"),
        ("CST", "America/Chicago"),
        ("CDT", "America/Chicago"),
        ("ct", "America/Chicago"),
        ("MST", "America/Denver"),
        ("MDT", "America/Denver"),
        ("MT", "America/Denver"),
        ("PST", "America/Los_Angeles"),
        ("P.S.T.", "America/Los_Angeles"),
        ("PDT", "America/Los_Angeles"),
        ("PT", "America/Los_Angeles"),
        ("Pacific", "America/Los_Angeles"),
        ("AKST", "America/Anchorage"),
        ("AKDT", "America/Anchorage"),
        ("HST", "Pacific/Honolulu"),
    ],
)
def test_a_time_zone_is_read_as_the_place_whose_clock_it_names(text, zone):
    assert normalize_timezone(text) == zone


def test_mst_from_an_arizona_number_is_arizona_time_which_keeps_mst_all_year():
    assert normalize_timezone("MST", phone_zones=timezones_for_phone("+16025550142")) == "America/Phoenix"
    assert normalize_timezone("MST", phone_zones=timezones_for_phone("+13035550142")) == "America/Denver"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("Mars/Olympus", "'Mars/Olympus' is not a time zone this bot knows"),
        ("BST", "'BST' is not a time zone this bot knows"),
        ("EST5EDT", "'EST5EDT' is a legacy alias, not a place"),
        ("Japan", "'Japan' is a legacy alias, not a place"),
        ("localtime", "'localtime' is not a time zone this bot knows"),
        ("Etc/GMT+5", "'Etc/GMT+5' is a fixed offset with no daylight saving"),
        ("   ", "no time zone given"),
        ("America/Chicago/../../etc/passwd", "is not a time zone this bot knows"),
    ],
)
def test_anything_else_is_refused_naming_what_to_write_instead(text, reason):
    with pytest.raises(InvalidTimezone) as refused:
        normalize_timezone(text)
    assert reason in str(refused.value) and "America/Chicago" in str(refused.value)
