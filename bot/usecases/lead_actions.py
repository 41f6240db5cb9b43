"""The use cases that change a lead's course: replies, bookings, opt-outs and the team's actions."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.core.display import team_time
from bot.core.reply_classifier import also_of
from bot.core.requested_time import UnclearTime
from bot.core.rules import (
    CallOutcome,
    Decision,
    LeadSignal,
    SequenceChange,
    decide_on_call_outcome,
    decide_on_quiet_end,
    decide_on_signal,
    signal_for_lead,
)
from bot.core.send_times import NoSendTime, next_send_time
from bot.store import audit, consent, outbox, webhook_events
from bot.store.audit import SYSTEM, Actor
from bot.store.consent import ConsentMethod
from bot.store.models import (
    ActorType,
    Appointment,
    BookingLinkClick,
    CallTask,
    CallTaskStatus,
    EnrollmentState,
    Lead,
    Message,
    Stage,
)
from bot.store.outbox import Notice
from bot.store.webhook_events import LeadEvent
from bot.usecases import enrollment
from bot.usecases.call_tasks import claim_open_tasks, close_open_tasks, open_call_task, open_tasks
from bot.usecases.enrollment import NURTURE_SEQUENCE, VISIT_SEQUENCES, lead_timezones, open_enrollments
from bot.usecases.services import Services


class LeadActionRefused(Exception):
    """The action does not apply to this lead or task as it stands; the message says why."""


#: Stages in which nobody needs to call the lead any more: their open call tasks close on the way in.
NO_CALL_STAGES = (Stage.BOOKED, Stage.NURTURE, Stage.LOST, Stage.OPTED_OUT)


def set_stage(session: Session, lead: Lead, stage: Stage, *, now: datetime, actor: Actor, reason: str) -> None:
    """Move the lead to a stage; a stage that ends the reason to call closes the lead's open call tasks."""
    if lead.stage == stage:
        return
    old = str(lead.stage)
    lead.stage = stage
    lead.updated_at = now
    # After the change: whoever hears of it (the outbound webhooks) sees the lead in its new stage.
    audit.record(
        session, lead_id=lead.id, actor=actor, action="stage_changed", at=now, old=old, new=str(stage), reason=reason
    )
    if stage in NO_CALL_STAGES:
        label = Stage(stage).value.replace("_", " ")
        close_open_tasks(
            session, lead.id, now=now, actor=actor, reason=reason if reason == label else f"{label} ({reason})"
        )


def apply_decision(
    session: Session,
    services: Services,
    lead: Lead,
    decision: Decision,
    *,
    now: datetime,
    actor: Actor,
    requested_time: datetime | None = None,
    announce: bool = True,
) -> None:
    """Carry a decision out on the store, and queue what the team must see: one note for the decision.

    `announce=False` when the caller's own notice already says it (a call outcome names its consequence).
    """
    ending_everything = decision.stage in (Stage.OPTED_OUT, Stage.LOST)
    for open_one in open_enrollments(session, lead.id):
        if open_one.sequence_name in VISIT_SEQUENCES and not ending_everything:
            continue  # reminders for a booked visit go on whatever else the lead says
        match decision.sequence:
            case SequenceChange.PAUSE:
                enrollment.pause(session, open_one, now=now, reason=decision.reason, actor=actor)
            case SequenceChange.RESUME:
                enrollment.resume(
                    session,
                    open_one,
                    now=now,
                    reason=decision.reason,
                    actor=actor,
                    business=services.business_of(lead.business),
                )
            case SequenceChange.STOP:
                enrollment.end(session, open_one, now=now, reason=decision.reason, actor=actor, announce=False)
    if decision.stage is not None:
        set_stage(session, lead, decision.stage, now=now, actor=actor, reason=decision.reason)
    if decision.close_call_tasks:
        close_open_tasks(session, lead.id, now=now, reason=decision.reason, actor=actor)
    playbooks = services.playbooks_of(lead.business)
    if (
        decision.start_nurture
        and playbooks.has(NURTURE_SEQUENCE)
        and not open_enrollments(session, lead.id, sequence=NURTURE_SEQUENCE)
    ):
        enrollment.enroll(
            session,
            lead,
            playbooks.get(NURTURE_SEQUENCE),
            business=services.business_of(lead.business),
            now=now,
            actor=actor,
        )
    alert_team = decision.alert_team and not decision.call_task
    # A call that follows says why itself (its line in the thread, the task in the channel): no second note.
    if (announce or alert_team) and not decision.call_task:
        outbox.publish(
            session,
            Notice.DECISION,
            lead_id=lead.id,
            at=now,
            text=decision.reason,
            alert_team=alert_team,
            actor=actor.describe(),
        )
    if decision.call_task:
        open_call_task(
            session, services, lead, reason=decision.call_task, now=now, actor=actor, requested_time=requested_time
        )
    outbox.publish(session, Notice.LEAD_CHANGED, lead_id=lead.id, at=now)
    lead.updated_at = now


