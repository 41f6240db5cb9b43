"""Deliver claimed touches: hand them to the providers in groups of whole leads, guarded against a STOP meanwhile.

Each lead is taken and checked afresh just before its sends, and held until its group's answers
are recorded, so a STOP stored before the check is seen and one that arrives later waits, then is
respected. With several sender threads, groups' provider calls overlap; all database work stays on
the dispatcher's own thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from bot.core.ports import OutgoingSms, PermanentSendError, SendError, SendReceipt, TransientSendError
from bot.store.models import Lead, TouchStatus
from bot.usecases import dispatch_sql as sql
from bot.usecases.send_outcomes import NOT_ALLOWED, DispatchReport, Outcome, SendRecorder, TouchSend
from bot.usecases.services import Services
from bot.usecases.touch_rendering import ClaimedTouch

log = logging.getLogger(__name__)

#: The model's own rules, read off a checked row: one definition of "may we text/email them".
_MAY_TEXT: Callable[[Any], bool] = vars(Lead)["sms_allowed"].fget
_MAY_ANSWER_BY_TEXT: Callable[[Any], bool] = vars(Lead)["sms_answer_allowed"].fget
_MAY_EMAIL: Callable[[Any], bool] = vars(Lead)["email_allowed"].fget

#: How many claimed touches are recorded together (one transaction, a few bulk statements). Bigger
#: groups cost less per touch; smaller ones keep short the wait of a STOP for a lead already sent to.
SEND_GROUP_SIZE = 25


@dataclass
class _GroupInFlight:
    """A group whose leads are held and checked, waiting for its provider calls to come back."""

    holding: ExitStack
    session: Session
    decided: list[tuple[ClaimedTouch, Outcome]] = field(default_factory=list)
    sending: list[tuple[list[ClaimedTouch], Future[list[Outcome]]]] = field(default_factory=list)

    def answered(self) -> bool:
        return all(future.done() for _, future in self.sending)

    def outcomes(self) -> list[tuple[TouchSend, Outcome]]:
        return [(item.send, outcome) for item, outcome in self.decided] + [
            (item.send, outcome)
            for items, future in self.sending
            for item, outcome in zip(items, future.result(), strict=True)
        ]


class GroupSender:
    """Carries out claimed touches through the senders, and hands each group's answers to the recorder."""

    def __init__(
        self,
        services: Services,
        recorder: SendRecorder,
        *,
        stopping: threading.Event,
        senders: int = 1,
        group_size: int = SEND_GROUP_SIZE,
    ):
        self.services = services
        self.recorder = recorder
        self.group_size = group_size
        self._stopping = stopping
        self._senders = ThreadPoolExecutor(senders, thread_name_prefix="sender") if senders > 1 else None

    def close(self) -> None:
        """Let the sender threads go once their sends are recorded."""
        if self._senders is not None:
            self._senders.shutdown(wait=True)

    def deliver_all(self, claimed: list[ClaimedTouch], report: DispatchReport) -> None:
        """Carry out a claimed batch in groups; with several senders, overlap the groups' provider calls.

        All database work stays on this thread (threads contending for SQLite's one write lock,
        or for the GIL around many short driver calls, only slow each other down); the senders
        only wait on the providers. A few groups are in flight at once and each is recorded as
        soon as its own calls are back, so one slow call holds up its own group and no other.
        """
        groups = self._groups(claimed)
        if self._senders is None or len(groups) < 2:
            for items in groups:  # one group (a new lead's fast lane) goes at once, queued behind nothing
                self._finish_group(self._start_group(items, self._call_now), report)
            return
        senders = self._senders
        in_flight: list[_GroupInFlight] = []
        try:
            for items in groups:
                while len(in_flight) >= senders._max_workers:  # noqa: SLF001 - as many groups as senders
                    self._finish_first(in_flight, report)
                in_flight.append(self._start_group(items, lambda to_send: senders.submit(self._call_in_order, to_send)))
            while in_flight:
                self._finish_first(in_flight, report)
        finally:
            for group in in_flight:  # only after an error: still record the sends that went out
                try:
                    self._finish_group(group, report)
                except Exception:  # noqa: BLE001 - the first error is the one raised; this one is logged
                    log.exception("dispatch: could not record a group of sends; recovery settles them")

    def deliver(self, item: ClaimedTouch, report: DispatchReport) -> None:
        """Carry out one claimed touch."""
        self._finish_group(self._start_group([item], self._call_now), report)

    def _groups(self, claimed: list[ClaimedTouch]) -> list[list[ClaimedTouch]]:
        """Split a batch into groups of whole leads, each lead's touches in claim (due) order."""
        by_lead: dict[int, list[ClaimedTouch]] = {}
        for item in claimed:
            by_lead.setdefault(item.lead_id, []).append(item)
        workers = self._senders._max_workers if self._senders is not None else 1  # noqa: SLF001 - ThreadPoolExecutor exposes its size nowhere else
        # Enough groups to keep every sender busy, none bigger than the group size.
        size = max(1, min(self.group_size, -(-len(claimed) // workers)))
        groups: list[list[ClaimedTouch]] = [[]]
        for items in by_lead.values():
            if groups[-1] and len(groups[-1]) + len(items) > size:
                groups.append([])
            groups[-1].extend(items)
        return [group for group in groups if group]

    def _start_group(
        self, items: list[ClaimedTouch], send: Callable[[list[ClaimedTouch]], Future[list[Outcome]]]
    ) -> _GroupInFlight:
        """Take and check the group's leads and hand their sends to `send`; hold them until recorded.

        Leads are taken (this process's locks, and their rows on PostgreSQL) just before their
        sends and checked afresh, then held until the group is recorded: a STOP stored before a
        lead's check is seen; one that arrives later waits, then is respected. When `send` runs
        the calls at once, each lead is checked after the previous lead's calls are back, so a
        STOP that arrives meanwhile still counts; when it hands them to the sender threads, the
        whole group is checked in one statement and handed over once: one sender thread makes its
        calls, lead after lead, while the other threads carry the other groups.
        """
        by_lead: dict[int, list[ClaimedTouch]] = {}
        for item in items:
            by_lead.setdefault(item.lead_id, []).append(item)
        # Leads taken in id order: two groups (or a group and the fast lane) never wait on each other.
        lead_ids = sorted(by_lead)
        sent_in_line = send == self._call_now
        turns = [[lead_id] for lead_id in lead_ids] if sent_in_line else [lead_ids]
        holding = ExitStack()
        group = _GroupInFlight(holding, holding.enter_context(self.services.session_factory()))
        try:
            for turn in turns:
                if self._stopping.is_set():
                    group.decided.extend((item, None) for lead_id in turn for item in by_lead[lead_id])
                    continue
                for lead_id in turn:
                    holding.enter_context(self.services.lead_locks.hold(lead_id))
                allowed = self._check_leads(
                    group.session, [item for lead_id in turn for item in by_lead[lead_id]], group.decided
                )
                # One hand-over a turn: with the sender threads, the whole group's calls go to one of them,
                # in lead order, and come back as one answer (a hand-over per text cost more than the wait).
                to_send = [item for lead_id in turn for item in by_lead[lead_id] if item.touch_id in allowed]
                if to_send:
                    group.sending.append((to_send, send(to_send)))
        except BaseException:
            holding.close()
            raise
        return group

    def _finish_first(self, in_flight: list[_GroupInFlight], report: DispatchReport) -> None:
        """Record whichever group in flight has all its provider answers first."""
        while (ready := next((group for group in in_flight if group.answered()), None)) is None:
            wait([future for group in in_flight for _, future in group.sending], return_when=FIRST_COMPLETED)
        in_flight.remove(ready)
        self._finish_group(ready, report)

    def _finish_group(self, group: _GroupInFlight, report: DispatchReport) -> None:
        with group.holding:  # the leads are let go only once their outcomes are committed
            outcomes = group.outcomes()
            # SQLite has one write lock for the whole database: only now, after the calls, is it taken, in
            # turns with the process's other writers (`Services.writing`).
            with self.services.writing(group.session):
                self.recorder.record(group.session, outcomes, report)
                group.session.commit()

    @staticmethod
    def _check_leads(
        session: Session, items: list[ClaimedTouch], decided: list[tuple[ClaimedTouch, Outcome]]
    ) -> set[int]:
        """Check claimed touches afresh: return the ids of those to send, note in `decided` those not to."""
        rows = session.connection().execute(sql.LEADS_CHECK, {"touch_ids": [item.touch_id for item in items]}).all()
        now_reachable = {row.id: row for row in rows}
        to_send = set()
        for item in items:
            row = now_reachable.get(item.touch_id)
            if row is None or (row.status, row.attempts) != (TouchStatus.SENDING, item.send.attempt):
                continue  # recovery settled it while it waited in this batch: it is not ours to send
            if isinstance(item.outgoing, OutgoingSms):
                allowed = _MAY_ANSWER_BY_TEXT if item.answer else _MAY_TEXT
            else:
                allowed = _MAY_EMAIL
            if allowed(row):
                to_send.add(item.touch_id)
            else:
                decided.append((item, NOT_ALLOWED))
        return to_send

    def _call_in_order(self, items: list[ClaimedTouch]) -> list[Outcome]:
        """Call the provider for these touches in order; once stopping, leave the rest unsent (None)."""
        return [None if self._stopping.is_set() else self.call_provider(item) for item in items]

    def _call_now(self, items: list[ClaimedTouch]) -> Future[list[Outcome]]:
        done: Future[list[Outcome]] = Future()
        done.set_result(self._call_in_order(items))
        return done

    def call_provider(self, item: ClaimedTouch) -> SendReceipt | SendError:
        """Hand one touch to its provider; its answer, or the error that is the answer."""
        try:
            if isinstance(item.outgoing, OutgoingSms):
                if self.services.sms is None:
                    return PermanentSendError("SMS is not configured (set the TWILIO_* settings)")
                return self.services.sms.send_sms(item.outgoing)
            if self.services.email is None:
                return PermanentSendError("email is not configured (set the SENDGRID_* settings)")
            return self.services.email.send_email(item.outgoing)
        except (TransientSendError, PermanentSendError) as error:
            return error
