"""Reading /followup text and thread messages: typed commands, times in the business's zone, the send marker."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from bot.slack.command_text import (
    BookLead,
    CommandError,
    Help,
    LeadVerb,
    ListFilter,
    ListLeads,
    NewLead,
    OnLead,
    ShowStats,
    message_for_lead,
    parse_command,
    parse_when,
    plain_text_from_slack,
    usage,
)

CHICAGO = ZoneInfo("America/Chicago")
#: Wednesday 2026-11-25 09:00 in Chicago.
NOW = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)


def parse(text: str):
    return parse_command(text, now=NOW, zone=CHICAGO)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "command"),
    [
        ("", Help()),
        ("help", Help()),
        ("HELP", Help()),
        ("new (312) 555-0142 Dana Lee", NewLead(phone="(312) 555-0142", email=None, name="Dana Lee")),
        ("new +1 312 555 0142 Dana", NewLead(phone="+1 312 555 0142", email=None, name="Dana")),
        ("new 312.555.0142", NewLead(phone="312.555.0142", email=None, name="")),
        ("new dana@example.com Dana Lee", NewLead(phone=None, email="dana@example.com", name="Dana Lee")),
        ("list", ListLeads(ListFilter.OPEN)),
        ("list mine", ListLeads(ListFilter.MINE)),
        ("list Paused", ListLeads(ListFilter.PAUSED)),
        ("list booked", ListLeads(ListFilter.BOOKED)),
        ("list nurture", ListLeads(ListFilter.NURTURE)),
        ("show 12", OnLead(LeadVerb.SHOW, "12")),
        ("show Dana Lee", OnLead(LeadVerb.SHOW, "Dana Lee")),
        ("pause #12", OnLead(LeadVerb.PAUSE, "#12")),
        ("resume (312) 555-0142", OnLead(LeadVerb.RESUME, "(312) 555-0142")),
        ("stop dana@example.com", OnLead(LeadVerb.STOP, "dana@example.com")),
        ("claim Dana", OnLead(LeadVerb.CLAIM, "Dana")),
        ("optout 12", OnLead(LeadVerb.OPT_OUT, "12")),
        ("opt-out 12", OnLead(LeadVerb.OPT_OUT, "12")),
        ("stats", ShowStats(7)),
        ("stats 7d", ShowStats(7)),
        ("stats 30D", ShowStats(30)),
    ],
)
def test_followup_text_reads_into_a_typed_command(text, command):
    assert parse(text) == command


@pytest.mark.parametrize(
    ("text", "lead", "start_at"),
    [
        ("book 12 tomorrow 3pm", "12", utc(2026, 11, 26, 21, 0)),
        ("book #12 2026-12-01 10:00", "#12", utc(2026, 12, 1, 16, 0)),
        ("book Dana Lee tomorrow 3pm", "Dana Lee", utc(2026, 11, 26, 21, 0)),
        ("book Dana friday at 2:30pm", "Dana", utc(2026, 11, 27, 20, 30)),
        ('book "Dana Lee" Dec 1 10am', "Dana Lee", utc(2026, 12, 1, 16, 0)),
        ("book (312) 555-0142 next tuesday 9am", "(312) 555-0142", utc(2026, 12, 1, 15, 0)),
        ("book dana@example.com in 2 hours", "dana@example.com", utc(2026, 11, 25, 17, 0)),
    ],
)
def test_book_reads_the_lead_then_the_time_in_the_business_zone(text, lead, start_at):
    command = parse(text)
    assert isinstance(command, BookLead)
    assert (command.lead, command.start_at) == (lead, start_at)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("frobnicate 12", "I don't know `frobnicate`"),
        ("list everything", "`mine|open|paused|booked|nurture|lost|opted-out|all`"),
        ("stats 90d", "`7d` or `30d`"),
        ("show", "needs a lead"),
        ("pause", "needs a lead"),
        ("new", "needs a phone number or an email"),
        ("new hello there", "neither a phone number nor an email"),
        ("new <!here>", "neither a phone number nor an email"),
        ("book 12", "needs a lead and a date and time"),
        ("book 12 tomorrow", "could not read a date and time"),
        ("book 12 sometime soon", "could not read a date and time"),
    ],
)
def test_malformed_commands_say_how_to_write_them(text, says):
    with pytest.raises(CommandError) as raised:
        parse(text)
    assert says in str(raised.value)
    assert "<" not in str(raised.value)  # placeholders like <lead> would become links in Slack


def test_unknown_words_answer_with_the_whole_usage():
    with pytest.raises(CommandError) as raised:
        parse("please book dana")
    assert usage() in str(raised.value)


def test_typed_text_is_echoed_without_pinging_anyone():
    with pytest.raises(CommandError) as raised:
        parse("<!channel> hello")
    assert "<!channel>" not in str(raised.value)
    assert "&lt;!channel&gt;" in str(raised.value)


def test_stop_and_optout_are_for_admins_only():
    from bot.slack.permissions import PERMISSIONS, Standing
    from handlers.slack_guard import VERB_ACTS

    assert {verb for verb in LeadVerb if PERMISSIONS[VERB_ACTS[verb]].who == Standing.ADMIN} == {
        LeadVerb.STOP,
        LeadVerb.OPT_OUT,
    }


def test_usage_names_every_subcommand_and_the_send_marker():
    text = usage()
    for word in (
        "help",
        "new",
        "list",
        "show",
        "pause",
        "resume",
        "stop",
        "book",
        "claim",
        "optout",
        "stats",
        "!reply",
    ):
        assert word in text
    assert "<" not in text and "`/followup show &lt;lead&gt;`" in text


@pytest.mark.parametrize(
    ("text", "zone", "expected"),
    [
        ("tomorrow 3pm", CHICAGO, utc(2026, 11, 26, 21, 0)),
        ("3pm", CHICAGO, utc(2026, 11, 25, 21, 0)),
        ("12/3 4pm", CHICAGO, utc(2026, 12, 3, 22, 0)),
        ("tomorrow 3pm", ZoneInfo("America/New_York"), utc(2026, 11, 26, 20, 0)),
        ("tomorrow", CHICAGO, None),  # a visit needs a time of day
        ("whenever", CHICAGO, None),
        ("", CHICAGO, None),
    ],
)
def test_times_are_read_in_the_given_zone_and_need_a_time_of_day(text, zone, expected):
    assert parse_when(text, now=NOW, zone=zone) == expected


@pytest.mark.parametrize(
    ("text", "sent"),
    [
        ("!reply see you at 3", "see you at 3"),
        ("  !REPLY  see you at 3  ", "see you at 3"),
        ("!Reply\nSee you at 3.\nDr. Lee", "See you at 3.\nDr. Lee"),
        ("!reply", ""),
        ("!replying to this later", None),
        ("!reply:see you", None),
        ("reply see you at 3", None),
        ("Note: !reply see you at 3", None),
        ("! reply see you", None),
        ("called, left a voicemail", None),
        ("", None),
    ],
)
def test_only_a_message_starting_with_the_exact_marker_goes_to_the_lead(text, sent):
    assert message_for_lead(text) == sent


@pytest.mark.parametrize(
    ("slack_text", "plain"),
    [
        ("see you &lt;3 &amp; bring ID", "see you <3 & bring ID"),
        ("book at <https://example.com/book|example.com/book>", "book at example.com/book"),
        ("<https://example.com/book>", "https://example.com/book"),
        ("write <mailto:hi@clinic.example|hi@clinic.example>", "write hi@clinic.example"),
        ("ask <@U123ABC>", "ask @U123ABC"),
        ("in <#C123|front-desk>", "in #front-desk"),
        ("<!here> hi", "@here hi"),
        ("call <tel:+13125550111|(312) 555-0111>", "call (312) 555-0111"),
    ],
)
def test_slack_formatting_is_undone_before_text_goes_to_a_lead(slack_text, plain):
    assert plain_text_from_slack(slack_text) == plain
