"""Playbooks as data: a sequence of steps read from YAML and checked whole before anything is sent.

The file format is described at the top of sequences/default.yml.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from itertools import pairwise
from pathlib import Path
from typing import Any

from bot.core.config_errors import ConfigError, Problem
from bot.core.durations import InvalidDuration, format_duration, parse_duration
from bot.core.templating import TemplateProblem, TemplateRenderer, template_files
from bot.core.yaml_source import LineDict, LineList, load_yaml_file


class Channel(StrEnum):
    SMS = "sms"  #: a text message to the lead's phone
    EMAIL = "email"  #: an email with text and HTML parts, subject rotated among the step's options
    CALL_TASK = "call_task"  #: a call for a team member, posted to Slack with a call and voicemail script
    STAGE = "stage"  #: no message: the lead moves to another stage


class Condition(StrEnum):
    HAS_EMAIL = "has_email"  #: the lead gave an email address
    HAS_PHONE = "has_phone"  #: the lead gave a phone number
    NO_EMAIL = "no_email"  #: no email may reach the lead (none given, or opted out): the SMS fallback
    NO_REPLY_YET = "no_reply_yet"  #: the lead has not answered anything yet
    NOT_BOOKED = "not_booked"  #: the lead has no appointment booked


#: The lead stages a stage step may move to (the same values as bot.store.models.Stage, kept here so
#: loading a playbook needs no database code).
STAGES = ("new", "contacted", "engaged", "booked", "nurture", "lost", "opted_out")

TOP_LEVEL_KEYS = ("name", "label", "description", "steps")
STEP_KEYS = ("id", "label", "channel", "after", "before", "template", "subjects", "when", "stage")
#: The longest label people read on a card or in a thread line.
MAX_LABEL = 60
# Words people reach for that difflib cannot guess.
_KEY_HINTS = {
    "delay": "after",
    "wait": "after",
    "at": "after",
    "offset": "after",
    "if": "when",
    "conditions": "when",
    "only_if": "when",
    "unless": "when",
    "type": "channel",
    "via": "channel",
    "subject": "subjects",
    "name": "id",
    "title": "label",
    "display_name": "label",
}
_STEP_ID = re.compile(r"^[a-z0-9_]+$")
_SEQUENCE_NAME = re.compile(r"^[a-z0-9_-]+$")
_TEMPLATE_NAME = re.compile(r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$")
_STEPS_KEY = re.compile(r"^steps\s*:", re.MULTILINE)
#: The business settings file, which may sit among the playbooks but is not one.
BUSINESS_FILE = "business.yml"


@dataclass(frozen=True)
class Step:
    """One touch (or stage move) of a playbook, and when it falls due."""

    id: str
    channel: Channel
    #: Delay from enrollment; None when the step counts back from an appointment.
    after: timedelta | None
    #: Time before the appointment; None when the step counts from enrollment.
    before: timedelta | None
    template: str | None
    #: Email subject options (Jinja strings) in rotation order; empty for other channels.
    subjects: tuple[str, ...]
    conditions: tuple[Condition, ...]
    #: The stage a stage step moves the lead to.
    stage: str | None
    #: Where the step starts in its file, for messages about it.
    line: int
    #: What people read for this step ("Day-1 check-in text"); the id is for the files only.
    label: str = ""

    def __post_init__(self) -> None:
        if not self.label:
            object.__setattr__(self, "label", default_step_label(self.channel, self.after, self.before, self.stage))

    def subject_for(self, rotation: int) -> str:
        """Pick the subject for the n-th lead, so subjects take turns."""
        if not self.subjects:
            raise ValueError(f"step {self.id!r} has no subjects; only email steps do")
        return self.subjects[rotation % len(self.subjects)]


@dataclass(frozen=True)
class Sequence:
    """A playbook: its steps in the order they go out."""

    name: str
    path: Path
    description: str
    steps: tuple[Step, ...]
    #: What people read for this playbook ("Chiropractic follow-up"); the name is for files and settings.
    label: str = ""

    def __post_init__(self) -> None:
        if not self.label:
            object.__setattr__(self, "label", default_sequence_label(self.name))

    @property
    def relative_to_appointment(self) -> bool:
        """Say whether the steps count back from an appointment (before:) rather than from enrollment."""
        return any(step.before is not None for step in self.steps)

    def step(self, step_id: str) -> Step:
        """Find a step by its id."""
        for step in self.steps:
            if step.id == step_id:
                return step
        raise KeyError(f"sequence {self.name!r} has no step {step_id!r}")


_CHANNEL_NOUNS = {Channel.SMS: "text", Channel.EMAIL: "email", Channel.CALL_TASK: "call"}


def default_step_label(channel: Channel, after: timedelta | None, before: timedelta | None, stage: str | None) -> str:
    """A label for a step that has none, from its channel and day: 'Day-3 email', 'Same-day text', 'Move to nurture'."""
    if channel == Channel.STAGE:
        return f"Move to {(stage or 'another stage').replace('_', ' ')}"
    noun = _CHANNEL_NOUNS.get(channel, str(channel))
    if before is not None:
        return f"{noun.capitalize()} {format_duration(before)} before the appointment"
    days = (after or timedelta(0)).days
    return f"Same-day {noun}" if days == 0 else f"Day-{days} {noun}"


def default_sequence_label(name: str) -> str:
    """A label for a playbook that has none: its name in words ('appointment_reminders' -> 'Appointment reminders')."""
    words = re.sub(r"[-_]+", " ", name).strip()
    return words[:1].upper() + words[1:] if words else "Follow-up"


def step_label(sequence: Sequence | None, step_id: str) -> str:
    """What people read for a step of a sequence; a step gone from its playbook still reads as words."""
    if sequence is not None:
        for step in sequence.steps:
            if step.id == step_id:
                return step.label
    words = re.sub(r"[-_]+", " ", step_id).strip()
    return words[:1].upper() + words[1:] if words else "A touch"


@dataclass(frozen=True)
class LeadFacts:
    """What a step's conditions are decided on, as known at send time."""

    has_email: bool
    has_phone: bool
    has_replied: bool
    has_booked: bool
    sms_allowed: bool
    email_allowed: bool


