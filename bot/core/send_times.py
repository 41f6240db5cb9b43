"""When a touch may go out: the business's window and open days, and the lead's daytime for texts and calls.

Pure arithmetic over UTC intervals, built one local day at a time for each rule and intersected, so the
answer is exact to the microsecond and cheap enough to run for every touch. Local times that a daylight
saving change skips or repeats are read the cautious way: a window never opens early or closes late.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.core.business import MIDNIGHT, Business

#: TCPA (47 CFR 64.1200(c)(1)): texts and calls only from 8 a.m. to 9 p.m. where the lead is.
LEAD_DAYTIME = (time(8, 0), time(21, 0))
#: How far ahead to look before saying there is no time at all.
HORIZON = timedelta(days=366)
# Most touches find their slot within a day or two; look that far first, then further in growing steps.
_FIRST_SPAN = timedelta(days=2)
_LONGEST_SPAN = timedelta(days=64)

#: Allowed moments from start (inclusive) to end (exclusive), both UTC.
Interval = tuple[datetime, datetime]


class NoSendTime(Exception):
    """No moment within a year is inside the send window, on an open day and in the lead's daytime."""


@dataclass(frozen=True)
class _DailyRule:
    """Moments allowed each day the rule is open: from start to end on the local clock of one zone."""

    zone: ZoneInfo
    start: time
    #: Exclusive; 00:00 is the midnight that ends the day.
    end: time
    is_open: Callable[[date], bool]

    def intervals(self, span_start: datetime, span_end: datetime) -> list[Interval]:
        """List the rule's allowed intervals that fall inside a UTC span, clipped to it, in order."""
        # A local day's interval may start on the UTC day before, so begin one local day early.
        day = span_start.astimezone(self.zone).date() - timedelta(days=1)
        last = span_end.astimezone(self.zone).date()
        found: list[Interval] = []
        while day <= last:
            if self.is_open(day):
                opens, closes = _day_interval(self.zone, day, self.start, self.end)
                opens, closes = max(opens, span_start), min(closes, span_end)
                if opens < closes:
                    found.append((opens, closes))
            day += timedelta(days=1)
        return found


def lead_timezones_or_business(timezones: tuple[str, ...], business: Business) -> tuple[str, ...]:
    """Keep the lead's known time zones (once each); when none is known, the business's."""
    known = tuple(dict.fromkeys(name for name in timezones if _zone(name) is not None))
    return known or (business.timezone.key,)


def next_send_time(
    earliest: datetime, *, business: Business, respect_lead_daytime: bool, lead_timezones: tuple[str, ...]
) -> datetime:
    """Return the first moment (UTC) at or after earliest when a touch may go out; NoSendTime if none within a year."""
    start = _as_utc(earliest, "earliest")
    rules = _rules(business, respect_lead_daytime, lead_timezones)
    horizon_end = start + HORIZON
    span_start, span = start, _FIRST_SPAN
    while span_start < horizon_end:
        span_end = min(span_start + span, horizon_end)
        allowed = _allowed(rules, span_start, span_end)
        if allowed:
            return allowed[0][0]  # clipped to span_start >= start, so it is start itself when start is allowed
        span_start, span = span_end, min(span * 2, _LONGEST_SPAN)
    raise NoSendTime(_why_never(business, respect_lead_daytime, lead_timezones, start))


def may_send_at(
    moment: datetime, *, business: Business, respect_lead_daytime: bool, lead_timezones: tuple[str, ...]
) -> bool:
    """Say whether a touch may go out at this very moment."""
    at = _as_utc(moment, "moment")
    rules = _rules(business, respect_lead_daytime, lead_timezones)
    return bool(_allowed(rules, at, at + timedelta(microseconds=1)))


def _rules(business: Business, respect_lead_daytime: bool, lead_timezones: tuple[str, ...]) -> list[_DailyRule]:
    rules = [_business_rule(business)]
    if respect_lead_daytime:
        rules.extend(_lead_rule(name) for name in lead_timezones_or_business(lead_timezones, business))
    return rules


def _business_rule(business: Business) -> _DailyRule:
    window = business.send_window

    def is_open(day: date) -> bool:
        return day.weekday() in window.days and not business.is_closed_on(day)

    return _DailyRule(business.timezone, window.start, window.end, is_open)


def _lead_rule(zone_name: str) -> _DailyRule:
    zone = _zone(zone_name)
    assert zone is not None  # lead_timezones_or_business kept only known zones
    return _DailyRule(zone, LEAD_DAYTIME[0], LEAD_DAYTIME[1], _every_day)


def _every_day(day: date) -> bool:
    return True


def _allowed(rules: list[_DailyRule], span_start: datetime, span_end: datetime) -> list[Interval]:
    """List the moments in a UTC span that every rule allows."""
    allowed = rules[0].intervals(span_start, span_end)
    for rule in rules[1:]:
        if not allowed:
            break
        allowed = _intersect(allowed, rule.intervals(span_start, span_end))
    return allowed


def _intersect(left: list[Interval], right: list[Interval]) -> list[Interval]:
    """Overlap two ordered lists of disjoint intervals."""
    result: list[Interval] = []
    i = j = 0
    while i < len(left) and j < len(right):
        opens = max(left[i][0], right[j][0])
        closes = min(left[i][1], right[j][1])
        if opens < closes:
            result.append((opens, closes))
        if left[i][1] <= right[j][1]:
            i += 1
        else:
            j += 1
    return result