def publish_media(session: Session, message: Message, *, now: datetime) -> None:
    """Queue each photo of a stored message for the lead's thread (fetched and uploaded by the poster)."""
    for index, _ in enumerate((message.details or {}).get("media") or []):
        outbox.publish(
            session, Notice.MEDIA_RECEIVED, lead_id=message.lead_id, at=now, message_id=message.id, index=index
        )


# --- what the lead does -------------------------------------------------------------------------


def opt_out(session: Session, lead: Lead, channel: str, *, now: datetime, actor: Actor) -> None:
    """Never message this channel again until the lead opts back in."""
    if channel == "sms" and (lead.sms_opted_out_at is None or lead.sms_consent):
        consent.revoke_sms(
            session,
            lead,
            ConsentMethod.TEAM if actor.type == ActorType.SLACK_USER else ConsentMethod.OPT_OUT,
            evidence=f"opted out of texts ({actor.describe()})",
            actor=actor,
            now=now,
        )
    if channel == "sms" and lead.sms_opted_out_at is None:
        lead.sms_opted_out_at = now
    elif channel == "email" and lead.email_opted_out_at is None:
        lead.email_opted_out_at = now
    audit.record(session, lead_id=lead.id, actor=actor, action="opted_out", at=now, channel=channel)


def opt_in(session: Session, lead: Lead, channel: str, *, now: datetime, actor: Actor) -> None:
    if channel == "sms":
        lead.sms_opted_out_at = None
        consent.grant_sms(
            session,
            lead,
            consent.ConsentGiven(ConsentMethod.KEYWORD, "texted an opt-in keyword (START) after opting out"),
            actor=actor,
            now=now,
        )
    elif channel == "email":
        lead.email_opted_out_at = None
        lead.email_consent = True
    if lead.stage == Stage.OPTED_OUT:
        set_stage(session, lead, Stage.ENGAGED, now=now, actor=actor, reason=f"opted back in to {channel}")
    audit.record(session, lead_id=lead.id, actor=actor, action="opted_in", at=now, channel=channel)


def on_lead_signal(
    session: Session,
    services: Services,
    lead: Lead,
    signal: LeadSignal,
    *,
    channel: str,
    now: datetime,
    requested_time: datetime | None = None,
    opt_out_channels: tuple[str, ...] = (),
    unclear_time: UnclearTime | None = None,
    also: LeadSignal | None = None,
) -> Decision:
    """Change the lead's course for what they just said (already understood as a signal).

    An opt-out ends `opt_out_channels` (what the reply named, or every channel when it named
    none); without them, the channel it came on. `also` is what else a reply about the visit
    ahead asks a person for (bot.core.reply_classifier.Understanding.also).
    """
    actor = Actor.lead(lead.id)
    opted_out = lead.sms_opted_out_at if channel == "sms" else lead.email_opted_out_at
    signal = signal_for_lead(signal, opted_out=opted_out is not None)
    if signal == LeadSignal.OPT_OUT:
        for ended in opt_out_channels or (channel,):
            opt_out(session, lead, ended, now=now, actor=actor)
    elif signal == LeadSignal.OPT_IN:
        opt_in(session, lead, channel, now=now, actor=actor)

    def with_what_to_settle(reason: str) -> str:
        return _with_unclear_time(reason, unclear_time, services, lead) if unclear_time is not None else reason

    if signal in (LeadSignal.CONFIRM_VISIT, LeadSignal.RESCHEDULE_VISIT, LeadSignal.CANCEL_VISIT):
        from bot.usecases.appointments import on_visit_reply

        answered = on_visit_reply(
            session,
            services,
            lead,
            signal,
            now=now,
            also=also,
            requested_time=requested_time,
            call_reason=with_what_to_settle,
        )
        if answered is not None:
            return answered
    decision = decide_on_signal(signal, current_stage=Stage(lead.stage))
    if decision.call_task:
        decision = replace(decision, call_task=with_what_to_settle(decision.call_task))
    apply_decision(session, services, lead, decision, now=now, actor=actor, requested_time=requested_time)
    return decision


