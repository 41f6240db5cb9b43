"""The business a bot works for, read from business.yml and checked whole before anything is sent.

The file format is described at the top of sequences/business.yml. A deployment of many businesses
reads a folder of them (`load_business_folder`): each `<slug>.yml` is shaped the same, plus its own
Slack channel, SMS sender, email addresses and webhook secrets as grouped keys (`slack:`, `sms:`,
`email:`, `webhooks:`) whose values may be `${ENV_NAME}` references to the environment.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime, time
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import phonenumbers

from bot.core.config_errors import ConfigError, Problem
from bot.core.contacts import InvalidPhone, normalize_phone
from bot.core.ports import EmailFrom, SmsFrom
from bot.core.yaml_source import LineDict, LineList, load_yaml_file

DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_FULL_DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
DEFAULT_SEND_WINDOW = "Mon-Sat 08:00-20:00"
MIDNIGHT = time(0, 0)
#: The slug of the one business a single business.yml describes: every row stored before businesses had
#: slugs belongs to it, and a deployment of one clinic never has to name it.
SINGLE_BUSINESS_SLUG = "main"
#: A business's key in the database and in URLs: its file's name in a folder of business files.
SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
SLUG_RULE = "lowercase letters, digits and dashes, starting and ending with a letter or digit (e.g. lakeside-chiro)"

KEYS = (
    "name",
    "timezone",
    "phone",
    "address",
    "booking_link",
    "sequence",
    "send_window",
    "closed",
    "default_region",
    "review_link",
    "after_visit",
)
REQUIRED_KEYS = ("name", "timezone", "phone", "address", "booking_link", "sequence")
#: What a business file in a folder (FOLLOWUP_BUSINESSES) says that one business.yml takes from the environment.
GROUP_KEYS: dict[str, tuple[str, ...]] = {
    "slack": ("channel", "on_call", "admins"),
    "sms": ("from_number", "messaging_service_sid"),
    "email": ("from_address", "from_name", "reply_to", "inbound_address"),
    "webhooks": ("lead_token", "booking_token", "calendly_signing_key", "calcom_secret"),
}
#: The environment variables one business.yml takes each group from instead.
_GROUP_ENVIRONMENT = {
    "slack": "SLACK_LEADS_CHANNEL, SLACK_ONCALL and SLACK_ADMINS",
    "sms": "TWILIO_FROM_NUMBER or TWILIO_MESSAGING_SERVICE_SID",
    "email": "SENDGRID_FROM_EMAIL and SENDGRID_REPLY_TO",
    "webhooks": "LEAD_WEBHOOK_TOKEN, BOOKING_WEBHOOK_TOKEN, CALENDLY_WEBHOOK_SIGNING_KEY and CALCOM_WEBHOOK_SECRET",
}
FOLDER_KEYS = KEYS + tuple(GROUP_KEYS)
_ENV_REFERENCE = re.compile(r"\$\{([^}]*)\}")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
CLOSED_KEYS = ("dates", "holidays")
# Words people reach for that difflib cannot guess.
_KEY_HINTS = {
    "tz": "timezone",
    "time_zone": "timezone",
    "zone": "timezone",
    "hours": "send_window",
    "opening_hours": "send_window",
    "window": "send_window",
    "booking_url": "booking_link",
    "url": "booking_link",
    "link": "booking_link",
    "playbook": "sequence",
    "postal_address": "address",
    "holidays": "closed",
    "closed_dates": "closed",
    "region": "default_region",
    "country": "default_region",
    "phone_number": "phone",
    "business_name": "name",
    "review_url": "review_link",
    "reviews": "review_link",
    "after_visit_playbook": "after_visit",
    "thank_you": "after_visit",
}
_CLOSED_KEY_HINTS = {
    "calendar": "holidays",
    "holiday": "holidays",
    "holiday_calendar": "holidays",
    "days": "dates",
    "date": "dates",
}
_WINDOW = re.compile(r"^\s*(?P<days>\S.*?)\s+(?P<start>\d{1,2}:\d{2})\s*-\s*(?P<end>\d{1,2}:\d{2})\s*$")
_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})$")
_WINDOW_EXAMPLES = "write it like `Mon-Sat 08:00-20:00`, `Mon,Wed,Fri 09:00-17:30` or `always`"


@dataclass(frozen=True)
class SendWindow:
    """The days and hours, in the business's time zone, when automated touches may go out."""

    #: Weekdays the window is open, 0 = Monday .. 6 = Sunday.
    days: frozenset[int]
    start: time
    #: Exclusive; 00:00 here is the midnight that ends the day (written 24:00).
    end: time
    #: Any day, any time: no business-hours limit at all.
    always: bool = False

    @classmethod
    def parse(cls, text: str) -> SendWindow:
        """Read 'Mon-Sat 08:00-20:00', 'Mon,Wed,Fri 08:00-12:00' or 'always'; raise ValueError saying why not."""
        if not isinstance(text, str):
            raise ValueError(f"send window {text!r} is not text; {_WINDOW_EXAMPLES}")
        if text.strip().lower() == "always":
            return cls(days=frozenset(range(7)), start=MIDNIGHT, end=MIDNIGHT, always=True)
        match = _WINDOW.match(text)
        if not match:
            raise ValueError(f"send window {text!r} needs days and hours; {_WINDOW_EXAMPLES}")
        days = _parse_days(match["days"])
        start = _parse_clock(match["start"], allow_24=False)
        end = _parse_clock(match["end"], allow_24=True)
        if end != MIDNIGHT and end <= start:
            # Windows across midnight would put texts in the small hours; nobody wants that.
            raise ValueError(f"send window {text!r} ends before it starts; the end must be later the same day")
        return cls(days=days, start=start, end=end)

    def describe(self) -> str:
        """Write the window the way business.yml does, e.g. 'Mon-Sat 08:00-20:00'."""
        if self.always:
            return "always"
        end = "24:00" if self.end == MIDNIGHT else self.end.strftime("%H:%M")
        return f"{_describe_days(self.days)} {self.start.strftime('%H:%M')}-{end}"


