"""Everything app_manifest.yml asks Slack to send, and every button the bot posts, has a listener."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from bot.slack.blocks import ActionId, ModalCallback, call_task_blocks, lead_card_blocks, thread_entry_blocks
from bot.slack.cards import Automation, CallTaskView, LeadCard, OutboundEntry
from bot.slack.home import closed_by_bot_block
from bot.slack_app import SLACK_EVENTS_PATH
from bot.usecases.closed_by_bot import ClosedByBot
from tests.handlers.conftest import (  # noqa: F401 - the Slack workspace fixtures, shared with tests/handlers
    ALICE,
    LEADS,
    any_database,
    slack,
    slack_server,
    slack_settings,
    workspace,
)

ROOT = Path(__file__).resolve().parent.parent
#: HTTP mode (Slack posts to PUBLIC_BASE_URL/slack/events) and Socket Mode (the bot connects out).
MANIFEST = yaml.safe_load((ROOT / "app_manifest.yml").read_text())
SOCKET_MANIFEST = yaml.safe_load((ROOT / "app_manifest.socket.yml").read_text())
MANIFESTS = {"http": MANIFEST, "socket": SOCKET_MANIFEST}
#: Event subscriptions name a channel kind; Slack delivers them as one event type.
EVENT_TYPES = {
    "message.channels": "message",
    "message.groups": "message",
    "message.im": "message",
    "message.mpim": "message",
}


def manifest_commands() -> list[str]:
    return sorted({c["command"] for m in MANIFESTS.values() for c in m["features"]["slash_commands"]})


def manifest_events() -> list[str]:
    return sorted({e for m in MANIFESTS.values() for e in m["settings"]["event_subscriptions"]["bot_events"]})


def action_ids_in(blocks: list[dict]) -> set[str]:
    found = {element["action_id"] for block in blocks if block["type"] == "actions" for element in block["elements"]}
    return found | {block["accessory"]["action_id"] for block in blocks if "action_id" in block.get("accessory", {})}


def card(automation: Automation, **changes) -> LeadCard:
    fields = dict(
        lead_id=1,
        name="Dana",
        phone="+13125550142",
        phone_display="+1 312-555-0142",
        email=None,
        source="web",
        first_message="",
        stage="new",
        owner=None,
        automation=automation,
        can_reply=True,
    )
    return LeadCard(**{**fields, **changes})


def task(automation: Automation, status: str = "open") -> CallTaskView:
    return CallTaskView(
        task_id=1,
        lead_id=1,
        lead_name="Dana",
        phone="+13125550142",
        phone_display=None,
        email=None,
        source="web",
        stage="engaged",
        first_message="",
        reason="asked a question",
        status=status,
        call_script="",
        voicemail_script="",
        automation=automation,
    )


def test_every_action_id_the_bot_posts_is_a_known_one_and_every_known_one_is_posted():
    posted = set()
    for automation in Automation:
        posted |= action_ids_in(lead_card_blocks(card(automation)))
        posted |= action_ids_in(call_task_blocks(task(automation)))
    # A visit ahead (and its start time come), and a cancelled one.
    for visit in (
        {"appointment_status": "booked", "appointment_started": True},
        {"appointment_status": "cancelled", "stage": "engaged"},
    ):
        posted |= action_ids_in(
            lead_card_blocks(
                card(Automation.OFF, appointment_id=5, appointment_when="Monday, Nov 30 at 10:00 AM", **visit)
            )
        )
    email = OutboundEntry(message_id=1, channel="email", subject="Hi", text="Hi Dana,\nthe rest", status="sent")
    posted |= action_ids_in(thread_entry_blocks(email))
    closed = ClosedByBot(
        lead_id=1,
        name="Dana",
        phone=None,
        email=None,
        stage="lost",
        at=datetime(2026, 11, 25, tzinfo=UTC),
        reason="not interested",
        message="no thanks",
        understood_as="not_interested",
    )
    posted |= action_ids_in([closed_by_bot_block(closed, UTC)])

    assert posted == {str(action) for action in ActionId}


@pytest.mark.parametrize("command", manifest_commands())
@any_database
def test_every_slash_command_in_the_manifest_has_a_listener(workspace, command):
    answer = workspace.command("help", command=command)

    assert answer.status_code == 200
    assert "understands" in workspace.last_answer()


@pytest.mark.parametrize("action", list(ActionId))
@any_database
def test_every_action_id_has_a_listener(workspace, action):
    assert workspace.click(action, 999999).status_code == 200


@any_database
def test_an_action_nobody_listens_for_is_not_acknowledged(workspace):
    # Bolt answers 404 to what no listener takes: the check above would catch a missing listener.
    assert workspace.click("no_such_action", 1).status_code == 404


@pytest.mark.parametrize("callback", list(ModalCallback))
@any_database
def test_every_modal_the_bot_opens_has_a_submission_listener(workspace, callback):
    view = {
        "id": "V0TEST",
        "type": "modal",
        "callback_id": str(callback),
        "title": {"type": "plain_text", "text": "t"},
        "private_metadata": '{"lead_id":999999,"task_id":999999}',
        "blocks": [],
    }

    assert workspace.submit(view, {}).status_code == 200


@pytest.mark.parametrize("event", manifest_events())
@any_database
def test_every_event_the_manifest_subscribes_to_has_a_listener(workspace, event):
    kind = EVENT_TYPES.get(event, event)
    payload = {
        "type": kind,
        "user": ALICE,
        "channel": LEADS,
        "text": "hello",
        "ts": "1764083000.000001",
        "tab": "home",
        "event_ts": "1764083000.000001",
    }

    assert workspace.event(payload).status_code == 200


def test_the_manifest_sends_commands_events_and_clicks_to_the_route_the_app_serves():
    urls = [c["url"] for c in MANIFEST["features"]["slash_commands"]]
    urls += [
        MANIFEST["settings"]["event_subscriptions"]["request_url"],
        MANIFEST["settings"]["interactivity"]["request_url"],
    ]

    assert all(url.endswith(SLACK_EVENTS_PATH) for url in urls)
    # With Socket Mode on, Slack would send nothing to those URLs: the HTTP manifest keeps it off.
    assert MANIFEST["settings"]["socket_mode_enabled"] is False
    assert MANIFEST["settings"]["interactivity"]["is_enabled"] is True
    assert MANIFEST["features"]["app_home"]["home_tab_enabled"] is True
    assert {"app_home_opened", "message.channels"} <= set(manifest_events())


def test_the_socket_mode_manifest_turns_socket_mode_on_and_names_no_request_url():
    settings = SOCKET_MANIFEST["settings"]
    assert settings["socket_mode_enabled"] is True and settings["interactivity"]["is_enabled"] is True
    assert "request_url" not in settings["event_subscriptions"] and "request_url" not in settings["interactivity"]
    assert all("url" not in c for c in SOCKET_MANIFEST["features"]["slash_commands"])
    assert "example.com" not in (ROOT / "app_manifest.socket.yml").read_text().split("display_information")[1]


def test_both_manifests_ask_for_the_same_app_but_the_way_slack_reaches_it():
    def without_urls(manifest: dict) -> dict:
        copy = yaml.safe_load(yaml.safe_dump(manifest))
        for command in copy["features"]["slash_commands"]:
            command.pop("url", None)
        copy["settings"]["event_subscriptions"].pop("request_url", None)
        copy["settings"]["interactivity"].pop("request_url", None)
        copy["settings"].pop("socket_mode_enabled")
        return copy

    assert without_urls(MANIFEST) == without_urls(SOCKET_MANIFEST)


@pytest.mark.parametrize("mode", list(MANIFESTS))
def test_the_manifest_grants_the_scopes_the_listeners_use(mode):
    scopes = set(MANIFESTS[mode]["oauth_config"]["scopes"]["bot"])

    # chat.postMessage / postEphemeral / getPermalink, /followup, thread messages in public and private channels.
    assert {"chat:write", "commands", "channels:history", "groups:history"} <= scopes
