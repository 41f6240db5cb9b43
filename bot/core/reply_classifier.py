"""Understand a lead's reply with editable rules: opt-out, auto-reply, booked, asks for a time, ...

Pure: the rules file is read once by `load_reply_rules` (its format is described at the top of
bot/core/reply_rules.yml); `classify_reply` is text in, an `Understanding` out, with no model and no
network. Regular expressions are compiled at load, so a reply is classified in well under a
millisecond unless it names a calendar date.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Any

from bot.core.config_errors import ConfigError, Problem
from bot.core.requested_time import DAY_ONLY_NOTE, RequestedTime, UnclearTime, read_requested_time
from bot.core.yaml_source import LineDict, LineList, load_yaml_file

#: The rules the bot ships with.
SHIPPED_REPLY_RULES = Path(__file__).resolve().parent / "reply_rules.yml"
CHANNELS = ("sms", "email")


class ReplyClass(StrEnum):
    """What a lead's reply means for their follow-up."""

    #: revoked consent: no more texts or emails on the channels it names (every one when it names none)
    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"  #: gave consent back (START, UNSTOP, or YES alone on SMS); a reply from a lead not opted out
    HELP = "help"  #: sent the carrier HELP keyword: answer with who we are and how to stop
    NOT_INTERESTED = "not_interested"  #: declined politely: the sales sequence ends, the lead is lost
    LATER = "later"  #: would rather hear from us later (the day-5 text's "2"): sales texts end, nurture starts
    BOOKED = "booked"  #: says they booked: the sequence ends and the team confirms the time
    ASKS_TIME = "asks_time"  #: asked for a day, time or opening: a person offers the slot
    ASKS_CALL = "asks_call"  #: asked to be called or booked ("call me", "book me in"): a call task at once
    QUESTION = "question"  #: asked something a person should answer
    AUTO_REPLY = "auto_reply"  #: an out-of-office, a bounce, a phone's fixed driving text: nobody wrote it
    PLAIN = "plain"  #: any other human reply ("ok thanks"), or one the rules are unsure of: a person takes over
    # Read only while the lead has a visit ahead (classify_reply's appointment_ahead):
    CANCEL_VISIT = "cancel_visit"  #: asks to cancel the visit: reminders pause, a person calls
    RESCHEDULE_VISIT = "reschedule_visit"  #: asks to move the visit (or cannot come): reminders pause, a person calls
    CONFIRM_VISIT = "confirm_visit"  #: confirms the visit ("yes", "see you then"): marked confirmed


#: When a reply fits several classes, the first here wins. Consent first; then what a person asks
#: for (a visit, a call, a time, an answer), because a request or a question must reach a person;
#: the destructive readings (a machine, later, not interested) come last and need certainty. An
#: email's machine marks (RFC 3834 headers, an "Automatic reply" subject) are certain, so they
#: rank right after opt-out; an auto-reply known only by its words ranks with the destructive ones.
PRIORITY = (
    ReplyClass.OPT_OUT,
    ReplyClass.CANCEL_VISIT,
    ReplyClass.RESCHEDULE_VISIT,
    ReplyClass.CONFIRM_VISIT,
    ReplyClass.OPT_IN,
    ReplyClass.HELP,
    ReplyClass.BOOKED,
    ReplyClass.ASKS_TIME,
    ReplyClass.ASKS_CALL,
    ReplyClass.QUESTION,
    ReplyClass.AUTO_REPLY,
    ReplyClass.LATER,
    ReplyClass.NOT_INTERESTED,
)
#: The readings that stop or silence the follow-up without a person: they need certainty, and an
#: `unsure_if` match (or a request, question or time, by PRIORITY) sends the reply to a person instead.
DESTRUCTIVE = frozenset({ReplyClass.OPT_OUT, ReplyClass.AUTO_REPLY, ReplyClass.LATER, ReplyClass.NOT_INTERESTED})
NO_RULE = "no rule matched"


@dataclass(frozen=True)
class Understanding:
    """What a reply means, which rule said so, and the time it asks for."""

    reply_class: ReplyClass
    #: The rule that matched, for the team to see ("keyword STOP", "phrase 'not interested'").
    rule: str
    #: Aware, in the lead's time zone, when the lead asked for a specific time (asks_time only).
    requested_time: datetime | None = None
    #: The words that named the time ("tomorrow at 3").
    requested_time_text: str | None = None
    #: The channels an opt-out ends: the one it came on for a carrier keyword or one that names it,
    #: every channel for one that names none ("stop contacting me").
    opt_out_channels: tuple[str, ...] = ()
    #: A time that is one of several or vague ("3pm or tuesday"): no requested_time, the candidates instead.
    unclear_time: UnclearTime | None = None
    #: Beside a visit reading, what else the lead asked a person for ("yes! do I need to bring my card?"
    #: confirms the visit and asks a question): the visit is acted on and a person answers the rest.
    also: Understanding | None = None


def understood(understanding: Understanding) -> dict[str, Any]:
    """What a stored message keeps of how it was read, for the team to see why (Message.details)."""
    details: dict[str, Any] = {"rule": understanding.rule, "requested_time_text": understanding.requested_time_text}
    if understanding.opt_out_channels:
        details["opt_out_channels"] = list(understanding.opt_out_channels)
    if (unclear := understanding.unclear_time) is not None:
        details["time_unclear"] = unclear.why
        details["time_candidates"] = [candidate.isoformat() for candidate in unclear.candidates]
    if (also := understanding.also) is not None:
        details["also"] = {"reply_class": also.reply_class.value, "rule": also.rule}
    return details


