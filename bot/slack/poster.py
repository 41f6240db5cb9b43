"""Carry the core's queued notices out in Slack: cards, thread entries and call tasks, once each, in order.

The outbox is the queue. Each event is claimed with a row lock (`FOR UPDATE SKIP LOCKED` on
PostgreSQL, so several processes post each message once), carried out, and marked delivered in
the same transaction that stores the `ts` Slack gave back. A lead's events go out in order: an
event waits while an earlier one of the same lead is pending. Slack being slow, down or
rate-limiting delays an event (with backoff, honouring Retry-After) and never loses it, however
long the outage: an outage of some minutes is logged as an error, and when Slack answers again
everything waiting is tried at once. Slack refusing an event for good (unknown channel, bad token)
marks it delivered with the error, so nothing loops forever.

Each notice is carried out by a `NoticeCarrier` (bot.slack.notices) made for it, through its own
`EventCalls` (bot.slack.calls: each post once, even when an answer is lost).

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
from collections import deque
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

from slack_sdk import WebClient
from sqlalchemy import and_, exists, func, literal, or_, select, union_all, update
from sqlalchemy.exc import SQLAlchemyError

from bot.core.states import NoticeRetry
from bot.slack.calls import MAYBE_POSTED, EventCalls, LimiterBusy, SlackRefused, SlackUnavailable
from bot.slack.limits import SlackLimits
from bot.slack.notices import NoticeCarrier
from bot.store.models import Lead, OutboxEvent
from bot.store.outbox import Notice
from bot.usecases.services import Services

log = logging.getLogger(__name__)

#: Errors in a row after which a drain stops: Slack is down, and each further try would only wait.
FAILURES_BEFORE_PAUSE = 3
#: The longest an event waits between attempts: an outage's end is noticed within about a minute.
MAX_BACKOFF_SECONDS = 60
#: How long Slack may fail before the outage is logged as an error (someone should look).
OUTAGE_ALERT_AFTER = timedelta(minutes=5)


class _Outcome(Enum):
    DELIVERED = "delivered"  #: carried out, superseded, or refused for good: off the queue
    RETRY = "retry"  #: Slack unavailable; the event waits for its next attempt
    BUSY = "busy"  #: no rate-limit token free for its channel now; nothing recorded


#: Notices that, for a lead whose card is in Slack, are carried out by edits alone (chat.update):
#: they may go while the card's channel has no post token free.
EDIT_NOTICES = (Notice.LEAD_CHANGED, Notice.MESSAGE_STATUS, Notice.CALL_TASK_CHANGED, Notice.LEAD_ERASED)
EDIT_NOTICE_KINDS = frozenset(notice.value for notice in EDIT_NOTICES)
#: How many queued events one look at the queue reads from each source (each business, each kind of edit).
QUEUE_PAGE_SIZE = 20
#: The most pages a look reads from a source whose pages are all later notices waiting behind a retry.
MAX_PAGES_A_LOOK = 50
#: How often the poster asks which businesses have notices queued (a business no longer served keeps its own).
QUEUED_BUSINESSES_EVERY_SECONDS = 60.0
#: The shortest time between two looks at the queue when wake-ups come faster (a burst of new
#: leads wakes the poster for each notice; one look finds them all).
WAKE_COALESCE_SECONDS = 0.05
#: The same while the last look found Slack's limits holding posts back: a burst of new leads then
#: wakes the poster only to pass over its channel again (each look scans the queued notices).
BLOCKED_WAKE_COALESCE_SECONDS = 0.25
#: How long a stopping process waits for the poster's event in hand (a Slack call under way).
STOP_WAIT_SECONDS = 3.0


@dataclass(frozen=True)
class _Carried:
    """What became of one look at the queue: the event's outcome (None: nothing was due), and what its calls learned."""

    outcome: _Outcome | None
    event_id: int
    #: What the event waits for, when BUSY.
    busy: LimiterBusy | None = None
    #: Slack answered one of its calls (so Slack is up).
    answered: bool = False
    #: Later notices its posts already showed, taken off the queue with it.
    absorbed: int = 0


