"""The breakdowns behind `/followup stats ... by source|touch|person|playbook` and `followup stats`.

One function (`stats_table`) computes a breakdown as a table of plain values; Slack (bot.slack.breakdowns)
and the CLI (text, CSV, JSON) only render it, so both show the same numbers. Every breakdown except
`person` is over the leads that came in during the period, the same leads as the headline numbers
(bot.reports.stats.lead_stats), so its rows add up to them; `person` is over what the team did in the period.
Replies and bookings are credited to touches by the one rule, bot.reports.stats.ATTRIBUTION.

Each breakdown takes `business` (a slug) to count one business's leads, or None for every business's;
`business_table` puts the businesses side by side with the agency's total under them.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.core.playbook import Sequence as Playbook
from bot.core.playbook import default_sequence_label, step_label
from bot.core.report_request import Breakdown
from bot.core.rules import CallOutcome
from bot.core.states import ActorType, AppointmentStatus, EnrollmentState, Stage
from bot.reports.stats import (
    ATTRIBUTION,
    CohortHistory,
    LeadStats,
    TouchResult,
    cohort_history,
    cohort_ids,
    lead_stats,
    of_business,
    rate,
)
from bot.store.models import Appointment, AuditEntry, Enrollment, Lead

#: Finds a playbook by its name (Services.playbooks.get), for the labels people read.
PlaybookLookup = Callable[[str], Playbook]

# --- rows ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceRow:
    source: str
    leads: int
    contacted: int
    replied: int
    booked: int
    #: Leads who came to a visit.
    attended: int
    #: Leads closed as lost (not interested, wrong number, stopped).
    lost: int

    @property
    def reply_rate(self) -> float | None:
        return rate(self.replied, self.contacted)

    @property
    def booking_rate(self) -> float | None:
        return rate(self.booked, self.leads)


@dataclass(frozen=True)
class PersonRow:
    user_id: str
    #: Calls logged, by outcome (CallOutcome values), most first.
    outcomes: tuple[tuple[str, int], ...]
    leads_claimed: int
    bookings: int

    @property
    def calls(self) -> int:
        return sum(count for _, count in self.outcomes)


@dataclass(frozen=True)
class PlaybookRow:
    sequence: str
    leads: int
    replied: int
    booked: int
    #: Leads whose playbook ran every step.
    finished: int
    #: Leads now on the slow long-term cadence.
    nurture: int

    @property
    def reply_rate(self) -> float | None:
        return rate(self.replied, self.leads)

    @property
    def booking_rate(self) -> float | None:
        return rate(self.booked, self.leads)


def source_rows(
    session: Session,
    *,
    since: datetime,
    now: datetime,
    history: CohortHistory | None = None,
    business: str | None = None,
) -> tuple[SourceRow, ...]:
    """Per source, the period's leads: how many, and how many were reached, replied, booked, came, were lost."""
    history = history or cohort_history(session, since=since, now=now, business=business)
    cohort = cohort_ids(since=since, now=now, business=business)
    leads = session.execute(select(Lead.id, Lead.source, Lead.stage).where(Lead.id.in_(cohort))).tuples().all()
    attended = set(
        session.scalars(
            select(Appointment.lead_id).where(
                Appointment.lead_id.in_(cohort),
                Appointment.status == AppointmentStatus.ATTENDED,
                Appointment.start_at <= now,
            )
        )
    )
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for lead_id, source, stage in leads:
        row = counts[source or "unknown"]
        row["leads"] += 1
        row["contacted"] += lead_id in history.first_touch
        row["replied"] += lead_id in history.first_reply
        row["booked"] += lead_id in history.first_booking
        row["attended"] += lead_id in attended
        row["lost"] += stage == Stage.LOST
    return tuple(
        SourceRow(source, c["leads"], c["contacted"], c["replied"], c["booked"], c["attended"], c["lost"])
        for source, c in sorted(counts.items(), key=lambda item: (-item[1]["leads"], item[0]))
    )