def also_of(details: Mapping[str, Any] | None) -> ReplyClass | None:
    """The second reading a stored message keeps beside its visit reading (see `understood`), if any."""
    also = (details or {}).get("also")
    if not isinstance(also, Mapping) or not isinstance(name := also.get("reply_class"), str):
        return None
    try:
        return ReplyClass(name)
    except ValueError:
        return None


#: How long the "why" of a reading may be where people read it (a Slack context line, `leads show`).
WHY_LIMIT = 300
_CHANNEL_WORDS = {"sms": "texts", "email": "emails"}


def explain_reading(classification: str | None, details: Mapping[str, Any] | None) -> str | None:
    """Say why a stored inbound message was read as it was: its class, the rule, and what that rule settled."""
    details = details or {}
    rule, read_as = details.get("rule"), details.get("read_as")
    if not classification and not rule and not read_as:
        return None
    parts = [f"read as: {classification or 'not classified'}" + (f" (rule: {rule})" if rule else "")]
    if channels := details.get("opt_out_channels"):
        parts.append("ends " + " and ".join(_CHANNEL_WORDS.get(c, c) for c in channels))
    if unclear := details.get("time_unclear"):
        parts.append(f'time unclear: "{details.get("requested_time_text") or ""}" ({unclear})')
    if isinstance(also := details.get("also"), Mapping):
        parts.append(f"also {also.get('reply_class')}" + (f" (rule: {also['rule']})" if also.get("rule") else ""))
    if read_as:
        parts.append(str(read_as))
    why = "; ".join(parts)
    return why if len(why) <= WHY_LIMIT else why[: WHY_LIMIT - 1] + "…"


# --- reading text the same way in rules and replies ------------------------------------------

_QUOTES = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201a": "'",
        "\u201b": "'",
        "\u2032": "'",
        "\u02bc": "'",
        "`": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u201e": '"',
        "\u2033": '"',
    }
)
# Emoji, pictographs, control and format characters (zero-width joiners): nothing anyone types a
# word with; they part words. Accents and other marks are dropped inside the word, so "arrêt",
# "número" and "llámame" read as the unaccented words people also type.
_DROPPED_CATEGORIES = frozenset({"So", "Sk", "Cc", "Cf", "Co", "Cn", "Cs"})
_MARKS = frozenset({"Mn", "Me"})
_WORD = re.compile(r"[^\W_]+")
#: Stands where an `unless` phrase was taken out, so the words around it never join up.
_GAP = "\x00"
_WORD_OR_GAP = re.compile(r"[^\W_]+|\x00")
_LONG_WORD = re.compile(r"[^\W\d_]{6,}")
#: Where one thing said ends and the next begins ("no more texts, email is fine").
_CLAUSE_BREAK = re.compile(r"[.,;:!?\n]+|\b(?:but|though|pero)\b")


def normalise(text: str) -> str:
    """Read text as the rules see it: lower case, straight quotes, no accents, apostrophes or emoji, single spaces."""
    text = unicodedata.normalize("NFKC", text).casefold().translate(_QUOTES).replace("'", "")
    if text.isascii():
        text = text.replace(_GAP, " ")
    else:
        text = "".join(_read_character(c) for c in unicodedata.normalize("NFKD", text))
    return " ".join(text.split())


def _read_character(character: str) -> str:
    category = unicodedata.category(character)
    if category in _MARKS:
        return ""
    return " " if category in _DROPPED_CATEGORIES else character


#: Lines phones and mail apps add below what a person wrote ("Sent from my iPhone"), and a
#: signature block after "-- ": never part of what the reply means.
_SIGNATURE = re.compile(
    r"(?:^|\n)[ \t>]*(?:sent from my\b|sent from (?:yahoo|outlook|aol|mail|gmail)\b|get outlook for\b"
    r"|sent via\b|enviado desde mi\b|envoy[ée] de mon\b|--[ \t]*(?:\n|$)).*\Z",
    re.IGNORECASE | re.DOTALL,
)
#: A sign-off line under a short reply ("STOP" then "Maria", "- John", "Thanks, Ana"): up to three
#: capitalised words, or words after a dash.
_SIGN_OFF_LINE = re.compile(r"^[ \t]*(?P<dash>[-–—~]+[ \t]*)?(?P<words>[^\W\d_]+(?:[ ,.]+[^\W\d_]+){0,2})[ \t.!]*$")


def without_signature(text: str) -> str:
    """Take off what the phone or mail app added below the words ("Sent from my iPhone", "-- " blocks)."""
    return _SIGNATURE.sub("", text).rstrip()


def _first_line_if_signed(text: str) -> str | None:
    """The first line of a reply whose other lines are only a sign-off (a name), else None."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not 2 <= len(lines) <= 3 or not all(_is_sign_off(line) for line in lines[1:]):
        return None
    return lines[0]


def _is_sign_off(line: str) -> bool:
    match = _SIGN_OFF_LINE.match(line)
    if match is None:
        return False
    return bool(match.group("dash")) or all(word[0].isupper() for word in _WORD.findall(match.group("words")))


def _phrase_key(phrase: str) -> str:
    return " ".join(_WORD.findall(normalise(phrase)))


class _Speller:
    """Read a word one typo away from a word the rules use as that word ("intrested" → "interested")."""

    MIN_LENGTH = 6

    def __init__(self, vocabulary: Iterable[str], *, real_words: Iterable[str] = ()):
        self._known = frozenset(vocabulary) | frozenset(real_words)
        self._by_deletion: dict[str, set[str]] = {}
        for word in self._known:
            if len(word) >= self.MIN_LENGTH and word.isalpha():
                for variant in {word, *_deletions(word)}:
                    self._by_deletion.setdefault(variant, set()).add(word)
        self._seen: dict[str, str] = {}

    def correct_text(self, text: str) -> str:
        """Correct every long word in normalised text."""
        return _LONG_WORD.sub(lambda match: self.correct(match.group()), text) if self._by_deletion else text

    def correct(self, word: str) -> str:
        """Read one word as the rules' word it misspells, or as itself."""
        if word in self._known:
            return word
        if (cached := self._seen.get(word)) is not None:
            return cached
        candidates = set(self._by_deletion.get(word, ()))
        for variant in _deletions(word):
            candidates |= self._by_deletion.get(variant, set())
        # Misspellings rarely change the first letter; "looked" must not read as "booked".
        close = sorted(c for c in candidates if c[0] == word[0] and _one_edit_apart(word, c))
        result = close[0] if close else word
        if len(self._seen) < 10_000:
            self._seen[word] = result
        return result


