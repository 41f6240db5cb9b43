"""Hand the team a call: who, why, what to say, and what to leave on voicemail."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot import audit, outbox
from bot.audit import Actor
from bot.models import CallTask, CallTaskStatus, Lead, Touch
from bot.outbox import Notice
from bot.playbook import Channel
from bot.render_context import format_local, lead_context
from bot.services import Services

OPEN_TASK_STATES = (CallTaskStatus.OPEN, CallTaskStatus.CLAIMED)


def call_template_for(services: Services, lead: Lead) -> str | None:
    """The call scripts of the lead's playbook, reused for escalations so the words stay the clinic's."""
    sequence = services.playbooks.get()
    for step in sequence.steps:
        if step.channel == Channel.CALL_TASK and step.template:
            return step.template
    return None


def open_call_task(
    session: Session,
    services: Services,
    lead: Lead,
    *,
    reason: str,
    now: datetime,
    actor: Actor,
    template: str | None = None,
    touch: Touch | None = None,
    requested_time: datetime | None = None,
    due_at: datetime | None = None,
) -> CallTask:
    """Create a call task with scripts rendered for this lead and tell the team."""
    template = template or call_template_for(services, lead)
    requested_text = format_local(requested_time, lead.timezone or services.business.timezone) if requested_time else None
    script = voicemail = ""
    if template:
        context = lead_context(
            lead, services.business, services.public_base_url, call_reason=reason, requested_time=requested_text
        )
        rendered = services.renderer.render_call_task(template, context)
        script, voicemail = rendered.script, rendered.voicemail
    task = CallTask(
        lead_id=lead.id,
        touch_id=touch.id if touch else None,
        reason=reason,
        due_at=due_at or now,
        status=CallTaskStatus.OPEN,
        call_script=script,
        voicemail_script=voicemail,
        requested_time=requested_time,
        created_at=now,
    )
    session.add(task)
    session.flush()
    audit.record(session, lead_id=lead.id, actor=actor, action="call_task_opened", at=now, reason=reason, task=task.id)
    outbox.publish(session, Notice.CALL_TASK, lead_id=lead.id, at=now, call_task_id=task.id, reason=reason)
    return task


def open_tasks(session: Session, lead_id: int) -> list[CallTask]:
    return list(
        session.scalars(
            select(CallTask).where(CallTask.lead_id == lead_id, CallTask.status.in_(OPEN_TASK_STATES))
        )
    )


def close_open_tasks(session: Session, lead_id: int, *, now: datetime, reason: str, actor: Actor) -> int:
    """Cancel the calls nobody needs to make any more."""
    closed = 0
    for task in open_tasks(session, lead_id):
        task.status = CallTaskStatus.CANCELLED
        task.notes = (task.notes + "\n" if task.notes else "") + f"cancelled: {reason}"
        outbox.publish(session, Notice.CALL_TASK_CHANGED, lead_id=lead_id, at=now, call_task_id=task.id)
        audit.record(session, lead_id=lead_id, actor=actor, action="call_task_cancelled", at=now, task=task.id,
                     reason=reason)
        closed += 1
    return closed


def remind_unclaimed(session: Session, *, now: datetime, after: timedelta) -> int:
    """Nudge on-call once about each call task nobody has claimed for `after`."""
    waiting = session.scalars(
        select(CallTask).where(CallTask.status == CallTaskStatus.OPEN, CallTask.reminded_at.is_(None),
                               CallTask.due_at <= now - after)
    ).all()
    for task in waiting:
        task.reminded_at = now
        outbox.publish(session, Notice.DECISION, lead_id=task.lead_id, at=now, alert_team=True,
                       actor="followup", call_task_id=task.id,
                       text=f"Nobody has claimed this call yet ({task.reason}): who can take it?")
    return len(waiting)