def person_rows(
    session: Session, *, since: datetime, now: datetime, business: str | None = None
) -> tuple[PersonRow, ...]:
    """Per team member, what they did in the period: calls logged and their outcomes, leads claimed, bookings.

    For one business: what they did for its leads.
    """
    calls: dict[str, Counter[str]] = defaultdict(Counter)
    claimed: dict[str, set[int]] = defaultdict(set)
    booked: Counter[str] = Counter()
    for action, actor_id, lead_id, details in session.execute(
        select(AuditEntry.action, AuditEntry.actor_id, AuditEntry.lead_id, AuditEntry.details).where(
            AuditEntry.at >= since,
            AuditEntry.at <= now,
            AuditEntry.actor_type == ActorType.SLACK_USER,
            AuditEntry.action.in_(("call_outcome", "claimed", "booked")),
            *of_business(AuditEntry.lead_id, business),
        )
    ).tuples():
        if not actor_id:
            continue
        if action == "call_outcome":
            calls[actor_id][str((details or {}).get("outcome") or "logged")] += 1
        elif action == "claimed" and lead_id is not None:
            claimed[actor_id].add(lead_id)
        elif action == "booked":
            booked[actor_id] += 1
    people = set(calls) | set(claimed) | set(booked)
    rows = [
        PersonRow(
            user,
            tuple(sorted(calls[user].items(), key=lambda item: (-item[1], item[0]))),
            len(claimed[user]),
            booked[user],
        )
        for user in people
    ]
    return tuple(sorted(rows, key=lambda row: (-row.calls, -row.bookings, -row.leads_claimed, row.user_id)))


def playbook_rows(
    session: Session,
    *,
    since: datetime,
    now: datetime,
    history: CohortHistory | None = None,
    business: str | None = None,
) -> tuple[PlaybookRow, ...]:
    """Per follow-up playbook, the period's leads enrolled in it: replied or booked since, finished, in nurture.

    The sequences that belong to a visit (confirmation, reminders, no-show, after-visit) are not follow-up
    and are left out; they carry the visit they are about.
    """
    history = history or cohort_history(session, since=since, now=now, business=business)
    cohort = cohort_ids(since=since, now=now, business=business)
    enrolled: dict[str, dict[int, datetime]] = defaultdict(dict)
    finished: dict[str, set[int]] = defaultdict(set)
    stage: dict[int, str] = {}
    for sequence, lead_id, enrolled_at, state, lead_stage in session.execute(
        select(Enrollment.sequence_name, Enrollment.lead_id, Enrollment.enrolled_at, Enrollment.state, Lead.stage)
        .join(Lead, Lead.id == Enrollment.lead_id)
        .where(Enrollment.lead_id.in_(cohort), Enrollment.appointment_id.is_(None), Enrollment.enrolled_at <= now)
        .order_by(Enrollment.enrolled_at, Enrollment.id)
    ).tuples():
        enrolled[sequence].setdefault(lead_id, enrolled_at)
        stage[lead_id] = lead_stage
        if state == EnrollmentState.COMPLETED:
            finished[sequence].add(lead_id)
    rows = []
    for sequence, leads in enrolled.items():
        rows.append(
            PlaybookRow(
                sequence,
                len(leads),
                replied=sum(1 for lead, at in leads.items() if _at_or_after(history.first_reply.get(lead), at)),
                booked=sum(1 for lead, at in leads.items() if _at_or_after(history.first_booking.get(lead), at)),
                finished=len(finished[sequence]),
                nurture=sum(1 for lead in leads if stage[lead] == Stage.NURTURE),
            )
        )
    return tuple(sorted(rows, key=lambda row: (-row.leads, row.sequence)))


def _at_or_after(moment: datetime | None, start: datetime) -> bool:
    return moment is not None and moment >= start


# --- the table both renderers draw --------------------------------------------------------------


class Kind(StrEnum):
    TEXT = "text"  #: words (a label), escaped where Slack shows them
    PERSON = "person"  #: a Slack user id, shown as a mention in Slack
    COUNT = "count"  #: a whole number
    RATE = "rate"  #: a fraction of 1, shown as a percentage; None when there was nothing to count


@dataclass(frozen=True)
class Column:
    #: The name in JSON and in the CSV header.
    key: str
    #: What people read above the column.
    heading: str
    kind: Kind = Kind.COUNT


Cell = str | int | float | None


