"""The weekly digest: the numbers a clinic owner asks for, computed from the store for one week.

The week is the seven days before the digest's moment (e.g. Monday 08:00 business time back to the
Monday before). A digest is one business's (its slug: its leads, their visits, touches, calls and waiting
leads only, read in its time zone), or every stored lead's for None (one business's deployment, where every
lead is its own). Queries return plain values; the digest is a frozen value that the Slack builders and
the chart draw from. Every moment is UTC; `now` is passed in.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.core.states import CallTaskStatus, EnrollmentState, Stage
from bot.reports.breakdowns import person_rows
from bot.reports.stats import LeadStats, SubjectResult, TouchResult, lead_stats, of_business, rate
from bot.store.models import Appointment, AuditEntry, CallTask, Enrollment, Lead

Result = TypeVar("Result", TouchResult, SubjectResult)

#: Appointment states that mean the visit happened, or did not (either spelling the store may hold).
ATTENDED = frozenset({"attended"})
MISSED = frozenset({"no_show", "no-show", "noshow"})
#: A touch or subject needs this many sends before its rate is called "best" (one reply of one is luck).
MIN_SENT_FOR_BEST = 3

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class DigestScheduleError(ValueError):
    """FOLLOWUP_DIGEST is not 'off' nor a day and hour such as 'mon 08:00'."""


@dataclass(frozen=True)
class DigestSchedule:
    """When the weekly digest is posted, in the business's time zone."""

    weekday: int  #: 0 is Monday
    at: time

    @classmethod
    def parse(cls, text: str) -> DigestSchedule | None:
        """'mon 08:00' (any day, 24-hour time); 'off' for no digest."""
        cleaned = text.strip().lower()
        if cleaned in ("off", "no", "false", "0", ""):
            return None
        match = re.fullmatch(r"([a-z]{3})[a-z]*\s+(\d{1,2})(?::(\d{2}))?", cleaned)
        if not match or match.group(1) not in DAYS:
            raise DigestScheduleError(f"FOLLOWUP_DIGEST={text!r}: give a day and an hour such as 'mon 08:00', or 'off'")
        hour, minute = int(match.group(2)), int(match.group(3) or 0)
        if hour > 23 or minute > 59:
            raise DigestScheduleError(
                f"FOLLOWUP_DIGEST={text!r}: {hour}:{minute:02d} is not a time of day; write e.g. 'mon 08:00'"
            )
        return cls(DAYS.index(match.group(1)), time(hour, minute))

    def latest_due(self, now: datetime, zone: tzinfo) -> datetime:
        """The most recent digest moment at or before `now` (UTC)."""
        local = now.astimezone(zone)
        day = local.date() - timedelta(days=(local.weekday() - self.weekday) % 7)
        moment = datetime.combine(day, self.at, tzinfo=zone)
        if moment > local:
            moment -= timedelta(days=7)
        return moment.astimezone(UTC)

    @staticmethod
    def week_key(moment: datetime, zone: tzinfo) -> str:
        """The digest's idempotency key: the ISO week of its moment, e.g. '2026-W49'."""
        year, week, _ = moment.astimezone(zone).isocalendar()
        return f"{year}-W{week:02d}"


@dataclass(frozen=True)
class PersonCalls:
    user_id: str
    outcomes: tuple[tuple[str, int], ...]

    @property
    def calls(self) -> int:
        return sum(count for _, count in self.outcomes)


@dataclass(frozen=True)
class WaitingLead:
    lead_id: int
    name: str
    why: str


@dataclass(frozen=True)
class WeeklyDigest:
    start: datetime
    end: datetime
    zone: tzinfo
    stats: LeadStats
    attended: int
    missed: int
    lost_reasons: tuple[tuple[str, int], ...]
    calls_by_person: tuple[PersonCalls, ...]
    #: The touch and the subject option with the best reply rate (of those sent), when any was sent enough.
    best_touch: TouchResult | None
    best_subject: SubjectResult | None
    waiting: tuple[WaitingLead, ...]
    #: Leads in per local day and source, oldest day first (every day of the week, zeros included).
    leads_per_day: tuple[tuple[date, tuple[tuple[str, int], ...]], ...]

    @property
    def show_rate(self) -> float | None:
        return rate(self.attended, self.attended + self.missed)

    @property
    def funnel(self) -> tuple[tuple[str, int], ...]:
        return (
            ("Leads", self.stats.leads_in),
            ("Contacted", self.stats.contacted),
            ("Replied", self.stats.replied),
            ("Booked", self.stats.booked),
            ("Attended", self.attended),
        )

    @property
    def lost(self) -> int:
        return sum(count for _, count in self.lost_reasons)