def _deletions(word: str) -> set[str]:
    return {word[:i] + word[i + 1 :] for i in range(len(word))}


def _one_edit_apart(a: str, b: str) -> bool:
    """Say whether one insertion, deletion, substitution or swap of neighbours turns a into b."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) > len(b):
        a, b = b, a
    start = 0
    while start < len(a) and a[start] == b[start]:
        start += 1
    if len(a) < len(b):
        return a[start:] == b[start + 1 :]
    rest = start + 1
    if a[rest:] == b[rest:]:
        return True
    return rest < len(a) and a[start] == b[rest] and a[rest] == b[start] and a[rest + 1 :] == b[rest + 1 :]


# --- the loaded rules --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Phrase:
    key: str  # normalised words, space separated
    written: str


@dataclass(frozen=True)
class _Pattern:
    regex: re.Pattern[str]
    written: str


@dataclass(frozen=True)
class _Header:
    name: str  # lower case
    value: _Pattern | None  # None: any value


@dataclass(frozen=True)
class _Unsure:
    """What makes a match of a destructive class unsure, so a person reads the reply instead."""

    phrases: tuple[_Phrase, ...] = ()
    patterns: tuple[_Pattern, ...] = ()
    #: The reply also names a day or time ("not interested, maybe next Friday").
    names_a_time: bool = False


@dataclass(frozen=True)
class SectionRules:
    """The loaded rules for one reply class."""

    reply_class: ReplyClass
    channels: frozenset[str] = frozenset(CHANNELS)
    keywords: Mapping[str, str] = field(default_factory=dict)  # normalised → as written
    texts: Mapping[str, str] = field(default_factory=dict)  # normalised words → as written
    phrases: tuple[_Phrase, ...] = ()
    patterns: tuple[_Pattern, ...] = ()
    #: Texts, phrases and patterns that count on one channel only (`sms_texts`, `email_phrases`, ...).
    channel_texts: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    channel_phrases: Mapping[str, tuple[_Phrase, ...]] = field(default_factory=dict)
    channel_patterns: Mapping[str, tuple[_Pattern, ...]] = field(default_factory=dict)
    unless: re.Pattern[str] | None = None
    with_a_time_phrases: tuple[_Phrase, ...] = ()
    with_a_time_patterns: tuple[_Pattern, ...] = ()
    min_words: int = 0
    subject_phrases: tuple[_Phrase, ...] = ()
    subject_patterns: tuple[_Pattern, ...] = ()
    headers: tuple[_Header, ...] = ()
    unsure: _Unsure = _Unsure()
    #: Words that name a channel in an opt-out ("texts" → sms): the channels it ends.
    channel_words: Mapping[str, tuple[_Phrase, ...]] = field(default_factory=dict)

    def match(self, reply: _Reply, *, with_a_time: bool = True) -> str | None:
        """Name the rule that puts the reply in this class, or None.

        `with_a_time=False` leaves out the rules that count only beside a time: beside a visit
        reading, a time is the visit's own ("yes, see you Friday at 3"), not a request for one.
        """
        if reply.channel not in self.channels:
            return None
        if (written := self.keywords.get(reply.words)) is not None:
            return f"keyword {written.upper()}"
        if reply.signed_words is not None and (written := self.keywords.get(reply.signed_words)) is not None:
            return f"keyword {written.upper()} (above a signature)"
        if rule := self.match_envelope(reply):
            return rule
        texts = self.channel_texts.get(reply.channel, {})
        if (written := self.texts.get(reply.words) or texts.get(reply.words)) is not None:
            return f"text '{written}'"
        text = self._without_exceptions(reply.text)
        phrases = self.phrases + self.channel_phrases.get(reply.channel, ())
        patterns = self.patterns + self.channel_patterns.get(reply.channel, ())
        if phrases or patterns:
            if rule := self._match_text(text, phrases, patterns):
                return rule
        if with_a_time and (self.with_a_time_phrases or self.with_a_time_patterns):
            found = reply.requested_time()
            if found is not None:
                remainder = self._without_exceptions(reply.text_without(found))
                if rule := self._match_text(remainder, self.with_a_time_phrases, self.with_a_time_patterns):
                    return f"{rule} with a time"
        return None

    def match_envelope(self, reply: _Reply) -> str | None:
        """Name the header or subject rule that puts an email in this class, or None."""
        if reply.channel not in self.channels:
            return None
        return self._match_headers(reply.headers) or self._match_subject(reply.subject)

    def why_unsure(self, reply: _Reply) -> str | None:
        """Say what in the reply makes this class's reading unsure, or None when it is certain."""
        text = self._without_exceptions(reply.text)
        padded = f" {' '.join(_WORD_OR_GAP.findall(text))} "
        for phrase in self.unsure.phrases:
            if f" {phrase.key} " in padded:
                return f"'{phrase.written}'"
        for pattern in self.unsure.patterns:
            if pattern.regex.search(text):
                return f"pattern '{pattern.written}'"
        if self.unsure.names_a_time and (found := reply.requested_time()) is not None:
            return f"it names a time ({found.text})"
        return None

    def named_channels(self, reply: _Reply) -> tuple[str, ...]:
        """The channels named in the part of the reply that opts out, in CHANNELS order.

        Only the clauses that say it count: "No more texts, email is fine" names texts.
        """
        phrases = self.phrases + self.channel_phrases.get(reply.channel, ())
        patterns = self.patterns + self.channel_patterns.get(reply.channel, ())
        clauses = [
            clause
            for clause in _CLAUSE_BREAK.split(reply.text)
            if self._match_text(self._without_exceptions(clause), phrases, patterns)
        ]
        padded = f" {' '.join(_WORD.findall(' '.join(clauses)))} " if clauses else f" {reply.words} "
        return tuple(
            channel
            for channel in CHANNELS
            if any(f" {phrase.key} " in padded for phrase in self.channel_words.get(channel, ()))
        )

    def without_matches(self, text: str) -> str:
        """Take this section's phrases and patterns out of normalised text (what is left was said besides)."""
        if self._phrase_search is not None:
            text = self._phrase_search.sub(_GAP, text)
        for pattern in self.patterns:
            text = pattern.regex.sub(_GAP, text)
        return text

    @cached_property
    def _phrase_search(self) -> re.Pattern[str] | None:
        return _unless_regex(self.phrases)

    def _without_exceptions(self, text: str) -> str:
        return self.unless.sub(_GAP, text) if self.unless is not None else text

    def _match_text(self, text: str, phrases: tuple[_Phrase, ...], patterns: tuple[_Pattern, ...]) -> str | None:
        words = _WORD_OR_GAP.findall(text)
        if self.min_words and sum(word != _GAP for word in words) < self.min_words:
            return None
        padded = f" {' '.join(words)} "
        for phrase in phrases:
            if f" {phrase.key} " in padded:
                return f"phrase '{phrase.written}'"
        for pattern in patterns:
            if pattern.regex.search(text):
                return f"pattern '{pattern.written}'"
        return None

    def _match_subject(self, subject: str | None) -> str | None:
        if not subject:
            return None
        padded = f" {' '.join(_WORD.findall(subject))} "
        for phrase in self.subject_phrases:
            if f" {phrase.key} " in padded:
                return f"subject phrase '{phrase.written}'"
        for pattern in self.subject_patterns:
            if pattern.regex.search(subject):
                return f"subject pattern '{pattern.written}'"
        return None

    def _match_headers(self, headers: Mapping[str, str]) -> str | None:
        for header in self.headers:
            value = headers.get(header.name)
            if value is not None and (header.value is None or header.value.regex.search(value)):
                return f"header {header.name}: {value[:60]}"
        return None


