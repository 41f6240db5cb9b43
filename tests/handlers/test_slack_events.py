"""Thread replies and the App Home through the real HTTP route: internal by default, explicit send, once per event."""

from __future__ import annotations

import pytest
from slack_sdk import WebClient
from sqlalchemy import select

from bot.core.ports import FailureKind, PermanentSendError
from bot.slack.poster import SlackPoster
from bot.store.audit import SYSTEM
from bot.store.models import AuditEntry, CallTask, Lead, Message, ProcessedDelivery
from bot.usecases.delivery import SmsStatusReport, apply_sms_status
from bot.usecases.lead_actions import opt_out
from tests.handlers.conftest import (
    ALICE,
    BOB,
    BOT_TOKEN,
    CARD_TS,
    CHICAGO_PHONE,
    LEADS,
    any_database,
    new_call_task,
    new_lead,
    valid_blocks,
    valid_view,
)

TASK_COPY_TS = "1764082950.000002"


def notes(services) -> list[str]:
    with services.session_factory() as session:
        return [
            entry.details["text"]
            for entry in session.scalars(select(AuditEntry).where(AuditEntry.action == "note").order_by(AuditEntry.id))
        ]


def thread_posts(slack) -> list[str]:
    """What the bot posted in the lead's thread (the member's own messages are Slack's, not the stand-in's)."""
    return [m["text"] for m in slack.thread(LEADS, CARD_TS)]


@pytest.fixture(autouse=True)
def poster(services, slack) -> SlackPoster:
    """The outbox poster, run as soon as a listener wakes it, as `followup run` does."""
    client = WebClient(token=BOT_TOKEN, base_url=slack.url + "/api/", timeout=2)
    poster = SlackPoster(services, client, LEADS)
    services.wakeups.connect(poster=poster.drain_once)
    return poster


@pytest.mark.parametrize(
    ("written", "sent"),
    [
        ("!reply see you at 3", "see you at 3"),
        ("  !REPLY  see you at 3  ", "see you at 3"),
        (
            "!Reply See you at 3 &amp; bring <https://example.com/forms|example.com/forms>",
            "See you at 3 & bring example.com/forms",
        ),
    ],
)
def test_a_thread_message_starting_with_the_marker_is_texted_to_the_lead(
    workspace, services, sms, slack, written, sent
):
    lead_id = new_lead(services)

    answer = workspace.thread_reply(written, user=ALICE)

    assert answer.status_code == 200
    assert sms.to(CHICAGO_PHONE) == [sent]
    with services.session_factory() as session:
        message = session.scalars(select(Message).where(Message.lead_id == lead_id)).one()
    assert (message.direction, message.author, message.body) == ("out", ALICE, sent)
    # The member's message already shows the words: the bot adds a status line, not the text again.
    assert thread_posts(slack) == [f"<@{ALICE}>'s text to the lead · queued"]
    [status_line] = slack.calls("chat.postMessage")
    assert status_line["thread_ts"] == CARD_TS and sent not in str(status_line)
    assert "queued" in str(valid_blocks(status_line["blocks"]))
    assert message.slack_ts == slack.thread(LEADS, CARD_TS)[0]["ts"]
    assert notes(services) == []


def test_a_replys_status_line_is_edited_as_its_delivery_status_changes(workspace, services, sms, slack, poster):
    new_lead(services)
    workspace.thread_reply("!reply see you at 3")
    with services.session_factory() as session:
        message = session.scalars(select(Message)).one()

    apply_sms_status(services, SmsStatusReport(message_sid=message.provider_id, status="delivered"))
    poster.drain_once()

    assert thread_posts(slack) == [f"<@{ALICE}>'s text to the lead · delivered"]
    [update] = slack.calls("chat.update")
    assert update["ts"] == message.slack_ts and ":white_check_mark: delivered" in str(valid_blocks(update["blocks"]))
    assert all("see you at 3" not in str(call) for call in slack.calls("chat.postMessage") + [update])


