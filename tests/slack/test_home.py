"""The App Home tab and the /followup answers as Block Kit: valid, within Slack's limits, lead text escaped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

from bot import SHIPPED_SEQUENCES, SHIPPED_TEMPLATES
from bot.reports.stats import (
    CallLine,
    ChannelDelivery,
    DayNumbers,
    HomeSnapshot,
    LeadLine,
    LeadStats,
    NextStep,
    Page,
    StepKind,
    SubjectResult,
    TouchResult,
)
from bot.slack.home import duration, home_view, lead_detail_blocks, lead_line_text, lead_list_blocks, stats_blocks, when
from bot.usecases.services import Playbooks

CHICAGO = ZoneInfo("America/Chicago")
PLAYBOOKS = Playbooks(sequences_dir=SHIPPED_SEQUENCES, templates_dir=SHIPPED_TEMPLATES, default="default")
NOW = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)


def valid(blocks: list[dict], limit: int = 50) -> list[dict]:
    assert 0 < len(blocks) <= limit
    parsed = Block.parse_all(blocks)
    assert all(block is not None for block in parsed)
    for block in parsed:
        block.validate_json()
    return blocks


def mrkdwn_texts(value) -> list[str]:
    """Every mrkdwn text in blocks: where Slack would turn <...> into a ping or a link."""
    if isinstance(value, list):
        return [text for item in value for text in mrkdwn_texts(item)]
    if isinstance(value, dict):
        own = [value["text"]] if value.get("type") == "mrkdwn" else []
        return own + [text for item in value.values() for text in mrkdwn_texts(item)]
    return []


def line(n: int, name: str = "Dana", kind: StepKind = StepKind.TOUCH) -> LeadLine:
    return LeadLine(
        n,
        name,
        "+13125550142",
        None,
        "engaged",
        "U0ALICE",
        NextStep(kind, "day1_checkin_sms", NOW + timedelta(hours=n), "sms"),
    )


def call(n: int, name: str = "Dana") -> CallLine:
    return CallLine(n, n, name, "+13125550142", "asked a question", NOW, None if n % 2 else "U0BOB")


def snapshot(leads: int, calls: int, name: str = "Dana") -> HomeSnapshot:
    return HomeSnapshot(
        "U0ALICE",
        "Lakeside Chiropractic",
        Page(tuple(line(n, name) for n in range(min(leads, 15))), leads),
        Page(tuple(call(n, name) for n in range(min(calls, 15))), calls),
        DayNumbers(3, 9, 2, 1, calls),
    )


@pytest.mark.parametrize(("leads", "calls"), [(0, 0), (1, 1), (15, 15), (400, 400)])
def test_the_home_tab_is_valid_and_within_a_hundred_blocks(leads, calls):
    view = home_view(snapshot(leads, calls), CHICAGO)

    valid(view["blocks"], limit=100)
    View(**view).validate_json()


def test_the_home_tab_says_how_many_more_there_are():
    shown = str(home_view(snapshot(40, 20), CHICAGO)["blocks"])

    assert "…and 25 more of your leads" in shown and "…and 5 more open calls" in shown


def test_lead_names_on_the_home_tab_ping_no_one():
    shown = str(home_view(snapshot(2, 2, name="<!everyone> <https://evil.example|bank.com>"), CHICAGO))

    assert "<!everyone>" not in shown and "<https://evil.example|bank.com>" not in shown
    assert "&lt;!everyone&gt;" in shown


@pytest.mark.parametrize("kind", list(StepKind))
def test_every_next_step_reads_as_a_line(kind):
    valid(lead_list_blocks("Open leads", Page((line(1, kind=kind),), 1), CHICAGO))


def test_a_long_list_stays_within_fifty_blocks():
    page = Page(tuple(line(n) for n in range(80)), 300)

    valid(lead_list_blocks("Open leads", page, CHICAGO))


def test_lead_details_are_valid_and_escaped():
    detail = {
        "id": 4,
        "name": "<@U0BOSS>",
        "phone": "+13125550142",
        "email": "a&b@example.com",
        "source": "web",
        "stage": "engaged",
        "owner": None,
        "sequence": "default",
        "enrollment_state": "paused",
        "enrollment_reason": "replied; a person takes over",
        "created_at": NOW.isoformat(),
        "next_touch": {"step": "day1_checkin_sms", "channel": "sms", "due_at": NOW.isoformat()},
        "first_message": "<!channel> back pain " * 300,
        "sms_opted_out_at": None,
        "email_opted_out_at": None,
        "sms_unreachable_reason": None,
        "messages": [
            {
                "direction": "in",
                "channel": "sms",
                "at": NOW.isoformat(),
                "status": "received",
                "subject": None,
                "body": f"message {n} <!here>",
            }
            for n in range(30)
        ],
        "call_tasks": [{"status": "open", "claimed_by": None, "reason": "asked a question", "due_at": NOW.isoformat()}],
        "appointments": [{"status": "booked", "start_at": (NOW + timedelta(days=1)).isoformat()}],
    }

    blocks = valid(lead_detail_blocks(detail, CHICAGO))

    shown = " ".join(mrkdwn_texts(blocks))
    assert "<!channel>" not in shown and "<!here>" not in shown and "<@U0BOSS>" not in shown
    assert blocks[0]["text"] == {"type": "plain_text", "text": "<@U0BOSS> (#4)", "emoji": True}  # plain: no ping
    assert "message 29" in shown and "message 24" not in shown  # the last five


def test_stats_are_valid_block_kit():
    stats = LeadStats(
        7,
        NOW - timedelta(days=7),
        12,
        10,
        timedelta(seconds=40),
        timedelta(minutes=3),
        4,
        2,
        (TouchResult("default", "instant_sms", 0, 10, 3, 1), TouchResult("default", "same_day_email", 1, 8, 1, 0)),
        (SubjectResult("default", "same_day_email", 0, "Thanks, Maria <!channel>", 4, 1),),
        (ChannelDelivery("email", 8, 1), ChannelDelivery("sms", 20, 2)),
    )

    shown = str(valid(stats_blocks(stats, PLAYBOOKS.get)))

    assert "40 s" in shown and "3 min" in shown and "40%" in shown and "17%" in shown
    assert "First text: sent 10 · replies 3 of 10 (30%) · bookings 1 of 10 (10%)" in shown
    assert "Thank-you email: sent 8 · replies 1 of 8 (12%)" in shown
    # The subject option is named by its template text, never by one lead's subject.
    assert "“Thanks for reaching out, {{ lead.first_name }}”: replies 1 of 4 (25%)" in shown
    assert "Maria" not in shown and "instant_sms" not in shown
    assert "SMS: 2 failed of 20 (10%)" in shown


def test_stats_of_a_playbook_gone_read_as_words_and_never_as_one_leads_subject():
    stats = LeadStats(
        7,
        NOW - timedelta(days=7),
        1,
        1,
        None,
        None,
        1,
        0,
        (TouchResult("gone", "day2_text", 0, 1, 1, 0),),
        (SubjectResult("gone", "day2_mail", 1, "Hello <!channel> Maria", 1, 1),),
        (),
    )
    shown = str(valid(stats_blocks(stats, PLAYBOOKS.get)))
    assert "Day2 text" in shown and "subject option 2" in shown and "Maria" not in shown


@pytest.mark.parametrize(
    ("span", "said"),
    [
        (None, "—"),
        (timedelta(seconds=4), "4 s"),
        (timedelta(minutes=3, seconds=10), "3 min"),
        (timedelta(hours=2), "2 h"),
        (timedelta(hours=2, minutes=5), "2 h 5 min"),
        (timedelta(days=1, hours=3), "1 d 3 h"),
    ],
)
def test_durations_read_as_people_say_them(span, said):
    assert duration(span) == said


def test_times_read_in_the_business_zone():
    assert when(NOW, CHICAGO) == "Wed, Nov 25 at 9:00 AM CST"
    assert when(NOW, CHICAGO, "America/New_York") == "Wed, Nov 25 at 9:00 AM CST (10:00 AM EST their time)"


def test_a_leads_next_touch_reads_by_its_label_with_its_zone():
    line = LeadLine(
        3,
        "Maria Gonzalez",
        "+13125550177",
        None,
        "contacted",
        None,
        NextStep(StepKind.TOUCH, "day1_checkin_sms", NOW, "sms", "default"),
    )
    shown = lead_line_text(line, CHICAGO, PLAYBOOKS.get)
    assert "Day-1 check-in text Wed, Nov 25 at 9:00 AM CST" in shown and "day1_checkin_sms" not in shown


def clinic_snapshot(number: int, *, rows: int = 4, closed: int = 4) -> HomeSnapshot:
    from bot.usecases.closed_by_bot import ClosedByBot

    return HomeSnapshot(
        "U0ALICE",
        f"Clinic {number:02d}",
        Page(tuple(line(n) for n in range(rows)), rows + 10),
        Page(tuple(call(n) for n in range(rows)), rows + 3),
        DayNumbers(3, 9, 2, 1, rows),
        closed_by_bot=tuple(
            ClosedByBot(
                100 * number + n, "Sam", None, None, "lost", NOW, "not interested", "no thanks", "not_interested"
            )
            for n in range(closed)
        ),
    )


@pytest.mark.parametrize("clinics", [2, 8, 15, 24])
def test_a_member_of_many_clinics_channels_sees_every_clinic_in_app_home(clinics):
    """An agency's member sits in a dozen clinics' channels: no clinic may fall off the end of the tab."""
    from bot.slack.home import businesses_home_view

    view = businesses_home_view([(clinic_snapshot(n), CHICAGO, None) for n in range(clinics)])

    valid(view["blocks"], limit=100)
    View(**view).validate_json()
    shown = str(view["blocks"])
    assert all(f"Clinic {n:02d}" in shown for n in range(clinics))
    assert "more than fits here" not in shown


def test_with_many_clinics_each_part_still_offers_reopen_for_what_fits_and_counts_the_rest():
    from bot.slack.home import businesses_home_view

    view = businesses_home_view([(clinic_snapshot(n), CHICAGO, None) for n in range(15)])
    reopen = [
        block["accessory"]["value"]
        for block in view["blocks"]
        if block.get("accessory", {}).get("action_id") == "lead_reopen"
    ]
    shown_each = len(reopen) // 15
    assert shown_each >= 1 and len(reopen) == 15 * shown_each
    assert f"Closed by the bot this week: 4 ({4 - shown_each} not shown here)" in str(view["blocks"])
    assert "…and 10 more of your leads" in str(view["blocks"]) and "…and 3 more open calls" in str(view["blocks"])