@dataclass(frozen=True)
class SlackPlace:
    """Where a business's leads live in Slack: its channel, who is on call, who may change settings."""

    #: A channel id (C0123…) or a #name; empty when Slack is not set up for this business.
    channel: str = ""
    #: The member or user group the call tasks and escalations mention.
    on_call: str = ""
    #: Slack user ids allowed the admin commands for this business.
    admins: tuple[str, ...] = ()


@dataclass(frozen=True)
class EmailPlace:
    """A business's email addresses: whom its emails come from, where replies go, where leads' emails arrive."""

    from_address: str = ""
    from_name: str = ""
    reply_to: str = ""
    #: The address SendGrid's inbound parse receives this business's leads' emails at.
    inbound_address: str = ""

    def sender(self, business_name: str) -> EmailFrom | None:
        """The ports' sender for this business's emails, or None when it names no from-address."""
        if not self.from_address:
            return None
        return EmailFrom(
            address=self.from_address, name=self.from_name or business_name, reply_to=self.reply_to or None
        )


@dataclass(frozen=True)
class WebhookKeys:
    """The secrets that prove an inbound webhook is this business's (each empty: that route refuses)."""

    lead_token: str = ""
    booking_token: str = ""
    calendly_signing_key: str = ""
    calcom_secret: str = ""


