"""Whether the bot can post in a business's Slack channel: asked of Slack, as `followup businesses` shows it."""

from __future__ import annotations

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.reports.business_health import ChannelStatus

#: How many channels one conversations.list page asks for (Slack's own ceiling is 1000).
_PAGE = 200
#: What Slack's error words mean to the person reading the health list.
_ERRORS = {
    "channel_not_found": "Slack knows no such channel, or it is private and the bot is not in it",
    "invalid_auth": "Slack refused the bot token (SLACK_BOT_TOKEN)",
    "not_authed": "Slack refused the bot token (SLACK_BOT_TOKEN)",
    "account_inactive": "the bot's Slack app was removed from the workspace",
    "missing_scope": "the Slack app lacks the channels:read / groups:read scopes",
}


def channel_status(client: WebClient, channel: str) -> ChannelStatus:
    """Ask Slack about a channel given by id (C…, G…) or by name (#front-desk): found, the bot in it, not archived."""
    try:
        if channel.startswith("#"):
            found = _by_name(client, channel.removeprefix("#"))
            if found is None:
                return ChannelStatus(channel, reachable=False, problem="Slack lists no channel of that name")
        else:
            found = client.conversations_info(channel=channel)["channel"]
    except SlackApiError as error:
        word = str(error.response.get("error", "")) if error.response is not None else ""
        return ChannelStatus(
            channel, reachable=False, problem=_ERRORS.get(word, f"Slack answered {word or 'an error'}")
        )
    except OSError as error:
        return ChannelStatus(channel, reachable=False, problem=f"Slack could not be reached ({error})")
    name = f"#{found.get('name') or channel}"
    if found.get("is_archived"):
        return ChannelStatus(channel, reachable=False, problem=f"{name} is archived", name=name)
    if not found.get("is_member", False):
        return ChannelStatus(
            channel, reachable=False, problem=f"the bot is not in {name}: invite it (/invite @followup)", name=name
        )
    return ChannelStatus(channel, reachable=True, name=name, id=str(found.get("id") or ""))


def _by_name(client: WebClient, name: str) -> dict | None:
    cursor = None
    while True:
        page = client.conversations_list(
            types="public_channel,private_channel", exclude_archived=False, limit=_PAGE, cursor=cursor
        )
        for found in page["channels"]:
            if found.get("name") == name:
                return dict(found)
        cursor = (page.get("response_metadata") or {}).get("next_cursor")
        if not cursor:
            return None
