"""Find the day and time a lead asks for in their own words: "tomorrow at 3", "Friday morning", "mañana a las 3".

Pure: text in, an aware datetime in the lead's time zone out. The phrasing is read here with a
small grammar (days, clock times, parts of the day) because a clinic's replies are short and
ambiguous in ways a general date parser guesses wrong ("at 3" is 3 PM, "for 2 weeks" is no time,
"may" is rarely a month). Calendar dates ("Dec 3rd", "12/3") go to dateparser, which reads
those well.

How the words become a time:
- English and Spanish ("el viernes por la tarde", "a las 5 de la tarde"); minutes after a colon
  or a dot ("10.30am", "at 10.30", and a bare "10.30" only beside a day: alone it may be a price).
- A bare hour from 1 to 7 ("at 3", "4:30") is afternoon; 8 to 11 is morning; 12 is noon. A part
  of the day next to it decides instead ("tomorrow morning at 7" is 7 AM).
- A day with no time ("any openings Friday?") is that day at 9:00, and the text says so.
- A time with no day is today if it is still ahead, else tomorrow.
- A weekday is the next one to come, today included; "next Tuesday" never means today.
- Words after "since", "last" or "ago" are the past, not a request, and are skipped; "7/10" is
  a pain score, not a date.
- Alternatives ("3pm or tuesday", "Monday or Wednesday at 4") and vague times ("sometime next
  week", "after work", "evenings") are not settled into one time: the result is unclear, with
  the lead's words and the candidate times, and a person asks which they meant.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

#: The hour assumed when a lead names a day but no time.
DAY_ONLY_HOUR = 9
#: What is added to the words when the lead named a day but no time.
DAY_ONLY_NOTE = "(no time named; 9:00 assumed)"

# English, then Spanish by their first two letters (sábado is "sa", as Saturday is).
_WEEKDAY_INDEX = {"mo": 0, "tu": 1, "we": 2, "th": 3, "fr": 4, "sa": 5, "su": 6}
_WEEKDAY_INDEX |= {"lu": 0, "ma": 1, "mi": 2, "ju": 3, "vi": 4, "sá": 5, "do": 6}
# Full names (and common misspellings) stand alone; "mon", "wed", "sat" and "sun" are ordinary
# words too, so the short forms count only after "this", "next" or "on", or before a clock time.
_FULL_WEEKDAY = (
    r"mondays?|tuesdays?|wednesdays?|thursdays?|fridays?|saturdays?|sundays?"
    r"|tues|weds|thurs?|fri|wensday|wendsday|wednsday|thrusday|thursdy|tuseday|teusday|saterday|satruday"
    r"|lunes|martes|mi[ée]rcoles|jueves|viernes|s[áa]bado|domingo"
)
_SHORT_WEEKDAY = r"mon|tue|wed|thu|sat|sun"
_MONTH = (
    r"jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sep(?:t|tember)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?"
)
_MODIFIER = r"this|next|on|coming|this\s+coming|el\s+pr[óo]ximo|pr[óo]ximo|este|el|para\s+el"
#: The modifiers that never mean today ("next Tuesday", "el próximo martes").
_NEXT = ("next", "el próximo", "el proximo", "próximo", "proximo")

_DAY = re.compile(
    rf"""
    \b(?P<relative>day\s+after\s+tomorrow|today|tonight|tonite|tomorrow|tomorow|tommorow|tommorrow
        |tmrw|tmrow|tmr|tmw|2morrow|2moro|2mrw
        # Spanish: "mañana" is tomorrow, but "la mañana" / "esta mañana" is the morning
        |pasado\s+ma[ñn]ana|hoy|esta\s+noche|(?<!la\s)(?<!esta\s)ma[ñn]ana)(?!\w)
    | \b(?:(?P<modifier>{_MODIFIER})\s+)?(?P<weekday>{_FULL_WEEKDAY})\b\.?
    | \b(?P<short_modifier>{_MODIFIER})\s+(?P<short_weekday>{_SHORT_WEEKDAY})\b\.?
    | \b(?P<timed_weekday>{_SHORT_WEEKDAY})\b\.?(?=\s*(?:\d{{1,2}}(?::\d\d)?\s*[ap]\.?m?\b|at\s+\d|@\s*\d))
    | \b(?P<calendar>(?:{_MONTH})\.?\s+\d{{1,2}}(?:st|nd|rd|th)?(?:,?\s+\d{{4}})?
        | \d{{1,2}}(?:st|nd|rd|th)?\s+of\s+(?:{_MONTH}))\b
    # 12/3, 12/3/26; but 7/10 is a pain score, not July 10th
    | (?<![\d/.:$])(?P<numeric>\d{{1,2}}/(?!10\b)\d{{1,2}}(?:/\d{{2}}(?:\d{{2}})?)?)(?![\d/])
    | \b(?:on\s+)?the\s+(?P<day_of_month>\d{{1,2}})(?:st|nd|rd|th)\b
    """,
    re.IGNORECASE | re.VERBOSE,
)

# Numbers that count things, not hours: "at 3 kids", "about 2 weeks".
_UNITS = (
    r"%|percent|mins?|minutes?|hours?|hrs?|days?|weeks?|wks?|months?|years?|yrs?|times|kids|children|people"
    r"|citas?|años|semanas?|d[íi]as|meses|horas?|minutos|ni[ñn]os|hijos|veces|personas"
    r"|visits?|sessions?|dollars|bucks|miles|x|point|pounds|lbs|inches|feet|years?\s+old"
)
_CLOCK = re.compile(
    rf"""
    # 3pm, 3 p.m., 10:30am, 10.30am, 3-4pm, 3p
    (?<![\d:/$.])(?:(?P<from_hour>\d{{1,2}})(?:[:.](?P<from_minute>[0-5]\d))?\s*(?:-|–|to|or)\s*)?
      (?P<hour>\d{{1,2}})(?:[:.](?P<minute>[0-5]\d))?
      (?:\s*(?P<meridiem>[ap])\.?\s?m\b\.?|(?P<short_meridiem>[ap])\b)
    # 4:30, 15:00
    | (?<![\d:/$.])(?P<clock_hour>\d{{1,2}}):(?P<clock_minute>[0-5]\d)(?![\d:])
    # at 3, at 10.30, around 4, after 5, @ 2, 3ish, 3 o'clock
    | (?:\b(?:at|around|after|about|by|before|a\s+las?|a\s+eso\s+de\s+las|despu[ée]s\s+de\s+las
        |antes\s+de\s+las|tipo|como\s+a\s+las)|@)\s*(?P<bare_hour>\d{{1,2}})
      (?:\.(?P<bare_minute>[0-5]\d))?(?!\d|[:/.,]\d)
      (?:\s*-?\s*(?:ish\b|o'?\s?clock\b))?(?!\s*(?:{_UNITS})\b)(?!\s*[ap]\.?m?\b)
    | (?<![\d:/$.])(?P<ish_hour>\d{{1,2}})\s*(?:-?ish\b|o'?\s?clock\b)
    # 10.30 with nothing around it: a time only beside a day ("tomorrow 10.30"), else it may be a price
    | (?<![\d:/$.])(?P<dot_hour>\d{{1,2}})\.(?P<dot_minute>[0-5]\d)(?![\d.,:]?\d)(?!\s*(?:{_UNITS})\b)
    | \b(?P<noon>noon|midday|lunch\s?time|mediod[íi]a)(?!\w)
    """,
    re.IGNORECASE | re.VERBOSE,
)
_PART_OF_DAY = re.compile(
    r"\b(?:(?P<lead_in>this|in\s+the)\s+)?"
    r"(?P<part>morning|afternoon|evening|night|after\s+work|after\s+school|lunch)\b"
    # Spanish: "por la tarde", "en la mañana", "a las 5 de la tarde", "esta tarde"
    r"|\b(?P<lead_in_es>por\s+la|en\s+la|de\s+la|esta)\s+(?P<part_es>ma[ñn]ana|tarde|noche)(?!\w)",
    re.IGNORECASE,
)
#: A Spanish part of the day, as the English one it is.
_SPANISH_PARTS = {"mañana": "morning", "manana": "morning", "tarde": "afternoon", "noche": "night"}
_PART_HOURS = {
    "morning": 9,
    "afternoon": 13,
    "evening": 17,
    "night": 18,
    "after work": 17,
    "after school": 15,
    "lunch": 12,
}
#: The hours [from, to) a part of the day covers, for holding it against a visit's time.
_PART_WINDOWS = {"morning": (5, 12), "afternoon": (12, 18), "evening": (16, 24), "night": (17, 24), "lunch": (11, 15)}
# "since Monday", "last Friday", "Monday ago": the past.
_PAST_BEFORE = re.compile(r"\b(?:since|last|past|previous|desde|hace)\s+$", re.IGNORECASE)
# "los sábados", "los lunes": every such day (the clinic's hours), not a day asked for.
_HABITUAL_BEFORE = re.compile(r"\blos\s+$", re.IGNORECASE)
_PAST_AFTER = re.compile(r"^\s+(?:ago|pasados?)\b", re.IGNORECASE)
# Anything that could start a day or time; a message without one is done in one search.
# Times that name no one moment: a person asks which they mean.
_VAGUE = re.compile(
    r"\b(?:(?:some\s?time|early|late|later|end\s+of)\s+)?(?:this|next|the)\s+(?:week|weekend|month)\b"
    r"|\b(?:this|next|on\s+the)\s+weekend\b|\b(?:later|end\s+of)\s+(?:this|the)\s+week\b"
    r"|\b(?:any\s?time|whenever|some\s?time|after\s+work|after\s+school|after\s+my\s+shift"
    r"|evenings|mornings|afternoons|weekends|in\s+a\s+few\s+days)\b"
    r"|\b(?:la\s+)?(?:pr[óo]xima|esta)\s+semana\b|\bfin\s+de\s+semana\b|\ben\s+unos\s+d[íi]as\b"
    r"|\bcualquier\s+(?:hora|d[íi]a|momento)\b|\blas\s+tardes\b|\blas\s+ma[ñn]anas\b",
    re.IGNORECASE,
)
_ALTERNATIVE = re.compile(r"\bor\b|/|\beither\b|\bo\b", re.IGNORECASE)
_OR_HOUR = re.compile(
    r"\s*(?:or|/|o)\s*(?:a\s+las?\s+)?(?P<hour>\d{1,2})(?:[:.](?P<minute>[0-5]\d))?\b(?!\s*[ap]\.?m?\b)", re.IGNORECASE
)
#: At most this many candidate times are offered for one unclear time.
MAX_CANDIDATES = 4
_ANY_HINT = re.compile(
    rf"\d|noon|midday|lunch|morning|afternoon|evening|night|tonite|today|tom+or+ow|tmr|tmw|2mo|2mr"
    rf"|week|month|after\s+(?:work|school|my)|any\s?time|whenever|some\s?time|few\s+days"
    rf"|hoy|ma[ñn]ana|tarde|noche|mediod|semana|cualquier|unos\s+d"
    rf"|\b(?:{_FULL_WEEKDAY}|{_SHORT_WEEKDAY}|{_MONTH})\b",
    re.IGNORECASE,
)
_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201b": "'", "\u2032": "'", "`": "'"})
_DATEPARSER_SETTINGS = {"PREFER_DATES_FROM": "future", "DATE_ORDER": "MDY", "REQUIRE_PARTS": ["day", "month"]}


@dataclass(frozen=True)
class UnclearTime:
    """A time the lead named that is one of several or vague: their words, and the times it could be."""

    #: Why one time cannot be read: "offers alternatives" or "names no exact time".
    why: str
    #: The lead's words for it ("3pm or tuesday").
    words: str
    #: The times it could be, in the lead's zone (none for "sometime next week").
    candidates: tuple[datetime, ...] = ()
    #: Candidates that are a day with no time named (shown without a clock).
    day_only: tuple[bool, ...] = ()


@dataclass(frozen=True)
class RequestedTime:
    """A day and time a lead named, with the words that named it and where they stand in the message.

    `when` is None when the time is unclear (`unclear` says how): nobody guesses which one they meant.
    """

    when: datetime | None
    text: str
    #: (start, end) of each piece of the message that named it.
    spans: tuple[tuple[int, int], ...]
    unclear: UnclearTime | None = None
    #: What the words named, so a time can be held against another (a visit's): a day, a clock time
    #: (with AM/PM said or not), or only a part of the day ("Friday morning").
    day_named: bool = True
    clock_named: bool = True
    meridiem_said: bool = True
    part: str | None = None

    def contradicts(self, visit: datetime) -> bool:
        """Whether these words name another time than `visit`: "see you at 4" for a 3:00 visit.

        Only what was named counts: "see you Friday" agrees with any time on Friday, "at 3" with
        a visit at 3 on any day, "at 8" with 8 AM or 8 PM (no AM/PM said). Alternatives ("3 or 4?")
        are not one time: they contradict unless every one of them is the visit's.
        """
        if self.when is None:
            if self.unclear is None or self.unclear.why != "offers alternatives":
                return False
            return any(candidate != visit for candidate in self.unclear.candidates)
        local = visit.astimezone(self.when.tzinfo)
        if self.day_named and self.when.date() != local.date():
            return True
        if self.clock_named:
            said, booked = (self.when.hour, self.when.minute), (local.hour, local.minute)
            if not self.meridiem_said:
                said, booked = (said[0] % 12, said[1]), (booked[0] % 12, booked[1])
            return said != booked
        if self.part is not None:
            return not _PART_WINDOWS[self.part][0] <= local.hour < _PART_WINDOWS[self.part][1]
        return False


def find_requested_time(text: str, *, now: datetime, timezone: str) -> tuple[datetime | None, str] | None:
    """Find the day and time a lead asks for, in their time zone, with the words that named it."""
    found = read_requested_time(text, now=now, timezone=timezone)
    return (found.when, found.text) if found else None


def read_requested_time(text: str, *, now: datetime, timezone: str) -> RequestedTime | None:
    """Find the day and time a lead asks for, and where in the message the words are."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if not _ANY_HINT.search(text):
        return None
    zone = ZoneInfo(timezone)
    local_now = now.astimezone(zone)
    # One character for one character, so positions found here are positions in the original.
    scan = text.translate(_QUOTES)

    days = [
        (match, day)
        for match in _DAY.finditer(scan)
        if not _in_the_past(scan, match) and (day := _day_of(match, local_now)) is not None
    ]
    clocks = [
        (match, clock)
        for match in _CLOCK.finditer(scan)
        if (clock := _clock_of(match)) is not None and (not match.group("dot_hour") or _beside_a_day(scan, match, days))
    ]
    if (unclear := _unclear(text, scan, days, clocks, local_now, zone)) is not None:
        return unclear
    clock_match, clock = clocks[0] if clocks else (None, None)
    day_match, day = _nearest(days, clock_match)
    part_match = _part_of_day(scan, day_match)

    at = _time_of_day(clock, part_match, day_match)
    if day is None:
        if at is None:
            return None
        day = (
            local_now.date()
            if datetime.combine(local_now.date(), at, tzinfo=zone) > local_now
            else local_now.date() + timedelta(days=1)
        )
    pieces = [m for m in (day_match, clock_match, part_match) if m is not None]
    words = _words(text, pieces)
    part = _part_name(part_match) if clock is None and part_match is not None else None
    if at is not None and clock is None and part is None:
        part = "night"  # "tonight": the evening of the day, not one clock time
    if at is None:
        at = time(DAY_ONLY_HOUR, 0)
        words = f"{words} {DAY_ONLY_NOTE}"
    spans = tuple(sorted(m.span() for m in pieces))
    return RequestedTime(
        datetime.combine(day, at, tzinfo=zone),
        words,
        spans,
        day_named=day_match is not None,
        clock_named=clock is not None,
        meridiem_said=clock is None or clock[2] or part_match is not None,
        part=part,
    )


def _unclear(
    text: str,
    scan: str,
    days: list[tuple[re.Match[str], date]],
    clocks: list[tuple[re.Match[str], tuple[int, int, bool]]],
    local_now: datetime,
    zone: ZoneInfo,
) -> RequestedTime | None:
    """Read a time that is one of several, or vague, as unclear; None when it names one time."""
    vague = [m for m in _VAGUE.finditer(scan) if not _PAST_BEFORE.search(scan, 0, m.start())]
    distinct_days = list(dict.fromkeys(day for _, day in days))
    hours = []
    second_hours: list[re.Match[str]] = []
    for match, clock in clocks:
        if match.group("from_hour") and _ALTERNATIVE.search(match.group()):  # "3 or 4pm": two times, not a range
            hours.append(_clock_of_start_as(match, clock, alone=True))
            hours.append(_clock_of_start_as(match, clock, alone=False))
        else:
            hours.append(clock)
            if (other := _OR_HOUR.match(scan, match.end())) and 1 <= int(other.group("hour")) <= 12:
                # "at 3 or 5": the second hour is read as the first was
                hours.append((int(other.group("hour")), int(other.group("minute") or 0), False))
                second_hours.append(other)
    distinct_hours = list(dict.fromkeys(_settled(hour) for hour in hours))
    between_day_and_clock = ""
    if days and clocks:
        nearest_day, _ = _nearest(days, clocks[0][0])
        assert nearest_day is not None
        first, second = sorted((nearest_day, clocks[0][0]), key=lambda m: m.start())
        between_day_and_clock = scan[first.end() : second.start()]
    offers_alternatives = (
        len(distinct_days) > 1 or len(distinct_hours) > 1 or bool(_ALTERNATIVE.search(between_day_and_clock))
    )
    if not offers_alternatives and not vague:
        return None
    pieces = [m for m, _ in days] + [m for m, _ in clocks] + second_hours + vague
    words = _words(text, pieces)
    spans = tuple(sorted(m.span() for m in pieces))
    if not offers_alternatives:
        return RequestedTime(
            None,
            words,
            spans,
            UnclearTime(
                "names no exact time", words, *_vague_candidates(vague, distinct_days, distinct_hours, local_now, zone)
            ),
        )
    candidates: list[datetime] = []
    day_only: list[bool] = []
    together = not _ALTERNATIVE.search(between_day_and_clock)
    if together and distinct_days and distinct_hours:  # "Monday or Wednesday at 4", "Friday at 3 or 5"
        for day in distinct_days:
            for hour, minute, _ in (_settled(h) for h in distinct_hours):
                candidates.append(datetime.combine(day, time(hour, minute), tzinfo=zone))
                day_only.append(False)
    else:  # "3pm or tuesday": each on its own
        for hour, minute, _ in (_settled(h) for h in distinct_hours):
            candidates.append(_next_at(time(hour, minute), local_now, zone))
            day_only.append(False)
        for day in distinct_days:
            candidates.append(datetime.combine(day, time(DAY_ONLY_HOUR, 0), tzinfo=zone))
            day_only.append(True)
    candidates, day_only = candidates[:MAX_CANDIDATES], day_only[:MAX_CANDIDATES]
    return RequestedTime(
        None, words, spans, UnclearTime("offers alternatives", words, tuple(candidates), tuple(day_only))
    )


def _vague_candidates(
    vague: list[re.Match[str]],
    days: list[date],
    hours: list[tuple[int, int, bool]],
    local_now: datetime,
    zone: ZoneInfo,
) -> tuple[tuple[datetime, ...], tuple[bool, ...]]:
    """The times a vague phrase may mean, when it says enough: "tomorrow after work" is tomorrow about 5 PM."""
    names = [" ".join(m.group().lower().split()) for m in vague]
    part = next((name for name in names if name in _PART_HOURS), None)
    if part is None or len(days) > 1 or hours:
        return (), ()
    at = time(_PART_HOURS[part], 0)
    when = datetime.combine(days[0], at, tzinfo=zone) if days else _next_at(at, local_now, zone)
    return (when,), (False,)


def _settled(clock: tuple[int, int, bool]) -> tuple[int, int, bool]:
    hour, minute, meridiem_known = clock
    return (hour if meridiem_known else _business_hour(hour)), minute, True


def _next_at(at: time, local_now: datetime, zone: ZoneInfo) -> datetime:
    """Today at that time if still ahead, else tomorrow."""
    today = datetime.combine(local_now.date(), at, tzinfo=zone)
    return today if today > local_now else today + timedelta(days=1)


def _clock_of_start_as(match: re.Match[str], clock: tuple[int, int, bool], *, alone: bool) -> tuple[int, int, bool]:
    """Read "3 or 4pm" as two times: the first (alone) or the second, both with the meridiem said."""
    meridiem = (match.group("meridiem") or match.group("short_meridiem")).lower()
    hour = int(match.group("from_hour") if alone else match.group("hour"))
    minute = int((match.group("from_minute") if alone else match.group("minute")) or 0)
    if not 1 <= hour <= 12:
        return clock
    return (hour % 12) + (12 if meridiem == "p" else 0), minute, True


def _time_of_day(
    clock: tuple[int, int, bool] | None, part: re.Match[str] | None, day_match: re.Match[str] | None
) -> time | None:
    """Settle the clock time from an hour said, the part of the day, or "tonight"; None when none was named."""
    if clock is not None:
        hour, minute, meridiem_known = clock
        if not meridiem_known:
            hour = _hour_in_part(hour, part) if part is not None else _business_hour(hour)
        return time(hour, minute)
    if part is not None:
        return time(_PART_HOURS[_part_name(part)], 0)
    if day_match is not None and " ".join((day_match.group("relative") or "").lower().split()) in (
        "tonight",
        "tonite",
        "esta noche",
    ):
        return time(_PART_HOURS["night"], 0)
    return None


def _in_the_past(scan: str, match: re.Match[str]) -> bool:
    """Whether a day named is the past ("since Monday", "el lunes pasado"), or every such day ("los sábados")."""
    before = scan[: match.start()]
    return bool(
        _PAST_BEFORE.search(before) or _HABITUAL_BEFORE.search(before) or _PAST_AFTER.match(scan[match.end() :])
    )


def _day_of(match: re.Match[str], local_now: datetime) -> date | None:
    today = local_now.date()
    if relative := match.group("relative"):
        word = relative.lower()
        if word in ("today", "tonight", "tonite", "hoy") or word.startswith("esta"):
            return today
        if word.startswith(("day", "pasado")):
            return today + timedelta(days=2)
        return today + timedelta(days=1)
    if weekday := match.group("weekday") or match.group("short_weekday") or match.group("timed_weekday"):
        modifier = " ".join((match.group("modifier") or match.group("short_modifier") or "").lower().split())
        ahead = (_WEEKDAY_INDEX[weekday[:2].lower()] - today.weekday()) % 7
        if ahead == 0 and modifier in _NEXT:
            ahead = 7
        return today + timedelta(days=ahead)
    if written := match.group("calendar") or match.group("numeric"):
        settings = {**_DATEPARSER_SETTINGS, "RELATIVE_BASE": local_now.replace(tzinfo=None)}
        import dateparser  # its languages and regexes: several MiB resident, loaded at the first date read

        parsed = dateparser.parse(written, languages=["en"], settings=settings)
        return parsed.date() if parsed is not None and parsed.date() >= today else None
    if number := match.group("day_of_month"):
        return _next_day_of_month(int(number), today)
    return None


def _next_day_of_month(number: int, today: date) -> date | None:
    year, month = today.year, today.month
    for _ in range(3):
        try:
            candidate = date(year, month, number)
        except ValueError:
            candidate = None
        if candidate is not None and candidate >= today:
            return candidate
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return None


def _clock_of(match: re.Match[str]) -> tuple[int, int, bool] | None:
    """Read an hour, minute and whether AM/PM was said; None for impossible times."""
    if match.group("noon"):
        return 12, 0, True
    if match.group("hour"):
        meridiem = (match.group("meridiem") or match.group("short_meridiem")).lower()
        hour, minute = int(match.group("hour")), int(match.group("minute") or 0)
        if match.group("from_hour"):
            start = int(match.group("from_hour"))
            # "11-1pm" starts in the morning; "3-4pm" starts in the afternoon.
            if start > hour and meridiem == "p" and start < 12:
                meridiem = "a"
            hour, minute = start, int(match.group("from_minute") or 0)
        if not 1 <= hour <= 12:
            return None
        return (hour % 12) + (12 if meridiem == "p" else 0), minute, True
    if match.group("clock_hour"):
        hour, minute = int(match.group("clock_hour")), int(match.group("clock_minute"))
        return (hour, minute, hour >= 13 or hour == 0) if hour <= 23 else None
    if match.group("dot_hour"):
        hour, minute = int(match.group("dot_hour")), int(match.group("dot_minute"))
        return (hour, minute, hour >= 13 or hour == 0) if hour <= 23 else None
    hour = int(match.group("bare_hour") or match.group("ish_hour"))
    minute = int(match.group("bare_minute") or 0)
    return (hour, minute, hour >= 13) if 1 <= hour <= 23 else None


def _beside_a_day(scan: str, match: re.Match[str], days: list[tuple[re.Match[str], date]]) -> bool:
    """Whether a bare "10.30" sits right beside a day ("tomorrow 10.30", "Friday at 9.15"): then it is a time."""
    for day_match, _ in days:
        gap = (
            scan[day_match.end() : match.start()]
            if match.start() >= day_match.end()
            else scan[match.end() : day_match.start()]
        )
        if gap.strip().lower() in ("", ",", "at", "@", "on"):
            return True
    return False


def _business_hour(hour: int) -> int:
    """Read a bare hour as a clinic's hours: 1-7 are afternoon, 8-11 morning."""
    return hour + 12 if 1 <= hour <= 7 else hour


def _hour_in_part(hour: int, part: re.Match[str]) -> int:
    if _part_name(part) == "morning" or hour >= 12:
        return hour
    return hour + 12


def _part_name(match: re.Match[str]) -> str:
    if spanish := match.group("part_es"):
        return _SPANISH_PARTS[spanish.lower()]
    return " ".join(match.group("part").lower().split())


def _nearest(
    found: list[tuple[re.Match[str], date]], anchor: re.Match[str] | None
) -> tuple[re.Match[str] | None, date | None]:
    if not found:
        return None, None
    if anchor is None:
        return found[0]
    return min(found, key=lambda item: abs(item[0].start() - anchor.start()))


def _part_of_day(scan: str, day_match: re.Match[str] | None) -> re.Match[str] | None:
    """Find "morning", "afternoon"... when it belongs to a request: next to the day, or "this"/"in the"."""
    for match in _PART_OF_DAY.finditer(scan):
        if _PAST_BEFORE.search(scan, 0, match.start()):
            continue
        if match.group("lead_in") or match.group("lead_in_es"):  # "this afternoon": a request with no day named
            return match
        if day_match is not None:
            gap = (
                scan[day_match.end() : match.start()]
                if match.start() >= day_match.end()
                else scan[match.end() : day_match.start()]
            )
            if gap.strip().lower() in ("", "on", ","):
                return match
    return None


def _words(text: str, pieces: list[re.Match[str]]) -> str:
    """Quote the words that named the time, as written: one stretch when they sit together."""
    ordered = sorted(pieces, key=lambda m: m.start())
    start, end = ordered[0].start(), max(m.end() for m in ordered)
    if end - start - sum(m.end() - m.start() for m in ordered) <= 12:
        return " ".join(text[start:end].split())
    return " ".join(" ".join(text[m.start() : m.end()].split()) for m in ordered)