@dataclass(frozen=True)
class ReplyRules:
    """Reply rules as loaded: one section per class, in priority order."""

    path: Path
    sections: tuple[SectionRules, ...]
    speller: _Speller = field(repr=False, compare=False)


class _Reply:
    """One reply, read once and shared by every section's rules."""

    def __init__(
        self,
        text: str,
        *,
        channel: str,
        speller: _Speller,
        now: datetime,
        lead_timezone: str,
        headers: Mapping[str, str] | None,
        subject: str | None,
    ):
        self.raw = without_signature(text)
        self.channel = channel
        self.speller = speller
        self.text = speller.correct_text(normalise(self.raw))
        self.words = " ".join(_WORD.findall(self.text))
        first_line = _first_line_if_signed(self.raw)
        #: The words of the first line when the lines under it are only a sign-off ("STOP" / "Maria").
        self.signed_words = " ".join(_WORD.findall(normalise(first_line))) if first_line is not None else None
        self.subject = normalise(subject) if subject else None
        self.headers = {name.strip().lower(): str(value).strip().lower() for name, value in (headers or {}).items()}
        self._now = now
        self._timezone = lead_timezone
        self._requested: RequestedTime | None | bool = False

    def requested_time(self) -> RequestedTime | None:
        """Find the time the reply names, once."""
        if self._requested is False:
            self._requested = read_requested_time(self.raw, now=self._now, timezone=self._timezone)
        return self._requested  # type: ignore[return-value]  # False (not read yet) was replaced just above

    def text_without(self, found: RequestedTime) -> str:
        """Read the reply with the words that named the time taken out."""
        pieces, last = [], 0
        for start, end in found.spans:
            pieces.append(self.raw[last:start])
            last = end
        pieces.append(self.raw[last:])
        return self.speller.correct_text(normalise(" ".join(pieces)))


#: Classes that mean something only about a visit still ahead.
VISIT_CLASSES = frozenset({ReplyClass.CANCEL_VISIT, ReplyClass.RESCHEDULE_VISIT, ReplyClass.CONFIRM_VISIT})
#: Classes whose call task is about a time: the time the lead named travels with them.
TIMED_CLASSES = frozenset({ReplyClass.ASKS_TIME, ReplyClass.ASKS_CALL, ReplyClass.RESCHEDULE_VISIT})
#: The polite endings: with a visit ahead they are about the visit, and a person asks what they mean.
PUTS_OFF = frozenset({ReplyClass.LATER, ReplyClass.NOT_INTERESTED})
#: What a person must answer that may come beside a visit reading, in priority order.
ALSO_CLASSES = (ReplyClass.ASKS_TIME, ReplyClass.ASKS_CALL, ReplyClass.QUESTION)
#: Where one thing said ends and the next begins, for finding a request beside a visit reading. A dot
#: or comma between digits is part of a time ("10.30"), not a break.
_SAYING_BREAK = re.compile(r"(?<=[!?;\n])|(?<=(?<!\d)[.,])(?!\d)")