@dataclass(frozen=True)
class Business:
    """Who the bot speaks for, where it is, and when it may reach out."""

    name: str
    timezone: ZoneInfo
    #: E.164.
    phone: str
    #: Postal address: every email must carry it (CAN-SPAM).
    address: str
    booking_link: str
    #: As written: a sequence name (default) or a path to a playbook file.
    sequence: str
    send_window: SendWindow
    closed_dates: frozenset[date]
    #: A public-holiday calendar such as US or US-CA; None for none.
    holiday_calendar: str | None
    #: The business.yml this was read from.
    path: Path
    #: The region phone numbers without a country code are read in (ISO 3166, e.g. US).
    default_region: str = "US"
    #: Where a patient leaves a review (the after-visit playbook links to it).
    review_link: str = ""
    #: Whether sequences/after_visit.yml (thank-you + review request) follows an attended visit.
    after_visit: bool = False
    #: The business's key in the database and in URLs (lowercase letters, digits and dashes).
    slug: str = SINGLE_BUSINESS_SLUG
    slack: SlackPlace = SlackPlace()
    #: The number or Twilio messaging service its texts go out from (neither: it sends no texts).
    sms: SmsFrom = SmsFrom()
    email: EmailPlace = EmailPlace()
    webhooks: WebhookKeys = WebhookKeys()

    @property
    def email_sender(self) -> EmailFrom | None:
        """Whom this business's emails come from, as the email port takes it."""
        return self.email.sender(self.name)

    @property
    def sequence_ref(self) -> str | Path:
        """Name the playbook to load: a sequence name, or its file as an absolute path (from business.yml's folder)."""
        if not _looks_like_path(self.sequence):
            return self.sequence
        ref = Path(self.sequence).expanduser()
        return ref if ref.is_absolute() else (self.path.parent / ref).resolve()

    def closed_reason(self, day: date) -> str | None:
        """Say why the business is closed on a (business-local) day, or None when it is open."""
        if day in self.closed_dates:
            return "closed date"
        if self.holiday_calendar:
            return _holidays_of(self.holiday_calendar, day.year).get(day)
        return None

    def is_closed_on(self, day: date) -> bool:
        """Say whether a (business-local) day is a closed date or a public holiday of the calendar."""
        return self.closed_reason(day) is not None


def load_business(path: Path | str) -> Business:
    """Read and check business.yml; raise ConfigError listing every problem with its file, line and fix."""
    return _load(Path(path), slug=SINGLE_BUSINESS_SLUG, environ=None)


def load_folder_business(path: Path | str, environ: Mapping[str, str]) -> Business:
    """Read and check one `<slug>.yml` of a folder of business files, its `${ENV_NAME}` references from `environ`."""
    path = Path(path)
    if not SLUG.match(path.stem):
        raise ConfigError(
            [
                Problem(
                    path,
                    None,
                    f"{path.stem!r} cannot be a business's slug (its file's name)",
                    f"rename the file: {SLUG_RULE}",
                )
            ]
        )
    return _load(path, slug=path.stem, environ=environ)


def business_files(folder: Path | str) -> list[Path]:
    """The business files of a folder (FOLLOWUP_BUSINESSES), by name; ConfigError when there are none to serve."""
    folder = Path(folder)
    if not folder.is_dir():
        what = "is a file, not a folder" if folder.exists() else "does not exist"
        raise ConfigError(
            [
                Problem(
                    folder,
                    None,
                    f"the folder of business files {what}",
                    "point FOLLOWUP_BUSINESSES at a folder of <slug>.yml files",
                )
            ]
        )
    files = sorted(folder.glob("*.yml"))
    if not files:
        others = sorted(path.name for path in folder.glob("*.yaml"))
        hint = f" ({', '.join(others)} end in .yaml: name them .yml)" if others else ""
        raise ConfigError(
            [
                Problem(
                    folder,
                    None,
                    f"the folder of business files has no <slug>.yml in it{hint}",
                    "add one file per business, e.g. lakeside-chiro.yml (see the README, One clinic or many)",
                )
            ]
        )
    return files


def load_business_folder(folder: Path | str, environ: Mapping[str, str]) -> list[Business]:
    """Read every business file of a folder; raise ConfigError listing every problem of every file at once."""
    businesses, problems = read_business_folder(folder, environ)
    if problems:
        raise ConfigError(problems)
    return businesses


def read_business_folder(folder: Path | str, environ: Mapping[str, str]) -> tuple[list[Business], list[Problem]]:
    """The businesses of the files that read well, and every problem of the others (`check` reports both).

    ConfigError when the folder is missing or has no business file at all.
    """
    problems: list[Problem] = []
    businesses: list[Business] = []
    folder = Path(folder)
    for path in sorted(folder.glob("*.yaml")) if folder.is_dir() else []:
        problems.append(
            Problem(path, None, "business files end in .yml; this one is not read", f"rename it {path.stem}.yml")
        )
    for path in business_files(folder):
        try:
            businesses.append(load_folder_business(path, environ))
        except ConfigError as error:
            problems.extend(error.problems)
    return businesses, problems


