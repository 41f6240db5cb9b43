"""When a touch may go out: send window, closed days and the lead's daytime, across DST and time zones."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.core.business import Business, SendWindow
from bot.core.send_times import (
    LEAD_DAYTIME,
    NoSendTime,
    lead_timezones_or_business,
    may_send_at,
    next_send_time,
)

NEW_YORK, CHICAGO, LOS_ANGELES = "America/New_York", "America/Chicago", "America/Los_Angeles"
SMS, EMAIL = True, False  # whether the lead's daytime applies (texts and calls) or not (email)


def business(
    window: str = "Mon-Sat 08:00-20:00",
    zone: str = NEW_YORK,
    closed: tuple[date, ...] = (),
    calendar: str | None = None,
) -> Business:
    return Business(
        name="Lakeside Chiropractic",
        timezone=ZoneInfo(zone),
        phone="+12125551234",
        address="1 Main St, New York, NY 10001",
        booking_link="https://example.com/book",
        sequence="default",
        send_window=SendWindow.parse(window),
        closed_dates=frozenset(closed),
        holiday_calendar=calendar,
        path=Path("business.yml"),
    )


def local(zone: str, *fields: int, fold: int = 0) -> datetime:
    """A wall-clock time somewhere, as the UTC instant the code works in."""
    return datetime(*fields, tzinfo=ZoneInfo(zone), fold=fold).astimezone(UTC)


FIRST_ALLOWED_MOMENTS = [
    (
        "3 a.m. lead waits for 8 a.m.",
        business("always"),
        SMS,
        (NEW_YORK,),
        local(NEW_YORK, 2026, 3, 4, 3, 0),
        local(NEW_YORK, 2026, 3, 4, 8, 0),
    ),
    (
        "Saturday evening waits for Monday",
        business("Mon-Fri 08:00-20:00"),
        EMAIL,
        (),
        local(NEW_YORK, 2026, 3, 7, 19, 0),
        local(NEW_YORK, 2026, 3, 9, 8, 0),
    ),
    (
        "the window's end is exclusive",
        business(),
        EMAIL,
        (),
        local(NEW_YORK, 2026, 3, 4, 20, 0),
        local(NEW_YORK, 2026, 3, 5, 8, 0),
    ),
    (
        "a closed date is skipped",
        business(closed=(date(2026, 12, 24),)),
        EMAIL,
        (),
        local(NEW_YORK, 2026, 12, 23, 20, 30),
        local(NEW_YORK, 2026, 12, 25, 8, 0),
    ),
    (
        "July 4 is skipped with the US calendar",
        business(calendar="US"),
        EMAIL,
        (),
        local(NEW_YORK, 2025, 7, 3, 21, 0),
        local(NEW_YORK, 2025, 7, 5, 8, 0),
    ),
    (
        "a Saturday July 4 closes the observed Friday too",
        business(calendar="US"),
        EMAIL,
        (),
        local(NEW_YORK, 2026, 7, 2, 20, 0),
        local(NEW_YORK, 2026, 7, 6, 8, 0),
    ),
    (
        "Christmas is skipped with US-CA",
        business(zone=LOS_ANGELES, calendar="US-CA"),
        SMS,
        (LOS_ANGELES,),
        local(LOS_ANGELES, 2026, 12, 24, 20, 30),
        local(LOS_ANGELES, 2026, 12, 26, 8, 0),
    ),
    (
        "closed days follow the business's date, not UTC's",
        business(zone=LOS_ANGELES, closed=(date(2026, 5, 6),)),
        EMAIL,
        (),
        local(LOS_ANGELES, 2026, 5, 5, 19, 0),
        local(LOS_ANGELES, 2026, 5, 5, 19, 0),
    ),
    (
        "a Los Angeles lead waits for 8 a.m. there",
        business(),
        SMS,
        (LOS_ANGELES,),
        local(NEW_YORK, 2026, 3, 4, 8, 5),
        local(NEW_YORK, 2026, 3, 4, 11, 0),
    ),
    (
        "email to a Los Angeles lead goes in business hours",
        business(),
        EMAIL,
        (LOS_ANGELES,),
        local(NEW_YORK, 2026, 3, 4, 8, 5),
        local(NEW_YORK, 2026, 3, 4, 8, 5),
    ),
    (
        "the lead's day begins late in the business window",
        business("Mon-Fri 08:00-12:00"),
        SMS,
        (LOS_ANGELES,),
        local(NEW_YORK, 2026, 3, 4, 8, 0),
        local(NEW_YORK, 2026, 3, 4, 11, 0),
    ),
    (
        "'always' still keeps texts to the lead's daytime",
        business("always"),
        SMS,
        (CHICAGO,),
        local(CHICAGO, 2026, 3, 7, 22, 0),
        local(CHICAGO, 2026, 3, 8, 8, 0),
    ),
    (
        "'always' sends email at night",
        business("always"),
        EMAIL,
        (CHICAGO,),
        local(CHICAGO, 2026, 3, 7, 22, 0),
        local(CHICAGO, 2026, 3, 7, 22, 0),
    ),
    (
        "'always' runs to midnight before a closed date",
        business("always", closed=(date(2026, 12, 24),)),
        EMAIL,
        (),
        local(NEW_YORK, 2026, 12, 23, 23, 59, 59, 999999),
        local(NEW_YORK, 2026, 12, 23, 23, 59, 59, 999999),
    ),
    (
        "'always' reopens at midnight after a closed date",
        business("always", closed=(date(2026, 12, 24),)),
        EMAIL,
        (),
        local(NEW_YORK, 2026, 12, 24, 0, 0),
        local(NEW_YORK, 2026, 12, 25, 0, 0),
    ),
    (
        "a Sat,Sun window ending at 24:00",
        business("Sat,Sun 09:00-24:00"),
        EMAIL,
        (),
        local(NEW_YORK, 2026, 3, 7, 23, 30),
        local(NEW_YORK, 2026, 3, 7, 23, 30),
    ),
    (
        "spring forward: 8 a.m. is daylight time",
        business("always"),
        SMS,
        (NEW_YORK,),
        local(NEW_YORK, 2026, 3, 8, 1, 30),
        datetime(2026, 3, 8, 12, 0, tzinfo=UTC),
    ),
    (
        "spring forward: a window opening in the skipped hour opens at the jump",
        business("Mon-Sun 02:30-05:00"),
        EMAIL,
        (),
        datetime(2026, 3, 8, 6, 0, tzinfo=UTC),
        datetime(2026, 3, 8, 7, 0, tzinfo=UTC),
    ),
    (
        "spring forward: a window closing in the skipped hour stays open until the jump",
        business("Mon-Sun 00:00-02:30"),
        EMAIL,
        (),
        datetime(2026, 3, 8, 6, 59, 59, tzinfo=UTC),
        datetime(2026, 3, 8, 6, 59, 59, tzinfo=UTC),
    ),
    (
        "spring forward: a window closing in the skipped hour closes at the jump",
        business("Mon-Sun 00:00-02:30"),
        EMAIL,
        (),
        datetime(2026, 3, 8, 7, 0, tzinfo=UTC),
        datetime(2026, 3, 9, 4, 0, tzinfo=UTC),
    ),
    (
        "fall back: 8 a.m. is standard time",
        business("always"),
        SMS,
        (NEW_YORK,),
        local(NEW_YORK, 2026, 11, 1, 0, 30),
        datetime(2026, 11, 1, 13, 0, tzinfo=UTC),
    ),
    (
        "fall back: a window opening at 01:30 waits for the second 01:30",
        business("Mon-Sun 01:30-05:00"),
        EMAIL,
        (),
        local(NEW_YORK, 2026, 11, 1, 1, 0),
        local(NEW_YORK, 2026, 11, 1, 1, 30, fold=1),
    ),
    (
        "fall back: a window closing at 01:30 closes at the first 01:30",
        business("Mon-Sun 00:00-01:30"),
        EMAIL,
        (),
        local(NEW_YORK, 2026, 11, 1, 1, 10, fold=1),
        local(NEW_YORK, 2026, 11, 2, 0, 0),
    ),
    (
        "several zones: the latest morning wins",
        business("always"),
        SMS,
        (NEW_YORK, LOS_ANGELES),
        local(NEW_YORK, 2026, 3, 4, 8, 30),
        local(NEW_YORK, 2026, 3, 4, 11, 0),
    ),
    (
        "several zones: the earliest evening wins",
        business("always"),
        SMS,
        (LOS_ANGELES, NEW_YORK),
        local(NEW_YORK, 2026, 3, 4, 21, 0),
        local(NEW_YORK, 2026, 3, 5, 11, 0),
    ),
    (
        "unknown zones fall back to the business's",
        business("always", zone=CHICAGO),
        SMS,
        ("Etc/Unknown",),
        local(CHICAGO, 2026, 3, 4, 6, 0),
        local(CHICAGO, 2026, 3, 4, 8, 0),
    ),
    (
        "no zones fall back to the business's",
        business("always", zone=CHICAGO),
        SMS,
        (),
        local(CHICAGO, 2026, 3, 4, 21, 0),
        local(CHICAGO, 2026, 3, 5, 8, 0),
    ),
    (
        "already inside the window: unchanged to the microsecond",
        business(),
        SMS,
        (NEW_YORK,),
        datetime(2026, 3, 4, 15, 17, 42, 123456, tzinfo=UTC),
        datetime(2026, 3, 4, 15, 17, 42, 123456, tzinfo=UTC),
    ),
]


@pytest.mark.parametrize(
    ("case", "shop", "channel", "lead_zones", "earliest", "expected"),
    FIRST_ALLOWED_MOMENTS,
    ids=[row[0] for row in FIRST_ALLOWED_MOMENTS],
)
def test_a_touch_goes_out_at_the_first_allowed_moment(case, shop, channel, lead_zones, earliest, expected):
    sent = next_send_time(earliest, business=shop, respect_lead_daytime=channel, lead_timezones=lead_zones)
    assert sent == expected, f"{case}: {sent.astimezone(shop.timezone)}"
    assert sent.tzinfo is UTC


def test_the_answer_is_in_utc_whatever_zone_earliest_is_written_in():
    earliest = datetime(2026, 3, 4, 3, 0, tzinfo=ZoneInfo(CHICAGO))
    sent = next_send_time(
        earliest, business=business(zone=CHICAGO), respect_lead_daytime=True, lead_timezones=(CHICAGO,)
    )
    assert (sent, sent.tzinfo) == (datetime(2026, 3, 4, 14, 0, tzinfo=UTC), UTC)


def test_a_toll_free_lead_is_texted_only_when_it_is_daytime_in_every_zone_it_may_be_in():
    zones = ("Pacific/Honolulu", "America/Anchorage", "America/Los_Angeles", "America/New_York", "America/Halifax")
    sent = next_send_time(
        local(NEW_YORK, 2026, 1, 14, 6, 0), business=business("always"), respect_lead_daytime=True, lead_timezones=zones
    )
    # 08:00 in Honolulu is 13:00 in New York; 21:00 in Halifax is 20:00 there.
    assert sent == local(NEW_YORK, 2026, 1, 14, 13, 0)
    assert all(LEAD_DAYTIME[0] <= sent.astimezone(ZoneInfo(z)).time() < LEAD_DAYTIME[1] for z in zones)


@pytest.mark.parametrize(
    ("shop", "zones", "reason"),
    [
        (business("Mon-Fri 09:00-10:00"), ("Pacific/Guam",), "never meets 08:00-21:00 in the lead's time zone"),
        (business("always"), ("Etc/GMT", "Etc/GMT-8", "Etc/GMT+8"), "share no hour of 08:00-21:00"),
        (
            business(closed=tuple(date(2026, 1, 1) + timedelta(days=n) for n in range(800))),
            (NEW_YORK,),
            "closed or outside its send window",
        ),
    ],
)
def test_a_touch_that_can_never_go_out_says_why(shop, zones, reason):
    with pytest.raises(NoSendTime, match=reason):
        next_send_time(datetime(2026, 3, 4, tzinfo=UTC), business=shop, respect_lead_daytime=True, lead_timezones=zones)


def test_a_naive_time_is_refused_rather_than_guessed():
    with pytest.raises(ValueError, match="timezone-aware"):
        next_send_time(datetime(2026, 3, 4, 9, 0), business=business(), respect_lead_daytime=True, lead_timezones=())


@pytest.mark.parametrize(
    ("moment", "channel", "allowed"),
    [
        (local(NEW_YORK, 2026, 3, 4, 12, 0), SMS, True),
        (local(NEW_YORK, 2026, 3, 4, 10, 59, 59, 999999), SMS, False),  # still before 8 a.m. in Los Angeles
        (local(NEW_YORK, 2026, 3, 4, 11, 0), SMS, True),
        (local(NEW_YORK, 2026, 3, 4, 19, 59, 59, 999999), SMS, True),
        (local(NEW_YORK, 2026, 3, 4, 20, 0), SMS, False),  # the business window has closed
        (local(NEW_YORK, 2026, 3, 4, 9, 0), EMAIL, True),
        (local(NEW_YORK, 2026, 3, 8, 12, 0), EMAIL, False),  # Sunday
        (local(NEW_YORK, 2026, 12, 25, 12, 0), EMAIL, False),  # Christmas
    ],
)
def test_whether_a_touch_may_go_out_right_now(moment, channel, allowed):
    shop = business(calendar="US")
    assert may_send_at(moment, business=shop, respect_lead_daytime=channel, lead_timezones=(LOS_ANGELES,)) is allowed


@pytest.mark.parametrize(
    ("zones", "expected"),
    [
        ((), (CHICAGO,)),
        (("Etc/Unknown",), (CHICAGO,)),
        (("Mars/Olympus", "America/Denver"), ("America/Denver",)),
        ((NEW_YORK, LOS_ANGELES, NEW_YORK), (NEW_YORK, LOS_ANGELES)),
    ],
)
def test_a_lead_without_a_known_zone_is_treated_as_local_to_the_business(zones, expected):
    assert lead_timezones_or_business(zones, business(zone=CHICAGO)) == expected


def _allowed_on_the_wall_clock(moment: datetime, shop: Business, zones: tuple[str, ...]) -> bool:
    """The rules read straight off each clock: the slow, obvious check the fast code must agree with."""
    here = moment.astimezone(shop.timezone)
    window = shop.send_window
    in_window = here.weekday() in window.days and window.start <= here.time() < window.end
    lead_ok = all(LEAD_DAYTIME[0] <= moment.astimezone(ZoneInfo(z)).time() < LEAD_DAYTIME[1] for z in zones)
    return in_window and not shop.is_closed_on(here.date()) and lead_ok


def test_the_interval_arithmetic_agrees_with_a_quarter_hour_walk_over_a_year():
    shop = business("Mon-Fri 09:00-17:30", calendar="US")
    zones = (LOS_ANGELES, "America/Phoenix")  # Phoenix keeps standard time: the overlap moves with DST
    step = timedelta(minutes=15)
    earliest = datetime(2026, 1, 1, 0, 7, tzinfo=UTC)
    while earliest < datetime(2027, 1, 1, tzinfo=UTC):
        sent = next_send_time(earliest, business=shop, respect_lead_daytime=True, lead_timezones=zones)
        assert _allowed_on_the_wall_clock(sent, shop, zones), earliest
        walk = earliest + (-(earliest - datetime(2026, 1, 1, tzinfo=UTC)) % step)  # the next quarter hour
        while walk < sent:
            assert not _allowed_on_the_wall_clock(walk, shop, zones), (earliest, walk)
            walk += step
        earliest += timedelta(hours=7, minutes=13)


# --- why a touch waits --------------------------------------------------------------------------


def _wait(planned: datetime, *, phone: bool, zones: tuple[str, ...]) -> tuple[datetime, str | None]:
    from bot import SHIPPED_SEQUENCES
    from bot.core.business import load_business
    from bot.core.send_times import next_send_time, wait_reason

    business = load_business(SHIPPED_SEQUENCES / "business.yml")  # Chicago, Mon-Sat 08:00-20:00, US holidays
    due = next_send_time(planned, business=business, respect_lead_daytime=phone, lead_timezones=zones)
    return due, wait_reason(due, planned, business=business, respect_lead_daytime=phone, lead_timezones=zones)


def test_a_text_held_for_the_leads_night_is_explained_as_quiet_hours():
    from zoneinfo import ZoneInfo

    # The clinic is open at 8:30 AM in Chicago, but it is 6:30 AM for a lead in Los Angeles: wait for 8 AM there.
    planned = datetime(2027, 3, 2, 8, 30, tzinfo=ZoneInfo("America/Chicago"))  # 6:30 AM in Los Angeles
    due, why = _wait(planned, phone=True, zones=("America/Los_Angeles",))
    assert due == datetime(2027, 3, 2, 10, 0, tzinfo=ZoneInfo("America/Chicago"))
    assert why == "quiet hours"


def test_a_wait_says_whether_the_leads_night_holds_it_without_reading_its_words():
    from zoneinfo import ZoneInfo

    from bot import SHIPPED_SEQUENCES
    from bot.core.business import load_business
    from bot.core.send_times import next_send_time, wait_of

    business = load_business(SHIPPED_SEQUENCES / "business.yml")
    chicago = ZoneInfo("America/Chicago")
    for planned, phone, zones, for_lead in (
        (datetime(2027, 3, 2, 8, 30, tzinfo=chicago), True, ("America/Los_Angeles",), True),
        (datetime(2027, 3, 2, 23, 30, tzinfo=chicago), True, ("America/Chicago",), True),
        (datetime(2027, 3, 7, 11, 0, tzinfo=chicago), False, ("America/Chicago",), False),
    ):
        due = next_send_time(planned, business=business, respect_lead_daytime=phone, lead_timezones=zones)
        wait = wait_of(due, planned, business=business, respect_lead_daytime=phone, lead_timezones=zones)
        assert wait is not None and wait.for_lead_daytime is for_lead, (planned, wait)


def test_a_night_lead_waits_for_quiet_hours_and_opening_time():
    from zoneinfo import ZoneInfo

    planned = datetime(2027, 3, 2, 23, 30, tzinfo=ZoneInfo("America/Chicago"))
    due, why = _wait(planned, phone=True, zones=("America/Chicago",))
    assert due == datetime(2027, 3, 3, 8, 0, tzinfo=ZoneInfo("America/Chicago"))
    assert why == "quiet hours and outside business hours (Mon-Sat 08:00-20:00)"


def test_a_closed_sunday_and_a_holiday_are_named():
    from zoneinfo import ZoneInfo

    _, sunday = _wait(
        datetime(2027, 3, 7, 11, 0, tzinfo=ZoneInfo("America/Chicago")), phone=False, zones=("America/Chicago",)
    )
    assert sunday == "Lakeside Chiropractic is closed on Sundays"
    _, holiday = _wait(
        datetime(2027, 7, 5, 11, 0, tzinfo=ZoneInfo("America/Chicago")), phone=False, zones=("America/Chicago",)
    )
    assert holiday is not None and holiday.startswith("Lakeside Chiropractic is closed for Independence Day")


def test_a_touch_on_time_needs_no_reason():
    from zoneinfo import ZoneInfo

    _, why = _wait(
        datetime(2027, 3, 2, 11, 0, tzinfo=ZoneInfo("America/Chicago")), phone=True, zones=("America/Chicago",)
    )
    assert why is None
