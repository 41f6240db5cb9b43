"""Slack calls for one notice in hand: each error told apart (try again later, or never), Slack's rate
limits kept before Slack has to say so, and each post made once.

Slack has no idempotency key, so each post carries one in its message metadata (`followup_post`,
naming the card, task copy or event it is for). When a post's answer was lost on the way back
(a timeout, a dropped connection, an answer that is not JSON), Slack may have posted it: the retry
first looks for the key in the channel or thread, and keeps the ts found instead of posting again.

One `EventCalls` is made for each notice carried out, so what one notice's calls have learned (how
many were made, whether Slack answered) never leaks into the next.
"""

from __future__ import annotations

import logging
from datetime import datetime
from http.client import HTTPException
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.core.clock import utc
from bot.slack.limits import SlackLimits

log = logging.getLogger(__name__)

#: Slack error codes that mean "not now" rather than "never".
TRANSIENT_ERRORS = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout", "timeout"}
)
#: slack_sdk's error text when Slack answered something that is not JSON (a proxy page, a cut body).
NON_JSON_ANSWER = "Received a response in a non-JSON format"
#: How a rate-limited call is described to people (the flag itself is the event's retry_reason).
RATE_LIMITED = "rate limited"
#: How a lost answer is described to people (the flag itself is the event's retry_reason).
MAYBE_POSTED = "answer lost, maybe posted"
#: How a file upload (files_upload_v2) is named to the rate limits: a post to its channel.
UPLOAD = "files.upload"
#: The metadata event_type that carries each post's idempotency key.
POST_EVENT_TYPE = "followup_post"
#: The metadata event_type that carries each post's idempotency key.
POST_EVENT_TYPE = "followup_post"


class SlackUnavailable(Exception):
    """Slack did not take the call this time (429, 5xx, timeout, no connection); try again later."""

    def __init__(
        self, reason: str, retry_after: float | None = None, *, maybe_done: bool = False, rate_limited: bool = False
    ):
        super().__init__(reason)
        self.retry_after = retry_after
        #: The answer was lost, not refused: Slack may have done the call all the same.
        self.maybe_done = maybe_done
        #: Slack said 429 (or `ratelimited`): its Retry-After must stand.
        self.rate_limited = rate_limited


class SlackRefused(Exception):
    """Slack refused the call for good (unknown channel, not in channel, bad token or message)."""


class LimiterBusy(Exception):
    """No rate-limit token is free for the event's channel now; the event stays queued as it is."""

    def __init__(self, key: str, wait: float, method: str = "chat.postMessage"):
        super().__init__(key)
        self.key = key
        self.wait = wait
        #: The Slack method that found no token: posts are limited per channel, edits per workspace.
        self.method = method


def _retry_after(error: SlackApiError) -> float | None:
    headers = {str(k).lower(): v for k, v in (error.response.headers or {}).items()}
    value = headers.get("retry-after")
    if isinstance(value, list):
        value = value[0] if value else None
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def classify(error: SlackApiError, method: str) -> SlackUnavailable | SlackRefused:
    """Tell a Slack error that will pass (retry later) from one that will not (give up, say why)."""
    status = error.response.status_code
    data = error.response.data if isinstance(error.response.data, dict) else {}
    code = str(data.get("error") or f"HTTP {status}")
    if status == 429 or code == "ratelimited":
        return SlackUnavailable(f"{method}: {RATE_LIMITED}", retry_after=_retry_after(error), rate_limited=True)
    if code.startswith(NON_JSON_ANSWER):  # a proxy's page or a cut answer: no telling what Slack did
        return SlackUnavailable(f"{method}: {code[:200]} (HTTP {status})", maybe_done=True)
    if status >= 500 or code in TRANSIENT_ERRORS:
        return SlackUnavailable(f"{method}: {code[:200]} (HTTP {status})")
    return SlackRefused(f"{method}: {code}")