def classify_reply(
    text: str,
    *,
    rules: ReplyRules,
    channel: str,
    now: datetime,
    lead_timezone: str,
    headers: Mapping[str, str] | None = None,
    subject: str | None = None,
    appointment_ahead: bool = False,
    visit_at: datetime | None = None,
) -> Understanding:
    """Say what a lead's reply means, by the first class in priority order whose rules match.

    The visit classes are read only when `appointment_ahead` (the lead has a visit booked and has
    not opted out on this channel); they come before opt-in so "yes" to a reminder confirms it.
    A confirmation that names another time than the visit's (`visit_at`): "yes see you at 4" for a
    visit at 3 is no confirmation of 3, and it is held for a person to ask, as a move would be.
    A destructive reading the rules are unsure of (`unsure_if`) is a plain reply: a person reads it.
    """
    if channel not in CHANNELS:
        raise ValueError(f"channel must be one of {', '.join(CHANNELS)}, not {channel!r}")
    reply = _Reply(
        text,
        channel=channel,
        speller=rules.speller,
        now=now,
        lead_timezone=lead_timezone,
        headers=headers,
        subject=subject,
    )
    for section in rules.sections:
        if section.reply_class == ReplyClass.OPT_OUT and (rule := section.match(reply)):
            # A carrier keyword ends the channel it came on, and so does a pattern anchored at the
            # start of the reply (a keyword with "please" or a sign-off: "ALTO por favor", "STOP - Jen");
            # words end what they name, or everything when they name nothing.
            as_keyword = rule.startswith(("keyword", "pattern '^"))
            channels = (channel,) if as_keyword else (section.named_channels(reply) or CHANNELS)
            return Understanding(ReplyClass.OPT_OUT, rule, opt_out_channels=channels)
    for section in rules.sections:
        if section.reply_class == ReplyClass.AUTO_REPLY and (rule := section.match_envelope(reply)):
            return Understanding(ReplyClass.AUTO_REPLY, rule)
    for section in rules.sections:
        if section.reply_class == ReplyClass.OPT_OUT:
            continue
        if section.reply_class in VISIT_CLASSES and not appointment_ahead:
            continue
        if rule := section.match(reply):
            if section.reply_class in DESTRUCTIVE and (unsure := section.why_unsure(reply)):
                return Understanding(
                    ReplyClass.PLAIN, f"{section.reply_class} by {rule}, but {unsure}: unsure, so a person reads it"
                )
            if section.reply_class in PUTS_OFF and appointment_ahead:
                # With a visit booked, "not interested any more" calls the visit off: held for a person,
                # never a lead marked lost with its visit still on the calendar.
                return Understanding(
                    ReplyClass.CANCEL_VISIT,
                    f"{section.reply_class} by {rule}, with a visit booked: held for a person to ask",
                )
            if section.reply_class in TIMED_CLASSES and (found := reply.requested_time()) is not None:
                reading = Understanding(section.reply_class, rule, found.when, found.text, unclear_time=found.unclear)
            else:
                reading = Understanding(section.reply_class, rule)
            if section.reply_class in VISIT_CLASSES:
                reading = _with_what_else(reading, rules, text, channel=channel, now=now, lead_timezone=lead_timezone)
                return _held_if_another_time(reading, reply, visit_at)
            return reading
    return Understanding(ReplyClass.PLAIN, NO_RULE)


def _held_if_another_time(reading: Understanding, reply: _Reply, visit_at: datetime | None) -> Understanding:
    """A confirmation whose words name a time that is not the visit's is a move to ask about, never a yes."""
    if reading.reply_class != ReplyClass.CONFIRM_VISIT or reading.also is not None or visit_at is None:
        return reading
    found = reply.requested_time()
    if found is None or not found.contradicts(visit_at):
        return reading
    return Understanding(
        ReplyClass.RESCHEDULE_VISIT,
        f'{reading.rule}, but "{found.text.removesuffix(" " + DAY_ONLY_NOTE)}" is not the visit\'s time:'
        " held for a person to ask which",
        found.when,
        found.text,
        unclear_time=found.unclear,
    )