def _load(path: Path, *, slug: str, environ: Mapping[str, str] | None) -> Business:
    """Read one business file; `environ` is None for one business.yml, whose groups come from the environment."""
    try:
        document = load_yaml_file(path)
    except ValueError as error:
        # PyYAML builds unquoted dates itself and lets a ValueError out for 2026-02-30.
        raise ConfigError(
            [Problem(path, None, f"a value is not valid: {error}", "check every date is real and written YYYY-MM-DD")]
        ) from error
    problems: list[Problem] = []

    def add_problem(line: int | None, message: str, fix: str) -> None:
        problems.append(Problem(path, line, message, fix))

    add: _Add = add_problem
    if document is None:
        add(None, "the file is empty", f"add {', '.join(REQUIRED_KEYS)} (see the sample sequences/business.yml)")
        raise ConfigError(problems)
    if not isinstance(document, LineDict):
        add(
            getattr(document, "line", 1),
            "business.yml must be a mapping of keys such as name and timezone",
            "start the file with `name: Your Business` (see the sample sequences/business.yml)",
        )
        raise ConfigError(problems)
    if environ is None:
        for group in GROUP_KEYS:
            if group in document:
                add(
                    document.line_of(group),
                    f"{group!r} is written per business only in a folder of business files (FOLLOWUP_BUSINESSES)",
                    f"for one business.yml, set {_GROUP_ENVIRONMENT[group]} in the environment instead",
                )
        # The groups are reported above, with what one business.yml uses instead.
        _check_keys(document, FOLDER_KEYS, _KEY_HINTS, "", add)
    else:
        _resolve_references(document, environ, add)
        # A value whose reference could not be resolved is reported once, for that, not again as empty.
        unresolved = {problem.line for problem in problems}
        add = _skipping_lines(add, unresolved)
        _check_keys(document, FOLDER_KEYS, _KEY_HINTS, "", add)
    for key in REQUIRED_KEYS:
        if key not in document:
            add(document.line, f"missing required key {key!r}", _REQUIRED_FIXES[key])

    name = _text(document, "name", add, "write the name leads know you by, e.g. `name: Lakeside Chiropractic`")
    zone = _parse_timezone(document, add)
    region = _parse_region(document, add)
    phone = _parse_phone(document, region or "US", add)
    address = _text(
        document, "address", add, "write the postal address, e.g. `address: 1200 Main St, Springfield, IL 62701`"
    )
    booking_link = _parse_booking_link(document, add)
    sequence = _text(
        document, "sequence", add, "write a sequence name (`sequence: default`) or a path to a playbook file"
    )
    window = _parse_send_window(document, add)
    closed_dates, calendar = _parse_closed(document, add)
    review_link = _parse_link(document, "review_link", add) if "review_link" in document else ""
    after_visit = _parse_after_visit(document, review_link, add)
    places = _parse_groups(document, path, region or "US", add) if environ is not None else None

    if problems:
        raise ConfigError(sorted(problems, key=lambda problem: problem.line or 0))
    assert zone is not None and window is not None and region is not None
    business = Business(
        name=name,
        timezone=zone,
        phone=phone,
        address=address,
        booking_link=booking_link,
        sequence=sequence,
        send_window=window,
        closed_dates=closed_dates,
        holiday_calendar=calendar,
        path=path,
        default_region=region,
        review_link=review_link,
        after_visit=after_visit,
        slug=slug,
    )
    if places is None:
        return business
    slack, sms, email, webhooks = places
    return replace(business, slack=slack, sms=sms, email=email, webhooks=webhooks)


_REQUIRED_FIXES = {
    "name": "add `name: Your Business`",
    "timezone": "add `timezone:` with an IANA name such as America/Chicago",
    "phone": 'add the number leads may call, e.g. `phone: "+13125550142"`',
    "address": "add the postal address; every email must carry it (CAN-SPAM)",
    "booking_link": "add `booking_link: https://...`, the page where leads book",
    "sequence": "add `sequence: default` (or the name of another playbook in the sequences folder)",
}

#: Collects one problem: add(line, message, fix).
_Add = Callable[[int | None, str, str], None]


def _check_keys(mapping: LineDict, valid: tuple[str, ...], hints: dict[str, str], where: str, add: _Add) -> None:
    for key in mapping:
        if key in valid:
            continue
        guess = hints.get(str(key).lower()) or next(iter(difflib.get_close_matches(str(key), valid, n=1)), None)
        fix = f"did you mean `{guess}`?" if guess else f"use one of: {', '.join(valid)}"
        add(mapping.line_of(key), f"unknown key {where}{key!r}", fix)


