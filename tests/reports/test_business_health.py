"""Each business's health, as a front desk reads it: what works, what is worth knowing, what needs someone."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from bot.core.business import EmailPlace, SlackPlace
from bot.core.ports import SmsFrom
from bot.reports.business_health import (
    Activity,
    BusinessHealth,
    ChannelStatus,
    Level,
    Vendors,
    business_health,
    health_text,
)

NOW = datetime(2026, 12, 2, 18, 0, tzinfo=UTC)
EVERY_VENDOR = Vendors(slack=True, sms=True, email=True)
REACHABLE = ChannelStatus("C0LAKE", reachable=True, name="#lakeside-leads", id="C0LAKE")
NOTHING_YET = Activity()


@pytest.fixture
def clinic(services):
    """A business with everything set: channel, number, from and inbound addresses."""
    return replace(
        services.business,
        slug="lakeside",
        name="Lakeside Chiropractic",
        slack=SlackPlace(channel="C0LAKE"),
        sms=SmsFrom(number="+13125550100"),
        email=EmailPlace(from_address="hello@lakeside.example", inbound_address="replies@lakeside.example"),
    )


def health(business, *, vendors=EVERY_VENDOR, channel=REACHABLE, activity=NOTHING_YET, several=True) -> BusinessHealth:
    return business_health(business, vendors=vendors, channel=channel, activity=activity, now=NOW, several=several)


def check(report: BusinessHealth, what: str):
    [found] = [c for c in report.checks if c.what == what]
    return found


def test_a_business_with_everything_set_is_healthy_and_says_where_things_go(clinic):
    sent = NOW - timedelta(hours=3, minutes=5)
    report = health(clinic, activity=Activity(last_send=sent, open_leads=41))

    assert report.healthy
    assert check(report, "Slack").text == "#lakeside-leads (C0LAKE): reachable, the bot is in it"
    assert check(report, "Texts").text == "from +13125550100; replies and missed calls to +13125550100 come here"
    assert check(report, "Email").text == "from hello@lakeside.example; replies to replies@lakeside.example come here"
    assert check(report, "Last send").text == "2026-12-02 08:55 America/Chicago (3 hours ago)"
    assert check(report, "Leads").text == "41 open (not lost or opted out)"


def test_a_channel_slack_cannot_reach_makes_the_business_unhealthy_with_slack_s_reason(clinic):
    status = ChannelStatus("C0LAKE", reachable=False, problem="the bot is not in #lakeside-leads: invite it")

    report = health(clinic, channel=status)

    assert not report.healthy
    assert check(report, "Slack").level == Level.PROBLEM
    assert check(report, "Slack").text == "C0LAKE: the bot is not in #lakeside-leads: invite it"


def test_no_channel_or_no_slack_at_all_is_a_problem(clinic):
    assert check(health(replace(clinic, slack=SlackPlace())), "Slack").level == Level.PROBLEM
    no_slack = health(clinic, vendors=replace(EVERY_VENDOR, slack=False), channel=None)
    assert "SLACK_BOT_TOKEN" in check(no_slack, "Slack").text
    assert not no_slack.healthy


def test_a_business_without_a_sender_cannot_text_and_is_unhealthy(clinic):
    report = health(replace(clinic, sms=SmsFrom()))

    assert not report.healthy
    assert check(report, "Texts").text.startswith("no sender")


def test_twilio_not_set_up_is_a_problem_even_with_a_number(clinic):
    report = health(clinic, vendors=replace(EVERY_VENDOR, sms=False))

    assert check(report, "Texts").level == Level.PROBLEM
    assert "TWILIO_ACCOUNT_SID" in check(report, "Texts").text


def test_a_messaging_service_without_a_number_sends_but_notes_where_replies_go(clinic):
    report = health(replace(clinic, sms=SmsFrom(messaging_service_sid="MG" + "1" * 32)))

    assert report.healthy
    assert check(report, "Texts").level == Level.NOTE
    assert check(report, "Texts").text.startswith("from messaging service MG111")


def test_email_without_a_from_address_is_a_problem_and_without_an_inbound_address_a_note(clinic):
    no_from = health(replace(clinic, email=EmailPlace(inbound_address="replies@lakeside.example")))
    no_inbound = health(replace(clinic, email=EmailPlace(from_address="hello@lakeside.example")))
    one_business = health(replace(clinic, email=EmailPlace(from_address="hello@lakeside.example")), several=False)

    assert not no_from.healthy
    assert (no_inbound.healthy, check(no_inbound, "Email").level) == (True, Level.NOTE)
    assert check(one_business, "Email").level == Level.OK  # the one Inbound Parse route is its own


def test_sendgrid_not_set_up_is_only_a_note(clinic):
    report = health(clinic, vendors=replace(EVERY_VENDOR, email=False))

    assert report.healthy
    assert check(report, "Email").level == Level.NOTE


def test_nothing_sent_yet_reads_so(clinic):
    assert check(health(clinic), "Last send").text == "nothing sent yet"


def test_the_text_names_each_business_and_counts_those_that_need_attention(clinic):
    broken = replace(clinic, slug="smile", name="Smile Dental", sms=SmsFrom())

    text = health_text([health(clinic), health(broken)])

    assert "Lakeside Chiropractic (lakeside): healthy" in text
    assert "Smile Dental (smile): NEEDS ATTENTION" in text
    assert "  PROBLEM Texts:" in text
    assert text.endswith("2 businesses: 1 needs attention (smile)")
    assert health_text([health(clinic)]).endswith("1 business: all healthy")


def test_a_control_character_in_a_name_does_not_reach_the_terminal(clinic):
    text = health_text([health(replace(clinic, name="Lake\x1b[31mside"))])

    assert "\x1b" not in text