def _with_what_else(
    reading: Understanding, rules: ReplyRules, text: str, *, channel: str, now: datetime, lead_timezone: str
) -> Understanding:
    """Add to a visit reading what else the reply asks a person for: a question, a call, a time.

    A visit reading outranks the rest, so without this "yes! do I need to bring my card?" would
    confirm the visit and the question would reach nobody. Each thing said (sentence or comma
    clause) that is no visit reading of its own is read for a request; in one that only confirms,
    what is left once the confirming words are out ("yes do I need to bring my card") is read too.
    A move or cancel clause is not read further: "can we reschedule?" is the move, not a question.
    """
    visit_sections = [s for s in rules.sections if s.reply_class in VISIT_CLASSES]
    asks_sections = [s for s in rules.sections if s.reply_class in ALSO_CLASSES]
    confirm = next((s for s in visit_sections if s.reply_class == ReplyClass.CONFIRM_VISIT), None)
    for saying in _SAYING_BREAK.split(without_signature(text)):
        if not saying.strip():
            continue
        clause = _Reply(
            saying,
            channel=channel,
            speller=rules.speller,
            now=now,
            lead_timezone=lead_timezone,
            headers=None,
            subject=None,
        )
        matched = {s.reply_class for s in visit_sections if s.match(clause)}
        if matched - {ReplyClass.CONFIRM_VISIT}:
            continue
        if matched and confirm is not None:
            rest = " ".join(confirm.without_matches(clause.text).replace(_GAP, " ").split())
            clause = _Reply(
                rest,
                channel=channel,
                speller=rules.speller,
                now=now,
                lead_timezone=lead_timezone,
                headers=None,
                subject=None,
            )
        for section in asks_sections:
            if rule := section.match(clause, with_a_time=False):
                found = clause.requested_time() if section.reply_class in TIMED_CLASSES else None
                also = Understanding(
                    section.reply_class,
                    rule,
                    found.when if found else None,
                    found.text if found else None,
                    unclear_time=found.unclear if found else None,
                )
                if reading.requested_time is None and reading.unclear_time is None and found is not None:
                    # The time the call is about travels with the reply, whichever reading named it.
                    return replace(
                        reading,
                        requested_time=also.requested_time,
                        requested_time_text=also.requested_time_text,
                        unclear_time=also.unclear_time,
                        also=also,
                    )
                return replace(reading, also=also)
    return reading


# --- loading and checking the file -----------------------------------------------------------

#: The top-level list of real words that are one letter away from a rule's word ("massage" is not
#: a misspelt "message").
REAL_WORDS = "real_words"
#: Keys that hold texts, phrases or patterns for one channel only: `sms_texts`, `email_phrases`, ...
CHANNEL_KEYS = tuple(f"{channel}_{kind}" for channel in CHANNELS for kind in ("texts", "phrases", "patterns"))
SECTION_KEYS = (
    "keywords",
    "texts",
    "phrases",
    "patterns",
    *CHANNEL_KEYS,
    "unless",
    "with_a_time",
    "unsure_if",
    "min_words",
    "channels",
    "subject_phrases",
    "subject_patterns",
    "headers",
    "channel_words",
)
WITH_A_TIME_KEYS = ("phrases", "patterns")
UNSURE_KEYS = ("phrases", "patterns", "names_a_time")
# Words people reach for that difflib cannot guess.
_KEY_HINTS = {
    "words": "phrases",
    "contains": "phrases",
    "regex": "patterns",
    "regexes": "patterns",
    "except": "unless",
    "exceptions": "unless",
    "ignore": "unless",
    "not": "unless",
    "exact": "keywords",
    "subject": "subject_phrases",
    "subjects": "subject_phrases",
    "header": "headers",
    "channel": "channels",
    "only_on": "channels",
    "whole": "texts",
    "unsure": "unsure_if",
    "doubt": "unsure_if",
}
_SECTION_HINTS = {
    "stop": "opt_out",
    "unsubscribe": "opt_out",
    "start": "opt_in",
    "autoreply": "auto_reply",
    "out_of_office": "auto_reply",
    "no": "not_interested",
    "declined": "not_interested",
    "not_now": "later",
    "nurture": "later",
    "appointment": "booked",
    "time": "asks_time",
    "times": "asks_time",
}
_REGEX_FIX = r"check brackets and escape special characters with \ (\? for a question mark, \. for a dot)"


def load_reply_rules(path: Path | str | None = None) -> ReplyRules:
    """Read and check reply rules (the shipped ones when no path is given); raise ConfigError with every problem."""
    path = Path(path) if path is not None else SHIPPED_REPLY_RULES
    document = load_yaml_file(path)
    report = _Report(path)
    sections = _parse_document(document, report)
    _check_keywords_are_unique(sections, report)
    real_words = _real_words(document, report)
    if report.problems:
        raise ConfigError(sorted(report.problems, key=lambda p: p.line or 0))
    by_class = {built.reply_class: built for built, _ in sections}
    ordered = tuple(by_class[c] for c in PRIORITY if c in by_class)
    return ReplyRules(path, ordered, _Speller(_vocabulary(document), real_words=real_words))


class _Report:
    def __init__(self, path: Path):
        self.path = path
        self.problems: list[Problem] = []

    def add(self, line: int | None, message: str, fix: str = "") -> None:
        self.problems.append(Problem(self.path, line, message, fix))


def _parse_document(document: Any, report: _Report) -> list[tuple[SectionRules, LineDict]]:
    names = [c.value for c in PRIORITY]
    if document is None:
        report.add(None, "the file is empty", f"add sections such as {', '.join(names[:3])}")
        return []
    if not isinstance(document, LineDict):
        report.add(
            getattr(document, "line", 1),
            "expected sections like `opt_out:` at the top level",
            "start each section at the left margin with its class name and a colon",
        )
        return []
    sections = []
    for name, body in document.items():
        line = document.line_of(name)
        if name == REAL_WORDS:
            continue
        if name == ReplyClass.PLAIN.value:
            report.add(
                line, "plain takes no rules: it is what is left when nothing else matches", "remove the plain section"
            )
            continue
        if name not in names:
            report.add(
                line,
                f"unknown reply class {name!r}",
                _suggest(
                    str(name), [*names, REAL_WORDS], _SECTION_HINTS, f"use one of: {', '.join(names)} or {REAL_WORDS}"
                ),
            )
            continue
        if body is None:
            body = LineDict()
            body.line, body.key_lines = line, {}
        if not isinstance(body, LineDict):
            report.add(
                line,
                f"{name} should hold keys such as keywords: and phrases:",
                "indent the lists under the section name",
            )
            continue
        sections.append((_parse_section(ReplyClass(name), body, report), body))
    return sections


