"""`/followup stats ... by source|touch|person|playbook` through the real command route, from a known history."""

from __future__ import annotations

import json

import pytest

from bot.store.audit import SYSTEM
from bot.usecases.leads import LeadInput, add_lead
from tests.fakes import WEB_FORM_CONSENT
from tests.handlers.conftest import any_database
from tests.known_history import ALICE, BOB, seed_known_history


@pytest.fixture
def history(services, clock):
    return seed_known_history(services, clock)


def answer_blocks(workspace) -> list[dict]:
    workspace.last_answer()  # valid Block Kit, ephemeral, no stray markup
    return workspace.answers()[-1]["blocks"]


def table_text(workspace) -> str:
    """The monospace table of the last answer, as the person reads it."""
    [table] = [
        b["text"]["text"] for b in answer_blocks(workspace) if b["type"] == "section" and "```" in b["text"]["text"]
    ]
    return table.split("```")[1].strip("\n")


def test_by_source_is_a_table_of_each_sources_leads(workspace, history):
    workspace.command("stats 7d by source")

    assert table_text(workspace).splitlines() == [
        "Source    Leads  Reached  Replied  Reply%  Booked  Book%  Came  Lost",
        "facebook      2        2        2    100%       1    50%     0     1",
        "website       2        2        1     50%       1    50%     1     0",
        "referral      1        1        0      0%       1   100%     0     0",
    ]
    blocks = answer_blocks(workspace)
    assert blocks[0]["text"]["text"] == "By source · last 7 days"


def test_thirty_days_by_source_take_in_the_older_lead(workspace, history):
    workspace.command("stats 30d by source")

    assert "website       3        3        2     67%       1    33%     1     0" in table_text(workspace)


def test_by_touch_names_each_step_by_its_label_and_states_the_attribution(workspace, history):
    workspace.command("stats by touch")

    assert table_text(workspace).splitlines() == [
        "Playbook            Touch            Via    Sent  Replies  Reply%  Bookings  Book%",
        "Standard follow-up  First text       Text      4        3     75%         2    50%",
        "Standard follow-up  Thank-you email  Email     2        0      0%         1    50%",
    ]
    said = workspace.last_answer()
    assert "a booking counts for the last touch sent before the lead first answered" in said
    for internal in ("instant_sms", "same_day_email", '"default"'):
        assert internal not in said


def test_by_person_mentions_each_team_member_with_their_calls_claims_and_bookings(workspace, history):
    workspace.command("stats 7d by person")

    fields = [
        field["text"]
        for block in answer_blocks(workspace)
        if block["type"] == "section"
        for field in block.get("fields", [])
    ]
    assert fields == [
        f"*<@{BOB}>*\n2 calls: 1 booked, 1 no answer\n1 claimed · 1 booked",
        f"*<@{ALICE}>*\n1 call: 1 voicemail\n1 claimed · 1 booked",
    ]


def test_by_playbook_counts_the_follow_up_playbooks(workspace, history):
    workspace.command("stats by playbook 7d")

    assert table_text(workspace).splitlines() == [
        "Playbook            Leads  Replied  Reply%  Booked  Book%  Finished  Nurture",
        "Standard follow-up      5        3     60%       3    60%         0        0",
    ]


@any_database
def test_a_period_with_nothing_says_so_in_words(workspace):
    workspace.command("stats by person")

    assert "Nobody logged a call, claimed a lead or booked a visit in this period." in workspace.last_answer()


@any_database
@pytest.mark.parametrize("text", ["stats by weather", "stats 90d", "stats by", "stats source"])
def test_a_stats_command_it_cannot_read_names_the_accepted_forms(workspace, text):
    workspace.command(text)

    said = workspace.last_answer()
    assert "`7d` or `30d`" in said and "`by source`, `by touch`, `by person` or `by playbook`" in said
    assert "/followup stats 30d by source" in said


@any_database
def test_a_source_with_slack_markup_is_shown_as_text(workspace, services):
    data = LeadInput.parse({"name": "Pat", "phone": "+13125550177", "source": "<!channel> ads", **WEB_FORM_CONSENT})
    with services.session_factory.begin() as session:
        add_lead(
            session,
            data,
            business=services.business,
            sequence=services.playbooks.get(),
            now=services.clock.now(),
            actor=SYSTEM,
        )

    workspace.command("stats by source")

    assert "&lt;!channel&gt; ads" in table_text(workspace)
    assert "<!channel>" not in json.dumps(answer_blocks(workspace))