@any_database
def test_a_lead_without_a_phone_gets_the_reply_by_email(workspace, services, sms, email, slack):
    new_lead(services, phone=None)

    workspace.thread_reply("!reply Your forms are attached to our site.")

    assert sms.sent == [] and [m.to for m in email.sent] == ["dana@example.com"]
    assert thread_posts(slack) == [f"<@{ALICE}>'s email to the lead · queued"]


@pytest.mark.parametrize(
    "written",
    [
        "Called her, left a voicemail",
        "reply see you at 3",
        "Note: !reply see you at 3",
        "!replying later",
        "Reply: !reply",
    ],
)
@any_database
def test_every_other_thread_message_is_an_internal_note_that_never_leaves_slack(
    workspace, services, sms, email, slack, written
):
    new_lead(services)

    workspace.thread_reply(written)

    assert sms.sent == [] and email.sent == []
    assert notes(services) == [written]
    assert slack.calls("chat.postMessage") == [] and slack.ephemerals == []


@any_database
def test_a_note_is_recorded_with_its_author(workspace, services):
    lead_id = new_lead(services)

    workspace.thread_reply("She prefers mornings", user=BOB)

    with services.session_factory() as session:
        entry = session.scalars(select(AuditEntry).where(AuditEntry.action == "note")).one()
    assert (entry.lead_id, entry.actor_type, entry.actor_id) == (lead_id, "slack_user", BOB)


@any_database
def test_the_bots_own_messages_are_ignored(workspace, services, sms):
    new_lead(services)

    workspace.thread_reply("!reply this came from the bot", user="U0BOT", bot_id="B0BOT")
    workspace.thread_reply("!reply another app wrote this", user="U0OTHERAPP", bot_id="B0OTHER")

    assert sms.sent == [] and notes(services) == []


@any_database
def test_edits_and_other_subtypes_are_ignored(workspace, services, sms):
    new_lead(services)
    edited = {
        "type": "message",
        "subtype": "message_changed",
        "channel": LEADS,
        "hidden": True,
        "ts": "1764083100.000001",
        "message": {
            "type": "message",
            "user": ALICE,
            "text": "!reply changed my mind",
            "ts": "1764083000.000001",
            "thread_ts": CARD_TS,
        },
        "previous_message": {"type": "message", "user": ALICE, "text": "hi", "ts": "1764083000.000001"},
    }

    assert workspace.event(edited).status_code == 200
    workspace.thread_reply("!reply left the channel", subtype="channel_leave")

    assert sms.sent == [] and notes(services) == []


@any_database
def test_threads_that_are_not_a_leads_and_top_level_messages_are_ignored(workspace, services, sms):
    new_lead(services)
    task_id = new_call_task(services, 1)

    workspace.thread_reply("!reply wrong thread", thread_ts="1764000000.000999")
    workspace.thread_reply("!reply other channel", channel="C0ELSEWHERE")
    workspace.event(
        {"type": "message", "channel": LEADS, "user": ALICE, "text": "!reply top level", "ts": "1764083200.000001"}
    )

    assert task_id and sms.sent == [] and notes(services) == []
    assert workspace.slack.ephemerals == []


@any_database
def test_the_marker_under_a_call_tasks_channel_copy_sends_nothing_and_says_where_it_works(workspace, services, sms):
    lead_id = new_lead(services)
    task_id = new_call_task(services, lead_id)
    with services.session_factory.begin() as session:
        task = session.get(CallTask, task_id)
        task.slack_channel, task.slack_thread_ts, task.slack_channel_ts = LEADS, "1764082900.000001", TASK_COPY_TS

    workspace.thread_reply("!reply see you at 3", thread_ts=TASK_COPY_TS)
    workspace.thread_reply("called her", thread_ts=TASK_COPY_TS)

    assert sms.sent == [] and notes(services) == []
    [said] = workspace.ephemerals_to(ALICE)
    assert said.startswith("Not sent: `!reply` works in the thread under the lead's card")


