"""The Slack stand-in speaks the Web API to the real slack_sdk WebClient and Bolt App."""

from __future__ import annotations

import json
import time

import pytest
from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler

from bot.standins.server import Fault
from bot.standins.slack_api import SlackApiStandin

BOT_TOKEN = "xoxb-test"
LEADS = "C0LEADS"


@pytest.fixture
def slack():
    with SlackApiStandin(BOT_TOKEN, app_token="xapp-test", channels={LEADS: "leads"}) as standin:
        yield standin


def client_for(slack: SlackApiStandin, token: str = BOT_TOKEN) -> WebClient:
    return WebClient(token=token, base_url=slack.url + "/api/", timeout=1)


def test_auth_test_answers_the_workspace_and_bot_identity(slack):
    answer = client_for(slack).auth_test()

    assert answer["ok"] and answer["team_id"] == "T0SANDBOX"
    assert (answer["user_id"], answer["bot_id"]) == ("U0BOT", "B0BOT")
    assert slack.requests[-1].headers["Authorization"] == f"Bearer {BOT_TOKEN}"


def test_a_bolt_app_builds_against_the_standin(slack):
    app = App(client=client_for(slack), signing_secret="x")

    assert app.client.base_url == slack.url + "/api/"
    assert len(slack.calls("auth.test")) == 1


def test_posts_and_thread_replies_are_stored_with_increasing_ts(slack):
    client = client_for(slack)
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*New lead*"}}]

    parent = client.chat_postMessage(channel=LEADS, text="New lead", blocks=blocks)
    reply = client.chat_postMessage(channel=LEADS, text="Called", thread_ts=parent["ts"])

    assert parent["channel"] == LEADS and parent["message"]["blocks"] == blocks
    assert parent["message"]["bot_id"] == "B0BOT"
    assert float(reply["ts"]) > float(parent["ts"]) and len(parent["ts"].split(".")[1]) == 6
    assert [m["text"] for m in slack.messages(LEADS)] == ["New lead", "Called"]
    assert [m["ts"] for m in slack.thread(LEADS, parent["ts"])] == [parent["ts"], reply["ts"]]
    assert slack.requests[-1].headers["Content-Type"] == "application/json;charset=utf-8"


def test_form_encoded_calls_decode_their_json_fields(slack):
    blocks = [{"type": "divider"}]

    answer = client_for(slack).api_call(
        "chat.postMessage", params={"channel": LEADS, "text": "x", "blocks": json.dumps(blocks)}
    )

    assert answer["message"]["blocks"] == blocks
    assert slack.requests[-1].headers["Content-Type"] == "application/x-www-form-urlencoded"


def test_a_message_can_be_updated_and_linked(slack):
    client = client_for(slack)
    posted = client.chat_postMessage(channel=LEADS, text="Due")

    updated = client.chat_update(channel=LEADS, ts=posted["ts"], text="Done")
    link = client.chat_getPermalink(channel=LEADS, message_ts=posted["ts"])

    assert updated["ts"] == posted["ts"] and updated["message"]["text"] == "Done"
    assert slack.messages(LEADS)[0]["text"] == "Done"
    assert link["permalink"].endswith(f"/archives/{LEADS}/p{posted['ts'].replace('.', '')}")
    with pytest.raises(SlackApiError, match="message_not_found"):
        client.chat_update(channel=LEADS, ts="1.000000", text="x")


def test_ephemeral_messages_answer_a_message_ts(slack):
    answer = client_for(slack).chat_postEphemeral(channel=LEADS, user="U0ANN", text="Only you")

    assert answer["message_ts"]
    assert slack.ephemerals[0]["user"] == "U0ANN" and slack.ephemerals[0]["text"] == "Only you"


def test_modals_open_and_update_and_home_tabs_publish(slack):
    client = client_for(slack)
    modal = {"type": "modal", "title": {"type": "plain_text", "text": "Snooze"}, "blocks": [], "callback_id": "snooze"}

    opened = client.views_open(trigger_id="123.456", view=modal)
    updated = client.views_update(view_id=opened["view"]["id"], view={**modal, "private_metadata": "lead:7"})
    home = client.views_publish(user_id="U0ANN", view={"type": "home", "blocks": []})

    assert opened["view"]["id"].startswith("V") and opened["view"]["callback_id"] == "snooze"
    assert slack.views[opened["view"]["id"]]["private_metadata"] == "lead:7" == updated["view"]["private_metadata"]
    assert slack.home_views["U0ANN"]["id"] == home["view"]["id"]
    with pytest.raises(SlackApiError, match="hash_conflict"):
        client.views_update(view_id=opened["view"]["id"], view=modal, hash="stale")


