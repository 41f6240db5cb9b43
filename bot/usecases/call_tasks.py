"""Hand the team a call: who, why, what to say, and what to leave on voicemail."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.core.business import Business
from bot.core.display import team_time
from bot.core.playbook import Channel
from bot.core.send_times import NoSendTime, may_send_at, next_send_time
from bot.store import audit, outbox
from bot.store.audit import Actor
from bot.store.models import CallTask, CallTaskStatus, Enrollment, Lead, Touch
from bot.store.outbox import Notice
from bot.usecases.enrollment import NURTURE_SEQUENCE, REMINDER_SEQUENCE, lead_timezones
from bot.usecases.render_context import call_script_context
from bot.usecases.services import Services

OPEN_TASK_STATES = (CallTaskStatus.OPEN, CallTaskStatus.CLAIMED)
#: Two calls for one lead due this close together are one call: the team rings once, for every reason.
SAME_CALL = timedelta(minutes=1)
#: Longest reason kept on a task (the column's size); a merged task's reasons are clipped to it.
REASON_LIMIT = 300


def call_template_for(services: Services, lead: Lead, session: Session | None = None) -> str | None:
    """The call scripts of the lead's own playbook (dental for a dental lead), reused for escalations.

    The lead's playbook is the sales sequence it was last enrolled in; nurture and reminders have
    no call scripts of their own, so they fall back to the business's default playbook.
    """
    names: list[str | None] = []
    if session is not None and lead.id is not None:
        names.extend(
            session.scalars(
                select(Enrollment.sequence_name)
                .where(
                    Enrollment.lead_id == lead.id,
                    Enrollment.sequence_name.not_in((NURTURE_SEQUENCE, REMINDER_SEQUENCE)),
                )
                .order_by(Enrollment.id.desc())
            )
        )
    names.append(None)  # the business's default playbook
    playbooks = services.playbooks_of(lead.business)
    for name in names:
        if name is not None and not playbooks.has(name):
            continue
        for step in playbooks.get(name).steps:
            if step.channel == Channel.CALL_TASK and step.template:
                return step.template
    return None


def call_due_at(business: Business, lead: Lead, earliest: datetime) -> datetime:
    """The first moment at or after `earliest` a call may be made: the business's hours and the lead's daytime."""
    try:
        return next_send_time(
            earliest, business=business, respect_lead_daytime=True, lead_timezones=lead_timezones(lead, business)
        )
    except NoSendTime:
        return earliest  # no window at all within a year: `followup check` says why; the team still sees it


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
    """Hand the team a call, for a reason, due at the next moment a call may be made; tell the team.

    Without `due_at` (a time a person chose), the call is due now when the business is open and
    it is daytime for the lead, else when both next hold. A second call for the same lead due
    within a minute of an open one is folded into it: one call, both reasons.
    """
    business = services.business_of(lead.business)
    due = due_at or call_due_at(business, lead, now)
    same = _open_task_due_near(session, lead.id, due)
    if same is not None:
        if reason not in same.reason:
            same.reason = _clip(f"{same.reason}; also: {reason}", REASON_LIMIT)
        same.requested_time = same.requested_time or requested_time
        audit.record(
            session, lead_id=lead.id, actor=actor, action="call_task_merged", at=now, reason=reason, task=same.id
        )
        outbox.publish(session, Notice.CALL_TASK_CHANGED, lead_id=lead.id, at=now, call_task_id=same.id)
        return same
    template = template or call_template_for(services, lead, session)
    # Said as the card says it (bot.core.display.team_time): their time first, ours beside it.
    requested_text = (
        team_time(requested_time, business.timezone, lead_timezones(lead, business)[0], first="lead")
        if requested_time
        else None
    )
    script = voicemail = ""
    if template:
        context = call_script_context(
            lead, business, services.public_base_url, call_reason=reason, requested_time=requested_text
        )
        rendered = services.renderer_of(lead.business).render_call_task(template, context)
        script, voicemail = rendered.script, rendered.voicemail
    task = CallTask(
        lead_id=lead.id,
        touch_id=touch.id if touch else None,
        reason=_clip(reason, REASON_LIMIT),
        due_at=due,
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


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _open_task_due_near(session: Session, lead_id: int, due: datetime) -> CallTask | None:
    session.flush()
    return session.scalars(
        select(CallTask)
        .where(
            CallTask.lead_id == lead_id,
            CallTask.status.in_(OPEN_TASK_STATES),
            CallTask.due_at > due - SAME_CALL,
            CallTask.due_at < due + SAME_CALL,
        )
        .order_by(CallTask.id)
    ).first()


def open_tasks(session: Session, lead_id: int) -> list[CallTask]:
    return list(
        session.scalars(select(CallTask).where(CallTask.lead_id == lead_id, CallTask.status.in_(OPEN_TASK_STATES)))
    )


def close_open_tasks(session: Session, lead_id: int, *, now: datetime, reason: str, actor: Actor) -> int:
    """Cancel the calls nobody needs to make any more."""
    closed = 0
    for task in open_tasks(session, lead_id):
        task.status = CallTaskStatus.CANCELLED
        task.notes = (task.notes + "\n" if task.notes else "") + f"cancelled: {reason}"
        outbox.publish(session, Notice.CALL_TASK_CHANGED, lead_id=lead_id, at=now, call_task_id=task.id)
        outbox.publish(
            session,
            Notice.DECISION,
            lead_id=lead_id,
            at=now,
            actor=actor.describe(),
            text=f"Call task closed ({task.reason}): {reason}",
        )
        audit.record(
            session, lead_id=lead_id, actor=actor, action="call_task_cancelled", at=now, task=task.id, reason=reason
        )
        closed += 1
    return closed


def claim_open_tasks(session: Session, lead: Lead, *, now: datetime, actor: Actor) -> int:
    """Give the person who claims a lead its open calls too (those nobody else has)."""
    claimed = 0
    for task in open_tasks(session, lead.id):
        if task.status != CallTaskStatus.OPEN:
            continue
        task.status, task.claimed_by, task.claimed_at = CallTaskStatus.CLAIMED, actor.id, now
        audit.record(
            session,
            lead_id=lead.id,
            actor=actor,
            action="call_task_claimed",
            at=now,
            task=task.id,
            by="claiming the lead",
        )
        outbox.publish(session, Notice.CALL_TASK_CHANGED, lead_id=lead.id, at=now, call_task_id=task.id)
        claimed += 1
    return claimed


def remind_unclaimed(session: Session, *, now: datetime, after: timedelta, business: Business) -> int:
    """Nudge about the business's call tasks nobody has claimed for `after`, within its hours; return how many.

    The first nudge goes to the lead's owner or on-call; when that one too is ignored for `after`,
    a second goes to the admins. Outside the business's hours nobody is nudged: the nudges wait
    for the morning.
    """
    if not may_send_at(now, business=business, respect_lead_daytime=False, lead_timezones=()):
        return 0
    waiting = session.scalars(
        select(CallTask)
        .join(Lead, Lead.id == CallTask.lead_id)
        .where(
            Lead.business == business.slug,
            CallTask.status == CallTaskStatus.OPEN,
            CallTask.admins_nudged_at.is_(None),
            CallTask.due_at <= now - after,
        )
        .order_by(CallTask.id)
    ).all()
    nudged = 0
    for task in waiting:
        if task.reminded_at is None:
            task.reminded_at = now
            outbox.publish(
                session,
                Notice.DECISION,
                lead_id=task.lead_id,
                at=now,
                alert_team=True,
                actor="followup",
                call_task_id=task.id,
                text=f"Nobody has claimed this call yet ({task.reason}): who can take it?",
            )
        elif task.reminded_at <= now - after:
            task.admins_nudged_at = now
            outbox.publish(
                session,
                Notice.DECISION,
                lead_id=task.lead_id,
                at=now,
                alert_admins=True,
                actor="followup",
                call_task_id=task.id,
                text=f"Still nobody has claimed this call ({task.reason}), though the team was "
                "nudged: can an admin find someone to take it?",
            )
        else:
            continue
        nudged += 1
    return nudged