class EventCalls:
    """The Slack calls of one notice in hand: made through the rate limits, each post once."""

    def __init__(
        self,
        client: WebClient,
        limits: SlackLimits,
        *,
        max_wait: float,
        event_id: int,
        event_at: datetime | None,
        maybe_posted: bool,
    ):
        self.client = client
        self.limits = limits
        #: The longest a call of a notice already under way waits for its rate-limit token.
        self.max_wait = max_wait
        self.event_id = event_id
        #: When what the notice shows happened (stamped on each post: a backlog may leave it far behind).
        self.event_at = event_at
        #: Whether the notice's first post may already be in Slack (its last answer was lost).
        self.maybe_posted = maybe_posted
        #: Slack calls made so far for this notice.
        self.calls_made = 0
        #: Slack answered one of them (even with a refusal): Slack is up.
        self.answered = False

    def own_thread_posts(self, channel: str, thread_ts: str) -> list[str]:
        """The ts of every message the bot posted in a thread (each carries its metadata)."""
        found: list[str] = []
        cursor = None
        while True:
            extra: dict[str, Any] = {"cursor": cursor} if cursor else {}
            try:
                answer = self.call(
                    "conversations.replies", channel, ts=thread_ts, include_all_metadata=True, limit=1000, **extra
                )
            except SlackRefused as refused:  # the thread is gone: only the card is left to edit
                log.warning("slack: could not list thread %s/%s: %s", channel, thread_ts, refused)
                return found
            for message in answer.get("messages") or []:
                if (message.get("metadata") or {}).get("event_type") == POST_EVENT_TYPE:
                    found.append(str(message["ts"]))
            cursor = (answer.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return found

    def call(self, method: str, channel: str, **arguments: Any) -> Any:
        limiter, key = self.limits.limiter_for(method), self.limits.key_for(method, channel)
        if self.calls_made:
            # Part of this event is in Slack already. Updates leave no mark, so giving up now would
            # redo them on the next try, and an event of two updates tried whenever one token has
            # refilled would never finish: wait for the token (briefly) instead.
            if not limiter.acquire(key, max_wait=self.max_wait):
                raise LimiterBusy(key, limiter.wait_time(key), method)
        else:
            wait = limiter.try_acquire(key)
            if wait:
                raise LimiterBusy(key, wait, method)
        self.calls_made += 1
        try:
            if method == "chat.postMessage":
                answer = self.client.chat_postMessage(
                    channel=channel, unfurl_links=False, unfurl_media=False, **arguments
                )
            elif method == "chat.update":
                answer = self.client.chat_update(channel=channel, **arguments)
            elif method == UPLOAD:
                answer = self.client.files_upload_v2(channel=channel, **arguments)
            elif method == "conversations.replies":
                answer = self.client.conversations_replies(channel=channel, **arguments)
            else:
                answer = self.client.conversations_history(channel=channel, **arguments)
        except SlackApiError as error:
            problem = classify(error, method)
            if isinstance(problem, SlackUnavailable) and problem.retry_after:
                limiter.hold(key, problem.retry_after)
            if isinstance(problem, SlackRefused):
                self.answered = True
            raise problem from error
        except SlackClientError as error:
            raise SlackRefused(f"{method}: {type(error).__name__}: {error}") from error
        except (OSError, HTTPException) as error:  # timeouts, refused or reset connections, cut answers
            never_reached = isinstance(getattr(error, "reason", error), ConnectionRefusedError)
            raise SlackUnavailable(
                f"{method}: {type(error).__name__}: {error}",
                maybe_done=method == "chat.postMessage" and not never_reached,
            ) from error
        self.answered = True
        return answer

    def post(
        self, channel: str, text: str, blocks: list[dict], thread_ts: str | None = None, *, key: str | None = None
    ) -> str:
        """Post once: `key` names what the post is for (a card, a task copy; by default this event's entry)."""
        key = key or f"event:{self.event_id}"
        if self.maybe_posted:
            # The first post of this retry is the one whose answer was lost: Slack may have it.
            try:
                found = self.find_post(channel, key, thread_ts)
            except SlackRefused as refused:  # cannot look (a missing scope, a thread gone): a double beats a loss
                log.warning("slack: could not look for %s before posting it again: %s", key, refused)
                found = None
            self.maybe_posted = False
            if found:
                log.warning("slack: %s was posted though its answer was lost; not posting it again", key)
                return found
        # `at`: when what the post shows happened (the notice's time), which a backlog may leave far behind.
        tag = {"key": key, "at": utc(self.event_at).isoformat()} if self.event_at else {"key": key}
        arguments: dict[str, Any] = {
            "text": text,
            "blocks": blocks,
            "metadata": {"event_type": POST_EVENT_TYPE, "event_payload": tag},
        }
        if thread_ts:
            arguments["thread_ts"] = thread_ts
        answer = self.call("chat.postMessage", channel, **arguments)
        return str(answer["ts"])

    def find_post(self, channel: str, key: str, thread_ts: str | None) -> str | None:
        """The ts of the bot's post carrying `key` in the thread (or among the channel's latest), if any."""
        if thread_ts:
            answer = self.call("conversations.replies", channel, ts=thread_ts, include_all_metadata=True, limit=1000)
        else:
            answer = self.call("conversations.history", channel, include_all_metadata=True, limit=100)
        for message in answer.get("messages") or []:
            metadata = message.get("metadata") or {}
            if (
                metadata.get("event_type") == POST_EVENT_TYPE
                and (metadata.get("event_payload") or {}).get("key") == key
            ):
                return str(message["ts"])
        return None

    def update(self, channel: str, ts: str, text: str, blocks: list[dict]) -> None:
        self.call("chat.update", channel, ts=ts, text=text, blocks=blocks)
