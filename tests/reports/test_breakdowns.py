"""The breakdowns by source, touch, person and playbook: every number from a known history, one attribution rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.core.report_request import Breakdown, StatsRequest, StatsWordsError, read_stats_words
from bot.reports.breakdowns import Column, Kind, StatsTable, stats_table, text_lines
from bot.reports.digest import build_digest
from bot.reports.stats import ATTRIBUTION, lead_stats
from tests.known_history import ALICE, BOB, seed_known_history

NOW = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)


# --- what a request asks for ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        ([], StatsRequest(7, None)),
        (["30d"], StatsRequest(30, None)),
        (["by", "source"], StatsRequest(7, Breakdown.SOURCE)),
        (["30d", "by", "touch"], StatsRequest(30, Breakdown.TOUCH)),
        (["by", "person", "30D"], StatsRequest(30, Breakdown.PERSON)),
        (["7d", "BY", "Playbooks"], StatsRequest(7, Breakdown.PLAYBOOK)),
        (["by", "people"], StatsRequest(7, Breakdown.PERSON)),
    ],
)
def test_a_period_and_a_breakdown_are_read_in_either_order_each_optional(words, expected):
    assert read_stats_words(words) == expected


@pytest.mark.parametrize(
    ("words", "wrong"),
    [
        (["forever"], "forever"),
        (["by"], "by"),
        (["by", "weather"], "by weather"),
        (["7d", "30d"], "30d"),
        (["by", "source", "by", "touch"], "by"),
        (["source"], "source"),
    ],
)
def test_anything_else_is_refused_naming_the_word(words, wrong):
    with pytest.raises(StatsWordsError) as refused:
        read_stats_words(words)
    assert str(refused.value) == wrong


def test_the_text_table_aligns_words_left_and_numbers_right_and_shows_no_rate_as_a_dash():
    table = StatsTable(
        Breakdown.SOURCE,
        7,
        NOW - timedelta(days=7),
        NOW,
        "By source",
        (Column("source", "Source", Kind.TEXT), Column("leads", "Leads"), Column("reply_rate", "Reply%", Kind.RATE)),
        (("website", 12, 0.5), ("a very long source name", 3, None)),
        "how it counts",
    )

    assert text_lines(table, widest_text=10) == [
        "Source      Leads  Reply%",
        "website        12     50%",
        "a very lo…      3       —",
    ]
    assert table.records()[1] == {"source": "a very long source name", "leads": 3, "reply_rate": None}


# --- from a known history -------------------------------------------------------------------------


@pytest.fixture
def history(services, clock):
    return seed_known_history(services, clock)


def table(services, clock, by: Breakdown, days: int = 7) -> StatsTable:
    with services.session_factory() as session:
        return stats_table(session, now=clock.now(), days=days, by=by, playbook_of=services.playbooks.get)


def test_by_source_counts_each_sources_leads_and_what_became_of_them(services, clock, history):
    week = table(services, clock, Breakdown.SOURCE)

    assert [column.key for column in week.columns] == [
        "source",
        "leads",
        "contacted",
        "replied",
        "reply_rate",
        "booked",
        "booking_rate",
        "attended",
        "lost",
    ]
    assert week.rows == (
        ("facebook", 2, 2, 2, 1.0, 1, 0.5, 0, 1),  # Cara booked and missed the visit; Dev is lost
        ("website", 2, 2, 1, 0.5, 1, 0.5, 1, 0),  # Ana replied, booked and came; Ben never answered
        ("referral", 1, 1, 0, 0.0, 1, 1.0, 0, 0),  # Eve booked on the calendar without writing
    )


def test_thirty_days_take_in_the_older_lead(services, clock, history):
    month = table(services, clock, Breakdown.SOURCE, days=30)

    assert month.rows[0] == ("website", 3, 3, 2, pytest.approx(2 / 3), 1, pytest.approx(1 / 3), 1, 0)
    assert month.days == 30


def test_by_touch_credits_each_booking_to_the_last_touch_before_the_leads_first_answer(services, clock, history):
    week = table(services, clock, Breakdown.TOUCH)

    assert week.rows == (
        # Four first texts; Ana, Cara and Dev replied to it. Ana's thank-you email went after her reply, so
        # her booking counts for the first text, as Cara's does.
        ("Standard follow-up", "First text", "Text", 4, 3, 0.75, 2, 0.5),
        # Eve had no phone: the email was her only touch, and she booked after it without writing.
        ("Standard follow-up", "Thank-you email", "Email", 2, 0, 0.0, 1, 0.5),
    )
    assert ATTRIBUTION in week.footnote


def test_by_person_counts_calls_and_their_outcomes_claims_and_bookings_of_each_team_member(services, clock, history):
    week = table(services, clock, Breakdown.PERSON)

    records = week.records()
    assert [
        (
            r["team_member"],
            r["calls"],
            r["calls_no_answer"],
            r["calls_booked"],
            r["calls_left_voicemail"],
            r["leads_claimed"],
            r["bookings"],
        )
        for r in records
    ] == [
        (BOB, 2, 1, 1, 0, 1, 1),  # no answer from Ben, Cara booked on a call; he claimed Cara
        (ALICE, 1, 0, 0, 1, 1, 1),  # a voicemail for Ben; she claimed and booked Ana
    ]
    # Eve's calendar booking was nobody's on the team.
    assert sum(r["bookings"] for r in records) == 2


def test_by_playbook_counts_the_leads_enrolled_and_leaves_visit_sequences_out(services, clock, history):
    week = table(services, clock, Breakdown.PLAYBOOK)

    assert week.rows == (("Standard follow-up", 5, 3, 0.6, 3, 0.6, 0, 0),)
    assert "Appointment" not in str(week.rows)


def test_the_breakdowns_add_up_to_the_headline_numbers(services, clock, history):
    with services.session_factory() as session:
        headline = lead_stats(session, now=clock.now(), days=7)
    sources = table(services, clock, Breakdown.SOURCE).records()
    touches = table(services, clock, Breakdown.TOUCH).records()

    assert sum(r["leads"] for r in sources) == headline.leads_in == 5
    assert sum(r["contacted"] for r in sources) == headline.contacted == 5
    assert sum(r["replied"] for r in sources) == headline.replied == 3
    assert sum(r["booked"] for r in sources) == headline.booked == 3
    # Every booking is credited to exactly one touch, every reply after a touch too.
    assert sum(r["bookings"] for r in touches) == headline.booked
    assert sum(r["replies"] for r in touches) == headline.replied


def test_the_digest_counts_calls_as_the_person_breakdown_does(services, clock, history):
    with services.session_factory() as session:
        digest = build_digest(session, end=clock.now(), zone=services.business.timezone)
    people = table(services, clock, Breakdown.PERSON).records()

    assert [(p.user_id, p.calls) for p in digest.calls_by_person] == [(r["team_member"], r["calls"]) for r in people]
    assert [t.bookings for t in digest.stats.by_touch] == [2, 1]


def test_a_period_with_nothing_in_it_has_no_rows(services, clock):
    for by in Breakdown:
        assert table(services, clock, by).rows == ()
