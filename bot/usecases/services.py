"""What the use cases need, gathered in one value built by the composition root."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from sqlalchemy.orm import Session, sessionmaker

from bot.core.business import Business
from bot.core.clock import Clock
from bot.store.lead_locks import LeadLocks
from bot.core.playbook import Sequence, list_sequences, load_sequence
from bot.core.ports import EmailSender, SmsSender
from bot.core.templating import TemplateRenderer



class Playbooks:
    """Sequences by name, loaded and validated once."""

    def __init__(self, *, sequences_dir: Path, templates_dir: Path, default: str):
        self.sequences_dir = sequences_dir
        self.templates_dir = templates_dir
        self.default = default
        self._loaded: dict[str, Sequence] = {}

    def get(self, name: str | None = None) -> Sequence:
        key = name or self.default
        if key not in self._loaded:
            sequence = load_sequence(key, sequences_dir=self.sequences_dir, templates_dir=self.templates_dir)
            self._loaded[key] = sequence
            # Enrollments keep the name; a playbook loaded by path must be found by that name later.
            self._loaded.setdefault(sequence.name, sequence)
        return self._loaded[key]

    def names(self) -> list[str]:
        """The playbooks in the sequences directory, by name (reads the folder: call it off the event loop)."""
        return list_sequences(self.sequences_dir)

    def has(self, name: str) -> bool:
        try:
            self.get(name)
        except Exception:  # noqa: BLE001 - any load problem means "not usable"; `check` reports why
            return False
        return True


@dataclass
class Services:
    session_factory: sessionmaker[Session]
    clock: Clock
    business: Business
    playbooks: Playbooks
    renderer: TemplateRenderer
    public_base_url: str
    sms: SmsSender | None = None
    email: EmailSender | None = None
    default_region: str = "US"
    #: Countries (ISO 3166) whose numbers the business texts: FOLLOWUP_SMS_COUNTRIES, or its own country.
    sms_countries: frozenset[str] = frozenset({"US"})
    lead_locks: LeadLocks = field(default_factory=LeadLocks)
    #: Ask the dispatcher to look for due work now (an instant touch must not wait for a tick).
    wake_dispatcher: Callable[[], None] = field(default=lambda: None)
    #: Ask the Slack poster to post queued notices now (a button's result should show at once).
    wake_poster: Callable[[], None] = field(default=lambda: None)
    #: Send one lead's due touches now, beside any batch in progress (set by the scheduler).
    dispatch_lead: Callable[[int], None] | None = None

    def send_due_now(self, lead_id: int) -> None:
        """Speed to lead: send this lead's due touches at once, on the fast lane when there is one."""
        if self.dispatch_lead is not None:
            self.dispatch_lead(lead_id)
        else:
            self.wake_dispatcher()