def test_a_retried_event_is_applied_once(workspace, services, sms, slack):
    new_lead(services)

    first = workspace.thread_reply("!reply see you at 3", event_id="Ev0RETRY1")
    retried = workspace.thread_reply(
        "!reply see you at 3",
        event_id="Ev0RETRY1",
        headers={"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"},
    )

    assert first.status_code == retried.status_code == 200
    assert sms.to(CHICAGO_PHONE) == ["see you at 3"]
    assert len(thread_posts(slack)) == 1
    with services.session_factory() as session:
        assert session.scalars(
            select(ProcessedDelivery.delivery_id).where(ProcessedDelivery.provider == "slack")
        ).all() == ["Ev0RETRY1"]


def test_a_retried_note_is_recorded_once(workspace, services):
    new_lead(services)

    for attempt in ("1", "2", "3"):
        workspace.thread_reply(
            "called, no answer",
            event_id="Ev0NOTE",
            headers={"X-Slack-Retry-Num": attempt, "X-Slack-Retry-Reason": "http_error"},
        )

    assert notes(services) == ["called, no answer"]


def test_a_reply_to_a_lead_who_opted_out_is_not_sent_and_the_thread_says_why(workspace, services, sms, slack, clock):
    lead_id = new_lead(services, email=None)
    with services.session_factory.begin() as session:
        opt_out(session, session.get(Lead, lead_id), "sms", now=clock.now(), actor=SYSTEM)

    workspace.thread_reply("!reply are you still interested?")

    assert sms.sent == []
    [said] = thread_posts(slack)
    assert said.startswith(":no_entry: Not sent to the lead: this lead opted out of texts")


@any_database
def test_a_reply_the_provider_refuses_is_marked_failed_in_the_thread(workspace, services, sms, slack):
    sms.failures.append(PermanentSendError("unsubscribed recipient", code="21610", kind=FailureKind.OPTED_OUT))
    new_lead(services)

    workspace.thread_reply("!reply hello")

    assert thread_posts(slack) == [f"<@{ALICE}>'s text to the lead failed: unsubscribed recipient (error 21610)"]


@any_database
def test_the_marker_alone_sends_nothing_and_says_how(workspace, services, sms, slack):
    new_lead(services)

    workspace.thread_reply("!reply   ")

    assert sms.sent == []
    assert workspace.ephemerals_to(ALICE) == [
        "Nothing to send: write the message after `!reply`, e.g. `!reply See you at 3!`"
    ]
    assert slack.ephemerals[0]["thread_ts"] == CARD_TS


@any_database
def test_a_file_is_never_sent_to_a_lead(workspace, services, sms):
    new_lead(services)

    workspace.thread_reply("!reply here is the form", subtype="file_share", files=[{"id": "F1"}])

    assert sms.sent == []
    assert workspace.ephemerals_to(ALICE)[0].startswith("Not sent: files cannot go to a lead")


# --- App Home -----------------------------------------------------------------------------------


def test_opening_the_home_tab_shows_my_leads_the_open_calls_and_todays_numbers(workspace, services, slack):
    mine = new_lead(services, name="Mine Lead", phone="+13125550101", email="mine@example.com")
    other = new_lead(services, name="<!here> Other", phone="+13125550102", email="other@example.com")
    with services.session_factory.begin() as session:
        session.get(Lead, mine).owner = ALICE
    new_call_task(services, other, reason="asked a question")

    answer = workspace.event(
        {"type": "app_home_opened", "user": ALICE, "channel": "D0ALICE", "tab": "home", "event_ts": "1764083300.000001"}
    )

    assert answer.status_code == 200
    view = valid_view(slack.home_views[ALICE])
    shown = str(view["blocks"])
    assert f"*Mine Lead* (#{mine})" in shown and "*Your leads* (1)" in shown
    assert "*Open calls in the team* (1)" in shown and "asked a question" in shown
    assert "&lt;!here&gt; Other" in shown and "<!here>" not in shown
    assert "*Leads in*\\n2" in shown


@any_database
def test_the_messages_tab_publishes_nothing(workspace, slack):
    workspace.event(
        {
            "type": "app_home_opened",
            "user": ALICE,
            "channel": "D0ALICE",
            "tab": "messages",
            "event_ts": "1764083300.000001",
        }
    )

    assert slack.home_views == {}