_GROUP_KEY_HINTS = {
    "slack": {"channel_id": "channel", "leads_channel": "channel", "oncall": "on_call", "admin": "admins"},
    "sms": {
        "number": "from_number",
        "from": "from_number",
        "phone": "from_number",
        "twilio_from_number": "from_number",
        "messaging_service": "messaging_service_sid",
    },
    "email": {"from": "from_address", "address": "from_address", "name": "from_name", "inbound": "inbound_address"},
    "webhooks": {"token": "lead_token", "calendly": "calendly_signing_key", "calcom": "calcom_secret"},
}
_GROUP_EXAMPLES = {
    "slack": 'slack:\n  channel: "#lakeside-leads"',
    "sms": 'sms:\n  from_number: "+13125550100"',
    "email": "email:\n  from_address: hello@lakeside.example",
    "webhooks": "webhooks:\n  lead_token: ${LAKESIDE_LEAD_TOKEN}",
}
_SECRET_KEYS = frozenset(GROUP_KEYS["webhooks"])


def _skipping_lines(add: _Add, lines: set[int | None]) -> _Add:
    def add_elsewhere(line: int | None, message: str, fix: str) -> None:
        if line not in lines:
            add(line, message, fix)

    return add_elsewhere


def _resolve_references(value: Any, environ: Mapping[str, str], add: _Add, line: int = 0) -> Any:
    """Replace every `${ENV_NAME}` in the document's text by the environment's value, in place."""
    if isinstance(value, LineDict):
        for key in list(value):
            value[key] = _resolve_references(value[key], environ, add, value.line_of(key))
        return value
    if isinstance(value, LineList):
        for index, item in enumerate(value):
            value[index] = _resolve_references(item, environ, add, value.line_of(index))
        return value
    if not isinstance(value, str) or "${" not in value:
        return value

    def substitute(match: re.Match[str]) -> str:
        name = match[1].strip()
        if not _ENV_NAME.match(name):
            add(line, f"${{{match[1]}}} is not an environment variable's name", "write it like ${LAKESIDE_LEAD_TOKEN}")
            return ""
        found = environ.get(name)
        if found is None:
            add(line, f"environment variable {name} is not set", f"set {name} in the environment (or .env) of the bot")
            return ""
        if not found.strip():
            add(line, f"environment variable {name} is empty", f"give {name} its value in the environment")
        return found

    return _ENV_REFERENCE.sub(substitute, value)


def _parse_groups(
    document: LineDict, path: Path, region: str, add: _Add
) -> tuple[SlackPlace, SmsFrom, EmailPlace, WebhookKeys]:
    """The grouped keys of a business file in a folder: its channel, senders, addresses and secrets."""
    values: dict[str, dict[str, Any]] = {}
    for group, keys in GROUP_KEYS.items():
        values[group] = {}
        if group not in document:
            continue
        mapping = document[group]
        line = document.line_of(group)
        if not isinstance(mapping, LineDict):
            what = "has nothing under it" if mapping is None else "must be a mapping"
            add(line, f"{group} {what}", f"indent its keys under it, e.g.\n{_GROUP_EXAMPLES[group]}")
            continue
        _check_keys(mapping, keys, _GROUP_KEY_HINTS[group], f"under {group}: ", add)
        for key in keys:
            if key not in mapping:
                continue
            where = mapping.line_of(key)
            raw = mapping[key]
            if raw is None or (isinstance(raw, str) and not raw.strip()):
                add(where, *_empty_value(path, where, group, key))
                continue
            values[group][key] = _group_value(group, key, raw, where, region, add)
    slack, sms, email, webhooks = values["slack"], values["sms"], values["email"], values["webhooks"]
    return (
        SlackPlace(channel=slack.get("channel", ""), on_call=slack.get("on_call", ""), admins=slack.get("admins", ())),
        SmsFrom(number=sms.get("from_number") or None, messaging_service_sid=sms.get("messaging_service_sid") or None),
        EmailPlace(**{key: email.get(key, "") for key in GROUP_KEYS["email"]}),
        WebhookKeys(**{key: webhooks.get(key, "") for key in GROUP_KEYS["webhooks"]}),
    )


