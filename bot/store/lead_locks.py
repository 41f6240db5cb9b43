"""One sender or decider at a time per lead, so a STOP can never slip between a check and a send.

`taking_lead` is the one way a use case changes a lead: the lead's lock, then one transaction with
the lead's row locked. Everything that changes a lead (a reply, a delivery report, a booking, a
click, a button, an erasure) goes through it, so none of them can interleave with a send.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.store.models import Lead


class TakesLeads(Protocol):
    """What taking a lead needs: the sessions and the per-lead locks (the use cases' Services has both)."""

    @property
    def session_factory(self) -> sessionmaker[Session]: ...

    @property
    def lead_locks(self) -> LeadLocks: ...


class LeadLocks:
    """Per-lead mutual exclusion: a thread lock in this process, plus a row lock on PostgreSQL.

    The row lock (taken inside the caller's transaction) covers other processes sharing one
    PostgreSQL database; SQLite is single-process, so the thread lock alone covers it.
    """

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: defaultdict[int, threading.Lock] = defaultdict(threading.Lock)
        #: The leads this thread holds (so a check can tell a locked change from an unlocked one).
        self._mine = threading.local()

    @contextmanager
    def hold(self, lead_id: int) -> Iterator[None]:
        with self._guard:
            lock = self._locks[lead_id]
        with lock:
            held = self._held()
            held.append(lead_id)
            try:
                yield
            finally:
                held.remove(lead_id)

    @contextmanager
    def hold_free(self, session: Session, lead_ids: Iterable[int]) -> Iterator[frozenset[int]]:
        """Hold, until the block ends, those of these leads nobody else holds now; yield their ids.

        Never waits: a lead another thread (or, on PostgreSQL, another process) is deciding about
        is left out, for the caller to come back to. The row locks last until `session`'s
        transaction ends, so the block must end with it.
        """
        held = self._held()
        taken: list[tuple[int, threading.Lock]] = []
        try:
            for lead_id in sorted(set(lead_ids)):
                with self._guard:
                    lock = self._locks[lead_id]
                if lead_id not in held and lock.acquire(blocking=False):
                    taken.append((lead_id, lock))
                    held.append(lead_id)
            free = frozenset(lead_id for lead_id, _ in taken)
            if free and session.get_bind().dialect.name == "postgresql":
                rows = session.scalars(
                    select(Lead.id).where(Lead.id.in_(sorted(free))).with_for_update(skip_locked=True)
                ).all()
                free = frozenset(rows)
                # A lead another process holds is not ours to decide about: let this process's other
                # threads have it at once instead of waiting for the whole batch.
                for lead_id, lock in [pair for pair in taken if pair[0] not in free]:
                    held.remove(lead_id)
                    lock.release()
                taken = [pair for pair in taken if pair[0] in free]
            yield free
        finally:
            for lead_id, lock in taken:
                held.remove(lead_id)
                lock.release()

    def _held(self) -> list[int]:
        held = getattr(self._mine, "leads", None)
        if held is None:
            held = self._mine.leads = []
        return held

    def held_by_this_thread(self) -> frozenset[int]:
        """The leads whose lock the calling thread holds now."""
        return frozenset(self._held())

    @staticmethod
    def lock_row(session: Session, lead_id: int) -> Lead | None:
        """Lock the lead's row until the transaction ends (a no-op on SQLite) and return it fresh."""
        return session.scalars(
            select(Lead).where(Lead.id == lead_id).with_for_update().execution_options(populate_existing=True)
        ).first()


@contextmanager
def taking_lead(services: TakesLeads, lead_id: int) -> Iterator[tuple[Session, Lead | None]]:
    """The lead's lock and one transaction with its row locked: the session, and the lead (None if gone).

    The transaction commits when the block ends (rolls back on an exception), and only then is the
    lock released, so what the block decided is stored before anyone else may look.
    """
    with services.lead_locks.hold(lead_id), services.session_factory.begin() as session:
        yield session, services.lead_locks.lock_row(session, lead_id)