def test_conversations_and_users_are_described(slack):
    client = client_for(slack)
    slack.add_user("U0ANN", "ann", real_name="Ann Lee", email="ann@example.com", tz="America/Chicago")

    channel = client.conversations_info(channel=LEADS)["channel"]
    user = client.users_info(user="U0ANN")["user"]

    assert (channel["id"], channel["name"], channel["is_member"]) == (LEADS, "leads", True)
    assert (user["real_name"], user["tz"], user["profile"]["email"]) == (
        "Ann Lee",
        "America/Chicago",
        "ann@example.com",
    )
    assert client.users_info(user="U0BOT")["user"]["is_bot"] is True


def test_users_conversations_lists_the_channels_a_person_is_in_a_page_at_a_time(slack):
    client = client_for(slack)
    slack.join("C0CHIRO", "U0ANN", "U0BOT")
    slack.join("C0DENTAL", "U0BOT")
    slack.join("G0PRIVATE", "U0ANN")

    first = client.users_conversations(user="U0ANN", types="public_channel,private_channel", limit=1)
    rest = client.users_conversations(
        user="U0ANN", types="public_channel,private_channel", limit=1, cursor=first["response_metadata"]["next_cursor"]
    )
    public_only = client.users_conversations(user="U0ANN", types="public_channel")

    assert [c["id"] for c in first["channels"]] == ["C0CHIRO"]
    assert first["channels"][0]["is_member"] is True  # the bot is in it too
    assert [(c["id"], c["is_private"]) for c in rest["channels"]] == [("G0PRIVATE", True)]
    assert rest["response_metadata"]["next_cursor"] == ""
    assert [c["id"] for c in public_only["channels"]] == ["C0CHIRO"]
    with pytest.raises(SlackApiError) as unknown:
        client.users_conversations(user="U0NOBODY")
    assert unknown.value.response["error"] == "user_not_found"


def test_channels_outside_the_allow_list_are_not_found(slack):
    with pytest.raises(SlackApiError) as raised:
        client_for(slack).chat_postMessage(channel="C0OTHER", text="x")

    assert raised.value.response["error"] == "channel_not_found"
    assert slack.messages("C0OTHER") == []


@pytest.mark.parametrize(("token", "error"), [(None, "not_authed"), ("xoxb-wrong", "invalid_auth")])
def test_missing_or_wrong_tokens_are_refused(slack, token, error):
    with pytest.raises(SlackApiError) as raised:
        WebClient(token=token, base_url=slack.url + "/api/").chat_postMessage(channel=LEADS, text="x")

    assert raised.value.response["error"] == error


def test_unknown_methods_answer_unknown_method(slack):
    with pytest.raises(SlackApiError) as raised:
        client_for(slack).api_call("reactions.add", json={"name": "eyes"})

    assert raised.value.response["error"] == "unknown_method"


def test_socket_mode_connections_need_the_app_token(slack):
    assert client_for(slack, token="xapp-test").apps_connections_open(app_token="xapp-test")["url"].startswith("ws://")
    with pytest.raises(SlackApiError, match="not_allowed_token_type"):
        client_for(slack).apps_connections_open(app_token=BOT_TOKEN)


def test_a_rate_limit_answers_429_with_retry_after(slack):
    slack.fail_next("chat.postMessage", status=429, retry_after=7)

    with pytest.raises(SlackApiError) as raised:
        client_for(slack).chat_postMessage(channel=LEADS, text="x")

    assert raised.value.response.status_code == 429
    assert raised.value.response["error"] == "ratelimited"
    assert raised.value.response.headers["Retry-After"] == "7"