def skip_reason(step: Step, facts: LeadFacts) -> str | None:
    """Say why a step should not run for this lead now, or None when it applies."""
    if step.channel == Channel.SMS:
        if not facts.has_phone:
            return "lead has no phone number"
        if not facts.sms_allowed:
            return "lead opted out of SMS (or the number cannot take texts)"
    elif step.channel == Channel.EMAIL:
        if not facts.has_email:
            return "lead has no email address"
        if not facts.email_allowed:
            return "lead opted out of email"
    elif step.channel == Channel.CALL_TASK and not facts.has_phone:
        return "lead has no phone number"
    for condition in step.conditions:
        if reason := _failed_condition(condition, facts):
            return reason
    return None


def _failed_condition(condition: Condition, facts: LeadFacts) -> str | None:
    match condition:
        case Condition.HAS_EMAIL:
            return None if facts.has_email else "lead has no email address"
        case Condition.HAS_PHONE:
            return None if facts.has_phone else "lead has no phone number"
        case Condition.NO_EMAIL:
            return "lead gets this by email instead" if facts.has_email and facts.email_allowed else None
        case Condition.NO_REPLY_YET:
            return "lead already replied" if facts.has_replied else None
        case Condition.NOT_BOOKED:
            return "lead already booked" if facts.has_booked else None


def list_sequences(sequences_dir: Path) -> list[str]:
    """Name the playbooks in a folder: the .yml files with steps, not business.yml."""
    names = []
    for path in sorted(Path(sequences_dir).glob("*.yml")):
        if path.name == BUSINESS_FILE:
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        # A text match, not a YAML parse: a playbook with a syntax error is still a playbook
        # and must be listed so `followup check` can report it.
        if _STEPS_KEY.search(text):
            names.append(path.stem)
    return names