def _with_unclear_time(reason: str, unclear: UnclearTime, services: Services, lead: Lead) -> str:
    """Say a call's reason with the lead's own words for the time and what they could mean: never one guess."""
    business = services.business_of(lead.business)
    lead_zone = lead_timezones(lead, business)[0]
    shown = [
        f"{candidate:%a, %b} {candidate.day} (no time named)"
        if day_only
        else team_time(candidate, business.timezone, lead_zone, first="lead")
        # One day_only flag per candidate (or none at all): unequal lengths would be a bug in requested_time.
        for candidate, day_only in zip(
            unclear.candidates, unclear.day_only or (False,) * len(unclear.candidates), strict=True
        )
    ]
    could_be = f"; could be {' or '.join(shown)}" if shown else ""
    return f'{reason}: they wrote "{unclear.words}" ({unclear.why}){could_be}; ask which time'


def book(
    session: Session,
    services: Services,
    lead: Lead,
    *,
    start_at: datetime,
    now: datetime,
    actor: Actor,
    notes: str = "",
) -> Appointment:
    """Record an appointment booked by the team (bot.usecases.appointments has the whole lifecycle)."""
    from bot.usecases.appointments import book as book_visit

    return book_visit(session, services, lead, start_at=start_at, now=now, actor=actor, notes=notes).appointment


def record_booking_link_click(session: Session, lead: Lead, *, now: datetime) -> None:
    session.add(BookingLinkClick(lead_id=lead.id, clicked_at=now))
    audit.record(session, lead_id=lead.id, actor=Actor.lead(lead.id), action="booking_link_clicked", at=now)


def escalate_unfinished_bookings(session: Session, services: Services, *, now: datetime, delay: timedelta) -> int:
    """Hand the team a call for each lead who clicked the booking link but has not booked since."""
    escalated = 0
    clicks = session.scalars(
        select(BookingLinkClick).where(
            BookingLinkClick.escalated_at.is_(None), BookingLinkClick.clicked_at <= now - delay
        )
    ).all()
    for click in clicks:
        click.escalated_at = now
        lead = session.get(Lead, click.lead_id)
        booked_since = session.scalars(
            select(Appointment.id).where(
                Appointment.lead_id == click.lead_id, Appointment.created_at >= click.clicked_at
            )
        ).first()
        if lead is None or booked_since or lead.stage in (Stage.BOOKED, Stage.LOST, Stage.OPTED_OUT):
            continue
        if open_tasks(session, lead.id):
            continue  # someone is already on it
        open_call_task(
            session, services, lead, reason="clicked the booking link but did not book", now=now, actor=SYSTEM
        )
        outbox.publish(session, Notice.LEAD_CHANGED, lead_id=lead.id, at=now)
        escalated += 1
    return escalated


def on_quiet_end(session: Session, services: Services, lead: Lead, *, now: datetime) -> None:
    """The sales sequence ran out with no answer: move to nurture and start its slow cadence."""
    apply_decision(session, services, lead, decide_on_quiet_end(), now=now, actor=SYSTEM)
    playbooks = services.playbooks_of(lead.business)
    if playbooks.has(NURTURE_SEQUENCE) and not open_enrollments(session, lead.id, sequence=NURTURE_SEQUENCE):
        enrollment.enroll(
            session,
            lead,
            playbooks.get(NURTURE_SEQUENCE),
            business=services.business_of(lead.business),
            now=now,
            actor=SYSTEM,
        )


# --- what the team does -------------------------------------------------------------------------


