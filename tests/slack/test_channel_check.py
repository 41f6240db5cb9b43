"""Whether the bot can post in a business's channel, asked of the Slack stand-in through the real client."""

from __future__ import annotations

import pytest
from slack_sdk import WebClient

from bot.slack.channel_check import channel_status
from bot.standins.server import Fault
from bot.standins.slack_api import SlackApiStandin

TOKEN = "xoxb-health"


@pytest.fixture
def slack():
    with SlackApiStandin(TOKEN, channels={"C0LAKE": "lakeside-leads", "C0SMILE": "smile-leads", "G0PRIV": "desk"}) as s:
        yield s


def client(slack: SlackApiStandin, token: str = TOKEN) -> WebClient:
    return WebClient(token=token, base_url=slack.url + "/api/", timeout=5, retry_handlers=[])


def test_a_channel_the_bot_is_in_is_reachable_and_named(slack):
    status = channel_status(client(slack), "C0LAKE")

    assert status.reachable
    assert (status.name, status.id) == ("#lakeside-leads", "C0LAKE")
    assert slack.calls("conversations.info")


def test_a_channel_given_by_name_is_found_in_the_workspace_s_list(slack):
    status = channel_status(client(slack), "#smile-leads")

    assert status.reachable
    assert status.id == "C0SMILE"
    assert slack.calls("conversations.list")


def test_a_channel_slack_does_not_know_is_not_reachable_and_says_why(slack):
    by_id = channel_status(client(slack), "C0GONE")
    by_name = channel_status(client(slack), "#gone")

    assert not by_id.reachable
    assert "no such channel" in by_id.problem
    assert not by_name.reachable
    assert by_name.problem == "Slack lists no channel of that name"


def test_a_channel_the_bot_was_removed_from_asks_for_it_to_be_invited(slack):
    slack.remove_bot("C0SMILE")

    status = channel_status(client(slack), "C0SMILE")

    assert not status.reachable
    assert status.problem == "the bot is not in #smile-leads: invite it (/invite @followup)"


def test_a_private_channel_the_bot_is_not_in_is_not_listed_by_name(slack):
    assert channel_status(client(slack), "#desk").reachable
    slack.remove_bot("G0PRIV")

    assert channel_status(client(slack), "#desk").problem == "Slack lists no channel of that name"


def test_an_archived_channel_is_not_reachable(slack):
    slack.archive("C0LAKE")

    status = channel_status(client(slack), "C0LAKE")

    assert not status.reachable
    assert status.problem == "#lakeside-leads is archived"


def test_a_refused_token_is_named(slack):
    status = channel_status(client(slack, token="xoxb-wrong"), "C0LAKE")

    assert not status.reachable
    assert "SLACK_BOT_TOKEN" in status.problem


def test_slack_out_of_reach_is_said_so_not_raised(slack):
    slack.go_down(Fault(drop=True))

    status = channel_status(client(slack), "C0LAKE")

    assert not status.reachable
    assert status.problem.startswith("Slack could not be reached")
