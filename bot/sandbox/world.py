"""What the people on the sandbox page see: the leads' phones and inboxes, and the team's own words.

The vendors' side of the story comes from the stand-ins (what the bot sent Twilio, SendGrid and
Slack); this module adds what the people did (texts and emails from leads, team messages in
threads, answers Slack shows to one person) and keeps it all in one JSON file beside the
sandbox database, so a second start shows the same channels, phones and inboxes.

Each text is of one conversation: a lead's phone and one clinic's number (`clinic_number`), as a
phone's messages app keeps a thread per sender. A STOP is per conversation too, as carriers keep it.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: Bumped when the file's shape changes; an older file is read by `World.load` as far as it can be.
STATE_VERSION = 2
#: The clinic a version-1 file (a sandbox of one business.yml) was saved for: one business.yml's slug.
SINGLE_CLINIC = "main"


def slack_ts() -> str:
    """A message ts like Slack's: seconds.microseconds."""
    micros = time.time_ns() // 1000
    return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"


@dataclass
class World:
    """Everything the page shows that the stand-ins do not keep, plus copies of what they did."""

    #: Texts, both ways: {id, number, clinic_number, direction: out|in|carrier|refused, body, at, status, sid}.
    texts: list[dict[str, Any]] = field(default_factory=list)
    #: Emails, both ways: {id, direction: out|in, clinic, to, from, subject, text, html, at, reply_to}.
    emails: list[dict[str, Any]] = field(default_factory=list)
    #: Messages people wrote in Slack, and answers Slack shows in the channel: {ts, thread_ts, user, text, blocks}.
    human_messages: list[dict[str, Any]] = field(default_factory=list)
    #: Answers only one person sees (slash command answers, response_url posts): {ts, user, text, blocks}.
    private_notes: list[dict[str, Any]] = field(default_factory=list)
    #: (lead's number, clinic's number) pairs: the lead texted STOP to that number (Twilio refuses it until START).
    opted_out: set[tuple[str, str]] = field(default_factory=set)
    #: Which person opened each modal (Slack ties a view to the trigger's user); view id -> user id.
    view_owners: dict[str, str] = field(default_factory=dict)
    #: Modals closed (submitted or cancelled): they stay in the stand-in's store but are not shown.
    closed_views: set[str] = field(default_factory=set)
    #: Field errors a view_submission answered with, by view id.
    view_errors: dict[str, dict[str, str]] = field(default_factory=dict)
    #: What the Slack stand-in held at the last save, to put back on the next start.
    slack_messages: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    slack_home_views: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: The simulated time when last saved (UTC seconds), so time goes on where it stopped.
    simulated_now: float | None = None
    #: The simulated moment each Slack message was posted, by ts (a ts is wall-clock time).
    sim_times: dict[str, float] = field(default_factory=dict)
    #: The slugs of the clinics this world was saved with (empty: a new world, for whichever clinics run).
    clinics: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self.version = 0
        self._next_id = 1 + max([int(t.get("id", 0)) for t in self.texts + self.emails] or [0])
        self.listeners: list[Callable[[], None]] = []
        #: The simulated now in UTC seconds; the runner points it at the bot's clock.
        self.clock: Callable[[], float] = time.time

    # -- changes ---------------------------------------------------------------------------

    @property
    def lock(self) -> threading.RLock:
        return self._lock

    def touch(self) -> None:
        """Say the picture changed: the page reloads its state."""
        with self._changed:
            self.version += 1
            self._changed.notify_all()
        for listener in list(self.listeners):
            listener()

    def wait_for_change(self, seen: int, timeout: float) -> int:
        """Block until the version moves past `seen` (or the timeout); return the version."""
        with self._changed:
            if self.version == seen:
                self._changed.wait(timeout)
            return self.version

    def new_id(self) -> int:
        with self._lock:
            value = self._next_id
            self._next_id += 1
            return value

    def add_text(self, **text: Any) -> dict[str, Any]:
        with self._lock:
            entry = {"id": self.new_id(), "at": self.clock(), "status": None, "sid": None, **text}
            self.texts.append(entry)
        self.touch()
        return entry

    def set_text_status(self, sid: str, status: str, error_code: int | None = None) -> None:
        with self._lock:
            for entry in self.texts:
                if entry.get("sid") == sid:
                    entry["status"] = status
                    entry["error_code"] = error_code
        self.touch()

    def note_posted(self, ts: str, at: float | None = None) -> None:
        """Remember the simulated time a message shows: `at` (when what it shows happened), else now."""
        with self._lock:
            self.sim_times.setdefault(ts, self.clock() if at is None else at)

    def add_email(self, **email: Any) -> dict[str, Any]:
        with self._lock:
            entry = {"id": self.new_id(), "at": self.clock(), **email}
            self.emails.append(entry)
        self.touch()
        return entry

    def add_human_message(self, **message: Any) -> dict[str, Any]:
        with self._lock:
            entry = {"ts": slack_ts(), "thread_ts": None, "blocks": None, **message}
            self.sim_times[entry["ts"]] = self.clock()
            self.human_messages.append(entry)
        self.touch()
        return entry

    def add_private_note(self, **note: Any) -> dict[str, Any]:
        with self._lock:
            entry = {"ts": slack_ts(), "blocks": None, **note}
            self.sim_times[entry["ts"]] = self.clock()
            self.private_notes.append(entry)
        self.touch()
        return entry

    # -- the file --------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        with self._lock:
            return {
                "version": STATE_VERSION,
                "texts": copy.deepcopy(self.texts),
                "emails": copy.deepcopy(self.emails),
                "human_messages": copy.deepcopy(self.human_messages),
                "opted_out": sorted([number, clinic] for number, clinic in self.opted_out),
                "slack_messages": copy.deepcopy(self.slack_messages),
                "slack_home_views": copy.deepcopy(self.slack_home_views),
                "simulated_now": self.simulated_now,
                "sim_times": dict(self.sim_times),
                "clinics": list(self.clinics),
            }

    @classmethod
    def load(cls, path: Path) -> World:
        """The world saved at `path`, or an empty one when there is none (or it cannot be read).

        A version-1 file was saved by the sandbox of one clinic: its texts name no clinic number and its
        STOPs no sender (`single_clinic_number` fills them in, when the runner keeps it).
        """
        if not path.exists():
            return cls()
        try:
            data = json.loads(path.read_text())
            version = data.get("version")
            if version not in (1, STATE_VERSION):
                raise ValueError(f"state version {version!r}, expected {STATE_VERSION}")
            if version == 1:
                opted_out = {(str(number), "") for number in data.get("opted_out_numbers", [])}
                clinics = [SINGLE_CLINIC]
            else:
                opted_out = {(str(number), str(clinic)) for number, clinic in data.get("opted_out", [])}
                clinics = [str(slug) for slug in data.get("clinics", [])]
            return cls(
                texts=list(data.get("texts", [])),
                emails=list(data.get("emails", [])),
                human_messages=list(data.get("human_messages", [])),
                opted_out=opted_out,
                slack_messages=dict(data.get("slack_messages", {})),
                slack_home_views=dict(data.get("slack_home_views", {})),
                simulated_now=data.get("simulated_now"),
                sim_times=dict(data.get("sim_times", {})),
                clinics=clinics,
            )
        except (OSError, ValueError, TypeError, AttributeError) as error:
            aside = path.with_suffix(path.suffix + ".unreadable")
            log.warning(
                "sandbox: %s could not be read (%s); starting with an empty page, old file kept as %s",
                path,
                error,
                aside,
            )
            os.replace(path, aside)
            return cls()

    def single_clinic_number(self, number: str) -> None:
        """Give every text and STOP that names no clinic number this one (a version-1 file's, of one clinic)."""
        with self._lock:
            for text in self.texts:
                text.setdefault("clinic_number", number)
            self.opted_out = {(lead, clinic or number) for lead, clinic in self.opted_out}

    def save(self, path: Path) -> None:
        """Write the world atomically, so a crash mid-write keeps the previous file."""
        data = json.dumps(self.to_json(), indent=1)
        partial = path.with_suffix(path.suffix + ".partial")
        partial.write_text(data)
        os.replace(partial, path)
