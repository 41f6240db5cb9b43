"""What the use cases need, gathered in one value built by the composition root."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from bot.core.business import Business
from bot.core.businesses import Businesses, UnknownBusiness
from bot.core.clock import Clock
from bot.core.playbook import Sequence, load_sequence, sequence_names
from bot.core.ports import EmailSender, SmsSender
from bot.core.templating import TemplateRenderer
from bot.store.lead_locks import LeadLocks

__all__ = ["Playbooks", "Services", "UnknownBusiness", "Wakeups"]


class Playbooks:
    """Sequences by name, loaded and validated once.

    With overrides (a business's own sequences/ and templates/ in a folder of business files), its own
    files win over the shared ones of the same name, file by file.
    """

    def __init__(
        self,
        *,
        sequences_dir: Path,
        templates_dir: Path,
        default: str,
        sequences_override: Path | None = None,
        templates_override: Path | None = None,
    ):
        self.sequences_dir = sequences_dir
        self.templates_dir = templates_dir
        self.default = default
        self.sequences_override = sequences_override
        self.templates_override = templates_override
        self._loaded: dict[str, Sequence] = {}

    def get(self, name: str | None = None) -> Sequence:
        key = name or self.default
        if key not in self._loaded:
            sequence = load_sequence(
                key,
                sequences_dir=self.sequences_dir,
                templates_dir=self.templates_dir,
                sequences_override=self.sequences_override,
                templates_override=self.templates_override,
            )
            self._loaded[key] = sequence
            # Enrollments keep the name; a playbook loaded by path must be found by that name later.
            self._loaded.setdefault(sequence.name, sequence)
        return self._loaded[key]

    def names(self) -> list[str]:
        """The playbooks in the sequences directory, by name (reads the folder: call it off the event loop)."""
        return sequence_names(self.sequences_dir, self.sequences_override)

    def has(self, name: str) -> bool:
        try:
            self.get(name)
        except Exception:  # noqa: BLE001 - any load problem means "not usable"; `check` reports why
            return False
        return True


class Wakeups:
    """Doorbells from the use cases to the workers beside them: the dispatcher, its fast lane, the Slack poster.

    The workers are built after the services (they need them), so the composition root connects each one
    once, when it starts it. Until then, and in a process that runs no such worker (a CLI command, a test
    of one use case), ringing does nothing: the work is in the database and the next tick finds it.
    """

    def __init__(self) -> None:
        self._dispatcher: Callable[[], None] | None = None
        self._poster: Callable[[], None] | None = None
        self._lead: Callable[[int], None] | None = None

    def connect(
        self,
        *,
        dispatcher: Callable[[], None] | None = None,
        poster: Callable[[], None] | None = None,
        lead: Callable[[int], None] | None = None,
    ) -> None:
        """Connect the workers that run in this process (each given one replaces what was connected)."""
        self._dispatcher = dispatcher or self._dispatcher
        self._poster = poster or self._poster
        self._lead = lead or self._lead

    def dispatcher(self) -> None:
        if self._dispatcher is not None:
            self._dispatcher()

    def poster(self) -> None:
        if self._poster is not None:
            self._poster()

    def lead(self, lead_id: int) -> None:
        """Send one lead's due touches now, on the fast lane when there is one, else by waking the dispatcher."""
        if self._lead is not None:
            self._lead(lead_id)
        else:
            self.dispatcher()


@dataclass(frozen=True)
class Services:
    """Built once by the composition root (bot.app.build_services) and never changed: a test or a process
    that needs other values builds other services (`dataclasses.replace`)."""

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
    #: The workers' doorbells, connected by the composition root when it starts them.
    wakeups: Wakeups = field(default_factory=Wakeups)
    #: Every business this deployment serves. One business.yml: just `business`. The composition root
    #: passes them all (a folder of business files); left out, it is `business` alone.
    every_business: Businesses | None = None
    #: Each business's own playbooks and wording (its sequences/ and templates/ overrides), by slug;
    #: a business not listed uses `playbooks` and `renderer`.
    playbooks_by_business: Mapping[str, Playbooks] = field(default_factory=dict)
    renderers_by_business: Mapping[str, TemplateRenderer] = field(default_factory=dict)
    #: `every_business`, or `business` alone: not an init field, so a replace(business=...) rebuilds it.
    _businesses: Businesses = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Frozen: set once, here, before anyone can read it.
        object.__setattr__(self, "_businesses", self.every_business or Businesses([self.business]))

    @property
    def businesses(self) -> Businesses:
        """Every business this deployment serves (lookups by slug, number, address, token, channel)."""
        return self._businesses

    def business_of(self, slug: str) -> Business:
        """The business a lead (or any stored row) belongs to; UnknownBusiness when its file is gone."""
        return self.businesses.require(slug)

    def playbooks_of(self, slug: str) -> Playbooks:
        """That business's playbooks (raises UnknownBusiness for a slug this deployment does not serve)."""
        self.business_of(slug)
        return self.playbooks_by_business.get(slug, self.playbooks)

    def renderer_of(self, slug: str) -> TemplateRenderer:
        """That business's wording (raises UnknownBusiness for a slug this deployment does not serve)."""
        self.business_of(slug)
        return self.renderers_by_business.get(slug, self.renderer)

    def wake_dispatcher(self) -> None:
        """Ask the dispatcher to look for due work now (an instant touch must not wait for a tick)."""
        self.wakeups.dispatcher()

    def wake_poster(self) -> None:
        """Ask the Slack poster to post queued notices now (a button's result should show at once)."""
        self.wakeups.poster()

    #: Turns at writing to SQLite for this process's threads (intake, the dispatcher, the fast lane):
    #: SQLite's busy handler sleeps 1 to 100 ms a retry, a lock hands over the moment it is free.
    #: Shared by the routes' copy of the services (a replace() keeps the same lock).
    sqlite_writer: threading.Lock = field(default_factory=threading.Lock)

    def writing(self, session: Session) -> AbstractContextManager[object]:
        """Hold this process's turn at writing, on SQLite (one writer at a time there anyway); else nothing."""
        return self.sqlite_writer if session.get_bind().dialect.name == "sqlite" else nullcontext()

    def send_due_now(self, lead_id: int) -> None:
        """Speed to lead: send this lead's due touches at once, beside any batch in progress."""
        self.wakeups.lead(lead_id)