def sequence_names(sequences_dir: Path, sequences_override: Path | None = None) -> list[str]:
    """The playbooks a business can use: the shared folder's and its own (sequences_override), by name."""
    names = list_sequences(sequences_dir)
    if sequences_override is not None and Path(sequences_override).is_dir():
        names = sorted(set(names) | set(list_sequences(sequences_override)))
    return names


def sequence_path(name_or_path: str, sequences_dir: Path) -> Path:
    """Turn a sequence name (default) or a path (clinic/playbook.yml) into the file to read."""
    if "/" in name_or_path or "\\" in name_or_path or name_or_path.endswith((".yml", ".yaml")):
        return Path(name_or_path)
    return Path(sequences_dir) / f"{name_or_path}.yml"


def load_sequence(
    name_or_path: str,
    *,
    sequences_dir: Path,
    templates_dir: Path,
    sequences_override: Path | None = None,
    templates_override: Path | None = None,
) -> Sequence:
    """Read and check a playbook; raise ConfigError listing every problem with its file, line and fix.

    The overrides are a business's own sequences/ and templates/ (a folder of business files): a file
    there wins over the shared one of the same name.
    """
    path = sequence_path(name_or_path, sequences_dir)
    if sequences_override is not None and path.parent == Path(sequences_dir):
        own = Path(sequences_override) / path.name
        path = own if own.is_file() else path
    if not path.is_file() and path.parent == Path(sequences_dir):
        known = ", ".join(sequence_names(sequences_dir, sequences_override)) or "none"
        raise ConfigError([Problem(path, None, f"no sequence named {name_or_path!r}", f"use one of: {known}")])
    document = load_yaml_file(path)
    report = _Report(path, TemplateRenderer(Path(templates_dir), overrides=templates_override))
    sequence = _parse_sequence(document, report)
    if report.problems or sequence is None:
        raise ConfigError(report.sorted_problems())
    return sequence


class _Report:
    """The problems found in one file so far, and the template files already checked for it."""

    def __init__(self, path: Path, renderer: TemplateRenderer):
        self.path = path
        self.renderer = renderer
        self.problems: list[Problem] = []
        self.checked_templates: set[str] = set()

    def add(self, line: int | None, message: str, fix: str, *, path: Path | None = None) -> None:
        self.problems.append(Problem(path or self.path, line, message, fix))

    def sorted_problems(self) -> list[Problem]:
        """The playbook's own problems in file order, then those found in its template files."""
        return sorted(self.problems, key=lambda p: (Path(p.path) != self.path, p.line or 0))


@dataclass(frozen=True)
class _Draft:
    """What is known of a step even when parts of it are wrong, for the checks across steps."""

    id: str | None
    line: int
    after: timedelta | None
    before: timedelta | None


def _parse_sequence(document: Any, report: _Report) -> Sequence | None:
    path = report.path
    if document is None:
        report.add(None, "the file is empty", "add name, description and steps (see sequences/default.yml)")
        return None
    if not isinstance(document, LineDict):
        report.add(
            getattr(document, "line", 1),
            "a sequence file must be a mapping with name, description and steps",
            "start the file with `name:`, `description:` and `steps:` (see sequences/default.yml)",
        )
        return None
    _check_keys(document, TOP_LEVEL_KEYS, "sequence", report)
    name = document.get("name", path.stem)
    if not isinstance(name, str) or not _SEQUENCE_NAME.match(name):
        report.add(
            document.line_of("name"),
            f"name {name!r} must be lowercase letters, digits, - or _",
            f"write name: {path.stem}",
        )
    elif name != path.stem:
        # Enrollments remember the name and find the file by it again, so the two must agree.
        report.add(
            document.line_of("name"),
            f"name {name!r} differs from the file name {path.name!r}",
            f"write name: {path.stem}, or rename the file to {name}.yml",
        )
    sequence_label = _parse_label(document, "the sequence", report)
    description = document.get("description", "")
    if not isinstance(description, str):
        report.add(document.line_of("description"), "description must be text", "write it as one line of text")
        description = ""
    if "steps" not in document:
        report.add(document.line, "missing required key 'steps'", "add `steps:` with at least one step")
        return None
    raw_steps = document["steps"]
    if not isinstance(raw_steps, LineList) or not raw_steps:
        report.add(
            document.line_of("steps"),
            "steps must be a non-empty list",
            "add at least one step, each starting with `- id:`",
        )
        return None
    steps: list[Step] = []
    drafts: list[_Draft] = []
    for index, raw in enumerate(raw_steps):
        step, draft = _parse_step(raw, raw_steps.line_of(index), report)
        steps.extend([step] if step else [])
        drafts.extend([draft] if draft else [])
    _check_ids_unique(drafts, report)
    _check_timing(drafts, report)
    return Sequence(
        name=str(name), path=path, description=description.strip(), steps=tuple(steps), label=sequence_label
    )