def test_the_sdks_rate_limit_handler_waits_and_retries(slack):
    client = client_for(slack)
    client.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=1))
    slack.fail_next("chat.postMessage", status=429, retry_after=0)

    started = time.monotonic()
    answer = client.chat_postMessage(channel=LEADS, text="x")

    assert answer["ok"] and time.monotonic() - started < 1.5
    assert [r.status for r in slack.requests_for("chat.postMessage")] == [429, 200]
    assert len(slack.messages(LEADS)) == 1


def test_concurrent_posts_get_distinct_ts_in_store_order(slack):
    from concurrent.futures import ThreadPoolExecutor

    client = client_for(slack)
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda i: client.chat_postMessage(channel=LEADS, text=str(i)), range(40)))

    stored = [m["ts"] for m in slack.messages(LEADS)]
    assert len({a["ts"] for a in answers}) == 40
    assert stored == sorted(stored, key=float) and len(stored) == 40


def test_an_outage_fails_every_call_in_turn_until_slack_comes_back(slack):
    client = WebClient(token=BOT_TOKEN, base_url=slack.url + "/api/", timeout=1, retry_handlers=[])
    slack.go_down(Fault(status=503), Fault(status=429, retry_after=30))

    statuses = []
    for _ in range(3):
        with pytest.raises(SlackApiError) as failed:
            client.chat_postMessage(channel=LEADS, text="New lead")
        statuses.append(failed.value.response.status_code)
    slack.come_back()
    client.chat_postMessage(channel=LEADS, text="New lead")

    assert statuses == [503, 429, 503]
    assert slack.requests_for("chat.postMessage")[1].response == {"ok": False, "error": "ratelimited"}
    assert [m["text"] for m in slack.messages(LEADS)] == ["New lead"]


def test_history_and_replies_list_messages_with_their_metadata_when_asked(slack):
    client = client_for(slack)
    tag = {"event_type": "followup_post", "event_payload": {"key": "card:1"}}
    card = client.chat_postMessage(channel=LEADS, text="card", metadata=tag)
    reply = client.chat_postMessage(channel=LEADS, text="entry", thread_ts=card["ts"], metadata=tag)
    later = client.chat_postMessage(channel=LEADS, text="another card")

    history = client.conversations_history(channel=LEADS, include_all_metadata=True)["messages"]
    thread = client.conversations_replies(channel=LEADS, ts=card["ts"], include_all_metadata=True)["messages"]
    plain = client.conversations_replies(channel=LEADS, ts=card["ts"])["messages"]

    assert [m["ts"] for m in history] == [later["ts"], card["ts"]]  # newest first, no thread replies
    assert history[1]["metadata"] == tag and "metadata" not in history[0]
    assert [m["ts"] for m in thread] == [card["ts"], reply["ts"]] and thread[1]["metadata"] == tag
    assert all("metadata" not in m for m in plain)
    with pytest.raises(SlackApiError) as missing:
        client.conversations_replies(channel=LEADS, ts="1.000000")
    assert missing.value.response["error"] == "thread_not_found"


def test_files_upload_v2_goes_through_the_current_upload_flow(slack):
    client = client_for(slack)
    chart = b"\x89PNG\r\n\x1a\n" + b"\x00" * 200
    answer = client.files_upload_v2(
        channel=LEADS, content=chart, filename="week.png", title="This week", initial_comment="Weekly digest"
    )
    assert answer["ok"] and answer["files"][0]["title"] == "This week"
    [stored] = slack.files.values()
    assert stored["bytes"] == chart and stored["name"] == "week.png" and stored["shares"][0]["channel"] == LEADS
    [message] = slack.messages(LEADS)
    assert message["text"] == "Weekly digest" and message["files"][0]["id"] == stored["id"]
    # The retired files.upload is not part of Slack's API any more.
    assert [r.route for r in slack.requests][:2] == ["files.getUploadURLExternal", "file.bytes"]


def test_a_completed_upload_whose_bytes_never_arrived_is_refused(slack):
    client = client_for(slack)
    announced = client.files_getUploadURLExternal(filename="x.png", length=10)
    with pytest.raises(SlackApiError) as refused:
        client.files_completeUploadExternal(files=[{"id": announced["file_id"], "title": "x"}], channel_id=LEADS)
    assert refused.value.response["error"] == "file_not_found"
