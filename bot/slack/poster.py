"""Carry the core's queued notices out in Slack: cards, thread entries and call tasks, once each, in order.

The outbox is the queue. Each event is claimed with a row lock (`FOR UPDATE SKIP LOCKED` on
PostgreSQL, so several processes post each message once), carried out, and marked delivered in
the same transaction that stores the `ts` Slack gave back. A lead's events go out in order: an
event waits while an earlier one of the same lead is pending. Slack being slow, down or
rate-limiting delays an event (with backoff, honouring Retry-After) and never loses it, however
long the outage: an outage of some minutes is logged as an error, and when Slack answers again
everything waiting is tried at once. Slack refusing an event for good (unknown channel, bad token)
marks it delivered with the error, so nothing loops forever.

Slack has no idempotency key, so each post carries one in its message metadata (`followup_post`,
naming the card, task copy or event it is for). When a post's answer was lost on the way back
(a timeout, a dropped connection, an answer that is not JSON), Slack may have posted it: the
retry first looks for the key in the channel or thread, and stores the ts found instead of
posting a second copy.

Slack's rate limits are kept before Slack has to say so (`SlackLimits`): an event whose channel
has no token free waits, and the events of other channels and the updates go ahead meanwhile.
The poster runs in a thread of its own (`start`): it sleeps until a notice is published (`wake`),
a token frees up or a retry falls due, so a long backlog costs a few queries a second, not a core.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import asdict, replace
from datetime import datetime, timedelta
from enum import Enum
import mimetypes
from http.client import HTTPException
from typing import Any, Collection

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from sqlalchemy import and_, exists, func, or_, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, aliased

from bot.core.clock import utc
from bot.store.models import Appointment, AuditEntry, CallTask, Enrollment, Lead, Message, OutboxEvent, Touch
from bot.store.outbox import (
    CallTaskChanged,
    CallTaskOpened,
    DecisionNote,
    LeadChanged,
    LeadCreated,
    LeadErased,
    MediaReceived,
    MessageReceived,
    MessageStatus,
    NeedsPerson,
    Notice,
    TouchFailed,
    TouchSent,
    payload_of,
    stored_payload,
)
from bot.core.playbook import LeadFacts, skip_reason
from bot.core.ports import MediaFetchError
from bot.usecases.services import Services
from bot.usecases.enrollment import lead_timezones
from bot.core.playbook import Sequence, default_sequence_label, step_label
from bot.slack.blocks import (
    call_task_blocks,
    call_task_pointer_blocks,
    call_task_pointer_text,
    call_task_text,
    lead_card_blocks,
    lead_card_text,
    thread_entry_blocks,
    thread_entry_text,
)
from bot.slack.limits import SlackLimits
from bot.slack.cards import (
    CallTaskView,
    DecisionEntry,
    FailureEntry,
    NeedsPersonEntry,
    ThreadEntry,
    automation_of,
    call_outcome_entry,
    call_task_view,
    inbound_entry,
    lead_card,
    mention,
    outbound_entry,
    shown_enrollment,
    thread_reply_status,
    touch_entry,
    written_in_thread,
)
from bot.core.states import CallTaskStatus, EnrollmentState, NoticeRetry


log = logging.getLogger(__name__)

#: Slack error codes that mean "not now" rather than "never".
TRANSIENT_ERRORS = frozenset({"ratelimited", "internal_error", "fatal_error", "service_unavailable",
                              "request_timeout", "timeout"})
#: slack_sdk's error text when Slack answered something that is not JSON (a proxy page, a cut body).
NON_JSON_ANSWER = "Received a response in a non-JSON format"
#: Errors in a row after which a drain stops: Slack is down, and each further try would only wait.
FAILURES_BEFORE_PAUSE = 3
#: The longest an event waits between attempts: an outage's end is noticed within about a minute.
MAX_BACKOFF_SECONDS = 60
#: How a rate-limited call is described to people (the flag itself is the event's retry_reason).
RATE_LIMITED = "rate limited"
#: How a lost answer is described to people (the flag itself is the event's retry_reason).
MAYBE_POSTED = "answer lost, maybe posted"
#: The metadata event_type that carries each post's idempotency key.
POST_EVENT_TYPE = "followup_post"
#: What every post of an erased lead says instead of what it said.
ERASED_TEXT = "Lead #{lead_id}: this lead's details and messages were erased on request."
#: How long Slack may fail before the outage is logged as an error (someone should look).
OUTAGE_ALERT_AFTER = timedelta(minutes=5)


class SlackUnavailable(Exception):
    """Slack did not take the call this time (429, 5xx, timeout, no connection); try again later."""

    def __init__(self, reason: str, retry_after: float | None = None, *, maybe_done: bool = False,
                 rate_limited: bool = False):
        super().__init__(reason)
        self.retry_after = retry_after
        #: The answer was lost, not refused: Slack may have done the call all the same.
        self.maybe_done = maybe_done
        #: Slack said 429 (or `ratelimited`): its Retry-After must stand.
        self.rate_limited = rate_limited


class SlackRefused(Exception):
    """Slack refused the call for good (unknown channel, not in channel, bad token or message)."""


class _LimiterBusy(Exception):
    """No rate-limit token is free for the event's channel now; the event stays queued as it is."""

    def __init__(self, key: str, wait: float, method: str = "chat.postMessage"):
        super().__init__(key)
        self.key = key
        self.wait = wait
        #: The Slack method that found no token: posts are limited per channel, edits per workspace.
        self.method = method


class _Outcome(Enum):
    DELIVERED = "delivered"  #: carried out, superseded, or refused for good: off the queue
    RETRY = "retry"  #: Slack unavailable; the event waits for its next attempt
    BUSY = "busy"  #: no rate-limit token free for its channel now; nothing recorded