@dataclass(frozen=True)
class _Due:
    """A due event the last look at the queue found first in its lead's queue, and where it would post."""

    event_id: int
    lead_id: int | None
    #: Carried out by edits alone (its lead's card is in Slack and it is an EDIT_NOTICES kind).
    edits_only: bool
    #: The channel its posts go to (its lead's card's, else its business's).
    channel: str


class _Blocked:
    """What a drain has learned is waiting for a rate-limit token, and for how long."""

    def __init__(self) -> None:
        #: Channels with no post token free: seconds until one is.
        self.channels: dict[str, float] = {}
        #: Seconds until an edit token is free (workspace-wide), or None while edits may go.
        self.edits: float | None = None
        #: Single events passed over (their guess of "edits only" was wrong, or they wait for a read).
        self.events: dict[int, float] = {}

    def note(self, event_id: int, busy: LimiterBusy) -> None:
        if busy.method == "chat.update":
            self.edits = busy.wait
        elif busy.method.startswith("conversations."):
            self.events[event_id] = busy.wait
        else:
            self.channels[busy.key] = busy.wait
            self.events[event_id] = busy.wait  # an "edits only" event that posts after all is not tried again

    def holds(self, due: _Due) -> bool:
        """Whether the event waits for a token, as far as this drain has learned since the queue was looked at."""
        if due.event_id in self.events:
            return True
        if due.edits_only:
            return self.edits is not None
        return due.channel in self.channels

    def soonest(self) -> float | None:
        waits = [*self.channels.values(), *self.events.values(), *([self.edits] if self.edits is not None else [])]
        return min(waits, default=None)

    def __bool__(self) -> bool:
        return bool(self.channels or self.events or self.edits is not None)


def backoff(attempts: int, retry_after: float | None = None) -> timedelta:
    """Wait longer after each failed attempt, with jitter, never less than Slack's Retry-After."""
    base = min(2.0 * 2 ** max(attempts - 1, 0), MAX_BACKOFF_SECONDS)
    return timedelta(seconds=max(base * random.uniform(0.8, 1.2), retry_after or 0.0))