def _parse_step(raw: Any, line: int, report: _Report) -> tuple[Step | None, _Draft | None]:
    if not isinstance(raw, LineDict):
        report.add(
            line,
            "each step must be a mapping of keys such as id, channel, after and template",
            "start the step with `- id: some_name` and indent its keys under it",
        )
        return None, None
    before_count = len(report.problems)
    _check_keys(raw, STEP_KEYS, "step", report)
    step_id = raw.get("id")
    label = f"step {step_id!r}" if isinstance(step_id, str) else f"the step at line {line}"
    if step_id is None:
        report.add(line, "step is missing required key 'id'", "add `id: a_short_name` (lowercase, digits, _)")
    elif not isinstance(step_id, str) or not _STEP_ID.match(step_id):
        suggestion = re.sub(r"[^a-z0-9_]+", "_", str(step_id).lower()).strip("_") or "step_1"
        report.add(
            raw.line_of("id"),
            f"step id {step_id!r} must use only lowercase letters, digits and _",
            f"write id: {suggestion}",
        )
    channel = _parse_channel(raw, label, line, report)
    human_label = _parse_label(raw, label, report)
    after = _parse_delay(raw, "after", label, report)
    before = _parse_delay(raw, "before", label, report)
    if "after" not in raw and "before" not in raw:
        report.add(
            line,
            f"{label} says neither when (after:) nor how long before the appointment (before:)",
            "add `after: 1d` (from enrollment) or `before: 24h` (before the appointment)",
        )
    elif "after" in raw and "before" in raw:
        report.add(
            raw.line_of("before"),
            f"{label} has both after: and before:",
            "keep one: after counts from enrollment, before counts back from the appointment",
        )
    template = _parse_template(raw, channel, label, line, report)
    if channel is not None and template is not None:
        _check_template_files(channel, template, label, raw.line_of("template"), report)
    subjects = _parse_subjects(raw, channel, label, line, report)
    conditions = _parse_conditions(raw, label, report)
    stage = _parse_stage(raw, channel, label, line, report)
    draft = _Draft(step_id if isinstance(step_id, str) else None, line, after, before)
    if len(report.problems) > before_count or channel is None:
        return None, draft
    step = Step(
        id=str(step_id),
        channel=channel,
        after=after,
        before=before,
        template=template,
        subjects=subjects,
        conditions=conditions,
        stage=stage,
        line=line,
        label=human_label,
    )
    return step, draft


def _check_keys(mapping: LineDict, valid: tuple[str, ...], what: str, report: _Report) -> None:
    for key in mapping:
        if key in valid:
            continue
        hint = _KEY_HINTS.get(str(key))
        fix = f"did you mean `{hint}`?" if hint in valid else _did_you_mean(key, valid)
        report.add(mapping.line_of(key), f"unknown {what} key {key!r}", fix)