def pause_lead(session: Session, services: Services, lead: Lead, *, now: datetime, actor: Actor) -> bool:
    paused = [
        e
        for e in open_enrollments(session, lead.id)
        if e.state == EnrollmentState.ACTIVE and e.sequence_name not in VISIT_SEQUENCES
    ]
    if not paused:
        raise LeadActionRefused("automation is not running for this lead, so there is nothing to pause")
    apply_decision(
        session, services, lead, Decision(SequenceChange.PAUSE, f"paused by {actor.describe()}"), now=now, actor=actor
    )
    return True


def resume_lead(session: Session, services: Services, lead: Lead, *, now: datetime, actor: Actor) -> bool:
    paused = [e for e in open_enrollments(session, lead.id) if e.state == EnrollmentState.PAUSED]
    if not paused:
        raise LeadActionRefused("automation is not paused for this lead, so there is nothing to resume")
    apply_decision(
        session, services, lead, Decision(SequenceChange.RESUME, f"resumed by {actor.describe()}"), now=now, actor=actor
    )
    return True


def stop_lead(session: Session, services: Services, lead: Lead, *, now: datetime, actor: Actor) -> None:
    if not open_enrollments(session, lead.id) and lead.stage == Stage.LOST:
        raise LeadActionRefused("this lead is already stopped")
    apply_decision(
        session,
        services,
        lead,
        Decision(SequenceChange.STOP, f"stopped by {actor.describe()}", stage=Stage.LOST, close_call_tasks=True),
        now=now,
        actor=actor,
    )


def opt_out_by_team(
    session: Session, services: Services, lead: Lead, channel: str, *, now: datetime, actor: Actor
) -> None:
    """Record an opt-out the lead gave another way (a call, at the desk)."""
    opt_out(session, lead, channel, now=now, actor=actor)
    apply_decision(
        session,
        services,
        lead,
        decide_on_signal(LeadSignal.OPT_OUT, current_stage=Stage(lead.stage)),
        now=now,
        actor=actor,
    )


def record_consent_by_team(session: Session, lead: Lead, change: str, note: str, *, now: datetime, actor: Actor) -> str:
    """Record what the lead told a team member about texts (`verbal` agreement or `revoked`); say what changed."""
    if not lead.phone:
        raise LeadActionRefused("this lead has no phone number, so there is nothing to text")
    if change == "revoked":
        consent.revoke_sms(session, lead, ConsentMethod.TEAM, evidence=note, actor=actor, now=now)
        done = "No SMS consent on record any more: automated texts go by email or as calls"
    else:
        if lead.sms_opted_out_at is not None:
            raise LeadActionRefused("this lead opted out of texts; only the lead can opt back in, by texting START")
        consent.grant_sms(session, lead, consent.ConsentGiven(ConsentMethod.VERBAL, note), actor=actor, now=now)
        done = "SMS consent recorded (verbal): automated texts may go to them"
    audit.record(session, lead_id=lead.id, actor=actor, action="consent_recorded", at=now, change=change)
    outbox.publish(
        session, Notice.DECISION, lead_id=lead.id, at=now, text=f"{done} ({actor.describe()})", actor=actor.describe()
    )
    outbox.publish(session, Notice.LEAD_CHANGED, lead_id=lead.id, at=now)
    lead.updated_at = now
    return done


def claim_lead(session: Session, lead: Lead, *, now: datetime, actor: Actor) -> None:
    if lead.owner and lead.owner != actor.id:
        raise LeadActionRefused(f"already claimed by <@{lead.owner}>")
    lead.owner = actor.id
    lead.updated_at = now
    audit.record(session, lead_id=lead.id, actor=actor, action="claimed", at=now)
    claim_open_tasks(session, lead, now=now, actor=actor)
    outbox.publish(session, Notice.LEAD_CHANGED, lead_id=lead.id, at=now)


