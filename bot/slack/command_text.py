"""Read what the team types to the bot: `/followup` commands and the send marker in lead threads.

Pure: text in, typed values out, with errors a person can act on. Times are read with dateparser
in the business's time zone, relative to the `now` passed in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from enum import StrEnum

from bot.core.report_request import Breakdown, StatsWordsError, read_stats_words

#: What a team member writes first in a lead's thread to send the rest to the lead.
SEND_MARKER = "!reply"

USAGE_LINES = (
    ("help", "this list"),
    ("new <phone|email> [name]", "add a lead and start its follow-up"),
    ("list [mine|open|paused|booked|nurture|lost|opted-out|all]", "leads by where they stand (open when left out)"),
    ("show <lead>", "a lead's details and history"),
    ("pause <lead>", "hold the automated follow-up"),
    ("resume <lead>", "go on with it"),
    ("stop <lead>", "end all follow-up, mark lost (admins)"),
    ("book <lead> <when>", "record a visit, e.g. `book 12 tomorrow 3pm`"),
    ("reschedule <lead> <when>", "move the lead's visit, e.g. `reschedule 12 friday 10am`"),
    ("cancel <lead>", "cancel the lead's visit; reminders stop"),
    ("attended <lead>", "the lead came to the visit"),
    ("noshow <lead>", 'the lead missed the visit: a "we missed you" note and a call'),
    ("claim <lead>", "make the lead yours"),
    ("optout <lead>", "record that they asked not to be contacted (admins)"),
    ('consent <lead> verbal "what they said"', 'record that the lead agreed to texts (or `revoked "..."`)'),
    (
        "stats [7d|30d] [by source|touch|person|playbook]",
        "leads in, speed to lead, reply and booking rates; or one breakdown as a table",
    ),
    ("digest", "this week's digest so far, shown only to you (it is posted to the channel weekly)"),
)
LEAD_HINT = "Name a lead by its id (`12` or `#12`), phone, email or name."
SEND_MARKER_HINT = (
    f"In a lead's thread, start a message with `{SEND_MARKER}` to send the rest to the lead "
    "(a text when there is a phone, else an email). Every other thread message stays in Slack."
)


def slots(text: str) -> str:
    """Write placeholders like `<lead>` so Slack shows them instead of reading them as links."""
    return text.replace("<", "&lt;").replace(">", "&gt;")


def usage() -> str:
    """The short help every unknown or malformed command answers with (mrkdwn)."""
    lines = [f"`/followup {slots(words)}` — {what}" for words, what in USAGE_LINES]
    return "\n".join(["*/followup* understands:", *lines, LEAD_HINT, SEND_MARKER_HINT])


class CommandError(ValueError):
    """The text is not a /followup command as written; the message says how to write it."""


class ListFilter(StrEnum):
    MINE = "mine"  #: leads the asking person owns (still in play)
    OPEN = "open"  #: leads still in play: new, contacted or engaged
    PAUSED = "paused"  #: leads whose automation a person or a reply paused
    BOOKED = "booked"  #: leads with a visit on the calendar
    NURTURE = "nurture"  #: leads on the slow long-term cadence
    LOST = "lost"  #: leads closed as not interested, wrong number, or stopped
    OPTED_OUT = "opted-out"  #: leads who revoked consent
    ALL = "all"  #: every lead, closed ones included


class LeadVerb(StrEnum):
    """Commands that name one lead and do one thing to it."""

    SHOW = "show"
    PAUSE = "pause"
    RESUME = "resume"
    STOP = "stop"
    CLAIM = "claim"
    OPT_OUT = "optout"
    CANCEL = "cancel"  #: cancel the upcoming visit
    ATTENDED = "attended"  #: the lead came
    NO_SHOW = "noshow"  #: the lead did not come


#: The longest `book` text read (a name, a phone or id, and a day and time fit well within it).
MAX_BOOK_TEXT = 160


@dataclass(frozen=True)
class Help:
    pass


@dataclass(frozen=True)
class NewLead:
    phone: str | None
    email: str | None
    name: str


@dataclass(frozen=True)
class ListLeads:
    which: ListFilter


@dataclass(frozen=True)
class OnLead:
    verb: LeadVerb
    lead: str


@dataclass(frozen=True)
class BookLead:
    lead: str
    start_at: datetime
    #: The time as the person wrote it, to echo back.
    when: str


@dataclass(frozen=True)
class RescheduleLead(BookLead):
    """Move the lead's upcoming visit to `start_at`."""


@dataclass(frozen=True)
class ShowStats:
    days: int
    #: One breakdown as a table; None for the period's headline numbers.
    by: Breakdown | None = None


class ConsentChange(StrEnum):
    VERBAL = "verbal"  #: the lead told a team member they agree to texts
    REVOKED = "revoked"  #: the lead told a team member they no longer do


@dataclass(frozen=True)
class RecordConsent:
    lead: str
    change: ConsentChange
    #: What the lead said, in the team member's words: kept as the consent's evidence.
    note: str