def _parse_label(raw: LineDict, label: str, report: _Report) -> str:
    """The optional `label:` people read; empty when not given (a default is derived)."""
    if "label" not in raw:
        return ""
    value = raw["label"]
    if not isinstance(value, str) or not value.strip():
        report.add(
            raw.line_of("label"),
            f"{label}: label must be a line of text",
            'write it like `label: "Day-1 check-in text"`, or leave it out for a default',
        )
        return ""
    text = " ".join(value.split())
    if len(text) > MAX_LABEL:
        report.add(
            raw.line_of("label"),
            f"{label}: label is {len(text)} characters, more than {MAX_LABEL}",
            "shorten it: it is shown on one line of a Slack card",
        )
        return ""
    return text


def _parse_channel(raw: LineDict, label: str, line: int, report: _Report) -> Channel | None:
    if "channel" not in raw:
        report.add(
            line, f"{label} is missing required key 'channel'", f"add `channel:` with one of: {', '.join(Channel)}"
        )
        return None
    value = raw["channel"]
    try:
        return Channel(value)
    except ValueError:
        report.add(raw.line_of("channel"), f"{label} has unknown channel {value!r}", _did_you_mean(value, Channel))
        return None


def _parse_delay(raw: LineDict, key: str, label: str, report: _Report) -> timedelta | None:
    if key not in raw:
        return None
    try:
        return parse_duration(raw[key])
    except InvalidDuration as error:
        report.add(raw.line_of(key), f"{label}: {key}: {error}", f"write it like `{key}: 1d` or `{key}: 2h30m`")
        return None


def _parse_template(raw: LineDict, channel: Channel | None, label: str, line: int, report: _Report) -> str | None:
    if "template" not in raw:
        if channel not in (None, Channel.STAGE):
            report.add(
                line,
                f"{label} is missing required key 'template'",
                "add `template: folder/name` (files under the templates folder)",
            )
        return None
    value = raw["template"]
    if not isinstance(value, str) or not _TEMPLATE_NAME.match(value):
        report.add(
            raw.line_of("template"),
            f"{label}: template {value!r} is not a template name",
            "write it like `template: default/instant_sms`, without file suffixes or ..",
        )
        return None
    return value


def _parse_subjects(raw: LineDict, channel: Channel | None, label: str, line: int, report: _Report) -> tuple[str, ...]:
    if "subjects" not in raw:
        if channel == Channel.EMAIL:
            report.add(
                line,
                f"{label} is an email with no subject",
                'add `subjects: ["Thanks for reaching out, {{ lead.first_name }}"]` (several take turns)',
            )
        return ()
    value = raw["subjects"]
    if channel is not None and channel != Channel.EMAIL:
        report.add(
            raw.line_of("subjects"),
            f"{label} is {_a(channel)} step, and only email steps have subjects",
            "remove `subjects:`, or make it `channel: email`",
        )
        return ()
    subjects = [value] if isinstance(value, str) else value
    if not isinstance(subjects, list) or not subjects or not all(isinstance(s, str) and s.strip() for s in subjects):
        report.add(
            raw.line_of("subjects"),
            f"{label}: subjects must be a list of non-empty text lines",
            'write subjects: ["First option", "Second option"]',
        )
        return ()
    for index, subject in enumerate(subjects):
        try:
            report.renderer.check_string(subject)
        except TemplateProblem as problem:
            item_line = subjects.line_of(index) if isinstance(subjects, LineList) else raw.line_of("subjects")
            report.add(
                item_line, f"{label}: subject {subject!r}: {problem.message}", "check the {{ }} in the subject line"
            )
    return tuple(s.strip() for s in subjects)


def _parse_conditions(raw: LineDict, label: str, report: _Report) -> tuple[Condition, ...]:
    if "when" not in raw:
        return ()
    value = raw["when"]
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list):
        report.add(
            raw.line_of("when"),
            f"{label}: when must be a list of conditions",
            f"write when: [{Condition.NO_REPLY_YET}] using any of: {', '.join(Condition)}",
        )
        return ()
    conditions = []
    for index, item in enumerate(items):
        try:
            conditions.append(Condition(item))
        except ValueError:
            item_line = items.line_of(index) if isinstance(items, LineList) else raw.line_of("when")
            report.add(item_line, f"{label} has unknown condition {item!r}", _did_you_mean(item, Condition))
    return tuple(dict.fromkeys(conditions))