@dataclass(frozen=True)
class StatsTable:
    """One breakdown for one period: columns and rows of plain values, and the footnote saying how they count."""

    #: None for the headline numbers (one row).
    by: Breakdown | None
    days: int
    since: datetime
    until: datetime
    title: str
    columns: tuple[Column, ...]
    rows: tuple[tuple[Cell, ...], ...]
    footnote: str

    def records(self) -> list[dict[str, Cell]]:
        """The rows keyed by column, for JSON."""
        return [dict(zip((column.key for column in self.columns), row, strict=True)) for row in self.rows]


TITLES = {
    Breakdown.SOURCE: "By source",
    Breakdown.TOUCH: "By touch",
    Breakdown.PERSON: "By team member",
    Breakdown.PLAYBOOK: "By playbook",
}
COHORT_NOTE = "Leads that came in during the period; replied and booked count them whenever they did."
CHANNEL_WORDS = {"sms": "Text", "email": "Email", "call_task": "Call", "stage": "Stage"}
OUTCOME_WORDS = {
    CallOutcome.BOOKED: "Booked",
    CallOutcome.CALL_BACK: "Call back",
    CallOutcome.LEFT_VOICEMAIL: "Voicemail",
    CallOutcome.NO_ANSWER: "No answer",
    CallOutcome.WRONG_NUMBER: "Wrong number",
    CallOutcome.NOT_INTERESTED: "Not interested",
}


def stats_table(
    session: Session,
    *,
    now: datetime,
    days: int,
    by: Breakdown,
    playbook_of: PlaybookLookup | None = None,
    business: str | None = None,
) -> StatsTable:
    """Compute one breakdown for the last `days` days up to `now`, labelled in the words people read."""
    since = now - timedelta(days=days)
    make = _TABLES[by]
    title, columns, rows, footnote = make(
        session, since=since, now=now, days=days, playbook_of=playbook_of, business=business
    )
    return StatsTable(by, days, since, now, title, columns, tuple(rows), footnote)


def _source_table(  # noqa: ANN202 - the parts of a StatsTable
    session: Session,
    *,
    since: datetime,
    now: datetime,
    days: int,
    playbook_of: PlaybookLookup | None,
    business: str | None,
):
    columns = (
        Column("source", "Source", Kind.TEXT),
        Column("leads", "Leads"),
        Column("contacted", "Reached"),
        Column("replied", "Replied"),
        Column("reply_rate", "Reply%", Kind.RATE),
        Column("booked", "Booked"),
        Column("booking_rate", "Book%", Kind.RATE),
        Column("attended", "Came"),
        Column("lost", "Lost"),
    )
    rows = [
        (
            row.source,
            row.leads,
            row.contacted,
            row.replied,
            row.reply_rate,
            row.booked,
            row.booking_rate,
            row.attended,
            row.lost,
        )
        for row in source_rows(session, since=since, now=now, business=business)
    ]
    note = (
        f"{COHORT_NOTE} Reached: something we sent got to them. Reply%: of those reached. Book%: of the "
        "leads. Came: came to a visit. Bookings include leads who told us they booked."
    )
    return TITLES[Breakdown.SOURCE], columns, rows, note


def _touch_table(  # noqa: ANN202 - the parts of a StatsTable
    session: Session,
    *,
    since: datetime,
    now: datetime,
    days: int,
    playbook_of: PlaybookLookup | None,
    business: str | None,
):
    columns = (
        Column("playbook", "Playbook", Kind.TEXT),
        Column("touch", "Touch", Kind.TEXT),
        Column("channel", "Via", Kind.TEXT),
        Column("sent", "Sent"),
        Column("replies", "Replies"),
        Column("reply_rate", "Reply%", Kind.RATE),
        Column("bookings", "Bookings"),
        Column("booking_rate", "Book%", Kind.RATE),
    )
    results: Sequence[TouchResult] = lead_stats(session, now=now, days=days, business=business).by_touch
    rows = [
        (
            playbook_label(result.sequence, playbook_of),
            touch_label(result.sequence, result.step_id, playbook_of),
            CHANNEL_WORDS.get(result.channel, result.channel),
            result.sent,
            result.replies,
            result.reply_rate,
            result.bookings,
            result.booking_rate,
        )
        for result in results
    ]
    note = (
        f"Texts and emails sent to the leads that came in during the period. {ATTRIBUTION} "
        "Rates are of those the touch was sent to."
    )
    return TITLES[Breakdown.TOUCH], columns, rows, note


