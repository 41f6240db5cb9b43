"""`followup preview`: a sequence's timeline for one lead, in business and lead local time, with its text."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from bot.core.business import load_business
from bot.core.display import First, team_time
from bot.core.planning import PHONE_CHANNELS, plan_touches
from bot.core.playbook import Channel, LeadFacts, load_sequence, skip_reason
from bot.core.send_times import wait_of
from bot.core.sms_segments import count_segments
from bot.core.templating import TemplateRenderer
from bot.store.models import Lead, Stage
from bot.usecases.enrollment import lead_timezones
from bot.usecases.leads import LeadInput
from bot.usecases.render_context import call_script_context, lead_facing

SAMPLE_LEAD = {
    "name": "Dana Lee",
    "phone": "+14155552671",
    "email": "dana.lee@example.com",
    "source": "web",
    "message": "Hi, my lower back has been sore for two weeks. Do you have availability?",
}


#: `--lead consent=` values that mean the sample lead did not agree to texts.
NO_CONSENT = frozenset({"no", "n", "false", "0", "none"})


def sample_lead(fields: dict[str, str], default_region: str, business_timezone: str) -> Lead:
    """A lead that exists only for the preview: validated like a real one, never stored.

    A field given empty (`--lead email=`) clears the sample's value: a lead without an email.
    The sample agreed to texts on the web form unless `--lead consent=no`: then its texts go the
    way they would for such a lead (by email, or handed to the team as a call).
    """
    merged = dict(SAMPLE_LEAD)
    for key, value in fields.items():
        if value.strip():
            merged[key] = value
        else:
            merged.pop(key, None)
    agreed = str(merged.pop("consent", "yes")).strip().lower() not in NO_CONSENT
    data = LeadInput.parse(merged, default_region=default_region, default_source="web")
    return Lead(
        id=0,
        name=data.name,
        phone=data.phone,
        email=data.email,
        source=data.source,
        first_message=data.message,
        custom_fields=dict(data.custom_fields),
        timezone=data.timezone or "",
        stage=Stage.NEW,
        link_token=secrets.token_urlsafe(8),
        unsubscribe_token=secrets.token_urlsafe(8),
        sms_consent=agreed and bool(data.phone),
    )


@dataclass(frozen=True)
class PreviewSources:
    """The files and values a preview reads: the same ones `followup run` would (bot.app.preview_sources)."""

    business_path: Path
    sequences_dir: Path
    templates_dir: Path
    default_region: str
    public_base_url: str


def render_preview(
    sources: PreviewSources,
    *,
    sequence: str | None,
    lead_fields: dict[str, str],
    start: datetime | None,
    appointment: datetime | None,
    show_text: bool = True,
) -> str:
    business = load_business(sources.business_path)
    playbook = load_sequence(
        sequence or str(business.sequence_ref), sequences_dir=sources.sequences_dir, templates_dir=sources.templates_dir
    )
    lead = sample_lead(lead_fields, sources.default_region, business.timezone.key)
    zones = lead_timezones(lead, business)
    lead_zone = ZoneInfo(zones[0])
    start = start or datetime.now(UTC)
    if playbook.relative_to_appointment and appointment is None:
        appointment = (
            (start + timedelta(days=3))
            .astimezone(business.timezone)
            .replace(hour=10, minute=0, second=0, microsecond=0)
            .astimezone(UTC)
        )
    plan = plan_touches(
        playbook, enrolled_at=start, business=business, lead_timezones=zones, appointment_at=appointment
    )
    renderer = TemplateRenderer(sources.templates_dir)
    context = call_script_context(
        lead, business, sources.public_base_url, appointment_at=appointment, call_reason="scheduled follow-up call"
    )
    # What the lead's own details decide when each step falls due: nothing replied or booked yet
    # (a reminder sequence is for a booked visit).
    facts = LeadFacts(
        has_email=bool(lead.email),
        has_phone=bool(lead.phone),
        has_replied=False,
        has_booked=playbook.relative_to_appointment,
        sms_allowed=bool(lead.phone),
        email_allowed=bool(lead.email),
    )
    contact = ", ".join(part for part in (lead.phone, lead.email) if part)
    texts_instead = None
    if lead.phone and not lead.sms_consent:
        texts_instead = (
            "goes by email instead: no SMS consent on record"
            if lead.email
            else "handed to the team as a call instead: no SMS consent on record"
        )
    out = [
        f"{playbook.label} ({playbook.name}): {len(playbook.steps)} steps, for {lead.name} ({contact})"
        + ("" if not lead.phone else "; agreed to texts" if lead.sms_consent else "; no consent to texts on record"),
        f"business {business.name}: {business.timezone.key}, window {business.send_window.describe()}; "
        f"lead time zone {', '.join(zones)}",
        f"lead comes in {team_time(start, business.timezone, lead_zone)}"
        + (f"; appointment {team_time(appointment, business.timezone, lead_zone)}" if appointment else ""),
        "",
    ]
    skipped: list[str] = []
    first_sms = True
    shown = 0
    for touch in plan:
        step = touch.step
        why_not = touch.skip_reason or skip_reason(step, facts)
        if why_not:
            skipped.append(f"- {step.label} ({step.id}, {step.channel}): {why_not}")
            continue
        shown += 1
        wait = wait_of(
            touch.due_at,
            touch.planned_at,
            business=business,
            respect_lead_daytime=step.channel in PHONE_CHANNELS,
            lead_timezones=zones,
        )
        first: First = "lead" if wait is not None and wait.for_lead_daytime else "business"
        moved = f"  (waits: {wait.words})" if wait is not None else ""
        if step.channel == Channel.SMS and texts_instead:
            moved += f"  ({texts_instead})"
        out.append(
            f"{shown}. {step.label} [{step.id}, {step.channel}]  "
            f"{team_time(touch.due_at, business.timezone, lead_zone, first=first)}{moved}"
        )
        if not show_text:
            continue
        if step.channel == Channel.SMS and step.template:
            text = renderer.render_sms(step.template, lead_facing(context), first_to_number=first_sms)
            first_sms = False
            size = count_segments(text)
            out.append(f"   ({size.segments} segment{'s' if size.segments != 1 else ''}, {size.encoding})")
            out.extend(f"   > {line}" for line in text.splitlines())
        elif step.channel == Channel.EMAIL and step.template:
            email = renderer.render_email(step.template, step.subjects[0], lead_facing(context))
            out.append(
                f"   Subject: {email.subject}"
                + (f"  (+{len(step.subjects) - 1} more options in rotation)" if len(step.subjects) > 1 else "")
            )
            out.extend(f"   > {line}" for line in email.text.splitlines())
        elif step.channel == Channel.CALL_TASK and step.template:
            call = renderer.render_call_task(step.template, context)
            out.append("   Call script:")
            out.extend(f"   > {line}" for line in call.script.splitlines())
            out.append("   Voicemail:")
            out.extend(f"   > {line}" for line in call.voicemail.splitlines())
        elif step.channel == Channel.STAGE:
            out.append(f"   move to stage: {step.stage}")
        out.append("")
    if skipped:
        if out[-1]:
            out.append("")
        out.append(f"skipped for this lead ({len(skipped)}):")
        out.extend(skipped)
    return "\n".join(out)
