"""Events: team messages in a lead's thread (internal notes, or a reply to the lead after the send marker),
and the App Home tab.

Internal by default, explicit send: only a message that starts with the send marker (`!reply`)
leaves Slack. The member's own message already shows the words in the thread, so the bot does not
repeat them: the poster adds one short status line under it (sent, delivered, failed and why),
edited as the delivery status changes. Each event is applied once: handlers.slack_guard keys it
by the envelope's `event_id`, so Slack's retries (`X-Slack-Retry-Num`) change nothing a second
time, and lets through only what the permission table allows.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from slack_bolt import Ack, App, BoltContext
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.slack.blocks import escape
from bot.slack.command_text import SEND_MARKER, message_for_lead, plain_text_from_slack
from bot.store import audit
from bot.store.audit import Actor
from bot.store.models import CallTask, Lead
from bot.usecases.conversations import DirectMessageRefused, send_direct
from bot.usecases.services import Services
from bot.usecases.team_actions import after_change
from handlers.slack_edge import businesses_of, publish_home, services_of, tell

log = logging.getLogger(__name__)

#: Message subtypes written by a person; every other subtype (edits, deletions, joins) is ignored.
PERSON_SUBTYPES = frozenset({None, "thread_broadcast", "file_share"})


def register(app: App) -> None:
    app.event("message")(on_message)
    app.event("app_home_opened")(on_app_home_opened)


@dataclass(frozen=True)
class ThreadMessage:
    """A person's message in some thread, as far as followup cares."""

    event_id: str
    channel: str
    thread_ts: str
    ts: str
    user: str
    text: str
    with_files: bool

    @classmethod
    def read(cls, body: dict[str, Any], event: dict[str, Any]) -> ThreadMessage | None:
        """The message, or None for what is never a team member's thread message (bots, edits, top level)."""
        if event.get("bot_id") or event.get("subtype") not in PERSON_SUBTYPES:
            return None
        channel, user, ts, thread_ts = (_text(event, key) for key in ("channel", "user", "ts", "thread_ts"))
        if not all((channel, user, ts, thread_ts)) or thread_ts == ts:
            return None
        text = _text(event, "text")
        event_id = given if isinstance(given := body.get("event_id"), str) else f"{channel}:{ts}"
        return cls(
            event_id,
            channel,
            thread_ts,
            ts,
            user,
            text,
            with_files=event.get("subtype") == "file_share" or bool(event.get("files")),
        )


def _text(payload: dict[str, Any], key: str) -> str:
    """A field Slack sends as text, or "" when it is missing or not text."""
    value = payload.get(key)
    return value if isinstance(value, str) else ""


def on_message(ack: Ack, body: dict[str, Any], event: dict[str, Any], client: WebClient, context: BoltContext) -> None:
    ack()
    message = ThreadMessage.read(body, event)
    if message is None:
        return
    services = services_of(context)
    raw_reply = message_for_lead(message.text)
    now = services.clock.now()
    with services.session_factory.begin() as session:
        lead_id = session.scalar(
            select(Lead.id).where(Lead.slack_channel == message.channel, Lead.slack_ts == message.thread_ts)
        )
        if lead_id is None:
            misplaced = raw_reply is not None and _is_call_task_copy(session, message)
        elif raw_reply is None:
            audit.record(
                session,
                lead_id=lead_id,
                actor=Actor.slack_user(message.user),
                action="note",
                at=now,
                text=plain_text_from_slack(message.text),
                slack_ts=message.ts,
            )
            return
    if lead_id is None:  # a thread, but not a lead's
        if misplaced:
            tell(
                client,
                channel=message.channel,
                user=message.user,
                thread_ts=message.thread_ts,
                text=f"Not sent: `{SEND_MARKER}` works in the thread under the lead's card, not under this "
                "copy of the call. Nothing left Slack.",
            )
        return
    _send_reply(client, services, message, lead_id, plain_text_from_slack(raw_reply or ""))


def _is_call_task_copy(session: Session, message: ThreadMessage) -> bool:
    """The thread is under a call task's copy in the channel (people mistake it for the lead's thread)."""
    copy = select(CallTask.id).where(
        CallTask.slack_channel == message.channel, CallTask.slack_channel_ts == message.thread_ts
    )
    return session.scalar(copy.limit(1)) is not None


def _send_reply(client: WebClient, services: Services, message: ThreadMessage, lead_id: int, text: str) -> None:
    if message.with_files:
        tell(
            client,
            channel=message.channel,
            user=message.user,
            thread_ts=message.thread_ts,
            text=f"Not sent: files cannot go to a lead. Send the words alone with `{SEND_MARKER} ...`.",
        )
        return
    if not text:
        tell(
            client,
            channel=message.channel,
            user=message.user,
            thread_ts=message.thread_ts,
            text=f"Nothing to send: write the message after `{SEND_MARKER}`, e.g. `{SEND_MARKER} See you at 3!`",
        )
        return
    try:
        send_direct(services, lead_id, body=text, author=Actor.slack_user(message.user), thread_message_ts=message.ts)
    except DirectMessageRefused as refused:
        _post_in_thread(
            client, message, f":no_entry: Not sent to the lead: {escape(str(refused))}. Nothing left Slack."
        )
        return
    # Sent or failed, the outcome is stored and queued: the poster shows it under the member's message.
    after_change(services)


def _post_in_thread(client: WebClient, message: ThreadMessage, text: str) -> None:
    try:
        client.chat_postMessage(
            channel=message.channel, thread_ts=message.thread_ts, text=text, unfurl_links=False, unfurl_media=False
        )
    except (SlackApiError, SlackClientError) as error:
        # Nothing was sent; the member sees no status line under their message either.
        log.warning(
            "slack: could not say a thread reply was refused in %s/%s: %s", message.channel, message.thread_ts, error
        )


def on_app_home_opened(ack: Ack, event: dict[str, Any], client: WebClient, context: BoltContext) -> None:
    ack()
    if event.get("tab") != "home" or not isinstance(event.get("user"), str):
        return
    # The businesses whose leads channels the member is in (handlers.slack_guard found them).
    publish_home(client, services_of(context), event["user"], businesses_of(context))