@dataclass(frozen=True)
class ShowDigest:
    """The weekly digest for the seven days up to now, as a preview for the asker."""


Command = Help | NewLead | ListLeads | OnLead | BookLead | RescheduleLead | ShowStats | RecordConsent | ShowDigest


def parse_command(text: str, *, now: datetime, zone: tzinfo) -> Command:
    """Read `/followup` text into a command; raise CommandError with the usage when it is not one."""
    words = (text or "").split()
    if not words:
        return Help()
    verb, rest = words[0].lower(), words[1:]
    match verb:
        case "help" | "?" | "usage":
            return Help()
        case "new" | "add":
            return _new_lead(rest)
        case "list" | "ls":
            return _list(rest)
        case "book":
            return _book(rest, now=now, zone=zone)
        case "reschedule" | "move":
            booked = _book(rest, now=now, zone=zone, verb="reschedule")
            return RescheduleLead(booked.lead, booked.start_at, booked.when)
        case "stats":
            return _stats(rest)
        case "consent":
            return _consent(rest)
        case "digest":
            if rest:
                raise CommandError("`/followup digest` takes nothing more: it previews the week so far, for you only.")
            return ShowDigest()
    try:
        lead_verb = LeadVerb(verb.replace("-", "").replace("_", "").replace("noshows", "noshow"))
    except ValueError:
        raise CommandError(f"I don't know `{_code(words[0])}`.\n{usage()}") from None
    reference = " ".join(rest).strip()
    if not reference:
        raise CommandError(f"`/followup {lead_verb} {slots('<lead>')}` needs a lead. {LEAD_HINT}")
    return OnLead(lead_verb, reference)


def _new_lead(words: list[str]) -> NewLead:
    if not words:
        raise CommandError(
            f"`/followup new {slots('<phone|email>')} [name]` needs a phone number or an email, "
            "e.g. `/followup new (312) 555-0142 Dana Lee`."
        )
    if "@" in words[0]:
        return NewLead(phone=None, email=words[0], name=" ".join(words[1:]))
    phone, rest = _phone_words(words)
    if not phone:
        raise CommandError(
            f"`{_code(words[0])}` is neither a phone number nor an email; write "
            f"`/followup new {slots('<phone|email>')} [name]`, e.g. "
            "`/followup new +1 312 555 0142 Dana Lee`."
        )
    return NewLead(phone=phone, email=None, name=" ".join(rest))


_CONSENT_WORDS = {"verbal": ConsentChange.VERBAL, "revoked": ConsentChange.REVOKED, "revoke": ConsentChange.REVOKED}
#: A note must say something: what the lead agreed to, when, how.
MIN_CONSENT_NOTE = 3


def _consent(words: list[str]) -> RecordConsent:
    example = '`/followup consent 12 verbal "agreed to texts on the phone today"`'
    at = next((i for i, word in enumerate(words) if word.lower() in _CONSENT_WORDS), None)
    if at is None or at == 0:
        raise CommandError(
            f'`/followup consent {slots("<lead>")} verbal "what they said"` needs a lead, then '
            f"`verbal` (or `revoked`), then a note of what the lead said, e.g. {example}."
        )
    note = " ".join(words[at + 1 :]).strip().strip("\"“”'‘’").strip()
    if len(note) < MIN_CONSENT_NOTE:
        raise CommandError(
            f"Add a note of what the lead said and when, e.g. {example}: it is the record of their consent."
        )
    return RecordConsent(" ".join(words[:at]).strip(), _CONSENT_WORDS[words[at].lower()], note)


def _list(words: list[str]) -> ListLeads:
    if not words:
        return ListLeads(ListFilter.OPEN)
    try:
        return ListLeads(ListFilter(words[0].lower()))
    except ValueError:
        choices = "|".join(f.value for f in ListFilter)
        raise CommandError(
            f"`/followup list` shows `{choices}`; `{_code(' '.join(words))}` is not one of them."
        ) from None


def _stats(words: list[str]) -> ShowStats:
    try:
        request = read_stats_words(words)
    except StatsWordsError as wrong:
        raise CommandError(
            f"`/followup stats` takes a period, `7d` or `30d`, and a breakdown, `by source`, `by touch`, "
            f"`by person` or `by playbook` (each optional), e.g. `/followup stats 30d by source`; "
            f"`{_code(str(wrong))}` is not one of them."
        ) from None
    return ShowStats(request.days, request.by)


