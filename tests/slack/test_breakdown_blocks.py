"""The breakdown tables as Slack shows them: valid Block Kit, cut by whole rows to what a message holds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.core.report_request import Breakdown
from bot.reports.breakdowns import Column, Kind, StatsTable
from bot.slack.blocks import SECTION_TEXT
from bot.slack.breakdowns import stats_table_blocks
from tests.handlers.conftest import valid_blocks

NOW = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
SOURCE_COLUMNS = (
    Column("source", "Source", Kind.TEXT),
    Column("leads", "Leads"),
    Column("reply_rate", "Reply%", Kind.RATE),
)


def sources(count: int) -> StatsTable:
    rows = tuple((f"campaign-{n:03d}-with-a-long-name", n, n / 100) for n in range(count))
    return StatsTable(
        Breakdown.SOURCE,
        30,
        NOW - timedelta(days=30),
        NOW,
        "By source",
        SOURCE_COLUMNS,
        rows,
        "Leads that came in during the period.",
    )


def test_a_table_too_long_for_one_message_is_cut_by_whole_rows_and_says_how_many_more():
    blocks = valid_blocks(stats_table_blocks(sources(200)))

    table = blocks[1]["text"]["text"]
    assert len(table) <= SECTION_TEXT
    shown = table.split("```")[1].strip("\n").splitlines()
    assert shown[0].startswith("Source") and all(line.endswith("%") for line in shown[1:])
    assert f"…and {200 - (len(shown) - 1)} more: `followup stats` on the host lists them all." in table


def test_long_labels_are_cut_with_an_ellipsis_to_keep_the_table_narrow():
    text = stats_table_blocks(sources(1))[1]["text"]["text"]

    assert "campaign-000-with-a…" in text


def test_many_team_members_fill_sections_of_ten_fields():
    columns = (
        Column("team_member", "Team member", Kind.PERSON),
        Column("calls", "Calls"),
        Column("calls_booked", "Booked"),
        Column("leads_claimed", "Claimed"),
        Column("bookings", "Bookings"),
    )
    rows = tuple((f"U0PERSON{n:02d}", n, 0, 1, 0) for n in range(45))
    table = StatsTable(Breakdown.PERSON, 7, NOW - timedelta(days=7), NOW, "By team member", columns, rows, "x")

    blocks = valid_blocks(stats_table_blocks(table))

    assert [len(b["fields"]) for b in blocks if b["type"] == "section"] == [10, 10, 10, 10]
    assert "…and 5 more" in str(blocks)
    assert "*<@U0PERSON00>*\n0 calls\n1 claimed · 0 booked" in str(blocks[1]["fields"][0]["text"])