def _empty_value(path: Path, line: int, group: str, key: str) -> tuple[str, str]:
    """Say why a grouped key has no value: often an unquoted `#channel`, which YAML reads as a comment."""
    try:
        written = path.read_text(encoding="utf-8").splitlines()[line - 1]
    except (OSError, UnicodeDecodeError, IndexError):
        written = ""
    after_key = written.partition(":")[2]
    if "#" in after_key:
        return (
            f"{group}.{key} is empty: YAML reads the unquoted {after_key.strip()} as a comment",
            f'put it in quotes: `{key}: "{after_key.strip()}"` (or use the channel id, e.g. C0123ABCD)',
        )
    return f"{group}.{key} has no value", f"write its value after `{key}:`, or leave the key out"


def _group_value(group: str, key: str, raw: Any, line: int, region: str, add: _Add) -> Any:
    """One grouped value, checked: the text to keep, or "" after adding the problem."""
    if group == "slack" and key == "admins":
        items = list(raw) if isinstance(raw, LineList) else str(raw).split(",")
        admins = tuple(str(item).strip() for item in items if str(item).strip())
        if not admins or any(" " in admin for admin in admins):
            add(
                line, f"slack.admins {raw!r} is not a list of Slack user ids", "write e.g. `admins: [U012ABC, U034DEF]`"
            )
            return ()
        return admins
    if group == "sms" and key == "from_number":
        # Unquoted, +13125550100 reads as a number and loses its +.
        text = str(raw) if isinstance(raw, int) and not isinstance(raw, bool) else raw
        try:
            return normalize_phone(text, region)
        except InvalidPhone as error:
            add(line, f"sms.from_number {error}", 'write the full number in quotes, e.g. `from_number: "+13125550100"`')
            return ""
    if not isinstance(raw, str):
        add(line, f"{group}.{key} {raw!r} must be text", f'write it in quotes, e.g. `{key}: "..."`')
        return ""
    text = raw.strip()
    if group == "sms" and key == "messaging_service_sid" and not re.fullmatch(r"MG[0-9a-fA-F]{32}", text):
        add(
            line,
            f"sms.messaging_service_sid {text!r} is not a Twilio messaging service SID",
            "copy it from Twilio: MG and 32 hex digits",
        )
        return ""
    if group == "email" and key != "from_name" and not re.fullmatch(r"[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+", text):
        add(line, f"email.{key} {text!r} is not an email address", f"write e.g. `{key}: hello@lakeside.example`")
        return ""
    if group == "slack" and key == "channel" and " " in text:
        add(
            line,
            f"slack.channel {text!r} is not a channel",
            'write its id (C0123ABCD) or its name in quotes ("#leads")',
        )
        return ""
    return text


def written_secrets(path: Path) -> list[Problem]:
    """The webhook secrets a business file writes out instead of naming an environment variable (`check` warns)."""
    try:
        document = load_yaml_file(path)
    except (ConfigError, ValueError):
        return []
    group = document.get("webhooks") if isinstance(document, LineDict) else None
    if not isinstance(group, LineDict):
        return []
    prefix = path.stem.upper().replace("-", "_")
    return [
        Problem(
            path,
            group.line_of(key),
            f"webhooks.{key} is written in the file",
            f"secrets belong in the environment: write `{key}: ${{{prefix}_{key.upper()}}}` and set that variable",
        )
        for key, value in group.items()
        if key in _SECRET_KEYS and isinstance(value, str) and value.strip() and not _ENV_REFERENCE.search(value)
    ]


def _text(document: LineDict, key: str, add: _Add, fix: str) -> str:
    if key not in document:
        return ""  # reported as missing already
    value = document[key]
    if not isinstance(value, str) or not value.strip():
        add(document.line_of(key), f"{key} must be non-empty text", fix)
        return ""
    return value.strip()