def _book(words: list[str], *, now: datetime, zone: tzinfo, verb: str = "book") -> BookLead:
    example = f'e.g. `/followup {verb} 12 tomorrow 3pm` or `/followup {verb} "Dana Lee" 2026-12-01 10:00`'
    if len(" ".join(words)) > MAX_BOOK_TEXT:
        # Each split of a long text is another date parse: refuse it before it ties up a listener.
        raise CommandError(
            f"`/followup {verb}` takes a lead and a date and time, not {len(' '.join(words))} characters; {example}."
        )
    if len(words) < 2:
        raise CommandError(f"`/followup {verb} {slots('<lead> <when>')}` needs a lead and a date and time, {example}.")
    for reference, when in _reference_then_rest(words):
        start_at = parse_when(when, now=now, zone=zone)
        if start_at is not None:
            return BookLead(reference, start_at, when)
    raise CommandError(
        f"I could not read a date and time in `{_code(' '.join(words))}`; give the lead, then the "
        f"day and the time, {example}."
    )


def _reference_then_rest(words: list[str]) -> list[tuple[str, str]]:
    """Ways to split words into a lead reference and what follows it, the likeliest first."""
    joined = " ".join(words)
    quoted = re.match(r"""^\s*["'“‘](.+?)["'”’]\s+(.+)$""", joined)
    if quoted:
        return [(quoted.group(1).strip(), quoted.group(2).strip())]
    first = words[0]
    if "@" in first or re.fullmatch(r"#?\d{1,6}", first):
        return [(first, " ".join(words[1:]))]
    phone, rest = _phone_words(words)
    if phone:
        return [(phone, " ".join(rest))] if rest else []
    # A name: the longest ending that reads as a time is the time, the words before it the name.
    return [(" ".join(words[:cut]), " ".join(words[cut:])) for cut in range(1, len(words))]


#: Words made only of what people write phone numbers with.
_PHONE_WORD = re.compile(r"^[+(]?[\d().\-+]+$")
#: A national number has ten digits (US); stop taking words once there are that many.
_NATIONAL_DIGITS = 10


def _phone_words(words: list[str]) -> tuple[str | None, list[str]]:
    """Take the leading words that make up a phone number as people write it (`(312) 555-0142`)."""
    taken: list[str] = []
    digits = 0
    for word in words:
        if not _PHONE_WORD.match(word) or digits >= _NATIONAL_DIGITS:
            break
        taken.append(word)
        digits += sum(ch.isdigit() for ch in word)
    if digits < 7:
        return None, words
    return " ".join(taken), words[len(taken) :]


#: A clock time, or a span from now: a visit needs one, not just a day.
_HAS_TIME = re.compile(
    r"\d\s*(a\.?m\.?|p\.?m\.?)(\W|$)|\d:\d\d|\bnoon\b|\bmidnight\b|\bin\s+\d+\s*(h|hrs?|hours?|m|mins?|minutes?)\b",
    re.IGNORECASE,
)


def parse_when(text: str, *, now: datetime, zone: tzinfo) -> datetime | None:
    """Read a day and time ('tomorrow 3pm', '2026-12-01 10:00') in the business's zone; None if unreadable."""
    text = text.strip()
    if not text or not _HAS_TIME.search(text):
        return None
    zone_name = getattr(zone, "key", None) or str(zone)
    settings = {
        "TIMEZONE": zone_name,
        "TO_TIMEZONE": "UTC",
        "RETURN_AS_TIMEZONE_AWARE": True,
        "RELATIVE_BASE": now.astimezone(zone).replace(tzinfo=None),
        "PREFER_DATES_FROM": "future",
        "DATE_ORDER": "MDY",
    }
    import dateparser  # its languages and regexes: several MiB resident, loaded at the first date read

    parsed = dateparser.parse(text, languages=["en"], settings=settings)
    return parsed.astimezone(UTC) if parsed is not None else None


def _code(text: str) -> str:
    """Echo what a person typed inside `code` without letting it break out or ping anyone."""
    cleaned = text.replace("`", "'").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return cleaned[:80] + ("…" if len(cleaned) > 80 else "")


# --- the send marker in lead threads ------------------------------------------------------------


def message_for_lead(text: str) -> str | None:
    """The words to send when a thread message starts with the send marker; None for an internal note.

    The marker is matched exactly, in any case, after any spaces, and must stand alone as a word:
    `!Reply see you at 3` sends "see you at 3"; `!replying`, `reply` or `Note: !reply` send nothing.
    """
    stripped = (text or "").strip()
    if not stripped.lower().startswith(SEND_MARKER):
        return None
    rest = stripped[len(SEND_MARKER) :]
    if rest and not rest[0].isspace():
        return None
    return rest.strip()


_SLACK_LINK = re.compile(r"<([^<>|]*)(?:\|([^<>]*))?>")


def plain_text_from_slack(text: str) -> str:
    """Turn a Slack message's text into what a person meant to send: links, mentions and entities undone."""

    def readable(match: re.Match[str]) -> str:
        target, label = match.group(1), match.group(2)
        if target.startswith("@"):
            return "@" + (label or target[1:])
        if target.startswith("#"):
            return "#" + (label or target[1:])
        if target.startswith("!"):
            return "@" + (label or target[1:].split("^")[0])
        if label:
            return label
        return target.removeprefix("mailto:").removeprefix("tel:")

    unlinked = _SLACK_LINK.sub(readable, text or "")
    return unlinked.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