#: Notices that, for a lead whose card is in Slack, are carried out by edits alone (chat.update):
#: they may go while the card's channel has no post token free.
EDIT_NOTICES = (Notice.LEAD_CHANGED, Notice.MESSAGE_STATUS, Notice.CALL_TASK_CHANGED, Notice.LEAD_ERASED)
#: The shortest time between two looks at the queue when wake-ups come faster (a burst of new
#: leads wakes the poster for each notice; one look finds them all).
WAKE_COALESCE_SECONDS = 0.05
#: The same while the last look found Slack's limits holding posts back: a burst of new leads then
#: wakes the poster only to pass over its channel again (each look scans the queued notices).
BLOCKED_WAKE_COALESCE_SECONDS = 0.25
#: How long a stopping process waits for the poster's event in hand (a Slack call under way).
STOP_WAIT_SECONDS = 3.0


class _Blocked:
    """What a drain has learned is waiting for a rate-limit token, and for how long."""

    def __init__(self) -> None:
        #: Channels with no post token free: seconds until one is.
        self.channels: dict[str, float] = {}
        #: Seconds until an edit token is free (workspace-wide), or None while edits may go.
        self.edits: float | None = None
        #: Single events passed over (their guess of "edits only" was wrong, or they wait for a read).
        self.events: dict[int, float] = {}

    def note(self, event_id: int, busy: _LimiterBusy) -> None:
        if busy.method == "chat.update":
            self.edits = busy.wait
        elif busy.method.startswith("conversations."):
            self.events[event_id] = busy.wait
        else:
            self.channels[busy.key] = busy.wait
            self.events[event_id] = busy.wait  # an "edits only" event that posts after all is not tried again

    def soonest(self) -> float | None:
        waits = [*self.channels.values(), *self.events.values(), *([self.edits] if self.edits is not None else [])]
        return min(waits, default=None)

    def __bool__(self) -> bool:
        return bool(self.channels or self.events or self.edits is not None)


def backoff(attempts: int, retry_after: float | None = None) -> timedelta:
    """Wait longer after each failed attempt, with jitter, never less than Slack's Retry-After."""
    base = min(2.0 * 2 ** max(attempts - 1, 0), MAX_BACKOFF_SECONDS)
    return timedelta(seconds=max(base * random.uniform(0.8, 1.2), retry_after or 0.0))


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