def _parse_timezone(document: LineDict, add: _Add) -> ZoneInfo | None:
    if "timezone" not in document:
        return None
    value = document["timezone"]
    line = document.line_of("timezone")
    if not isinstance(value, str) or not value.strip():
        add(line, "timezone must be an IANA time zone name", "write it like `timezone: America/Chicago`")
        return None
    name = value.strip()
    if "/" not in name and name.upper() != "UTC":
        # 'EST' and the like exist in the database but never change for daylight saving time.
        add(
            line,
            f"timezone {name!r} is an abbreviation that ignores daylight saving time",
            "use a region/city name such as America/New_York, America/Chicago, America/Denver or America/Los_Angeles",
        )
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        guesses = difflib.get_close_matches(name, sorted(available_timezones()), n=3)
        fix = f"did you mean {' or '.join(guesses)}?" if guesses else "use an IANA name such as America/Chicago"
        add(line, f"unknown timezone {name!r}", fix)
        return None


def _parse_region(document: LineDict, add: _Add) -> str | None:
    value = document.get("default_region", "US")
    region = value.strip().upper() if isinstance(value, str) else ""
    if region not in phonenumbers.SUPPORTED_REGIONS:
        add(
            document.line_of("default_region"),
            f"default_region {value!r} is not a country code phone numbers know",
            "use a two-letter country code such as US, CA or GB",
        )
        return None
    return region


def _parse_phone(document: LineDict, region: str, add: _Add) -> str:
    if "phone" not in document:
        return ""
    value = document["phone"]
    # Unquoted, +13125550142 reads as a number and loses its +.
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    try:
        return normalize_phone(text, region)
    except InvalidPhone as error:
        add(
            document.line_of("phone"), f"phone {error}", 'write the full number in quotes, e.g. `phone: "+13125550142"`'
        )
        return ""


def _parse_booking_link(document: LineDict, add: _Add) -> str:
    if "booking_link" not in document:
        return ""
    return _parse_link(document, "booking_link", add)