def _parse_section(reply_class: ReplyClass, body: LineDict, report: _Report) -> SectionRules:
    for key in body:
        if key not in SECTION_KEYS:
            report.add(
                body.line_of(key),
                f"{reply_class}: unknown key {key!r}",
                _suggest(str(key), SECTION_KEYS, _KEY_HINTS, f"use one of: {', '.join(SECTION_KEYS)}"),
            )
    where = str(reply_class)
    with_a_time = _with_a_time(body, where, report)
    unsure_if = _with_a_time(body, where, report, key="unsure_if", allowed=UNSURE_KEYS)
    unless = _phrases(body, "unless", where, report)
    if "unsure_if" in body and reply_class not in DESTRUCTIVE - {ReplyClass.OPT_OUT}:
        report.add(
            body.line_of("unsure_if"),
            f"{where}: unsure_if applies only to auto_reply, later and not_interested",
            "remove it here: other classes already reach a person",
        )
    if "channel_words" in body and reply_class != ReplyClass.OPT_OUT:
        report.add(
            body.line_of("channel_words"), f"{where}: channel_words applies only to opt_out", "move it under opt_out"
        )
    return SectionRules(
        reply_class=reply_class,
        channels=_channels(body, where, report),
        keywords={phrase.key: phrase.written for phrase in _phrases(body, "keywords", where, report)},
        texts={phrase.key: phrase.written for phrase in _phrases(body, "texts", where, report)},
        phrases=_phrases(body, "phrases", where, report),
        patterns=_patterns(body, "patterns", where, report),
        channel_texts={
            channel: {phrase.key: phrase.written for phrase in _phrases(body, f"{channel}_texts", where, report)}
            for channel in CHANNELS
        },
        channel_phrases={channel: _phrases(body, f"{channel}_phrases", where, report) for channel in CHANNELS},
        channel_patterns={channel: _patterns(body, f"{channel}_patterns", where, report) for channel in CHANNELS},
        unsure=_Unsure(
            _phrases(unsure_if, "phrases", f"{where} unsure_if", report),
            _patterns(unsure_if, "patterns", f"{where} unsure_if", report),
            _flag(unsure_if, "names_a_time", f"{where} unsure_if", report),
        ),
        channel_words=_channel_words(body, where, report),
        unless=_unless_regex(unless),
        with_a_time_phrases=_phrases(with_a_time, "phrases", f"{where} with_a_time", report),
        with_a_time_patterns=_patterns(with_a_time, "patterns", f"{where} with_a_time", report),
        min_words=_min_words(body, where, report),
        subject_phrases=_phrases(body, "subject_phrases", where, report),
        subject_patterns=_patterns(body, "subject_patterns", where, report),
        headers=_headers(body, where, report),
    )


def _strings(body: LineDict, key: str, where: str, report: _Report) -> list[tuple[str, int]]:
    """Read a list of words (a single string is a list of one), each with its line."""
    value = body.get(key)
    line = body.line_of(key)
    if value is None:
        return []
    if isinstance(value, str):
        return [(value, line)]
    if not isinstance(value, LineList):
        report.add(line, f"{_at(where, key)}: expected a list", "put each entry on its own line, starting with '- '")
        return []
    items = []
    for index, item in enumerate(value):
        item_line = value.line_of(index)
        if isinstance(item, bool):
            report.add(
                item_line,
                f"{_at(where, key)}: YAML reads an unquoted yes/no/on/off/true/false as "
                f"{str(item).lower()}, not as a word",
                "put the word in quotes: 'yes'",
            )
        elif isinstance(item, (str, int, float)):
            items.append((str(item), item_line))
        else:
            report.add(
                item_line,
                f"{_at(where, key)}: each entry should be a word or phrase, not a list or mapping",
                "write one phrase per line after '- '",
            )
    return items


def _at(where: str, key: str) -> str:
    return f"{where} {key}".strip()


def _phrases(body: LineDict, key: str, where: str, report: _Report) -> tuple[_Phrase, ...]:
    phrases = []
    for written, line in _strings(body, key, where, report):
        phrase_key = _phrase_key(written)
        if not phrase_key:
            report.add(
                line,
                f"{_at(where, key)}: {written!r} has no letters or digits to match",
                "write words; emoji and punctuation are ignored when matching (use patterns for '?')",
            )
            continue
        phrases.append(_Phrase(phrase_key, written))
    return tuple(phrases)


def _patterns(body: LineDict, key: str, where: str, report: _Report) -> tuple[_Pattern, ...]:
    found = (_compile(written, line, _at(where, key), report) for written, line in _strings(body, key, where, report))
    return tuple(pattern for pattern in found if pattern is not None)


def _compile(written: str, line: int, where: str, report: _Report) -> _Pattern | None:
    """Compile one pattern, or report why it cannot work."""
    try:
        regex = re.compile(written)
    except re.error as error:
        report.add(
            line,
            f"{where}: {written!r} is not a valid regular expression ({error.msg} at position {error.pos})",
            _REGEX_FIX,
        )
        return None
    literal = re.sub(r"\\.|\(\?P?<[^>]*>|\(\?P=[^)]*\)", "", written)
    if "'" in literal or any(c.isupper() for c in literal):
        report.add(
            line,
            f"{where}: {written!r} can never match: patterns see text lower-cased and without apostrophes",
            "write it in lower case without ' (dont, not Don't)",
        )
        return None
    return _Pattern(regex, written)


