"""`followup check`: every playbook loads and every template renders for a sample lead, within SMS limits."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from jinja2 import Environment, TemplateSyntaxError, nodes

from bot.core.business import Business
from bot.core.config_errors import ConfigError
from bot.core.playbook import Channel, Step, load_sequence, sequence_names
from bot.core.sms_segments import count_segments
from bot.core.templating import TEMPLATE_SUFFIXES, TemplateProblem, TemplateRenderer, sample_context
from bot.usecases.render_context import INTERNAL_FIELDS, lead_facing

#: Past this many segments a text costs more and reads like a letter.
SMS_SEGMENT_WARNING = 2


@dataclass
class CheckReport:
    lines: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    sequences: int = 0
    rendered: int = 0

    def summary(self) -> str:
        verdict = "FAILED" if self.problems else "OK"
        return (
            f"{verdict}: {self.sequences} sequences, {self.rendered} templates rendered, "
            f"{len(self.warnings)} warnings, {len(self.problems)} errors"
        )


def business_mapping(business: Business) -> dict[str, str]:
    return {
        "name": business.name,
        "phone": business.phone,
        "address": business.address,
        "booking_link": business.booking_link,
        "timezone": business.timezone.key,
    }


def check_content(
    business: Business,
    sequences_dir: Path,
    templates_dir: Path,
    *,
    reply_rules: Path | None = None,
    sequences_override: Path | None = None,
    templates_override: Path | None = None,
    include_reply_rules: bool = True,
) -> CheckReport:
    """Load and render everything a clinic edits; collect problems instead of stopping at the first.

    The overrides are the business's own sequences/ and templates/ (a folder of business files), checked
    together with the shared files they fall back to.
    """
    report = CheckReport()
    report.lines.append(
        f"business: {business.name} ({business.path}), window {business.send_window.describe()}, "
        f"timezone {business.timezone.key}"
    )
    renderer = TemplateRenderer(templates_dir, overrides=templates_override)
    context = sample_context(business_mapping(business))
    # What a lead's SMS and email are rendered with: the same allow-list as for a real lead.
    lead_context = lead_facing(context)
    names = sequence_names(sequences_dir, sequences_override)
    ref = str(business.sequence_ref)
    if ref not in names:
        names.append(ref)
    for name in names:
        try:
            sequence = load_sequence(
                name,
                sequences_dir=sequences_dir,
                templates_dir=templates_dir,
                sequences_override=sequences_override,
                templates_override=templates_override,
            )
        except ConfigError as error:
            report.problems.extend(str(p) for p in error.problems)
            continue
        report.sequences += 1
        report.lines.append(
            f"sequence {sequence.name} “{sequence.label}” ({sequence.path}): {len(sequence.steps)} steps"
        )
        for step in sequence.steps:
            where = f"{sequence.path}:{step.line} step {step.id}"
            if step.channel in (Channel.SMS, Channel.EMAIL):
                leaks = internal_fields_used(renderer.search_path, step)
                if leaks:
                    report.problems.extend(
                        f"{leak} ({where}): lead-facing templates cannot use the team's fields" for leak in leaks
                    )
                    continue
            try:
                if step.channel == Channel.SMS:
                    assert step.template
                    text = renderer.render_sms(step.template, lead_context, first_to_number=step is sequence.steps[0])
                    size = count_segments(text)
                    report.lines.append(
                        f"  {step.id:<24} {step.label!r:<30} sms   {size.characters} chars, "
                        f"{size.encoding}, {size.segments} segment{'s' if size.segments != 1 else ''}"
                    )
                    if size.segments > SMS_SEGMENT_WARNING:
                        report.warnings.append(
                            f"{where}: SMS is {size.segments} segments ({size.characters} "
                            f"{size.encoding} characters); keep it to {SMS_SEGMENT_WARNING}"
                        )
                elif step.channel == Channel.EMAIL:
                    assert step.template
                    for option, subject in enumerate(step.subjects):
                        email = renderer.render_email(step.template, subject, lead_context)
                        report.lines.append(
                            f"  {step.id:<24} {step.label!r:<30} email subject {option + 1}: {email.subject}"
                        )
                elif step.channel == Channel.CALL_TASK:
                    assert step.template
                    renderer.render_call_task(step.template, context)
                    report.lines.append(f"  {step.id:<24} {step.label!r:<30} call task: script and voicemail render")
                else:
                    report.lines.append(f"  {step.id:<24} {step.label!r:<30} stage -> {step.stage}")
                    continue
                report.rendered += 1
            except TemplateProblem as problem:
                report.problems.append(f"{where}: {problem}")
    if not include_reply_rules:
        return report
    try:
        from bot.core.reply_classifier import load_reply_rules

        load_reply_rules(reply_rules)
        report.lines.append(f"reply rules: {reply_rules or 'shipped'} OK")
    except ConfigError as error:
        report.problems.extend(str(p) for p in error.problems)
    return report


def internal_fields_used(templates_dir: Path | tuple[Path, ...], step: Step) -> list[str]:
    """Where a lead-facing step's templates read an internal field: 'file:line: name is ...' for each.

    Several folders: the file is read from the first that has it (a business's own before the shared).
    """
    assert step.template is not None
    folders = (templates_dir,) if isinstance(templates_dir, Path) else templates_dir
    found: list[str] = []
    for suffix in TEMPLATE_SUFFIXES[str(step.channel)]:
        candidates = [folder / f"{step.template}{suffix}" for folder in folders]
        path = next((candidate for candidate in candidates if candidate.is_file()), None)
        if path is None:
            continue  # loading the playbook already names a missing template
        try:
            tree = Environment().parse(path.read_text(encoding="utf-8"))
        except TemplateSyntaxError:
            continue  # rendering names the syntax error with its line
        for node in tree.find_all((nodes.Getattr, nodes.Getitem, nodes.Name)):
            name = _dotted(node)
            if name in INTERNAL_FIELDS:
                found.append(f"{path}:{node.lineno}: {name} is {INTERNAL_FIELDS[name]}")
    # `call.reason` is also a use of `call`: name each place once, by its longest name.
    lines: dict[str, str] = {}
    for entry in found:
        place = entry.split(": ", 1)[0]
        if place not in lines or len(entry) > len(lines[place]):
            lines[place] = entry
    return sorted(lines.values())


def _dotted(node: nodes.Node) -> str | None:
    """`appointment.notes` for `appointment.notes` or `appointment['notes']`; None for anything else."""
    if isinstance(node, nodes.Name):
        return node.name
    if isinstance(node, nodes.Getattr):
        owner = _dotted(node.node)
        return f"{owner}.{node.attr}" if owner else None
    if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
        owner = _dotted(node.node)
        return f"{owner}.{node.arg.value}" if owner else None
    return None
