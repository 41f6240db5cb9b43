"""How times are shown to the team: one time with its zone, the lead's beside it when theirs differs."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.core.display import team_time, zone_label

#: 21:00 UTC on Tuesday 2 March 2027: 3 PM in Chicago.
MOMENT = datetime(2027, 3, 2, 21, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("lead_zone", "shown"),
    [
        (None, "Tue, Mar 2 at 3:00 PM CST"),
        ("America/Chicago", "Tue, Mar 2 at 3:00 PM CST"),
        ("America/New_York", "Tue, Mar 2 at 3:00 PM CST (4:00 PM EST their time)"),
        ("America/Los_Angeles", "Tue, Mar 2 at 3:00 PM CST (1:00 PM PST their time)"),
        ("Asia/Tokyo", "Tue, Mar 2 at 3:00 PM CST (Wed 6:00 AM JST their time)"),
    ],
)
def test_a_time_is_labelled_and_the_leads_zone_shows_beside_it_when_it_differs(lead_zone, shown):
    assert team_time(MOMENT, "America/Chicago", lead_zone) == shown


def test_a_wait_for_the_leads_daytime_leads_with_their_clock():
    assert (
        team_time(MOMENT, "America/Chicago", "America/New_York", first="lead")
        == "Tue, Mar 2 at 4:00 PM EST their time (3:00 PM CST here)"
    )


def test_zones_with_the_same_clock_and_name_count_as_one():
    # Arizona keeps MST all year, like Denver in winter: no second time for the same clock.
    assert team_time(MOMENT, "America/Phoenix", "America/Denver") == "Tue, Mar 2 at 2:00 PM MST"


def test_daylight_saving_shows_in_the_label():
    summer = datetime(2027, 7, 1, 20, 0, tzinfo=UTC)
    assert team_time(summer, "America/Chicago") == "Thu, Jul 1 at 3:00 PM CDT"


def test_a_zone_without_an_abbreviation_is_named_by_its_offset():
    assert zone_label(MOMENT, "Asia/Dubai") == "UTC+4"
    assert zone_label(MOMENT, "Asia/Kolkata") == "IST"
