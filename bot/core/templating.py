"""Render a playbook step's Jinja2 templates into an SMS, an email or a call task, sandboxed and strict.

For ``template: X`` a step reads, under the templates folder:

- sms:        ``X.sms.j2``
- email:      ``X.email.txt.j2`` and ``X.email.html.j2`` (the subject lines come from the step)
- call_task:  ``X.call_script.j2`` and ``X.voicemail.j2``
- stage:      nothing

Templates see these variables (``bot.usecases.render_context`` builds them for a real lead,
``sample_context`` for previews and checks):

- ``lead``: ``name``, ``first_name``, ``phone``, ``email``, ``source``, ``message`` (what they
  wrote when they came in) and ``custom`` (a dict of any extra form fields)
- ``business``: ``name``, ``phone``, ``address`` (postal), ``booking_link``, ``review_link``, ``timezone``
- ``links``: ``booking`` (the lead's tracked booking URL) and ``unsubscribe``
- ``appointment``: None, or ``start_local`` (e.g. 'Tuesday, Dec 1 at 3:00 PM', in the business's time zone,
  with the zone named when the lead's differs: '... at 3:00 PM CST') and ``notes``
- ``call``: None, or ``reason`` and ``requested_time`` (text or None)

and one filter, ``phone``, which writes an E.164 number the way people say it: ``(512) 555-0100``.

A variable that does not exist is an error, never an empty string, so a typo cannot send
"Hi ," to a patient. Only the business's own files (templates/ and the playbooks' subject lines)
are template source; everything people type (modal fields, `!reply`, slash commands) and
everything leads send is a value handed to them.

Two promises are kept here rather than trusted to each template: the first text to a number ends
with "Reply STOP to opt out.", and every email (both parts) carries the unsubscribe link and the
business's postal address, which the shared ``_email_footer.txt.j2`` / ``_email_footer.html.j2``
provide (HTML emails extend ``_email_layout.html.j2``, which includes it).
"""

from __future__ import annotations

import re
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import phonenumbers
from jinja2 import (
    FileSystemLoader,
    StrictUndefined,
    Template,
    TemplateError,
    TemplateNotFound,
    TemplateSyntaxError,
    select_autoescape,
)
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markupsafe import escape

if TYPE_CHECKING:
    from bot.core.playbook import Step

#: The files each channel needs, as suffixes of the step's template name (keys are Channel values).
TEMPLATE_SUFFIXES: dict[str, tuple[str, ...]] = {
    "sms": (".sms.j2",),
    "email": (".email.txt.j2", ".email.html.j2"),
    "call_task": (".call_script.j2", ".voicemail.j2"),
    "stage": (),
}
OPT_OUT_NOTICE = "Reply STOP to opt out."

_UNDEFINED_NAME = re.compile(r"^'(?P<name>[^']+)' is undefined")
_MISSING_ATTRIBUTE = re.compile(r"^'(?P<owner>[^']+)' has no attribute '(?P<name>[^']+)'")


class TemplateProblem(Exception):
    """A template could not be rendered; the message names the template, its line and what was missing."""

    def __init__(self, template: str, message: str, *, line: int | None = None, variable: str | None = None):
        self.template = template
        self.line = line
        self.variable = variable
        self.message = message
        where = f"{template}:{line}" if line else template
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


@dataclass(frozen=True)
class RenderedCallTask:
    script: str
    voicemail: str


def required_template_files(step: Step) -> list[str]:
    """List the template files a step needs, relative to the templates folder."""
    return template_files(step.channel, step.template)


def template_files(channel: str, template: str | None) -> list[str]:
    """List the files a template name stands for on a channel."""
    if not template:
        return []
    return [f"{template}{suffix}" for suffix in TEMPLATE_SUFFIXES[channel]]


def spoken_phone(number: Any) -> str:
    """Write an E.164 number the way people read it; leave anything else as it is."""
    text = str(number or "")
    try:
        parsed = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException:
        return text
    if not phonenumbers.is_valid_number(parsed):
        return text
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL)