def claim_call_task(session: Session, task_id: int, *, now: datetime, actor: Actor) -> CallTask:
    """Take a call for yourself; a second person is told who already has it."""
    task = session.scalars(
        select(CallTask).where(CallTask.id == task_id).with_for_update().execution_options(populate_existing=True)
    ).first()
    if task is None:
        raise LeadActionRefused(f"there is no call task {task_id}")
    if task.status == CallTaskStatus.CLAIMED:
        if task.claimed_by == actor.id:
            return task
        raise LeadActionRefused(f"already claimed by <@{task.claimed_by}>")
    if task.status != CallTaskStatus.OPEN:
        raise LeadActionRefused(f"this call task is already {task.status}")
    task.status = CallTaskStatus.CLAIMED
    task.claimed_by = actor.id
    task.claimed_at = now
    lead = session.get(Lead, task.lead_id)
    assert lead is not None
    if not lead.owner:
        lead.owner = actor.id
    audit.record(session, lead_id=task.lead_id, actor=actor, action="call_task_claimed", at=now, task=task.id)
    outbox.publish(session, Notice.CALL_TASK_CHANGED, lead_id=task.lead_id, at=now, call_task_id=task.id)
    outbox.publish(session, Notice.LEAD_CHANGED, lead_id=task.lead_id, at=now)
    return task


#: How long Snooze puts a call off (moved to the next opening hour when that falls after hours).
SNOOZE = timedelta(hours=1)


def snooze_call_task(session: Session, services: Services, task_id: int, *, now: datetime, actor: Actor) -> datetime:
    """Put a call off by an hour, or to the next opening hour when that falls after hours; returns when."""
    task = session.scalars(
        select(CallTask).where(CallTask.id == task_id).with_for_update().execution_options(populate_existing=True)
    ).first()
    if task is None:
        raise LeadActionRefused(f"there is no call task {task_id}")
    if task.status not in (CallTaskStatus.OPEN, CallTaskStatus.CLAIMED):
        raise LeadActionRefused(f"this call task is already {task.status}")
    earliest = max(now, task.due_at) + SNOOZE
    try:
        # A call is made by the team, so the business's hours rule it, not the lead's daytime.
        lead = session.get(Lead, task.lead_id)
        assert lead is not None
        business = services.business_of(lead.business)
        until = next_send_time(earliest, business=business, respect_lead_daytime=False, lead_timezones=())
    except NoSendTime:
        until = earliest
    task.due_at = until
    audit.record(
        session,
        lead_id=task.lead_id,
        actor=actor,
        action="call_task_snoozed",
        at=now,
        task=task.id,
        until=until.isoformat(),
    )
    outbox.publish(session, Notice.CALL_TASK_CHANGED, lead_id=task.lead_id, at=now, call_task_id=task.id)
    return until


def mark_not_interested(session: Session, services: Services, lead: Lead, *, now: datetime, actor: Actor) -> None:
    """The team heard the lead does not want to go on: stop follow-up and mark the lead lost."""
    if lead.stage in (Stage.LOST, Stage.OPTED_OUT):
        raise LeadActionRefused(f"this lead is already {Stage(lead.stage).value.replace('_', ' ')}")
    decision = decide_on_signal(LeadSignal.NOT_INTERESTED, current_stage=Stage(lead.stage))
    apply_decision(session, services, lead, decision, now=now, actor=actor)


def log_call_outcome(
    session: Session,
    services: Services,
    task_id: int,
    outcome: CallOutcome,
    *,
    now: datetime,
    actor: Actor,
    notes: str = "",
    when: datetime | None = None,
) -> CallTask:
    """Record how a call went and move the lead on accordingly."""
    task = session.get(CallTask, task_id)
    if task is None:
        raise LeadActionRefused(f"there is no call task {task_id}")
    if task.status in (CallTaskStatus.DONE, CallTaskStatus.CANCELLED):
        raise LeadActionRefused(f"this call task is already {task.status}")
    if outcome in (CallOutcome.BOOKED, CallOutcome.CALL_BACK) and (when is None or when <= now):
        raise LeadActionRefused(f"'{outcome}' needs a future date and time")
    lead = session.get(Lead, task.lead_id)
    assert lead is not None
    task.status = CallTaskStatus.DONE
    task.outcome = outcome
    task.notes = notes
    task.claimed_by = task.claimed_by or actor.id
    task.callback_at = when if outcome == CallOutcome.CALL_BACK else None
    audit.record(
        session,
        lead_id=lead.id,
        actor=actor,
        action="call_outcome",
        at=now,
        task=task.id,
        outcome=str(outcome),
        notes=notes,
    )
    if outcome == CallOutcome.BOOKED:
        outbox.publish(session, Notice.CALL_TASK_CHANGED, lead_id=lead.id, at=now, call_task_id=task.id)
        assert when is not None
        book(session, services, lead, start_at=when, now=now, actor=actor, notes=notes)
        return task
    paused = any(e.state == EnrollmentState.PAUSED for e in open_enrollments(session, lead.id))
    decision = decide_on_call_outcome(outcome, paused=paused)
    if outcome == CallOutcome.WRONG_NUMBER:
        lead.sms_unreachable_reason = "wrong number (logged on a call)"
    # The outcome's thread entry says what follows from it: one note for the click, not two.
    outbox.publish(
        session, Notice.CALL_TASK_CHANGED, lead_id=lead.id, at=now, call_task_id=task.id, consequence=decision.reason
    )
    apply_decision(session, services, lead, decision, now=now, actor=actor, announce=False)
    if outcome == CallOutcome.CALL_BACK:
        open_call_task(
            session,
            services,
            lead,
            reason=f"call back as asked ({notes})" if notes else "call back as asked",
            now=now,
            actor=actor,
            due_at=when,
        )
    return task


