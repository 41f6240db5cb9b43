"""Send the touches that are due, each exactly once, in order per lead, within the send windows.

The loop, in four parts each with its own module: claim (one statement takes a batch,
bot.usecases.dispatch_sql), decide and render under each lead's lock (bot.usecases.touch_policy,
bot.usecases.touch_rendering), deliver in groups of whole leads (bot.usecases.send_groups), and
record every answer through the one recorder (bot.usecases.send_outcomes). Sends a stopped
process left open are settled by bot.usecases.send_recovery, on the dispatcher's ticks.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Collection
from contextlib import ExitStack
from datetime import datetime
from typing import cast

from sqlalchemy import CursorResult

from bot.core.playbook import Channel
from bot.core.states import TouchStatus
from bot.usecases import dispatch_sql as sql
from bot.usecases.send_groups import SEND_GROUP_SIZE, GroupSender
from bot.usecases.send_outcomes import DispatchReport, SendRecorder
from bot.usecases.send_recovery import recover_abandoned
from bot.usecases.services import Playbooks, Services
from bot.usecases.touch_policy import CHANNEL_SETTINGS, WAITING_FOR_SETTINGS, TouchPolicy
from bot.usecases.touch_rendering import ClaimedTouch, TouchRenderer

__all__ = [
    "SEND_LEASE_SECONDS",
    "DispatchReport",
    "Dispatcher",
    "configured_channels",
    "release_waiting_touches",
    "waiting_channels_warnings",
]

#: Real seconds a touch may stay `sending` before it counts as abandoned by a process that died.
#: Far longer than a sender's timeout, so a request in flight when its process died has landed.
SEND_LEASE_SECONDS = 60.0


class Dispatcher:
    """Claims due touches and carries them out through the senders.

    A batch is claimed with one statement and decided and rendered in one transaction (the
    playbook's `when` facts read once for the batch), then carried out in groups of whole leads:
    each lead is taken and checked just before its sends, and a group's outcomes are recorded
    together in a few bulk statements. With `senders` > 1, that many groups are in flight at
    once and their provider calls overlap; a lead's touches always stay in one group, in order.
    """

    def __init__(
        self,
        services: Services,
        *,
        batch_size: int = 200,
        send_lease_seconds: float = SEND_LEASE_SECONDS,
        senders: int = 1,
        group_size: int = SEND_GROUP_SIZE,
        poll_seconds: float = 0.0,
    ):
        self.services = services
        self.batch_size = batch_size
        self.send_lease_seconds = send_lease_seconds
        self._next_recovery = 0.0  # monotonic seconds
        self._stopping = threading.Event()
        self.recorder = SendRecorder(services)
        self.policy = TouchPolicy(services, self.recorder, TouchRenderer(services), poll_seconds=poll_seconds)
        self.delivery = GroupSender(
            services, self.recorder, stopping=self._stopping, senders=senders, group_size=group_size
        )

    def run_due(self) -> DispatchReport:
        """Carry out everything due now; return what happened."""
        report = DispatchReport()
        if time.monotonic() >= self._next_recovery:
            # Cheap (an indexed look at `sending` touches and messages), but no need to do it on every wake.
            self._next_recovery = time.monotonic() + min(self.send_lease_seconds / 2, 5.0)
            recover_abandoned(
                self.services,
                lease_seconds=self.send_lease_seconds,
                limit=self.batch_size,
                recorder=self.recorder,
                report=report,
            )
        self._run_until_still(report)
        return report

    def run_leads(self, lead_ids: Collection[int]) -> DispatchReport:
        """Carry out what is due for these leads now, in the caller's thread (new leads' instant texts).

        Claims exclude each other, so this may run while a batch is being sent: neither waits for
        the other, and no touch is claimed twice.
        """
        report = DispatchReport()
        self._run_until_still(report, lead_ids=list(lead_ids))
        return report

    def _run_until_still(self, report: DispatchReport, *, lead_ids: list[int] | None = None) -> None:
        while not self._stopping.is_set():
            before = report.handled
            self.delivery.deliver_all(self._claim_batch(report, lead_ids=lead_ids), report)
            # A handled touch may unblock the next one of the same lead: go again until nothing moves.
            if report.handled == before:
                return

    def stop(self) -> None:
        """Finish the sends in progress, hand back the rest of the batch, and run no more (shutdown)."""
        self._stopping.set()

    def close(self) -> None:
        """Stop, and let the sender threads go once their sends are recorded."""
        self.stop()
        self.delivery.close()

    def next_due_at(self) -> datetime | None:
        """When the earliest scheduled touch of an active sequence falls due (asked after every tick)."""
        with self.services.session_factory() as session:
            return session.connection().execute(sql.NEXT_DUE).scalar()

    def _claim_batch(self, report: DispatchReport, *, lead_ids: list[int] | None = None) -> list[ClaimedTouch]:
        """Take a batch of due touches and decide each in one transaction; return those to send now."""
        now = self.services.clock.now()
        take, params = sql.TAKE_DUE, {"now": now, "batch_size": self.batch_size}
        if lead_ids is not None:
            take, params = sql.TAKE_DUE_FOR_LEADS, {**params, "only_lead_ids": lead_ids}
        claimed: list[ClaimedTouch] = []
        with (
            self.services.session_factory() as session,
            self.services.writing(session),
            ExitStack() as holding,
            session.begin(),
        ):
            # Core, not the ORM's bulk-update path: that rebuilt the statement on every claim.
            taken = session.connection().execute(take, params).scalars().all()
            if not taken:
                return claimed
            batch = session.scalars(sql.TAKEN, {"ids": list(taken)}).unique().all()
            # Deciding changes leads (a skip, a call task, a stage): only under each lead's lock, like
            # every other change. A lead someone else is deciding about now is handed back untouched.
            free = holding.enter_context(self.services.lead_locks.hold_free(session, {t.lead_id for t in batch}))
            busy = [touch for touch in batch if touch.lead_id not in free]
            if busy:
                session.connection().execute(
                    sql.HAND_BACK,
                    [{"claimed_id": t.id, "claimed_attempt": t.attempts, "attempts_before": t.attempts} for t in busy],
                )
                batch = [touch for touch in batch if touch.lead_id in free]
            facts = sql.BatchFacts.load(session, batch)
            with session.no_autoflush:
                for touch in batch:
                    item = self.policy.decide(session, touch, now, report, facts)
                    if item is not None:
                        claimed.append(item)
        return claimed

    def _deliver(self, item: ClaimedTouch, report: DispatchReport) -> None:
        """Carry out one claimed touch."""
        self.delivery.deliver(item, report)


def configured_channels(services: Services) -> set[Channel]:
    """The channels with a provider to send through."""
    return {
        channel
        for channel, sender in ((Channel.SMS, services.sms), (Channel.EMAIL, services.email))
        if sender is not None
    }


def release_waiting_touches(services: Services) -> int:
    """Let touches that waited for a channel's settings go out now that the channel is configured.

    Run at start: settings are read once, so a channel configured since the touches began waiting
    needs a restart. They fall due now (their wait is not "the bot was not running") and keep
    their order. Returns how many were let go.
    """
    configured = sorted(configured_channels(services))
    if not configured:
        return 0
    now = services.clock.now()
    with services.session_factory.begin() as session:
        # An SMS step rerouted to email waits for email, whatever its channel says: `waiting_for` says which.
        released = cast(
            CursorResult,
            session.execute(
                sql.touches.update()
                .where(
                    sql.touches.c.status == TouchStatus.SCHEDULED,
                    sql.touches.c.next_attempt_at == WAITING_FOR_SETTINGS,
                    sql.touches.c.waiting_for.in_([str(channel) for channel in configured]),
                )
                .values(next_attempt_at=None, due_at=now, last_error=None, waiting_for=None)
            ),
        ).rowcount  # an UPDATE's result is a cursor's
    return released or 0


def waiting_channels_warnings(playbooks: Playbooks, configured: Collection[Channel]) -> list[str]:
    """Say, for each channel a playbook uses but no provider is configured for, what waits and why."""
    from bot.core.playbook import list_sequences

    used: dict[Channel, list[str]] = {}
    names = dict.fromkeys([playbooks.default, *list_sequences(playbooks.sequences_dir)])
    for name in names:
        try:
            sequence = playbooks.get(name)
        except Exception:  # noqa: BLE001 - `followup check` reports a playbook that does not load
            continue
        for step in sequence.steps:
            if step.channel in CHANNEL_SETTINGS and sequence.name not in used.setdefault(step.channel, []):
                used[step.channel].append(sequence.name)
    warnings = []
    for channel, names_using in used.items():
        if channel in configured:
            continue
        what, settings = CHANNEL_SETTINGS[channel]
        warnings.append(
            f"{what} is not configured (set {settings}), but playbook(s) {', '.join(names_using)} "
            f"send {what}: those touches wait, each lead's thread says why, and they go out once "
            f"it is configured and followup is restarted"
        )
    return warnings
