"""The Slack edge itself: signatures and timestamps checked by Bolt on the real route, Socket Mode, configuration."""

from __future__ import annotations

import json
import time
from urllib.parse import urlencode

import pytest
from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.signature import SignatureVerifier
from sqlalchemy import select

from bot.settings import Settings
from bot.slack_app import MAX_SLACK_BODY, SlackNotConfigured, build_slack_app, start_socket_mode
from bot.standins.slack_api import SlackApiStandin
from bot.store.models import Lead
from tests.handlers.conftest import ALICE, BOT_TOKEN, LEADS, any_database


def command_body(text: str) -> str:
    return urlencode(
        {
            "team_id": "T0SANDBOX",
            "channel_id": LEADS,
            "user_id": ALICE,
            "command": "/followup",
            "text": text,
            "response_url": "http://127.0.0.1:9/respond",
            "trigger_id": "t",
        }
    )


@any_database
def test_a_request_with_a_bad_signature_is_refused_and_does_nothing(workspace, services):
    answer = workspace.post(
        command_body("new (312) 555-0142 Dana"), "application/x-www-form-urlencoded", signature="v0=" + "0" * 64
    )

    assert answer.status_code == 401
    with services.session_factory() as session:
        assert session.scalar(select(Lead.id)) is None
    assert workspace.answers() == []


@any_database
def test_a_request_signed_with_another_secret_is_refused(workspace):
    body = command_body("help")
    stamp = str(int(time.time()))
    forged = SignatureVerifier("not-our-secret").generate_signature(timestamp=stamp, body=body)

    answer = workspace.post(body, "application/x-www-form-urlencoded", timestamp=int(stamp), signature=forged)

    assert answer.status_code == 401


@any_database
def test_a_correctly_signed_but_old_request_is_refused(workspace, services):
    six_minutes_ago = int(time.time()) - 6 * 60

    answer = workspace.post(
        command_body("new (312) 555-0142 Dana"), "application/x-www-form-urlencoded", timestamp=six_minutes_ago
    )

    assert answer.status_code == 401
    with services.session_factory() as session:
        assert session.scalar(select(Lead.id)) is None


@any_database
def test_a_replayed_event_with_an_old_timestamp_is_refused(workspace, sms, services):
    envelope = {
        "type": "event_callback",
        "event_id": "Ev0OLD",
        "team_id": "T0SANDBOX",
        "event": {
            "type": "message",
            "channel": LEADS,
            "user": ALICE,
            "text": "!reply hi",
            "ts": "1.000001",
            "thread_ts": "1.000000",
        },
    }

    answer = workspace.post(json.dumps(envelope), "application/json", timestamp=int(time.time()) - 3600)

    assert answer.status_code == 401 and sms.sent == []


@any_database
def test_slacks_url_verification_is_answered_with_the_challenge(workspace):
    answer = workspace.post(
        json.dumps({"type": "url_verification", "token": "legacy", "challenge": "c-123"}), "application/json"
    )

    assert answer.status_code == 200 and answer.json() == {"challenge": "c-123"}


@any_database
def test_a_body_far_bigger_than_any_slack_payload_is_refused(workspace):
    answer = workspace.post("x" * (MAX_SLACK_BODY + 1), "application/x-www-form-urlencoded")

    assert answer.status_code == 413


@any_database
@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ("{", "application/json"),
        ("1", "application/json"),
        ("[" * 5000 + "]" * 5000, "application/json"),
        ("{not json", "application/x-www-form-urlencoded"),
        (urlencode({"payload": "[1, 2]"}), "application/x-www-form-urlencoded"),
    ],
)
def test_an_unsigned_body_bolt_could_not_parse_is_refused_not_a_server_error(workspace, body, content_type):
    answer = workspace.post(body, content_type, signature="v0=" + "0" * 64)

    assert answer.status_code == 400


@any_database
@pytest.mark.parametrize(
    "payload",
    [
        "text",
        1,
        None,
        [],
        {"type": "view_submission", "user": {"id": ALICE}, "view": {"id": "V1", "callback_id": "reply_modal"}},
        {"type": "block_actions", "user": ALICE, "actions": [{"action_id": "lead_claim", "value": "1"}]},
        {"type": "block_actions", "user": {"id": ALICE}, "actions": []},
        {"type": "block_actions", "user": {"id": ALICE}, "container": "C0LEADS", "actions": [{"action_id": "x"}]},
    ],
)
def test_a_signed_payload_slack_would_never_send_is_refused_not_a_server_error(workspace, payload):
    answer = workspace.post(urlencode({"payload": json.dumps(payload)}), "application/x-www-form-urlencoded")

    assert answer.status_code == 400


@any_database
@pytest.mark.parametrize(
    "event",
    [
        "a string",
        {"type": 5},
        {"type": "message", "user": ["U1"], "channel": LEADS},
        {"type": "message", "channel": LEADS, "message": "not an object"},
    ],
)
def test_a_signed_event_slack_would_never_send_is_refused_not_a_server_error(workspace, event):
    envelope = {"type": "event_callback", "event_id": "Ev0ODD", "team_id": "T0SANDBOX", "event": event}

    assert workspace.post(json.dumps(envelope), "application/json").status_code == 400


@any_database
def test_a_body_that_is_not_utf8_is_refused(workspace):
    answer = workspace.http.post(
        "/slack/events", content=b"payload=\xff\xfe", headers={"Content-Type": "application/x-www-form-urlencoded"}
    )

    assert answer.status_code == 400


@any_database
def test_the_app_needs_a_bot_token(services, business_file):
    settings = Settings(FOLLOWUP_BUSINESS=business_file, SLACK_SIGNING_SECRET="s")

    with pytest.raises(SlackNotConfigured, match="SLACK_BOT_TOKEN"):
        build_slack_app(services, settings)


@any_database
def test_the_app_needs_a_signing_secret_or_an_app_token(services, business_file):
    settings = Settings(FOLLOWUP_BUSINESS=business_file, SLACK_BOT_TOKEN=BOT_TOKEN)

    with pytest.raises(SlackNotConfigured, match="SLACK_SIGNING_SECRET .* or SLACK_APP_TOKEN"):
        build_slack_app(services, settings)


@any_database
def test_the_app_learns_who_it_is_from_the_configured_api_url(workspace, slack):
    assert len(slack.calls("auth.test")) == 1
    assert slack.requests_for("auth.test")[0].headers["Authorization"] == f"Bearer {BOT_TOKEN}"


def test_socket_mode_connects_with_the_app_token_through_the_configured_api():
    with SlackApiStandin(BOT_TOKEN, app_token="xapp-test") as slack:
        app = App(client=WebClient(token=BOT_TOKEN, base_url=slack.url + "/api/"), signing_secret="")

        handler = start_socket_mode(app, "xapp-test")
        try:
            opened = slack.wait_for_requests("apps.connections.open", timeout=5)
        finally:
            handler.close()

    assert opened[0].headers["Authorization"] == "Bearer xapp-test"
    assert opened[0].response["ok"] is True