class SlackPoster:
    """Drains the outbox into Slack: one instance per process; any number of processes on PostgreSQL."""

    def __init__(
        self,
        services: Services,
        client: WebClient,
        channel: str,
        oncall: str | None = None,
        *,
        admins: Collection[str] = (),
        limits: SlackLimits | None = None,
        max_wait: float = 2.0,
    ):
        self.services = services
        self.client = client
        self.channel = channel
        self.oncall = oncall
        #: Who a second nudge about an unclaimed call pings (on-call when no admin is set).
        self.admins = tuple(sorted(admins))
        self.limits = limits or SlackLimits()
        #: The longest a drain sleeps for a rate-limit token before leaving the rest for the next tick.
        self.max_wait = max_wait
        # One drain at a time in this process (the scheduler tick and a run_now may overlap).
        self._draining = threading.Lock()
        #: Since when Slack has failed every call (None while it answers), and the last failure.
        self._unavailable_since: datetime | None = None
        self._last_failure = ""
        self._outage_reported = False
        #: Slack answered a call since this was last reset (set from inside an event's work).
        self._answered = False
        #: The event being carried out; and whether its first post may already be in Slack.
        self._event_id = 0
        self._event_at: datetime | None = None
        self._maybe_posted = False
        #: Slack calls made so far for the event in hand, and later notices its posts took off the queue.
        self._calls_made = 0
        self._absorbed = 0
        #: Seconds until a rate-limit token the last drain waited for frees up (None: none awaited).
        self.next_look_in: float | None = None
        # The poster's own thread (`start`), what wakes it, and what stops it.
        self._thread: threading.Thread | None = None
        self._woken = threading.Event()
        self._stopping = threading.Event()
        self._idle_seconds = 1.0
        self._queue_unreadable = False

    # --- the queue ---------------------------------------------------------------------------------

    def drain_once(self, limit: int = 100) -> int:
        """Carry out up to `limit` due events; return how many left the queue.

        A short wait for a rate-limit token is slept here; when nothing more can go now,
        `next_look_in` says in how many seconds a token frees up (None: none is awaited).
        """
        with self._draining:
            delivered = failures = idle_waits = 0
            # What waits for a token is passed over by the query itself (a whole channel at once),
            # so other channels and the edits go ahead, and a backlog costs one query, not one per event.
            blocked = self._blocked_now()
            self.next_look_in = None
            while not self._stopping.is_set():
                if delivered >= limit:
                    self.next_look_in = 0.0
                    break
                self._answered = False
                outcome, event_id, busy = self._carry_out_next(blocked)
                if self._answered and self._unavailable_since is not None:
                    self._slack_is_back()
                if outcome is None:
                    soonest = blocked.soonest()
                    if soonest is None or soonest > self.max_wait or idle_waits >= 2:
                        self.next_look_in = soonest
                        break
                    self._pause(soonest)
                    blocked = self._blocked_now()
                    idle_waits += 1
                    continue
                if outcome == _Outcome.BUSY:
                    assert busy is not None
                    blocked.note(event_id, busy)
                elif outcome == _Outcome.DELIVERED:
                    # With it, the later notices its posts already showed (`_shown_already`).
                    delivered, failures, idle_waits = delivered + 1 + self._absorbed, 0, 0
                else:
                    failures += 1
                    if failures >= FAILURES_BEFORE_PAUSE:
                        break
            self._report_outage()
            return delivered

    def _blocked_now(self) -> _Blocked:
        """The poster's own channel and the edits, as far as their rate limits stand now."""
        blocked = _Blocked()
        post_wait = self.limits.posts.wait_time(self.limits.key_for("chat.postMessage", self.channel))
        if post_wait > 0:
            blocked.channels[self.channel] = post_wait
        edit_wait = self.limits.updates.wait_time(self.limits.key_for("chat.update", self.channel))
        if edit_wait > 0:
            blocked.edits = edit_wait
        return blocked

    def _pause(self, seconds: float) -> None:
        """Wait for a token; in the poster's own thread a wake-up (a new notice) or a stop cuts it short."""
        if threading.current_thread() is not self._thread:
            self.limits.sleep(seconds)  # driven by hand (tests, a one-off drain)
        elif self._woken.wait(seconds):
            self._woken.clear()

    # --- the poster's own thread -------------------------------------------------------------------

    def start(self, *, idle_seconds: float = 1.0) -> None:
        """Post from a thread of the poster's own until `stop`: woken by new notices, else by the next due moment.

        `idle_seconds` is how often an idle poster looks anyway (notices published without a
        wake-up, or by another process).
        """
        if self._thread is not None:
            return
        self._idle_seconds = idle_seconds
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="slack-poster", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Look at the queue now: a notice was published (a button's result should show at once)."""
        self._woken.set()

    def stop(self, timeout: float = STOP_WAIT_SECONDS) -> None:
        """Stop posting; what is queued stays queued in the database for the next start."""
        thread = self._thread
        if thread is None:
            return
        self._stopping.set()
        self._woken.set()
        thread.join(timeout)
        if thread.is_alive():
            log.warning("slack: stopping while a Slack call is under way; its notice stays queued and is "
                        "carried out at the next start (its post may then appear twice)")
        self._thread = None

    def _run(self) -> None:
        last_look = float("-inf")
        while not self._stopping.is_set():
            # A burst wakes the poster for every notice; one look a few milliseconds later finds them all.
            token_in = self.next_look_in  # the last look waited this long for a rate-limit token (0/None: none)
            coalesce = min(BLOCKED_WAKE_COALESCE_SECONDS, token_in) if token_in else WAKE_COALESCE_SECONDS
            gap = coalesce - (time.monotonic() - last_look)
            if gap > 0 and self._stopping.wait(gap):
                break
            self._woken.clear()
            last_look = time.monotonic()
            try:
                self.drain_once()
                wait = self._next_wait()
                if self._queue_unreadable:
                    self._queue_unreadable = False
                    log.warning("slack: the outbox can be read again; posting the queued notices")
            except SQLAlchemyError as error:
                if not self._queue_unreadable:  # said once per outage, not on every look
                    self._queue_unreadable = True
                    log.error("slack: the outbox cannot be read (%s); trying again every %s s", error,
                              self._idle_seconds)
                wait = self._idle_seconds
            except Exception:  # noqa: BLE001 - nobody awaits this thread: say so, and look again later
                log.exception("slack: posting the queued notices failed; trying again in %s s", self._idle_seconds)
                wait = self._idle_seconds
            self._woken.wait(wait)

    def _next_wait(self) -> float:
        """Seconds until there may be something to post: a token frees up, a retry falls due, or the idle look."""
        waits = [self._idle_seconds]
        if self.next_look_in is not None:
            waits.append(self.next_look_in)
        now = self.services.clock.now()
        with self.services.session_factory() as session:
            retry_at = session.scalar(select(func.min(OutboxEvent.next_attempt_at)).where(
                OutboxEvent.delivered_at.is_(None), OutboxEvent.next_attempt_at > now))
        if retry_at is not None:
            waits.append(self.services.clock.real_seconds_until(retry_at))
        return max(0.0, min(waits))

    def _report_outage(self) -> None:
        """Log, once, that Slack has been failing long enough for someone to look."""
        since = self._unavailable_since
        if since is None or self._outage_reported:
            return
        down_for = self.services.clock.now() - since
        if down_for < OUTAGE_ALERT_AFTER:
            return
        self._outage_reported = True
        log.error("slack: Slack has been unavailable for %d min; %d notices are queued and will be posted, "
                  "in order, when it answers again. Last error: %s", down_for.total_seconds() // 60,
                  self.pending(), self._last_failure)

    def _slack_is_back(self) -> None:
        """Slack answered after failing: try the events waiting out a backoff now (not those told Retry-After).

        An event whose post may have landed looks for it before posting again, so it is released too.
        """
        now = self.services.clock.now()
        assert self._unavailable_since is not None
        log.warning("slack: Slack answers again after %d s unavailable; posting the queued notices",
                    (now - self._unavailable_since).total_seconds())
        self._unavailable_since, self._outage_reported = None, False
        waiting = (select(OutboxEvent.id)
                   .where(OutboxEvent.delivered_at.is_(None), OutboxEvent.next_attempt_at > now,
                          or_(OutboxEvent.retry_reason.is_(None),
                              OutboxEvent.retry_reason != NoticeRetry.RATE_LIMITED))
                   .with_for_update(skip_locked=True))  # another process's event in hand is its own business
        with self.services.session_factory.begin() as session:
            session.execute(update(OutboxEvent).where(OutboxEvent.id.in_(waiting)).values(next_attempt_at=now))

    def pending(self) -> int:
        """How many events are still queued (due or waiting for a retry)."""
        with self.services.session_factory() as session:
            return session.scalar(select(func.count(OutboxEvent.id)).where(OutboxEvent.delivered_at.is_(None))) or 0

    def _next_event_query(self, now: datetime, blocked: _Blocked):
        # Each lead's first queued notice (its later ones wait behind it), found in one pass over
        # the queue: a correlated "no earlier one" subquery was planned, on PostgreSQL with
        # statistics from before a burst, as a nested loop over every pair (1.9 s with 5,000 queued).
        earlier = aliased(OutboxEvent)
        firsts = (select(func.min(earlier.id)).where(earlier.delivered_at.is_(None), earlier.lead_id.is_not(None))
                  .group_by(earlier.lead_id))
        conditions = [OutboxEvent.delivered_at.is_(None),
                      or_(OutboxEvent.next_attempt_at.is_(None), OutboxEvent.next_attempt_at <= now),
                      or_(OutboxEvent.lead_id.is_(None), OutboxEvent.id.in_(firsts))]
        if blocked.events:
            conditions.append(OutboxEvent.id.not_in(list(blocked.events)))
        if blocked.channels or blocked.edits is not None:
            edits_only = and_(OutboxEvent.kind.in_([notice.value for notice in EDIT_NOTICES]),
                              exists().where(Lead.id == OutboxEvent.lead_id, Lead.slack_ts.is_not(None)))
            if blocked.edits is not None:
                conditions.append(~edits_only)
            if blocked.channels:
                posts_to_blocked = exists().where(
                    Lead.id == OutboxEvent.lead_id,
                    func.coalesce(Lead.slack_channel, self.channel).in_(list(blocked.channels)))
                conditions.append(or_(edits_only, ~posts_to_blocked))
        return (
            select(OutboxEvent)
            .where(*conditions)
            .order_by(OutboxEvent.id)
            .limit(1)
            .with_for_update(skip_locked=True, of=OutboxEvent)
        )

    def _carry_out_next(self, blocked: _Blocked) -> tuple[_Outcome | None, int, _LimiterBusy | None]:
        """Carry out the next due event not blocked: what became of it, its id, and (when BUSY) what it waits for."""
        now = self.services.clock.now()
        with self.services.session_factory() as session, session.begin():
            event = session.scalars(self._next_event_query(now, blocked)).first()
            if event is None:
                return None, 0, None
            self._event_id, self._event_at, self._calls_made, self._absorbed = event.id, event.created_at, 0, 0
            self._maybe_posted = event.retry_reason == NoticeRetry.MAYBE_POSTED
            try:
                # Stored ts are written at commit, not while Slack is being called: on SQLite a
                # write would hold the database's one write lock across the next Slack call.
                with session.no_autoflush:
                    self._carry_out(session, event)
            except _LimiterBusy as busy:
                return _Outcome.BUSY, event.id, busy  # what was already posted for it is kept (its ts commits)
            except SlackUnavailable as error:
                event.attempts += 1
                event.next_attempt_at = now + backoff(event.attempts, error.retry_after)
                # Still unsure whether Slack has the post (not looked up yet, or lost again)? Say so.
                maybe_posted = error.maybe_done or self._maybe_posted
                event.last_error = f"{MAYBE_POSTED}: {error}" if maybe_posted else str(error)
                event.retry_reason = (NoticeRetry.MAYBE_POSTED if maybe_posted
                                      else NoticeRetry.RATE_LIMITED if error.rate_limited else None)
                if self._unavailable_since is None:
                    self._unavailable_since = now
                self._last_failure, self._answered = str(error), False  # Slack's latest word is a failure
                log.warning("slack: event %s (%s, lead %s) delayed, attempt %s: %s", event.id, event.kind,
                            event.lead_id, event.attempts, error)
                return _Outcome.RETRY, event.id, None
            except SlackRefused as error:
                event.last_error = str(error)
                log.error("slack: event %s (%s, lead %s) refused for good: %s", event.id, event.kind,
                          event.lead_id, error)
            except SQLAlchemyError:
                raise  # the database is the queue: without it, stop and let the next tick try again
            except Exception as error:  # noqa: BLE001 - a bug with one event must not stall its lead forever
                event.last_error = f"not posted, internal error: {type(error).__name__}: {error}"[:2000]
                log.exception("slack: event %s (%s, lead %s) could not be carried out", event.id, event.kind,
                              event.lead_id)
            event.delivered_at, event.retry_reason = now, None
            return _Outcome.DELIVERED, event.id, None

    def _carry_out(self, session: Session, event: OutboxEvent) -> None:
        lead = session.get(Lead, event.lead_id) if event.lead_id is not None else None
        if lead is None:
            raise SlackRefused(f"event {event.id} names no existing lead")
        try:
            payload = payload_of(event)
        except (ValueError, TypeError) as error:  # an unknown kind, or a payload missing what its kind needs
            raise SlackRefused(f"event {event.id} ({event.kind!r}) cannot be read: {error}") from error
        match payload:
            case LeadCreated():
                self._ensure_card(session, lead)
            case LeadChanged():
                if not self._superseded(session, event):
                    self._refresh_card(session, lead)
            case TouchSent():
                self._mirror_touch(session, lead, payload)
            case TouchFailed():
                touch = session.get(Touch, payload.touch_id)
                self._post_entry(session, lead, FailureEntry(
                    channel=touch.channel if touch else "", error=payload.error or "unknown error",
                    step=self._step_label(session, touch) if touch else None))
            case MessageReceived():
                self._mirror_reply(session, lead, event, payload)
            case MessageStatus():
                if not self._superseded(session, event, key="message_id"):
                    self._mirror_status(session, lead, payload)
            case DecisionNote():
                alert = self._alert_mention(lead) if payload.alert_team else None
                if payload.alert_admins:
                    alert = " ".join(filter(None, map(mention, self.admins))) or self._alert_mention(lead)
                text = payload.text
                if payload.sequence:  # a note about one sequence names it as people know it
                    text = f"{self._sequence_label(payload.sequence)}: {text}"
                self._post_entry(session, lead, DecisionEntry(text=text, actor=payload.actor, mention=alert))
            case MediaReceived():
                self._share_media(session, lead, payload)
            case NeedsPerson():
                self._post_entry(session, lead, NeedsPersonEntry(
                    text=payload.text or "A person needs to look at this lead.", mention=self._alert_mention(lead)))
            case CallTaskOpened():
                self._post_call_task(session, lead, payload.call_task_id)
            case CallTaskChanged():
                if not self._superseded(session, event, key="call_task_id"):
                    self._refresh_call_task(session, lead, payload)
            case LeadErased():
                self._erase(event, payload)

    def _erase(self, event: OutboxEvent, erased: LeadErased) -> None:
        """Edit every post of an erased lead (card, thread entries, call-task copies) to say it was erased.

        The thread is listed once and each edit noted in the event as it is made, so a rate-limit
        pause goes on where it stopped. A post Slack no longer has is passed over.
        """
        channel, card_ts = erased.channel, erased.card_ts
        if erased.posts is None:
            posts = [(channel, card_ts)] if channel and card_ts else []
            if channel and card_ts:
                posts += [(channel, ts) for ts in self._own_thread_posts(channel, card_ts) if ts != card_ts]
            posts += [(copy["channel"], copy["ts"]) for copy in erased.copies]
            erased = replace(erased, posts=tuple(dict.fromkeys(posts)), edited=0)
            event.payload = stored_payload(Notice.LEAD_ERASED, asdict(erased))
        assert erased.posts is not None
        text = ERASED_TEXT.format(lead_id=event.lead_id)
        blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": f":wastebasket: _{text}_"}}]
        for index in range(erased.edited, len(erased.posts)):
            post_channel, ts = erased.posts[index]
            try:
                self._update(post_channel, ts, text, blocks)
            except SlackRefused as refused:  # deleted meanwhile, or not ours to edit: nothing left to erase
                log.warning("slack: erased lead %s: could not edit %s/%s: %s", event.lead_id, post_channel, ts,
                            refused)
            erased = replace(erased, edited=index + 1)
            event.payload = stored_payload(Notice.LEAD_ERASED, asdict(erased))

    def _own_thread_posts(self, channel: str, thread_ts: str) -> list[str]:
        """The ts of every message the bot posted in a thread (each carries its metadata)."""
        found: list[str] = []
        cursor = None
        while True:
            extra = {"cursor": cursor} if cursor else {}
            try:
                answer = self._call("conversations.replies", channel, ts=thread_ts, include_all_metadata=True,
                                    limit=1000, **extra)
            except SlackRefused as refused:  # the thread is gone: only the card is left to edit
                log.warning("slack: could not list thread %s/%s: %s", channel, thread_ts, refused)
                return found
            for message in answer.get("messages") or []:
                if (message.get("metadata") or {}).get("event_type") == POST_EVENT_TYPE:
                    found.append(str(message["ts"]))
            cursor = (answer.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return found

    def _superseded(self, session: Session, event: OutboxEvent, key: str | None = None) -> bool:
        """A later pending event of the same kind (for the same message or task) will show the newer state."""
        later = session.scalars(
            select(OutboxEvent).where(OutboxEvent.lead_id == event.lead_id, OutboxEvent.kind == event.kind,
                                      OutboxEvent.delivered_at.is_(None), OutboxEvent.id > event.id)
        ).all()
        if key is None:
            return bool(later)
        mine = (event.payload or {}).get(key)  # the stored fields, as stored_payload wrote them
        return any((other.payload or {}).get(key) == mine for other in later)

    # --- Slack calls -------------------------------------------------------------------------------

    def _call(self, method: str, channel: str, **arguments: Any) -> Any:
        limiter, key = self.limits.limiter_for(method), self.limits.key_for(method, channel)
        if self._calls_made:
            # Part of this event is in Slack already. Updates leave no mark, so giving up now would
            # redo them on the next try, and an event of two updates tried whenever one token has
            # refilled would never finish: wait for the token (briefly) instead.
            if not limiter.acquire(key, max_wait=self.max_wait):
                raise _LimiterBusy(key, limiter.wait_time(key), method)
        else:
            wait = limiter.try_acquire(key)
            if wait:
                raise _LimiterBusy(key, wait, method)
        self._calls_made += 1
        try:
            if method == "chat.postMessage":
                answer = self.client.chat_postMessage(channel=channel, unfurl_links=False, unfurl_media=False,
                                                      **arguments)
            elif method == "chat.update":
                answer = self.client.chat_update(channel=channel, **arguments)
            elif method == "conversations.replies":
                answer = self.client.conversations_replies(channel=channel, **arguments)
            else:
                answer = self.client.conversations_history(channel=channel, **arguments)
        except SlackApiError as error:
            problem = classify(error, method)
            if isinstance(problem, SlackUnavailable) and problem.retry_after:
                limiter.hold(key, problem.retry_after)
            if isinstance(problem, SlackRefused):
                self._answered = True
            raise problem from error
        except SlackClientError as error:
            raise SlackRefused(f"{method}: {type(error).__name__}: {error}") from error
        except (OSError, HTTPException) as error:  # timeouts, refused or reset connections, cut answers
            never_reached = isinstance(getattr(error, "reason", error), ConnectionRefusedError)
            raise SlackUnavailable(f"{method}: {type(error).__name__}: {error}",
                                   maybe_done=method == "chat.postMessage" and not never_reached) from error
        self._answered = True
        return answer

    def _post(self, channel: str, text: str, blocks: list[dict], thread_ts: str | None = None, *,
              key: str | None = None) -> str:
        """Post once: `key` names what the post is for (a card, a task copy; by default this event's entry)."""
        key = key or f"event:{self._event_id}"
        if self._maybe_posted:
            # The first post of this retry is the one whose answer was lost: Slack may have it.
            try:
                found = self._find_post(channel, key, thread_ts)
            except SlackRefused as refused:  # cannot look (a missing scope, a thread gone): a double beats a loss
                log.warning("slack: could not look for %s before posting it again: %s", key, refused)
                found = None
            self._maybe_posted = False
            if found:
                log.warning("slack: %s was posted though its answer was lost; not posting it again", key)
                return found
        # `at`: when what the post shows happened (the notice's time), which a backlog may leave far behind.
        tag = {"key": key, "at": utc(self._event_at).isoformat()} if self._event_at else {"key": key}
        arguments: dict[str, Any] = {"text": text, "blocks": blocks,
                                     "metadata": {"event_type": POST_EVENT_TYPE, "event_payload": tag}}
        if thread_ts:
            arguments["thread_ts"] = thread_ts
        answer = self._call("chat.postMessage", channel, **arguments)
        return str(answer["ts"])

    def _find_post(self, channel: str, key: str, thread_ts: str | None) -> str | None:
        """The ts of the bot's post carrying `key` in the thread (or among the channel's latest), if any."""
        if thread_ts:
            answer = self._call("conversations.replies", channel, ts=thread_ts, include_all_metadata=True, limit=1000)
        else:
            answer = self._call("conversations.history", channel, include_all_metadata=True, limit=100)
        for message in answer.get("messages") or []:
            metadata = message.get("metadata") or {}
            if (metadata.get("event_type") == POST_EVENT_TYPE
                    and (metadata.get("event_payload") or {}).get("key") == key):
                return str(message["ts"])
        return None

    def _update(self, channel: str, ts: str, text: str, blocks: list[dict]) -> None:
        self._call("chat.update", channel, ts=ts, text=text, blocks=blocks)

    # --- the card ----------------------------------------------------------------------------------

    def _card(self, session: Session, lead: Lead) -> tuple[str, list[dict]]:
        enrollments = session.scalars(select(Enrollment).where(Enrollment.lead_id == lead.id)).all()
        touches = session.scalars(select(Touch).where(Touch.lead_id == lead.id)).all()
        appointment = session.scalars(
            select(Appointment).where(Appointment.lead_id == lead.id, Appointment.status != "rescheduled")
            .order_by(Appointment.id.desc())
        ).first()
        booked = appointment is not None and appointment.status in ("booked", "confirmed")
        shown = shown_enrollment(enrollments)
        wont_run = self._wont_run(session, lead, shown, booked=booked) if shown else frozenset()
        business = self.services.business
        card = lead_card(lead, enrollments=enrollments, touches=touches, appointment=appointment,
                         zone=business.timezone, wont_run=wont_run,
                         playbook=self._playbook(shown.sequence_name) if shown else None,
                         business=business, lead_zones=lead_timezones(lead, business), now=self.services.clock.now())
        return lead_card_text(card), lead_card_blocks(card)

    # --- words people read ---------------------------------------------------------------------

    def _playbook(self, name: str) -> Sequence | None:
        """The playbook an enrollment names, for its labels; None when it no longer loads (`check` says why)."""
        try:
            return self.services.playbooks.get(name)
        except Exception:  # noqa: BLE001 - a missing or broken playbook must not keep a card from Slack
            return None

    def _sequence_label(self, name: str) -> str:
        playbook = self._playbook(name)
        return playbook.label if playbook is not None else default_sequence_label(name)

    def _step_label(self, session: Session, touch: Touch) -> str:
        enrollment = session.get(Enrollment, touch.enrollment_id)
        return step_label(self._playbook(enrollment.sequence_name) if enrollment else None, touch.step_id)

    def _lead_zone(self, lead: Lead) -> str:
        """The lead's time zone as the team sees it beside the business's (bot.core.display.team_time)."""
        return lead_timezones(lead, self.services.business)[0]

    def _wont_run(self, session: Session, lead: Lead, enrollment: Enrollment, *, booked: bool) -> frozenset[str]:
        """The steps of the enrollment that would be skipped for this lead as things stand now."""
        try:
            steps = self.services.playbooks.get(enrollment.sequence_name).steps
        except Exception:  # noqa: BLE001 - a playbook that no longer loads: count every touch, `check` says why
            return frozenset()
        replied = session.scalar(select(exists().where(
            Message.lead_id == lead.id, Message.direction == "in", Message.created_at >= enrollment.enrolled_at,
            or_(Message.classification.is_(None), Message.classification != "auto_reply"))))
        facts = LeadFacts(has_email=bool(lead.email), has_phone=bool(lead.phone), has_replied=bool(replied),
                          has_booked=booked, sms_allowed=lead.sms_allowed, email_allowed=lead.email_allowed)
        return frozenset(step.id for step in steps if skip_reason(step, facts))

    def _ensure_card(self, session: Session, lead: Lead) -> tuple[str, str]:
        """Post the lead's card unless it is already in Slack; return its channel and ts."""
        if lead.slack_channel and lead.slack_ts:
            return lead.slack_channel, lead.slack_ts
        # Read before the card is drawn: every change they announce is in what it shows.
        changes = self._queued_after_this(session, lead.id, Notice.LEAD_CHANGED)
        text, blocks = self._card(session, lead)
        ts = self._post(self.channel, text, blocks, key=f"card:{lead.id}")
        lead.slack_channel, lead.slack_ts = self.channel, ts
        self._shown_already(changes)
        return self.channel, ts

    def _queued_after_this(self, session: Session, lead_id: int, kind: Notice) -> list[OutboxEvent]:
        """The lead's notices of one kind queued behind the event in hand."""
        return list(session.scalars(select(OutboxEvent).where(
            OutboxEvent.lead_id == lead_id, OutboxEvent.kind == kind, OutboxEvent.delivered_at.is_(None),
            OutboxEvent.id > self._event_id).order_by(OutboxEvent.id)))

    def _shown_already(self, events: list[OutboxEvent]) -> None:
        """Take notices off the queue that a post just made already shows: each would be one more edit.

        A backlog leaves a new lead's card and first entries to be posted after its changes and
        delivery statuses; Slack allows about 50 edits a minute per workspace, so redundant edits
        would keep a burst's backlog long after its posts.
        """
        now = self.services.clock.now()
        for event in events:
            event.delivered_at = now  # written at commit, with the post's ts
        self._absorbed += len(events)

    def _refresh_card(self, session: Session, lead: Lead) -> None:
        if not (lead.slack_channel and lead.slack_ts):
            self._ensure_card(session, lead)
            return
        text, blocks = self._card(session, lead)
        try:
            self._update(lead.slack_channel, lead.slack_ts, text, blocks)
        except SlackRefused as refused:
            if "message_not_found" not in str(refused):
                raise
            # Someone deleted the card: post a new one so the lead is in the channel again.
            log.warning("slack: lead %s card was deleted; posting a new one", lead.id)
            lead.slack_channel = lead.slack_ts = None
            self._ensure_card(session, lead)

    # --- the thread --------------------------------------------------------------------------------

    def _post_entry(self, session: Session, lead: Lead, entry: ThreadEntry) -> str:
        channel, card_ts = self._ensure_card(session, lead)
        return self._post(channel, thread_entry_text(entry), thread_entry_blocks(entry), thread_ts=card_ts)

    def _mirror_touch(self, session: Session, lead: Lead, payload: TouchSent) -> None:
        touch = session.get(Touch, payload.touch_id)
        if touch is None:
            raise SlackRefused(f"touch {payload.touch_id} does not exist")
        # Read before the message: the statuses they announce are in the entry drawn from it.
        statuses = self._queued_after_this(session, lead.id, Notice.MESSAGE_STATUS)
        message = session.scalars(
            select(Message).where(Message.touch_id == touch.id, Message.direction == "out").order_by(Message.id.desc())
        ).first()
        zone = self.services.business.timezone
        step, lead_zone = self._step_label(session, touch), self._lead_zone(lead)
        if message is None:
            self._post_entry(session, lead, touch_entry(touch, zone, step=step, lead_zone=lead_zone))
            return
        if message.slack_ts:
            return  # already mirrored (a redelivered event)
        message.slack_ts = self._post_entry(session, lead, outbound_entry(message, touch, zone, step=step,
                                                                          lead_zone=lead_zone))
        self._shown_already([event for event in statuses if (event.payload or {}).get("message_id") == message.id])

    def _mirror_reply(self, session: Session, lead: Lead, event: OutboxEvent, payload: MessageReceived) -> None:
        message = session.get(Message, payload.message_id) if payload.message_id else None
        if message is None:
            # The notice names no message: the oldest reply not yet mirrored is this one, since a
            # lead's notices are carried out in order.
            message = session.scalars(
                select(Message).where(Message.lead_id == lead.id, Message.direction == "in",
                                      Message.channel == payload.channel,
                                      Message.slack_ts.is_(None), Message.created_at <= event.created_at)
                .order_by(Message.id)
            ).first()
        if message is None:
            raise SlackRefused(f"no stored reply for lead {lead.id} to mirror")
        if message.slack_ts:
            return
        requested_at = datetime.fromisoformat(payload.requested_time) if payload.requested_time else None
        message.slack_ts = self._post_entry(session, lead, inbound_entry(
            message, requested_at, self.services.business.timezone, lead_zone=self._lead_zone(lead)))

    def _mirror_status(self, session: Session, lead: Lead, payload: MessageStatus) -> None:
        message = session.get(Message, payload.message_id)
        if message is None:
            raise SlackRefused(f"message {payload.message_id} does not exist")
        touch = session.get(Touch, message.touch_id) if message.touch_id else None
        entry: ThreadEntry
        if written_in_thread(message):
            # A `!reply`: the member's own message shows the words; the bot only says how it fared.
            entry = thread_reply_status(message)
        else:
            entry = outbound_entry(message, touch, self.services.business.timezone,
                                   step=self._step_label(session, touch) if touch else None,
                                   lead_zone=self._lead_zone(lead))
        if message.slack_ts and lead.slack_channel:
            self._update(lead.slack_channel, message.slack_ts, thread_entry_text(entry), thread_entry_blocks(entry))
            return
        # A direct message from the team has no entry yet: its first status is when it appears.
        message.slack_ts = self._post_entry(session, lead, entry)

    def _share_media(self, session: Session, lead: Lead, payload: MediaReceived) -> None:
        """Fetch a lead's photo from the provider and upload it into their thread (files_upload_v2).

        A retry after a lost answer may upload it twice: a second copy beats a lost photo.
        """
        message = session.get(Message, payload.message_id)
        media = ((message.details or {}).get("media") or []) if message else []
        index = payload.index
        if message is None or not isinstance(index, int) or not 0 <= index < len(media):
            raise SlackRefused(f"no stored media {index} for message {payload.message_id}")
        item = media[index]
        source = getattr(self.services.sms, "fetch_media", None)
        if source is None:
            self._post_entry(session, lead, NeedsPersonEntry(
                text="They sent a photo, but SMS is not configured here, so it cannot be fetched.",
                mention=None))
            return
        try:
            fetched = source(str(item.get("url") or ""))
        except MediaFetchError as error:
            if error.transient:  # Twilio is not answering: the notice waits and is tried again
                raise SlackUnavailable(f"fetching a photo from Twilio: {error.reason}") from error
            self._post_entry(session, lead, NeedsPersonEntry(
                text=f"They sent a photo that could not be fetched ({error.reason}): look it up in Twilio.",
                mention=None))
            return
        channel, card_ts = self._ensure_card(session, lead)
        extension = mimetypes.guess_extension(fetched.content_type) or ""
        name = f"lead-{lead.id}-message-{message.id}-{index + 1}{extension}"
        limiter, key = self.limits.limiter_for("chat.postMessage"), self.limits.key_for("chat.postMessage", channel)
        wait = limiter.try_acquire(key)
        if wait:
            raise _LimiterBusy(key, wait)
        try:
            self.client.files_upload_v2(channel=channel, thread_ts=card_ts, content=fetched.content, filename=name,
                                        title=f"Photo from {lead.name or 'the lead'}",
                                        initial_comment=f"Photo {index + 1} of {len(media)} from the lead's text")
        except SlackApiError as error:
            raise classify(error, "files.completeUploadExternal") from error
        except (OSError, HTTPException) as error:
            raise SlackUnavailable(f"files_upload_v2: {type(error).__name__}: {error}") from error
        self._answered = True

    def _alert_mention(self, lead: Lead) -> str | None:
        """Who is pinged when the team must act: the lead's owner, else on-call."""
        return mention(lead.owner) or mention(self.oncall)

    # --- call tasks --------------------------------------------------------------------------------

    def _task_view(self, session: Session, task: CallTask, lead: Lead, *, mention_to: str | None) -> CallTaskView:
        open_enrollments = session.scalars(
            select(Enrollment).where(Enrollment.lead_id == lead.id,
                                     Enrollment.state.in_((EnrollmentState.ACTIVE, EnrollmentState.PAUSED)))
        ).all()
        last_reply = session.scalars(
            select(Message.body).where(Message.lead_id == lead.id, Message.direction == "in")
            .order_by(Message.id.desc())
        ).first()
        return call_task_view(task, lead, automation=automation_of(open_enrollments),
                              zone=self.services.business.timezone, last_reply=last_reply,
                              logged_by=self._outcome_logger(session, task), mention_to=mention_to,
                              lead_zone=self._lead_zone(lead))

    @staticmethod
    def _outcome_logger(session: Session, task: CallTask) -> str | None:
        """Who logged the task's outcome, from the audit log (the claimer may not be who logged it)."""
        if task.status != CallTaskStatus.DONE:
            return None
        entries = session.scalars(
            select(AuditEntry).where(AuditEntry.lead_id == task.lead_id, AuditEntry.action == "call_outcome")
            .order_by(AuditEntry.id.desc())
        ).all()
        for entry in entries:
            if (entry.details or {}).get("task") == task.id:
                return entry.actor_id if entry.actor_type == "slack_user" and entry.actor_id else None
        return None

    def _post_call_task(self, session: Session, lead: Lead, call_task_id: int) -> None:
        """Post a call task once, in the channel where people act on it, and one line about it in the thread.

        A task already finished before it reached Slack is shown whole in the thread only.
        """
        task = session.get(CallTask, call_task_id)
        if task is None:
            raise SlackRefused(f"call task {call_task_id} does not exist")
        channel, card_ts = self._ensure_card(session, lead)
        view = self._task_view(session, task, lead, mention_to=self._alert_mention(lead))
        live = task.status in (CallTaskStatus.OPEN, CallTaskStatus.CLAIMED)
        if not task.slack_thread_ts:
            task.slack_channel = channel
            if live:
                text, blocks = call_task_pointer_text(view), call_task_pointer_blocks(view)
            else:
                quiet = replace(view, mention=None)
                text, blocks = call_task_text(quiet), call_task_blocks(quiet)
            task.slack_thread_ts = self._post(channel, text, blocks, thread_ts=card_ts,
                                              key=f"call_task:{task.id}:thread")
        if not task.slack_channel_ts and live:
            task.slack_channel_ts = self._post(channel, call_task_text(view), call_task_blocks(view),
                                               key=f"call_task:{task.id}:channel")

    def _refresh_call_task(self, session: Session, lead: Lead, payload: CallTaskChanged) -> None:
        task = session.get(CallTask, payload.call_task_id)
        if task is None:
            raise SlackRefused(f"call task {payload.call_task_id} does not exist")
        channel = task.slack_channel or lead.slack_channel
        if channel is None or not (task.slack_thread_ts or task.slack_channel_ts):
            # The task never reached Slack (its own notice was refused): show it now.
            self._post_call_task(session, lead, task.id)
        else:
            view = self._task_view(session, task, lead, mention_to=self._alert_mention(lead))
            if task.slack_channel_ts:
                self._update(channel, task.slack_channel_ts, call_task_text(view), call_task_blocks(view))
            if task.slack_thread_ts:
                if task.slack_channel_ts:
                    text, blocks = call_task_pointer_text(view), call_task_pointer_blocks(view)
                else:
                    quiet = replace(view, mention=None)
                    text, blocks = call_task_text(quiet), call_task_blocks(quiet)
                self._update(channel, task.slack_thread_ts, text, blocks)
        if task.status == CallTaskStatus.DONE:
            consequence = payload.consequence
            entry = call_outcome_entry(task, logged_by=self._outcome_logger(session, task),
                                       zone=self.services.business.timezone, lead_zone=self._lead_zone(lead),
                                       consequence=str(consequence) if consequence else None)
            self._post_entry(session, lead, entry)