def build_digest(session: Session, *, end: datetime, zone: tzinfo, business: str | None = None) -> WeeklyDigest:
    """The week that ends at `end` (UTC): leads in during it and what became of them (of `business`'s leads)."""
    start = end - timedelta(days=7)
    stats = lead_stats(session, now=end, days=7, business=business)

    whose_visits = [] if business is None else [Appointment.business == business]
    visits = Counter(
        status
        for (status,) in session.execute(
            select(Appointment.status).where(Appointment.start_at >= start, Appointment.start_at <= end, *whose_visits)
        )
    )
    attended = sum(count for status, count in visits.items() if status in ATTENDED)
    missed = sum(count for status, count in visits.items() if status in MISSED)

    lost: Counter[str] = Counter()
    for (details,) in session.execute(
        select(AuditEntry.details).where(
            AuditEntry.at >= start,
            AuditEntry.at <= end,
            AuditEntry.action == "stage_changed",
            *of_business(AuditEntry.lead_id, business),
        )
    ).tuples():
        details = details or {}
        if details.get("new") == Stage.LOST:
            lost[_reason(str(details.get("reason") or "no reason given"))] += 1
    # The same count as `/followup stats by person`: calls logged by team members in the week.
    calls = [
        PersonCalls(person.user_id, person.outcomes)
        for person in person_rows(session, since=start, now=end, business=business)
        if person.calls
    ]

    return WeeklyDigest(
        start=start,
        end=end,
        zone=zone,
        stats=stats,
        attended=attended,
        missed=missed,
        lost_reasons=tuple(lost.most_common()),
        calls_by_person=tuple(sorted(calls, key=lambda person: -person.calls)),
        best_touch=_best(stats.by_touch),
        best_subject=_best(stats.by_subject),
        waiting=waiting_for_a_person(session, business=business),
        leads_per_day=_leads_per_day(session, start=start, end=end, zone=zone, business=business),
    )


def waiting_for_a_person(session: Session, *, limit: int = 10, business: str | None = None) -> tuple[WaitingLead, ...]:
    """Leads (of `business`) whose automation waits for a person (paused) or who have a call nobody has made yet."""
    whose = [] if business is None else [Lead.business == business]
    waiting: dict[int, WaitingLead] = {}
    for lead_id, name, reason in session.execute(
        select(Lead.id, Lead.name, Enrollment.state_reason)
        .join(Enrollment, Enrollment.lead_id == Lead.id)
        .where(Enrollment.state == EnrollmentState.PAUSED, *whose)
        .order_by(Enrollment.paused_at)
        .limit(limit)
    ).tuples():
        waiting.setdefault(lead_id, WaitingLead(lead_id, name, f"paused: {reason}" if reason else "paused"))
    for lead_id, name in session.execute(
        select(Lead.id, Lead.name)
        .join(CallTask, CallTask.lead_id == Lead.id)
        .where(CallTask.status.in_((CallTaskStatus.OPEN, CallTaskStatus.CLAIMED)), *whose)
        .order_by(CallTask.due_at)
        .limit(limit)
    ).tuples():
        waiting.setdefault(lead_id, WaitingLead(lead_id, name, "a call to make"))
    return tuple(list(waiting.values())[:limit])


def _leads_per_day(
    session: Session, *, start: datetime, end: datetime, zone: tzinfo, business: str | None
) -> tuple[tuple[date, tuple[tuple[str, int], ...]], ...]:
    days: dict[date, Counter[str]] = {}
    first = start.astimezone(zone).date()
    for offset in range(8):
        day = first + timedelta(days=offset)
        if day <= end.astimezone(zone).date():
            days[day] = Counter()
    for created_at, source in session.execute(
        select(Lead.created_at, Lead.source).where(
            Lead.created_at >= start, Lead.created_at <= end, *([] if business is None else [Lead.business == business])
        )
    ).tuples():
        days.setdefault(created_at.astimezone(zone).date(), Counter())[source] += 1
    return tuple((day, tuple(sorted(counts.items()))) for day, counts in sorted(days.items()))


def _best(results: Sequence[Result]) -> Result | None:
    eligible = [r for r in results if r.sent >= MIN_SENT_FOR_BEST and r.replies]
    return max(eligible, key=lambda r: (r.reply_rate or 0, r.sent), default=None)


def _reason(text: str) -> str:
    """Group 'stopped by <@U1>' and 'stopped by <@U2>' as one reason: who closed it is not why."""
    return re.sub(r"\s*by <@[A-Z0-9]+>", " by the team", text).strip()