def receive_message(
    session: Session,
    services: Services,
    lead: Lead,
    *,
    channel: str,
    body: str,
    signal: LeadSignal,
    now: datetime,
    provider_id: str | None = None,
    subject: str | None = None,
    requested_time: datetime | None = None,
    details: dict | None = None,
    opt_out_channels: tuple[str, ...] = (),
    unclear_time: UnclearTime | None = None,
) -> Decision:
    """Store what the lead sent, with how it was understood, and change course accordingly."""
    message = Message(
        lead_id=lead.id,
        direction="in",
        channel=channel,
        provider_id=provider_id,
        subject=subject,
        body=body,
        classification=str(signal),
        status="received",
        details=details or {},
        created_at=now,
    )
    session.add(message)
    session.flush()
    outbox.publish(
        session,
        Notice.MESSAGE_RECEIVED,
        lead_id=lead.id,
        at=now,
        message_id=message.id,
        channel=channel,
        reply_class=str(signal),
        requested_time=requested_time.isoformat() if requested_time else None,
    )
    webhook_events.queue(
        session,
        LeadEvent.REPLIED,
        lead_id=lead.id,
        at=now,
        details={
            "channel": channel,
            "message_id": message.id,
            "reply_class": str(signal),
            "subject": subject,
            "body": body,
        },
    )
    publish_media(session, message, now=now)
    # How the message was read keeps what else it asked beside a visit reading (a question, a call).
    also = also_of(details)
    return on_lead_signal(
        session,
        services,
        lead,
        signal,
        channel=channel,
        now=now,
        requested_time=requested_time,
        opt_out_channels=opt_out_channels,
        unclear_time=unclear_time,
        also=LeadSignal(also.value) if also is not None else None,
    )


#: The call task a known lead's missed call opens.
CALLED_BACK = "they called back: call them"


def on_missed_call(
    session: Session, services: Services, lead: Lead, *, now: datetime, provider_id: str | None = None
) -> CallTask:
    """A known lead rang and nobody answered: it goes in their thread, automation waits, a call is handed over.

    Returns the call task (its due time is what the caller is told).
    """
    message = Message(
        lead_id=lead.id,
        direction="in",
        channel="voice",
        provider_id=provider_id,
        body="Called and could not get through",
        classification="called",
        status="received",
        details={"read_as": "a missed call from a known lead"},
        created_at=now,
    )
    session.add(message)
    session.flush()
    outbox.publish(
        session,
        Notice.MESSAGE_RECEIVED,
        lead_id=lead.id,
        at=now,
        message_id=message.id,
        channel="voice",
        reply_class="called",
        requested_time=None,
    )
    keep_stage = lead.stage in (Stage.BOOKED, Stage.ENGAGED)
    decision = Decision(
        SequenceChange.PAUSE,
        "called and could not get through; a person calls them back",
        stage=None if keep_stage else Stage.ENGAGED,
        call_task=CALLED_BACK,
        alert_team=True,
    )
    apply_decision(session, services, lead, decision, now=now, actor=Actor.lead(lead.id))
    task = session.scalars(
        select(CallTask)
        .where(CallTask.lead_id == lead.id, CallTask.status.in_((CallTaskStatus.OPEN, CallTaskStatus.CLAIMED)))
        .order_by(CallTask.id.desc())
    ).first()
    assert task is not None
    return task