class TemplateRenderer:
    """Render the templates under one folder; every failure surfaces as TemplateProblem.

    With `overrides` (a business's own templates/ in a folder of business files), a file there is used
    instead of the shared one of the same name, file by file; the others come from `templates_dir`.
    """

    def __init__(self, templates_dir: Path, *, overrides: Path | None = None):
        self.templates_dir = Path(templates_dir)
        self.overrides = Path(overrides) if overrides is not None else None
        #: Where a template file is looked for, first match wins.
        self.search_path: tuple[Path, ...] = (
            (self.overrides, self.templates_dir) if self.overrides is not None else (self.templates_dir,)
        )
        # Immutable: a template may read lead data but never change the dicts it was given.
        self._env = ImmutableSandboxedEnvironment(
            loader=FileSystemLoader(list(self.search_path)),
            undefined=StrictUndefined,
            autoescape=select_autoescape(enabled_extensions=("html.j2", "html"), default_for_string=False),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self._env.filters["phone"] = spoken_phone

    def path_of(self, name: str) -> Path | None:
        """The file a template name renders from (the business's own before the shared one), or None."""
        for folder in self.search_path:
            if (folder / name).is_file():
                return folder / name
        return None

    @property
    def where(self) -> str:
        """The folders templates are looked for in, for a message."""
        return " or ".join(str(folder) for folder in self.search_path)

    def render_sms(self, template: str, context: Mapping[str, Any], *, first_to_number: bool) -> str:
        """Render an SMS; the first one to a number always ends by saying how to opt out."""
        name = f"{template}.sms.j2"
        text = _tidy(self._render_file(name, context))
        if not text:
            raise TemplateProblem(name, "renders to an empty message")
        if first_to_number and OPT_OUT_NOTICE.lower() not in text.lower():
            text = f"{text}\n{OPT_OUT_NOTICE}"
        return text

    def render_email(self, template: str, subject_template: str, context: Mapping[str, Any]) -> RenderedEmail:
        """Render a playbook email: its subject template (from the business's playbook file), text and HTML."""
        rendered_subject = " ".join(self.render_string(subject_template, context).split())
        if not rendered_subject:
            raise TemplateProblem(repr(subject_template), "the subject renders empty")
        return self._email_with_subject(template, rendered_subject, context)

    def render_email_as_written(self, template: str, subject: str, context: Mapping[str, Any]) -> RenderedEmail:
        """Render an email whose subject is plain text a person wrote (never compiled as a template).

        A team member's subject in the Reply modal, or one the bot words itself around the
        business's name, is a value: `{{ 7*7 }}` goes out as those characters.
        """
        plain_subject = " ".join(str(subject).split())
        if not plain_subject:
            raise TemplateProblem(template, "the subject is empty")
        return self._email_with_subject(template, plain_subject, context)

    def _email_with_subject(self, template: str, subject: str, context: Mapping[str, Any]) -> RenderedEmail:
        text_name, html_name = f"{template}.email.txt.j2", f"{template}.email.html.j2"
        text = _tidy(self._render_file(text_name, context))
        html = self._render_file(html_name, context).strip()
        unsubscribe, address = _footer_facts(context, template)
        _require_footer(text_name, text, unsubscribe, address, html=False)
        _require_footer(html_name, html, unsubscribe, address, html=True)
        return RenderedEmail(subject, text, html)

    def render_call_task(self, template: str, context: Mapping[str, Any]) -> RenderedCallTask:
        """Render the call script and voicemail script a team member reads from."""
        script = _tidy(self._render_file(f"{template}.call_script.j2", context))
        voicemail = _tidy(self._render_file(f"{template}.voicemail.j2", context))
        return RenderedCallTask(script, voicemail)

    def render_string(self, source: str, context: Mapping[str, Any]) -> str:
        """Render a one-off template from the business's own files (a playbook's email subject), never typed text."""
        template = self._compile_string(source)
        return self._run(template, context, name=repr(source), source=source)

    def check_file(self, name: str) -> None:
        """Compile a template file, raising TemplateProblem on a syntax error or a missing file."""
        self._load(name)

    def check_string(self, source: str) -> None:
        """Compile a one-off template, raising TemplateProblem on a syntax error."""
        self._compile_string(source)

    def _load(self, name: str) -> Template:
        try:
            return self._env.get_template(name)
        except TemplateSyntaxError as error:
            message = f"Jinja syntax error: {error.message}"
            raise TemplateProblem(error.name or name, message, line=error.lineno) from error
        except TemplateNotFound as error:
            raise TemplateProblem(name, f"template file {error.name} not found in {self.where}") from error

    def _compile_string(self, source: str) -> Template:
        try:
            return self._env.from_string(source)
        except TemplateSyntaxError as error:
            raise TemplateProblem(repr(source), f"Jinja syntax error: {error.message}", line=error.lineno) from error

    def _render_file(self, name: str, context: Mapping[str, Any]) -> str:
        return self._run(self._load(name), context, name=name, source=None)

    def _run(self, template: Template, context: Mapping[str, Any], *, name: str, source: str | None) -> str:
        try:
            return template.render(context)
        # Template expressions fail with Jinja's errors or, inside filters and arithmetic, with
        # Python's value errors; both mean the template (not the bot) needs fixing.
        except (TemplateError, TypeError, ValueError, ArithmeticError) as error:
            raise self._problem(error, name, source) from error

    def _problem(self, error: Exception, name: str, source: str | None) -> TemplateProblem:
        if isinstance(error, TemplateSyntaxError):  # in an included file, found only when rendering
            return TemplateProblem(error.name or name, f"Jinja syntax error: {error.message}", line=error.lineno)
        where, line = self._failing_line(error, name)
        message = getattr(error, "message", None) or str(error)
        source_line = self._source_line(where, line, source if where == name else None)
        variable = _missing_variable(message, source_line)
        if variable:
            message = f"{variable} is not defined ({message})"
        elif isinstance(error, TemplateNotFound):
            message = f"included template {error.name} not found in {self.where}"
        return TemplateProblem(where, message, line=line, variable=variable)

    def _failing_line(self, error: Exception, name: str) -> tuple[str, int | None]:
        # Jinja rewrites the traceback so template frames carry the template's file and line;
        # the innermost one is where it failed (the included footer, say, not the email).
        roots = [folder.resolve() for folder in self.search_path]
        for frame in reversed(traceback.extract_tb(error.__traceback__)):
            if frame.filename == "<template>":
                return name, frame.lineno
            path = Path(frame.filename).resolve()
            for root in roots:
                if path.is_relative_to(root) and path.name.endswith(".j2"):
                    return path.relative_to(root).as_posix(), frame.lineno
        return name, None

    def _source_line(self, name: str, line: int | None, source: str | None) -> str:
        if line is None:
            return ""
        if source is None:
            try:
                source, _, _ = self._env.loader.get_source(self._env, name)  # type: ignore[union-attr]  # the renderer's environment is always built with a loader
            except TemplateNotFound:
                return ""
        lines = source.splitlines()
        return lines[line - 1] if 0 < line <= len(lines) else ""


def sample_context(
    business: Mapping[str, Any], *, public_base_url: str = "https://followup.example.com"
) -> dict[str, Any]:
    """Build the variables for a realistic sample lead, with an appointment and a call, for previews and checks."""
    token = "Q7vD2lmXc9RkT4wPzN8hJa"  # the length of a real link token (token_urlsafe(16))
    return {
        "lead": {
            "name": "Jordan Rivera",
            "first_name": "Jordan",
            "phone": "+15125550142",
            "email": "jordan.rivera@example.com",
            "source": "website",
            "message": "Hi, I'd like to come in as a new patient. Do you have anything later this week? "
            "Evenings suit me best.",
            "custom": {},
        },
        "business": {
            "name": business.get("name") or "Riverside Family Health",
            "phone": business.get("phone") or "+15125550100",
            "address": business.get("address") or "120 Main St, Suite 4, Austin, TX 78701",
            "booking_link": business.get("booking_link") or "https://book.example.com/riverside",
            "review_link": business.get("review_link") or "https://g.page/r/riverside-family-health/review",
            "timezone": str(business.get("timezone") or "America/Chicago"),
        },
        "links": {
            "booking": f"{public_base_url}/b/{token}",
            "unsubscribe": f"{public_base_url}/u/{token}",
        },
        "appointment": {"start_local": "Tuesday, Dec 1 at 3:00 PM", "notes": "Please arrive 10 minutes early."},
        "call": {"reason": "first follow-up call", "requested_time": "weekday evenings"},
    }


def _tidy(text: str) -> str:
    """Drop the trailing spaces template tags leave behind, and blank lines at either end."""
    return "\n".join(line.rstrip() for line in text.splitlines()).strip()


def _footer_facts(context: Mapping[str, Any], template: str) -> tuple[str, list[str]]:
    try:
        unsubscribe = str(context["links"]["unsubscribe"] or "")
        address = str(context["business"]["address"] or "")
    except (KeyError, TypeError) as error:
        raise TemplateProblem(
            template, f"context lacks {error}; emails need links.unsubscribe and business.address"
        ) from error
    address_lines = [line.strip() for line in address.splitlines() if line.strip()]
    if not unsubscribe or not address_lines:
        # US CAN-SPAM: every commercial email carries a way out and a postal address.
        raise TemplateProblem(template, "emails need an unsubscribe link and the business postal address; set them")
    return unsubscribe, address_lines


def _require_footer(name: str, body: str, unsubscribe: str, address_lines: list[str], *, html: bool) -> None:
    def present(value: str) -> bool:
        return (str(escape(value)) if html else value) in body

    missing = [
        what
        for what, ok in (
            ("the unsubscribe link", present(unsubscribe)),
            ("the business postal address", all(present(line) for line in address_lines)),
        )
        if not ok
    ]
    if missing:
        footer = "_email_footer.html.j2" if html else "_email_footer.txt.j2"
        raise TemplateProblem(
            name, f"renders without {' and '.join(missing)}; include {footer} (every email must carry them)"
        )


def _missing_variable(message: str, source_line: str) -> str | None:
    """Name the variable an undefined error is about, as the template author wrote it."""
    if match := _UNDEFINED_NAME.match(message):
        return match["name"]
    if match := _MISSING_ATTRIBUTE.match(message):
        attribute = match["name"]
        written = re.search(rf"([A-Za-z_][\w.]*)\.{re.escape(attribute)}\b", source_line)
        return f"{written[1]}.{attribute}" if written else attribute
    return None
