"""One sender or decider at a time per lead, so a STOP can never slip between a check and a send."""

from __future__ import annotations

import threading
from collections import defaultdict
from contextlib import contextmanager
from typing import Iterator

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.models import Lead


class LeadLocks:
    """Per-lead mutual exclusion: a thread lock in this process, plus a row lock on PostgreSQL.

    The row lock (taken inside the caller's transaction) covers other processes sharing one
    PostgreSQL database; SQLite is single-process, so the thread lock alone covers it.
    """

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: defaultdict[int, threading.Lock] = defaultdict(threading.Lock)

    @contextmanager
    def hold(self, lead_id: int) -> Iterator[None]:
        with self._guard:
            lock = self._locks[lead_id]
        with lock:
            yield

    @staticmethod
    def lock_row(session: Session, lead_id: int) -> Lead | None:
        """Lock the lead's row until the transaction ends (a no-op on SQLite) and return it fresh."""
        return session.scalars(
            select(Lead).where(Lead.id == lead_id).with_for_update().execution_options(populate_existing=True)
        ).first()