def _unless_regex(phrases: tuple[_Phrase, ...]) -> re.Pattern[str] | None:
    """Build one search for all of a section's `unless` phrases, on whole words."""
    if not phrases:
        return None
    alternatives = sorted((r"[\W_]+".join(map(re.escape, p.key.split())) for p in phrases), key=len, reverse=True)
    return re.compile(rf"(?<![^\W_])(?:{'|'.join(alternatives)})(?![^\W_])")


def _with_a_time(
    body: LineDict,
    where: str,
    report: _Report,
    *,
    key: str = "with_a_time",
    allowed: tuple[str, ...] = WITH_A_TIME_KEYS,
) -> LineDict:
    """Read a nested block of phrases and patterns (`with_a_time`, `unsure_if`); a bare list is phrases."""
    value = body.get(key)
    if isinstance(value, LineList):  # a bare list: phrases
        wrapped = LineDict(phrases=value)
        wrapped.line, wrapped.key_lines = value.line, {"phrases": value.line}
        return wrapped
    if value is None or not isinstance(value, LineDict):
        if value is not None:
            report.add(
                body.line_of(key),
                f"{where} {key}: expected {' and '.join(k + ':' for k in allowed)}",
                f"indent {', '.join(f'`{k}:`' for k in allowed)} under {key}",
            )
        empty = LineDict()
        empty.line, empty.key_lines = body.line_of(key), {}
        return empty
    for inner in value:
        if inner not in allowed:
            report.add(
                value.line_of(inner),
                f"{where} {key}: unknown key {inner!r}",
                f"use {' or '.join(k + ':' for k in allowed)}",
            )
    return value


def _flag(body: LineDict, key: str, where: str, report: _Report) -> bool:
    value = body.get(key, False)
    if not isinstance(value, bool):
        report.add(body.line_of(key), f"{where} {key}: expected true or false, not {value!r}", "write true or false")
        return False
    return value


def _channel_words(body: LineDict, where: str, report: _Report) -> dict[str, tuple[_Phrase, ...]]:
    value = body.get("channel_words")
    if value is None:
        return {}
    if not isinstance(value, LineDict):
        report.add(
            body.line_of("channel_words"),
            f"{where} channel_words: expected sms: and email: lists",
            "indent `sms:` and `email:` lists of words under channel_words",
        )
        return {}
    words = {}
    for channel in value:
        if channel not in CHANNELS:
            report.add(
                value.line_of(channel), f"{where} channel_words: unknown channel {channel!r}", "use sms or email"
            )
            continue
        words[channel] = _phrases(value, channel, f"{where} channel_words", report)
    return words


def _channels(body: LineDict, where: str, report: _Report) -> frozenset[str]:
    if "channels" not in body:
        return frozenset(CHANNELS)
    channels = set()
    for written, line in _strings(body, "channels", where, report):
        if written.strip().lower() not in CHANNELS:
            report.add(line, f"{where} channels: unknown channel {written!r}", "use sms, email or both")
        else:
            channels.add(written.strip().lower())
    return frozenset(channels)


def _min_words(body: LineDict, where: str, report: _Report) -> int:
    value = body.get("min_words", 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        report.add(
            body.line_of("min_words"),
            f"{where} min_words: expected a whole number, not {value!r}",
            "write a number such as 2",
        )
        return 0
    return value


def _headers(body: LineDict, where: str, report: _Report) -> tuple[_Header, ...]:
    value = body.get("headers")
    if value is None:
        return ()
    if not isinstance(value, LineDict):
        report.add(
            body.line_of("headers"),
            f"{where} headers: expected header names with patterns",
            "write `x-autoreply:` (any value) or `precedence: '^bulk$'`, one per line",
        )
        return ()
    headers = []
    for name, pattern in value.items():
        line = value.line_of(name)
        if pattern is None:
            headers.append(_Header(str(name).strip().lower(), None))
            continue
        if (compiled := _compile(str(pattern), line, f"{where} header {name}", report)) is not None:
            headers.append(_Header(str(name).strip().lower(), compiled))
    return tuple(headers)


def _real_words(document: Any, report: _Report) -> frozenset[str]:
    if not isinstance(document, LineDict) or REAL_WORDS not in document:
        return frozenset()
    return frozenset(phrase.key for phrase in _phrases(document, REAL_WORDS, "", report) if " " not in phrase.key)


def _check_keywords_are_unique(sections: list[tuple[SectionRules, LineDict]], report: _Report) -> None:
    owner: dict[tuple[str, str], ReplyClass] = {}
    for section, body in sections:
        for key in section.keywords:
            for channel in section.channels:
                other = owner.setdefault((key, channel), section.reply_class)
                if other != section.reply_class:
                    report.add(
                        body.line_of("keywords"),
                        f"keyword {key!r} is in both {other} and {section.reply_class} (on {channel})",
                        "keep each keyword in one section",
                    )


def _vocabulary(document: Any) -> set[str]:
    """Collect the words the rules use, so a reply's misspellings are read as them."""
    words: set[str] = set()
    stack = [document]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(
                v
                for k, v in item.items()
                if not str(k).endswith("patterns") and k not in ("headers", "channels", REAL_WORDS)
            )
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            words.update(_WORD.findall(normalise(item)))
    return words


def _suggest(word: str, choices: Iterable[str], hints: Mapping[str, str], otherwise: str) -> str:
    if word.lower() in hints:
        return f"did you mean {hints[word.lower()]!r}?"
    close = difflib.get_close_matches(word.lower(), list(choices), n=1)
    return f"did you mean {close[0]!r}?" if close else otherwise