def _person_table(  # noqa: ANN202 - the parts of a StatsTable
    session: Session,
    *,
    since: datetime,
    now: datetime,
    days: int,
    playbook_of: PlaybookLookup | None,
    business: str | None,
):
    outcomes = tuple(CallOutcome)
    columns = (
        Column("team_member", "Team member", Kind.PERSON),
        Column("calls", "Calls"),
        *(Column(f"calls_{outcome.value}", OUTCOME_WORDS[outcome]) for outcome in outcomes),
        Column("leads_claimed", "Claimed"),
        Column("bookings", "Bookings"),
    )
    rows = []
    for row in person_rows(session, since=since, now=now, business=business):
        counted = dict(row.outcomes)
        rows.append(
            (
                row.user_id,
                row.calls,
                *(counted.get(outcome.value, 0) for outcome in outcomes),
                row.leads_claimed,
                row.bookings,
            )
        )
    note = (
        "What each team member did in the period, whichever lead it was for: calls logged and how they went, "
        "leads they claimed, visits they booked (on a call or with /followup book)."
    )
    return TITLES[Breakdown.PERSON], columns, rows, note


def _playbook_table(  # noqa: ANN202 - the parts of a StatsTable
    session: Session,
    *,
    since: datetime,
    now: datetime,
    days: int,
    playbook_of: PlaybookLookup | None,
    business: str | None,
):
    columns = (
        Column("playbook", "Playbook", Kind.TEXT),
        Column("leads", "Leads"),
        Column("replied", "Replied"),
        Column("reply_rate", "Reply%", Kind.RATE),
        Column("booked", "Booked"),
        Column("booking_rate", "Book%", Kind.RATE),
        Column("finished", "Finished"),
        Column("nurture", "Nurture"),
    )
    rows = [
        (
            playbook_label(row.sequence, playbook_of),
            row.leads,
            row.replied,
            row.reply_rate,
            row.booked,
            row.booking_rate,
            row.finished,
            row.nurture,
        )
        for row in playbook_rows(session, since=since, now=now, business=business)
    ]
    note = (
        f"{COHORT_NOTE} Replied and booked: after they were enrolled. Finished: every step ran. Nurture: "
        "now on the slow long-term cadence. Visit reminders are not follow-up and are left out."
    )
    return TITLES[Breakdown.PLAYBOOK], columns, rows, note


def headline_table(stats: LeadStats) -> StatsTable:
    """The numbers `/followup stats` shows (bot.slack.home.stats_blocks), as one row for the CLI's CSV and JSON."""

    def seconds(span: timedelta | None) -> int | None:
        return None if span is None else round(span.total_seconds())

    visits = stats.visits
    columns = (
        Column("leads_in", "Leads in"),
        Column("contacted", "Contacted"),
        Column("speed_to_lead_median_seconds", "Speed to lead, median (s)"),
        Column("speed_to_lead_p90_seconds", "Speed to lead, 90th pct (s)"),
        Column("replied", "Replied"),
        Column("reply_rate", "Reply rate", Kind.RATE),
        Column("booked", "Booked"),
        Column("booking_rate", "Booking rate", Kind.RATE),
        Column("attended", "Attended"),
        Column("no_shows", "No-shows"),
        Column("show_rate", "Show rate", Kind.RATE),
        Column("cancellations", "Cancellations"),
        Column("reschedules", "Reschedules"),
    )
    row = (
        stats.leads_in,
        stats.contacted,
        seconds(stats.speed_to_lead_median),
        seconds(stats.speed_to_lead_p90),
        stats.replied,
        stats.reply_rate,
        stats.booked,
        stats.booking_rate,
        visits.attended,
        visits.no_shows,
        visits.show_rate,
        visits.cancellations,
        visits.reschedules,
    )
    note = (
        "Speed to lead: from the lead coming in to the first message that went out. Reply rate: contacted "
        "leads who wrote back (automatic replies left out). Booking rate: of the leads in; bookings include "
        "leads who told us they booked. Visits: those due in the period."
    )
    return StatsTable(
        None, stats.days, stats.since, stats.since + timedelta(days=stats.days), "Stats", columns, (row,), note
    )


#: The agency's row under the businesses' (every business's leads together).
AGENCY_ROW = "All businesses"