class SlackPoster:
    """Drains the outbox into Slack: one instance per process; any number of processes on PostgreSQL.

    With one business, `channel`, `oncall` and `admins` are where its cards go and whom they ping. With
    several, each lead's notices go to its business's channel and ping its on-call and admins
    (bot.slack.notices.NoticeCarrier); `channel` is then only a fallback none of them uses.
    """

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
        #: Seconds until a rate-limit token the last drain waited for frees up (None: none awaited).
        self.next_look_in: float | None = None
        # The poster's own thread (`start`), what wakes it, and what stops it.
        self._thread: threading.Thread | None = None
        self._woken = threading.Event()
        self._stopping = threading.Event()
        self._idle_seconds = 1.0
        self._queue_unreadable = False
        #: The businesses with notices queued when last asked (`_queued_businesses`), and when that was.
        self._queued_slugs: set[str] = set()
        self._businesses_looked_up_at = float("-inf")

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
            due: deque[_Due] = deque()
            self.next_look_in = None
            while not self._stopping.is_set():
                if delivered >= limit:
                    self.next_look_in = 0.0
                    break
                carried = self._carry_out_next(blocked, due)
                outcome, event_id, busy = carried.outcome, carried.event_id, carried.busy
                if carried.answered and self._unavailable_since is not None:
                    self._slack_is_back()
                if outcome is None:
                    soonest = blocked.soonest()
                    if soonest is None or soonest > self.max_wait or idle_waits >= 2:
                        self.next_look_in = soonest
                        break
                    self._pause(soonest)
                    blocked = self._blocked_now()
                    due.clear()
                    idle_waits += 1
                    continue
                if outcome == _Outcome.BUSY:
                    assert busy is not None
                    blocked.note(event_id, busy)
                elif outcome == _Outcome.DELIVERED:
                    # With it, the later notices its posts already showed (`_shown_already`).
                    delivered, failures, idle_waits = delivered + 1 + carried.absorbed, 0, 0
                else:
                    failures += 1
                    if failures >= FAILURES_BEFORE_PAUSE:
                        break
            self._report_outage()
            return delivered

    def _channels(self) -> dict[str, str]:
        """Each business's channel by its slug, where its new cards go (one business: the poster's own channel)."""
        businesses = self.services.businesses
        if businesses.only is not None:
            return {businesses.only.slug: self.channel}
        return {business.slug: business.slack.channel for business in businesses if business.slack.channel}

    def _blocked_now(self) -> _Blocked:
        """The businesses' channels and the edits, as far as their rate limits stand now."""
        blocked = _Blocked()
        for channel in {self.channel, *self._channels().values()} - {""}:
            post_wait = self.limits.posts.wait_time(self.limits.key_for("chat.postMessage", channel))
            if post_wait > 0:
                blocked.channels[channel] = post_wait
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
            log.warning(
                "slack: stopping while a Slack call is under way; its notice stays queued and is "
                "carried out at the next start (its post may then appear twice)"
            )
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
                    log.error(
                        "slack: the outbox cannot be read (%s); trying again every %s s", error, self._idle_seconds
                    )
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
            retry_at = session.scalar(
                select(func.min(OutboxEvent.next_attempt_at)).where(
                    OutboxEvent.delivered_at.is_(None), OutboxEvent.next_attempt_at > now
                )
            )
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
        log.error(
            "slack: Slack has been unavailable for %d min; %d notices are queued and will be posted, "
            "in order, when it answers again. Last error: %s",
            down_for.total_seconds() // 60,
            self.pending(),
            self._last_failure,
        )

    def _slack_is_back(self) -> None:
        """Slack answered after failing: try the events waiting out a backoff now (not those told Retry-After).

        An event whose post may have landed looks for it before posting again, so it is released too.
        """
        now = self.services.clock.now()
        assert self._unavailable_since is not None
        log.warning(
            "slack: Slack answers again after %d s unavailable; posting the queued notices",
            (now - self._unavailable_since).total_seconds(),
        )
        self._unavailable_since, self._outage_reported = None, False
        waiting = (
            select(OutboxEvent.id)
            .where(
                OutboxEvent.delivered_at.is_(None),
                OutboxEvent.next_attempt_at > now,
                or_(OutboxEvent.retry_reason.is_(None), OutboxEvent.retry_reason != NoticeRetry.RATE_LIMITED),
            )
            .with_for_update(skip_locked=True)
        )  # another process's event in hand is its own business
        with self.services.session_factory.begin() as session:
            session.execute(update(OutboxEvent).where(OutboxEvent.id.in_(waiting)).values(next_attempt_at=now))

    def pending(self) -> int:
        """How many events are still queued (due or waiting for a retry)."""
        with self.services.session_factory() as session:
            return session.scalar(select(func.count(OutboxEvent.id)).where(OutboxEvent.delivered_at.is_(None))) or 0

    def _queue_sources(self, blocked: _Blocked) -> list[Any]:
        """Where the next look at the queue reads from: each business whose channel has a post token free, and
        (while the edit tokens last) each kind of card edit, which waits for no channel.

        Each is read from its own start, through its own index (migration 0015). Read as one queue with
        the waiting channels filtered out row by row, a backlog in 49 channels was scanned through for
        every post to the 50th: with 100,000 cards queued, under two posts a second where Slack allows fifty.
        """
        channels = self._channels()
        only = self.services.businesses.only
        sources: list[Any] = [
            OutboxEvent.business == slug
            for slug in sorted(set(channels) | self._queued_businesses())
            if (self.channel if only is not None else channels.get(slug, self.channel)) not in blocked.channels
        ]
        if blocked.edits is None:
            sources += [
                and_(OutboxEvent.kind == kind, Lead.slack_ts.is_not(None)) for kind in sorted(EDIT_NOTICE_KINDS)
            ]
        return sources

    def _queued_businesses(self) -> set[str]:
        """The businesses with notices queued, looked up now and then: a business no longer served keeps its own."""
        if time.monotonic() >= self._businesses_looked_up_at + QUEUED_BUSINESSES_EVERY_SECONDS:
            with self.services.session_factory() as session:
                self._queued_slugs = set(
                    session.scalars(select(OutboxEvent.business).where(OutboxEvent.delivered_at.is_(None)).distinct())
                )
            self._businesses_looked_up_at = time.monotonic()
        return self._queued_slugs

    def _due_page_query(self, now: datetime, blocked: _Blocked, sources: dict[int, Any], after: dict[int, int]):
        """The next page of due events from each source, in queue order from where it left off (no locks).

        Each row says which source it came from. No "is it its lead's first?" here: asked of the whole
        queue, that is a pass over every queued notice (a grouping, or a correlated subquery PostgreSQL
        may plan as a loop over every pair); the pages' rows are asked it together (`_firsts_among`).
        """
        parts = []
        for number, source in sources.items():
            conditions = [
                source,
                OutboxEvent.delivered_at.is_(None),
                OutboxEvent.id > after[number],
                or_(OutboxEvent.next_attempt_at.is_(None), OutboxEvent.next_attempt_at <= now),
            ]
            if blocked.events:
                conditions.append(OutboxEvent.id.not_in(list(blocked.events)))
            part = (
                select(
                    literal(number).label("source"),
                    OutboxEvent.id,
                    OutboxEvent.lead_id,
                    OutboxEvent.kind,
                    OutboxEvent.business,
                    Lead.slack_channel,
                    Lead.slack_ts,
                )
                .outerjoin(Lead, Lead.id == OutboxEvent.lead_id)
                .where(*conditions)
                .order_by(OutboxEvent.id)
                .limit(QUEUE_PAGE_SIZE)
            )
            parts.append(select(part.subquery()))
        return union_all(*parts) if len(parts) > 1 else parts[0]

    def _firsts_among(self, session, page: list[_Due]) -> list[_Due]:
        """The page's events that are first in their lead's queue (a lead's later notices wait behind it)."""
        leads = {due.lead_id for due in page if due.lead_id is not None}
        earliest: dict[int, int] = {}
        if leads:
            earliest = dict(
                session.execute(
                    select(OutboxEvent.lead_id, func.min(OutboxEvent.id))
                    .where(OutboxEvent.delivered_at.is_(None), OutboxEvent.lead_id.in_(leads))
                    .group_by(OutboxEvent.lead_id)
                ).all()
            )
        return [due for due in page if due.lead_id is None or earliest.get(due.lead_id) == due.event_id]

    def _next_due(self, now: datetime, blocked: _Blocked) -> list[_Due]:
        """The due events first in their lead's queue and not waiting for a token, in queue order.

        A source whose whole page is later notices waiting behind their leads' first (that one waiting
        out a retry) is read further, so a lead with a long queue hides nobody else's.
        """
        channels, only = self._channels(), self.services.businesses.only is not None
        sources = dict(enumerate(self._queue_sources(blocked)))
        after = dict.fromkeys(sources, 0)
        found: dict[int, _Due] = {}
        with self.services.session_factory() as session:
            for _ in range(MAX_PAGES_A_LOOK):
                if not sources:
                    break
                rows = session.execute(self._due_page_query(now, blocked, sources, after)).all()
                page: dict[int, list[_Due]] = {number: [] for number in sources}
                for number, event_id, lead_id, kind, business, card_channel, card_ts in rows:
                    page[number].append(
                        _Due(
                            event_id,
                            lead_id,
                            edits_only=kind in EDIT_NOTICE_KINDS and card_ts is not None,
                            channel=card_channel or (self.channel if only else channels.get(business, self.channel)),
                        )
                    )
                firsts = {due.event_id for due in self._firsts_among(session, [d for p in page.values() for d in p])}
                for number, dues in page.items():
                    found.update((due.event_id, due) for due in dues if due.event_id in firsts)
                    if len(dues) < QUEUE_PAGE_SIZE or any(due.event_id in firsts for due in dues):
                        del sources[number]  # read to its end, or it has something to carry out now
                    else:
                        after[number] = dues[-1].event_id
        return [found[event_id] for event_id in sorted(found)]

    def _claim(self, session, event_id: int, now: datetime) -> OutboxEvent | None:
        """Lock the event, if it is still queued, due, first of its lead's and no other process has it in hand."""
        event = session.scalars(
            select(OutboxEvent)
            .where(
                OutboxEvent.id == event_id,
                OutboxEvent.delivered_at.is_(None),
                or_(OutboxEvent.next_attempt_at.is_(None), OutboxEvent.next_attempt_at <= now),
            )
            .with_for_update(skip_locked=True)
        ).first()
        if event is None or event.lead_id is None:
            return event
        # Asked again under the lock: since the page was read, another process may have taken an earlier one
        # of the lead's (it is then still queued, and locked, until that process commits).
        earlier = exists().where(
            OutboxEvent.lead_id == event.lead_id, OutboxEvent.delivered_at.is_(None), OutboxEvent.id < event.id
        )
        return None if session.scalar(select(earlier)) else event

    def _carry_out_next(self, blocked: _Blocked, due: deque[_Due]) -> _Carried:
        """Carry out the next due event not blocked: what became of it, its id, and (when BUSY) what it waits for.

        `due` is what the last look at the queue found, in queue order; it is looked at again when used up.
        """
        now = self.services.clock.now()
        looked = False
        while True:
            if not due:
                if looked:  # what this look found waits for a token, or another process has it in hand
                    return _Carried(None, 0)
                due.extend(self._next_due(now, blocked))
                looked = True
                if not due:
                    return _Carried(None, 0)
            candidate = due.popleft()
            if blocked.holds(candidate):
                continue
            carried = self._carry_out(candidate.event_id, now)
            if carried is not None:
                return carried

    def _carry_out(self, event_id: int, now: datetime) -> _Carried | None:
        """Carry out one event; None if it is no longer this process's to carry out (taken, done, or not first)."""
        with self.services.session_factory() as session, session.begin():
            event = self._claim(session, event_id, now)
            if event is None:
                return None
            calls = EventCalls(
                self.client,
                self.limits,
                max_wait=self.max_wait,
                event_id=event.id,
                event_at=event.created_at,
                maybe_posted=event.retry_reason == NoticeRetry.MAYBE_POSTED,
            )
            carrier = NoticeCarrier(
                self.services, self.channel, self.oncall, admins=self.admins, event=event, calls=calls
            )
            try:
                # Stored ts are written at commit, not while Slack is being called: on SQLite a
                # write would hold the database's one write lock across the next Slack call.
                with session.no_autoflush:
                    carrier.carry_out(session)
            except LimiterBusy as busy:
                # What was already posted for it is kept (its ts commits).
                return _Carried(_Outcome.BUSY, event.id, busy, answered=calls.answered, absorbed=carrier.absorbed)
            except SlackUnavailable as error:
                event.attempts += 1
                event.next_attempt_at = now + backoff(event.attempts, error.retry_after)
                # Still unsure whether Slack has the post (not looked up yet, or lost again)? Say so.
                maybe_posted = error.maybe_done or calls.maybe_posted
                event.last_error = f"{MAYBE_POSTED}: {error}" if maybe_posted else str(error)
                event.retry_reason = (
                    NoticeRetry.MAYBE_POSTED
                    if maybe_posted
                    else NoticeRetry.RATE_LIMITED
                    if error.rate_limited
                    else None
                )
                if self._unavailable_since is None:
                    self._unavailable_since = now
                self._last_failure = str(error)
                log.warning(
                    "slack: event %s (%s, lead %s) delayed, attempt %s: %s",
                    event.id,
                    event.kind,
                    event.lead_id,
                    event.attempts,
                    error,
                )
                # Slack's latest word is a failure, whatever it answered before it.
                return _Carried(_Outcome.RETRY, event.id, absorbed=carrier.absorbed)
            except SlackRefused as error:
                event.last_error = str(error)
                log.error(
                    "slack: event %s (%s, lead %s) refused for good: %s", event.id, event.kind, event.lead_id, error
                )
            except SQLAlchemyError:
                raise  # the database is the queue: without it, stop and let the next tick try again
            except Exception as error:  # noqa: BLE001 - a bug with one event must not stall its lead forever
                event.last_error = f"not posted, internal error: {type(error).__name__}: {error}"[:2000]
                log.exception(
                    "slack: event %s (%s, lead %s) could not be carried out", event.id, event.kind, event.lead_id
                )
            event.delivered_at, event.retry_reason = now, None
            return _Carried(_Outcome.DELIVERED, event.id, answered=calls.answered, absorbed=carrier.absorbed)