@lru_cache(maxsize=16384)
def _day_interval(zone: ZoneInfo, day: date, start: time, end: time) -> Interval:
    """Place one local day's window in UTC; an end of 00:00 is the midnight that ends the day."""
    end_day = day + timedelta(days=1) if end == MIDNIGHT else day
    return _instant(zone, day, start, opening=True), _instant(zone, end_day, end, opening=False)


def _instant(zone: ZoneInfo, day: date, clock: time, *, opening: bool) -> datetime:
    """Place a local clock time in UTC, read so a window never opens early or closes late."""
    wall = datetime.combine(day, clock)
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    second = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    if first == second:
        return first
    if first < second:
        # The clock goes back and shows this time twice: open at the second, close at the first,
        # so the repeated hour never lets a window start before its time or run past its end.
        return second if opening else first
    # The clock jumps forward over this time: the window edge is the jump itself.
    return _transition(zone, second, first)


def _transition(zone: ZoneInfo, before: datetime, after: datetime) -> datetime:
    """Find the instant between two UTC moments where the zone's offset changes (to the second)."""
    offset_after = after.astimezone(zone).utcoffset()
    while after - before > timedelta(seconds=1):
        middle = before + timedelta(seconds=int((after - before).total_seconds()) // 2)
        if middle.astimezone(zone).utcoffset() == offset_after:
            after = middle
        else:
            before = middle
    return after


def _why_never(business: Business, respect_lead_daytime: bool, lead_timezones: tuple[str, ...], start: datetime) -> str:
    """Name the rule that cannot be met, for the person who reads the skipped touch."""
    end = start + HORIZON
    window = f"send window {business.send_window.describe()} ({business.timezone.key})"
    if not _allowed([_business_rule(business)], start, end):
        return f"the business is closed or outside its {window} every day for a year"
    zones = lead_timezones_or_business(lead_timezones, business)
    daytime = f"{LEAD_DAYTIME[0]:%H:%M}-{LEAD_DAYTIME[1]:%H:%M}"
    if len(zones) > 1 and not _allowed([_lead_rule(name) for name in zones], start, end):
        return f"the lead's time zones ({', '.join(zones)}) share no hour of {daytime} daytime"
    return f"the {window} never meets {daytime} in the lead's time zone ({', '.join(zones)})"


@lru_cache(maxsize=1024)
def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        return None


def _as_utc(moment: datetime, name: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware (UTC), got {moment!r}")
    return moment.astimezone(UTC)


#: What a wait for the lead's daytime is called where the team reads it.
QUIET_HOURS = "quiet hours"


@dataclass(frozen=True)
class Wait:
    """Why a touch goes out later than its playbook meant: in words, and whether the lead's night holds it."""

    words: str
    #: The lead's quiet hours hold it: its time is read in the lead's zone first.
    for_lead_daytime: bool


def wait_reason(
    due_at: datetime,
    planned_at: datetime,
    *,
    business: Business,
    respect_lead_daytime: bool,
    lead_timezones: tuple[str, ...],
) -> str | None:
    """Say why a touch goes out later than its playbook meant ('quiet hours', 'the clinic is closed on Sundays')."""
    wait = wait_of(
        due_at, planned_at, business=business, respect_lead_daytime=respect_lead_daytime, lead_timezones=lead_timezones
    )
    return wait.words if wait is not None else None


def wait_of(
    due_at: datetime,
    planned_at: datetime,
    *,
    business: Business,
    respect_lead_daytime: bool,
    lead_timezones: tuple[str, ...],
) -> Wait | None:
    """Why a touch goes out later than its playbook meant, or None when it goes out as planned.

    None too when it only waits for the touch before it (or a pause). The rule named is the one
    that holds the touch just before its due time, so a touch moved by a pause and then by a
    closed day is explained by the closed day.
    """
    due, planned = _as_utc(due_at, "due_at"), _as_utc(planned_at, "planned_at")
    if due - planned < timedelta(minutes=1):
        return None
    just_before = due - timedelta(minutes=1)
    reasons = []
    if respect_lead_daytime:
        zones = lead_timezones_or_business(lead_timezones, business)
        if not _allowed([_lead_rule(name) for name in zones], just_before, just_before + timedelta(microseconds=1)):
            reasons.append(QUIET_HOURS)
    day = just_before.astimezone(business.timezone).date()
    first_day = planned.astimezone(business.timezone).date()
    blocked = not _allowed([_business_rule(business)], just_before, just_before + timedelta(microseconds=1))
    # Closed days on the way are the reason worth saying, more than the opening hour that follows them.
    closed_day = None
    for earlier in (day - timedelta(days=n) for n in range(0 if blocked else 1, 8)):
        if earlier < first_day:
            break
        if _closed_words(business, earlier) is not None:
            closed_day = earlier
        elif closed_day is not None or earlier != day:
            break
    if closed_day is not None:
        reasons.append(_closed_words(business, closed_day) or "")
    elif blocked:
        reasons.append(f"outside business hours ({business.send_window.describe()})")
    if not reasons:
        return None
    return Wait(words=" and ".join(reasons), for_lead_daytime=reasons[0] == QUIET_HOURS)


def _closed_words(business: Business, day: date) -> str | None:
    """Why the business is closed all that (local) day, in words; None when it opens that day."""
    closed = business.closed_reason(day)
    if closed == "closed date":
        return f"{business.name} is closed on {day:%b} {day.day}"
    if closed:
        return f"{business.name} is closed for {closed}"
    if day.weekday() not in business.send_window.days:
        return f"{business.name} is closed on {day:%A}s"
    return None