def business_table(session: Session, *, now: datetime, days: int, businesses: Mapping[str, str]) -> StatsTable:
    """The headline numbers of each business (slug → name, in the order given), and the agency's total under them.

    A business whose leads are stored but which is no longer configured gets a row too, named by its slug,
    so the rows add up to the total.
    """
    since = now - timedelta(days=days)
    stored = session.scalars(
        select(Lead.business).where(Lead.created_at >= since, Lead.created_at <= now).distinct()
    ).all()
    names = {**businesses, **{slug: slug for slug in sorted(set(stored) - set(businesses))}}
    columns = (
        Column("business", "Business", Kind.TEXT),
        Column("name", "Name", Kind.TEXT),
        Column("leads_in", "Leads"),
        Column("contacted", "Reached"),
        Column("speed_to_lead_median_seconds", "Speed (s)"),
        Column("replied", "Replied"),
        Column("reply_rate", "Reply%", Kind.RATE),
        Column("booked", "Booked"),
        Column("booking_rate", "Book%", Kind.RATE),
        Column("attended", "Came"),
        Column("no_shows", "No-shows"),
    )

    def row(slug: str | None, name: str) -> tuple[Cell, ...]:
        stats = lead_stats(session, now=now, days=days, business=slug)
        median = stats.speed_to_lead_median
        return (
            slug,
            name,
            stats.leads_in,
            stats.contacted,
            None if median is None else round(median.total_seconds()),
            stats.replied,
            stats.reply_rate,
            stats.booked,
            stats.booking_rate,
            stats.visits.attended,
            stats.visits.no_shows,
        )

    rows = [row(slug, name) for slug, name in names.items()] + [row(None, AGENCY_ROW)]
    note = (
        f"Each business's leads that came in during the period, then the agency's: {AGENCY_ROW.lower()}' leads "
        "together (its speed and rates are over all of them, not an average of the rows). Speed: the median "
        "from a lead coming in to the first message out. Reply%: of those reached. Book%: of the leads. "
        "Visits: those due in the period."
    )
    return StatsTable(None, days, since, now, "By business", columns, tuple(rows), note)


_TABLES = {
    Breakdown.SOURCE: _source_table,
    Breakdown.TOUCH: _touch_table,
    Breakdown.PERSON: _person_table,
    Breakdown.PLAYBOOK: _playbook_table,
}


def _playbook(name: str, playbook_of: PlaybookLookup | None) -> Playbook | None:
    if playbook_of is None:
        return None
    try:
        return playbook_of(name)
    except Exception:  # noqa: BLE001 - a playbook that no longer loads: its name reads as words
        return None


def playbook_label(name: str, playbook_of: PlaybookLookup | None) -> str:
    """The playbook's display name ('Chiropractic follow-up'), or its name in words when it is gone."""
    playbook = _playbook(name, playbook_of)
    return playbook.label if playbook else default_sequence_label(name)


def touch_label(sequence: str, step_id: str, playbook_of: PlaybookLookup | None) -> str:
    """The step's label ('First text'); a step gone from its playbook still reads as words."""
    return step_label(_playbook(sequence, playbook_of), step_id)


# --- as text (the CLI's table, Slack's monospace block) -----------------------------------------


def cell_text(value: Cell, kind: Kind) -> str:
    """A cell as people read it: a rate as '33%', no rate as '—'."""
    if kind == Kind.RATE:
        return "—" if value is None else f"{float(value) * 100:.0f}%"
    return "" if value is None else str(value)


def text_lines(table: StatsTable, *, widest_text: int | None = None) -> list[str]:
    """The table as aligned lines: words to the left, numbers to the right; text cells cut to `widest_text`."""

    def shown(value: Cell, column: Column) -> str:
        text = cell_text(value, column.kind)
        if widest_text is not None and column.kind in (Kind.TEXT, Kind.PERSON) and len(text) > widest_text:
            return text[: widest_text - 1] + "…"
        return text

    cells = [[column.heading for column in table.columns]]
    cells += [[shown(value, column) for value, column in zip(row, table.columns, strict=True)] for row in table.rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(table.columns))]
    words = [column.kind in (Kind.TEXT, Kind.PERSON) for column in table.columns]
    return [
        "  ".join(
            cell.ljust(width) if left else cell.rjust(width)
            for cell, width, left in zip(line, widths, words, strict=True)
        ).rstrip()
        for line in cells
    ]