def _parse_link(document: LineDict, key: str, add: _Add) -> str:
    value = document[key]
    parts = urlsplit(value.strip()) if isinstance(value, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc or " " in value.strip():
        add(
            document.line_of(key),
            f"{key} {value!r} is not a web address",
            f"write the full address, e.g. `{key}: https://example.com/{key.split('_')[0]}`",
        )
        return ""
    return value.strip()


def _parse_after_visit(document: LineDict, review_link: str, add: _Add) -> bool:
    if "after_visit" not in document:
        return False
    value = document["after_visit"]
    line = document.line_of("after_visit")
    if not isinstance(value, bool):
        add(
            line,
            f"after_visit {value!r} must be true or false",
            "write `after_visit: true` to send the thank-you and review request after a visit, or `false`",
        )
        return False
    if value and not review_link:
        add(
            line,
            "after_visit is on but there is no review_link for its review request",
            "add `review_link: https://...` (your review page), or set `after_visit: false`",
        )
    return value


def _parse_send_window(document: LineDict, add: _Add) -> SendWindow | None:
    value = document.get("send_window", DEFAULT_SEND_WINDOW)
    try:
        return SendWindow.parse(value)
    except ValueError as error:
        add(document.line_of("send_window"), str(error), "e.g. `send_window: Mon-Sat 08:00-20:00`")
        return None


def _parse_closed(document: LineDict, add: _Add) -> tuple[frozenset[date], str | None]:
    value = document.get("closed")
    line = document.line_of("closed")
    if value is None:
        return frozenset(), None
    if isinstance(value, LineList):
        return _parse_dates(value, line, add), None
    if not isinstance(value, LineDict):
        add(
            line,
            "closed must be a list of dates or a mapping with dates and holidays",
            "write `closed: [2026-12-24]`, or `closed:` with `dates: [2026-12-24]` and `holidays: US` under it",
        )
        return frozenset(), None
    _check_keys(value, CLOSED_KEYS, _CLOSED_KEY_HINTS, "under closed: ", add)
    dates = value.get("dates")
    closed_dates: frozenset[date] = frozenset()
    if isinstance(dates, LineList):
        closed_dates = _parse_dates(dates, value.line_of("dates"), add)
    elif dates is not None:
        add(value.line_of("dates"), "closed dates must be a list", "write `dates: [2026-12-24, 2026-12-31]`")
    calendar = _parse_calendar(value.get("holidays"), value.line_of("holidays"), add)
    return closed_dates, calendar


def _parse_dates(items: LineList, line: int, add: _Add) -> frozenset[date]:
    found = set()
    for index, item in enumerate(items):
        try:
            # YAML reads an unquoted 2026-12-24 as a date already; a quoted one arrives as text.
            found.add(item if isinstance(item, date) and not isinstance(item, datetime) else date.fromisoformat(item))
        except (TypeError, ValueError):
            add(
                items.line_of(index),
                f"closed date {item!r} is not a date",
                "write dates as YYYY-MM-DD, e.g. 2026-12-24",
            )
    return frozenset(found)


def _parse_calendar(value: Any, line: int, add: _Add) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        add(
            line,
            f"holidays {value!r} is not a holiday calendar",
            "write a country code such as US, or US-CA for a state",
        )
        return None
    country, _, subdivision = value.strip().partition("-")
    country = country.upper()
    import holidays  # a few MiB resident: only for a business that names a holiday calendar

    supported = holidays.list_supported_countries()
    if country not in supported:
        guesses = difflib.get_close_matches(country, sorted(supported), n=3)
        fix = f"did you mean {' or '.join(guesses)}?" if guesses else "use a two-letter country code such as US or CA"
        add(line, f"no holiday calendar for country {country!r}", fix)
        return None
    if not subdivision:
        return country
    by_upper = {code.upper(): code for code in supported[country]}
    if subdivision.upper() not in by_upper:
        add(
            line,
            f"country {country!r} has no subdivision {subdivision!r} for holidays",
            f"use one of: {', '.join(f'{country}-{code}' for code in supported[country])}, or just {country}",
        )
        return None
    return f"{country}-{by_upper[subdivision.upper()]}"


@lru_cache(maxsize=64)
def _holidays_of(calendar: str, year: int) -> dict[date, str]:
    """Look up the public holidays of a calendar (US, US-CA) in one year, by date."""
    import holidays  # a few MiB resident: loaded on the first day a holiday calendar is asked about

    country, _, subdivision = calendar.partition("-")
    return dict(holidays.country_holidays(country, subdiv=subdivision or None, years=year).items())


def _looks_like_path(sequence: str) -> bool:
    return "/" in sequence or "\\" in sequence or sequence.endswith((".yml", ".yaml"))


def _parse_days(text: str) -> frozenset[int]:
    days: set[int] = set()
    for part in text.split(","):
        first, dash, last = part.strip().partition("-")
        start = _parse_day(first)
        if not dash:
            days.add(start)
            continue
        end = _parse_day(last)
        # Fri-Mon wraps through the weekend, as people mean it.
        days.update((start + offset) % 7 for offset in range((end - start) % 7 + 1))
    return frozenset(days)


def _parse_day(text: str) -> int:
    word = text.strip().lower()
    if len(word) >= 2:  # two letters already tell the days apart (Tu/Th, Sa/Su)
        for index, full in enumerate(_FULL_DAY_NAMES):
            if full.startswith(word):
                return index
    raise ValueError(f"{text.strip()!r} is not a day; use Mon, Tue, Wed, Thu, Fri, Sat, Sun")


def _parse_clock(text: str, *, allow_24: bool) -> time:
    hours, minutes = (int(n) for n in _CLOCK.match(text).groups())  # type: ignore[union-attr]  # the caller has checked the text against _CLOCK
    if allow_24 and (hours, minutes) == (24, 0):
        return MIDNIGHT
    if (hours, minutes) == (0, 0) and allow_24:
        raise ValueError("a window cannot end at 00:00; write the midnight that ends the day as 24:00")
    if hours > 23 or minutes > 59:
        raise ValueError(f"{text!r} is not a time of day; use 24-hour HH:MM such as 08:00 or 17:30")
    return time(hours, minutes)


def _describe_days(days: frozenset[int]) -> str:
    if len(days) == 7:
        return "Mon-Sun"
    runs: list[list[int]] = []
    for day in sorted(days):
        if runs and runs[-1][-1] == day - 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    parts = [DAY_NAMES[run[0]] if len(run) == 1 else f"{DAY_NAMES[run[0]]}-{DAY_NAMES[run[-1]]}" for run in runs]
    # Two-day runs read better as a list (Sat,Sun), longer ones as a range (Mon-Fri).
    parts = [p.replace("-", ",") if len(run) == 2 else p for p, run in zip(parts, runs, strict=True)]
    return ",".join(parts)