def _parse_stage(raw: LineDict, channel: Channel | None, label: str, line: int, report: _Report) -> str | None:
    if channel is not None and channel != Channel.STAGE:
        if "stage" in raw:
            report.add(
                raw.line_of("stage"),
                f"{label} is {_a(channel)} step, and only stage steps move the lead",
                "remove `stage:`, or add a separate step with `channel: stage`",
            )
        return None
    if "stage" not in raw:
        if channel == Channel.STAGE:
            report.add(
                line, f"{label} is a stage step without a stage", f"add `stage:` with one of: {', '.join(STAGES)}"
            )
        return None
    value = raw["stage"]
    if value not in STAGES:
        report.add(raw.line_of("stage"), f"{label} moves to unknown stage {value!r}", _did_you_mean(value, STAGES))
        return None
    return str(value)


def _check_ids_unique(drafts: list[_Draft], report: _Report) -> None:
    first_seen: dict[str, int] = {}
    for draft in drafts:
        if draft.id is None:
            continue
        if draft.id in first_seen:
            # Touches are keyed by (enrollment, step id): a repeated id would silently drop a touch.
            report.add(
                draft.line,
                f"step id {draft.id!r} is used twice (first at line {first_seen[draft.id]})",
                f"give this step its own id, e.g. {draft.id}_2",
            )
        else:
            first_seen[draft.id] = draft.line


def _check_timing(drafts: list[_Draft], report: _Report) -> None:
    forward = [draft for draft in drafts if draft.after is not None]
    backward = [draft for draft in drafts if draft.before is not None]
    if forward and backward:
        report.add(
            max(forward[0].line, backward[0].line),
            "this sequence mixes after: and before: steps",
            "use after: everywhere (from enrollment) or before: everywhere (appointment reminders), in separate files",
        )
        return
    for previous, draft in pairwise(forward):
        assert previous.after is not None and draft.after is not None
        if draft.after < previous.after:
            report.add(
                draft.line,
                f"step {_name(draft)} (after {format_duration(draft.after)}) comes before "
                f"{_name(previous)} (after {format_duration(previous.after)})",
                "list steps in the order they go out: delays must not decrease",
            )
    for previous, draft in pairwise(backward):
        assert previous.before is not None and draft.before is not None
        if draft.before > previous.before:
            report.add(
                draft.line,
                f"step {_name(draft)} (before {format_duration(draft.before)}) goes out earlier "
                f"than {_name(previous)} (before {format_duration(previous.before)})",
                "list steps in the order they go out: the furthest from the appointment first",
            )


def _name(draft: _Draft) -> str:
    return repr(draft.id) if draft.id else f"at line {draft.line}"


def _check_template_files(channel: Channel, template: str, label: str, line: int, report: _Report) -> None:
    renderer = report.renderer
    for name in template_files(channel, template):
        file = renderer.path_of(name)
        if file is None:
            report.add(
                line,
                f"{label}: template file {renderer.templates_dir / name} not found",
                f"create {name} under {renderer.search_path[0]}, or fix `template: {template}`",
            )
            continue
        if name in report.checked_templates:
            continue
        report.checked_templates.add(name)
        try:
            renderer.check_file(name)
        except TemplateProblem as problem:
            report.add(
                problem.line,
                f"{problem.message} (used by {label} in {report.path})",
                "check the {{ }} and {% %} tags near that line",
                path=renderer.path_of(problem.template) or renderer.templates_dir / problem.template,
            )


def _did_you_mean(word: Any, choices: Iterable[str]) -> str:
    """Suggest the closest valid word, or list them all when none is close."""
    options = [str(choice) for choice in choices]
    close = difflib.get_close_matches(str(word), options, n=1)
    return f"did you mean `{close[0]}`?" if close else f"use one of: {', '.join(options)}"


def _a(channel: Channel) -> str:
    return f"an {channel}" if channel in (Channel.SMS, Channel.EMAIL) else f"a {channel}"
