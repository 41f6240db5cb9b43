"""A watch on the database for changes to a lead made without that lead's lock (bot.store.lead_locks.taking_lead).

"No STOP slips between a check and a send" holds only if everything that changes a lead holds the
lead's lock while it does. Installed on a `Services`' session factory, this notes every flush and
every bulk UPDATE/DELETE that changes a lead's state (the lead, its enrollments, touches, messages,
appointments, call tasks) from a thread that does not hold that lead's lock, with the place in
bot/ or handlers/ that made it. A lead created in the same transaction needs no lock (nobody else
can see it yet), and the Slack poster noting where it posted (`slack_*` columns) changes no state.
"""

from __future__ import annotations

import traceback
from typing import Any

from sqlalchemy import event, inspect
from sqlalchemy.orm import ORMExecuteState, Session

from bot.store.models import Appointment, CallTask, Enrollment, Lead, Message, Touch
from bot.usecases.services import Services

WATCHED = (Lead, Enrollment, Touch, Message, Appointment, CallTask)
WATCHED_TABLES = frozenset(model.__table__.name for model in WATCHED)
#: Columns that record where something is shown in Slack: the poster writes them, no decision reads them.
DISPLAY_ONLY_PREFIX = "slack_"
_CREATED_HERE = "followup_leads_created_here"


class UnlockedChanges:
    """Every unlocked change to a lead seen since this was installed (`found`), as readable lines."""

    def __init__(self, services: Services) -> None:
        self.locks = services.lead_locks
        self.found: list[str] = []
        factory = services.session_factory
        event.listen(factory, "before_flush", self._before_flush)
        event.listen(factory, "after_flush", self._after_flush)
        event.listen(factory, "after_transaction_end", self._forget_created)
        event.listen(factory, "do_orm_execute", self._bulk)

    def _before_flush(self, session: Session, _context: Any, _instances: Any) -> None:
        held = self.locks.held_by_this_thread() | session.info.get(_CREATED_HERE, set())
        for obj in [*session.new, *session.dirty, *session.deleted]:
            if not isinstance(obj, WATCHED) or (isinstance(obj, Lead) and obj in session.new):
                continue
            changed = (
                _changed_columns(obj) if obj in session.dirty else {"(new)" if obj in session.new else "(deleted)"}
            )
            if not changed or all(name.startswith(DISPLAY_ONLY_PREFIX) for name in changed):
                continue
            lead_id = obj.id if isinstance(obj, Lead) else obj.lead_id
            if lead_id is None or lead_id in held:
                continue
            self.found.append(
                f"{type(obj).__name__} of lead {lead_id} ({', '.join(sorted(changed))}) changed at {_where()}"
            )

    @staticmethod
    def _after_flush(session: Session, _context: Any) -> None:
        created = {obj.id for obj in session.new if isinstance(obj, Lead)}
        if created:
            session.info.setdefault(_CREATED_HERE, set()).update(created)

    @staticmethod
    def _forget_created(session: Session, transaction: Any) -> None:
        if transaction.parent is None:
            session.info.pop(_CREATED_HERE, None)

    def _bulk(self, state: ORMExecuteState) -> None:
        if not (state.is_update or state.is_delete):
            return
        tables = {mapper.local_table.name for mapper in state.all_mappers}
        if tables & WATCHED_TABLES and not self.locks.held_by_this_thread():
            self.found.append(
                f"bulk {'update' if state.is_update else 'delete'} of {', '.join(sorted(tables))} "
                f"with no lead's lock held, at {_where()}"
            )


def _changed_columns(obj: object) -> set[str]:
    return {attr.key for attr in inspect(obj).attrs if attr.history.has_changes()}


def _where() -> str:
    """The innermost frames of the bot's own code (bot/ or handlers/) that made the change."""
    frames = [
        frame for frame in traceback.extract_stack() if ("/bot/" in frame.filename or "/handlers/" in frame.filename)
    ]
    if not frames:
        return "(outside the bot's code)"
    return " < ".join(
        f"{'/'.join(frame.filename.rsplit('/', 2)[-2:])}:{frame.lineno} {frame.name}" for frame in reversed(frames[-3:])
    )
