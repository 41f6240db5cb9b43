"""Button listeners on lead cards and call tasks: acknowledge, call one use case, answer the one who clicked.

The card and task messages are not edited here: the use cases queue notices that the poster
carries out. A person whose click changes nothing (a call already claimed, a lead already
paused) is told why in an ephemeral message.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from slack_bolt import Ack, App, BoltContext
from slack_sdk import WebClient
from sqlalchemy.orm import Session

from bot.core.business import Business
from bot.core.rules import CallOutcome
from bot.core.states import CallTaskStatus
from bot.slack.blocks import ActionId, escape
from bot.slack.home import when
from bot.slack.modals import ModalOrigin, book_modal, email_modal, log_outcome_modal, reply_modal, reschedule_modal
from bot.store.audit import Actor
from bot.store.models import Appointment, CallTask, Lead, Message
from bot.usecases.appointments import ACTIVE, back_to_follow_up, cancel, mark_attended, mark_no_show
from bot.usecases.closed_by_bot import NothingToReopen, reopen_lead
from bot.usecases.lead_actions import (
    LeadActionRefused,
    claim_call_task,
    claim_lead,
    log_call_outcome,
    mark_not_interested,
    pause_lead,
    resume_lead,
    snooze_call_task,
)
from bot.usecases.services import Services
from bot.usecases.team_actions import change_appointment, change_lead, change_task, task_lead_id
from handlers.slack_edge import Click, business_of, businesses_of, plain_name, publish_home, services_of

LeadUseCase = Callable[[Session, Services, Lead, datetime, Actor], None]
#: A use case on one call task; what it returns is handed to the button's follow-up answer.
TaskUseCase = Callable[[Session, Services, int, datetime, Actor], Any]


def register(app: App) -> None:
    app.action(str(ActionId.LEAD_CLAIM))(lead_button(_claim))
    app.action(str(ActionId.LEAD_PAUSE))(lead_button(_pause))
    app.action(str(ActionId.LEAD_RESUME))(lead_button(_resume))
    app.action(str(ActionId.LEAD_NOT_INTERESTED))(lead_button(_not_interested))
    app.action(str(ActionId.LEAD_BOOKED))(on_lead_booked)
    app.action(str(ActionId.LEAD_REPLY))(on_lead_reply)
    app.action(str(ActionId.TASK_CLAIM))(task_change(_claim_task))
    app.action(str(ActionId.TASK_PAUSE))(task_button(_pause))
    app.action(str(ActionId.TASK_RESUME))(task_button(_resume))
    app.action(str(ActionId.TASK_NOT_INTERESTED))(task_change(_task_not_interested))
    app.action(str(ActionId.TASK_BOOKED))(on_task_booked)
    app.action(str(ActionId.TASK_LOG_OUTCOME))(on_task_log_outcome)
    app.action(str(ActionId.TASK_SNOOZE))(task_change(_snooze, answer=_snoozed_until))
    app.action(str(ActionId.EMAIL_OPEN))(on_email_open)
    app.action(str(ActionId.APPOINTMENT_RESCHEDULE))(on_appointment_reschedule)
    app.action(str(ActionId.APPOINTMENT_CANCEL))(appointment_button(cancel, "Visit cancelled; reminders stopped."))
    app.action(str(ActionId.APPOINTMENT_ATTENDED))(appointment_button(mark_attended, "Marked attended."))
    app.action(str(ActionId.APPOINTMENT_NO_SHOW))(
        appointment_button(
            mark_no_show, 'Marked a no-show: the "we missed you" messages start and a call is on the list.'
        )
    )
    app.action(str(ActionId.LEAD_BACK_TO_FOLLOW_UP))(lead_button(_back_to_follow_up))
    app.action(str(ActionId.LEAD_REOPEN))(on_lead_reopen)


def on_lead_reopen(
    ack: Ack, body: dict[str, Any], action: dict[str, Any], client: WebClient, context: BoltContext
) -> None:
    """App Home's Reopen (value: lead id): undo the bot's closing, then show the person their Home again."""
    ack()
    click = Click.read(body, action)
    services = services_of(context)
    try:
        change_lead(services, click.target_id, _reopen, Actor.slack_user(click.user_id))
    except (LeadActionRefused, NothingToReopen):
        pass  # gone, or reopened by someone else meanwhile: the fresh Home shows it
    publish_home(client, services, click.user_id, businesses_of(context))


# --- what the buttons do to a lead ----------------------------------------------------------------


def _reopen(session: Session, services: Services, lead: Lead, now: datetime, actor: Actor) -> None:
    reopen_lead(session, lead, now=now, actor=actor)


def _pause(session: Session, services: Services, lead: Lead, now: datetime, actor: Actor) -> None:
    pause_lead(session, services, lead, now=now, actor=actor)


def _resume(session: Session, services: Services, lead: Lead, now: datetime, actor: Actor) -> None:
    resume_lead(session, services, lead, now=now, actor=actor)


def _claim(session: Session, services: Services, lead: Lead, now: datetime, actor: Actor) -> None:
    claim_lead(session, lead, now=now, actor=actor)


def _not_interested(session: Session, services: Services, lead: Lead, now: datetime, actor: Actor) -> None:
    mark_not_interested(session, services, lead, now=now, actor=actor)


def _back_to_follow_up(session: Session, services: Services, lead: Lead, now: datetime, actor: Actor) -> None:
    back_to_follow_up(session, services, lead, now=now, actor=actor)


# --- what the buttons do to an appointment -------------------------------------------------------


def appointment_button(use_case: Callable[..., Any], done: str) -> Callable[..., None]:
    """A card button (value: appointment id) that moves the appointment on, under its lead's lock."""

    def listener(
        ack: Ack, body: dict[str, Any], action: dict[str, Any], client: WebClient, context: BoltContext
    ) -> None:
        ack()
        click = Click.read(body, action)
        services = services_of(context)
        try:
            change_appointment(
                services,
                click.target_id,
                lambda session, services, appointment, now, actor: use_case(
                    session, services, appointment, now=now, actor=actor
                ),
                Actor.slack_user(click.user_id),
            )
        except LeadActionRefused as refused:
            click.answer(client, f"Nothing changed: {refused}.")
            return
        click.answer(client, done)

    listener.__name__ = f"on_appointment_{use_case.__name__.strip('_')}"
    return listener


def on_appointment_reschedule(
    ack: Ack, body: dict[str, Any], action: dict[str, Any], client: WebClient, context: BoltContext
) -> None:
    ack()
    click = Click.read(body, action)
    services = services_of(context)
    with services.session_factory() as session:
        appointment = session.get(Appointment, click.target_id) if click.target_id is not None else None
        lead = session.get(Lead, appointment.lead_id) if appointment else None
        if appointment is None or lead is None or appointment.status not in ACTIVE:
            problem = (
                "this appointment no longer exists"
                if appointment is None
                else f"this appointment is already {str(appointment.status).replace('_', ' ')}"
            )
            click.answer(client, f"Nothing to move: {problem}.")
            return
        name, start_at, lead_id = plain_name(lead), appointment.start_at, lead.id
    zone = business_of(context).timezone
    origin = ModalOrigin(lead_id=lead_id, channel=click.channel_id, thread_ts=click.thread_ts)
    client.views_open(
        trigger_id=click.trigger_id,
        view=reschedule_modal(name, when(start_at, zone), origin, zone=zone, initial=start_at),
    )


def _change_lead(
    client: WebClient, services: Services, click: Click, lead_id: int | None, use_case: LeadUseCase, *, missing: str
) -> None:
    try:
        change_lead(services, lead_id, use_case, Actor.slack_user(click.user_id), missing=missing)
    except LeadActionRefused as refused:
        click.answer(client, f"Nothing changed: {refused}.")


def lead_button(use_case: LeadUseCase) -> Callable[..., None]:
    """A card button (value: lead id) that applies one use case to the lead."""

    def listener(
        ack: Ack, body: dict[str, Any], action: dict[str, Any], client: WebClient, context: BoltContext
    ) -> None:
        ack()
        click = Click.read(body, action)
        _change_lead(
            client, services_of(context), click, click.target_id, use_case, missing="this lead no longer exists"
        )

    listener.__name__ = f"on_lead_{use_case.__name__.strip('_')}"
    return listener


def task_button(use_case: LeadUseCase) -> Callable[..., None]:
    """A call-task button (value: task id) that applies one use case to the task's lead."""

    def listener(
        ack: Ack, body: dict[str, Any], action: dict[str, Any], client: WebClient, context: BoltContext
    ) -> None:
        ack()
        click = Click.read(body, action)
        services = services_of(context)
        _change_lead(
            client,
            services,
            click,
            task_lead_id(services, click.target_id),
            use_case,
            missing="this call task no longer exists",
        )

    listener.__name__ = f"on_task_{use_case.__name__.strip('_')}"
    return listener


# --- what the buttons do to a call task --------------------------------------------------------


def _claim_task(session: Session, services: Services, task_id: int, now: datetime, actor: Actor) -> None:
    claim_call_task(session, task_id, now=now, actor=actor)


def _task_not_interested(session: Session, services: Services, task_id: int, now: datetime, actor: Actor) -> None:
    log_call_outcome(session, services, task_id, CallOutcome.NOT_INTERESTED, now=now, actor=actor)


def _snooze(session: Session, services: Services, task_id: int, now: datetime, actor: Actor) -> datetime:
    return snooze_call_task(session, services, task_id, now=now, actor=actor)


def _snoozed_until(business: Business, until: datetime) -> str:
    return f":zzz: Snoozed until {when(until, business.timezone)}."


def task_change(use_case: TaskUseCase, *, answer: Callable[[Business, Any], str] | None = None) -> Callable[..., None]:
    """A call-task button (value: task id) that applies one use case under the lead's lock.

    A refusal (already claimed, already done) is told to the person who clicked; `answer`, when
    given, turns what the use case returned into a note for them.
    """

    def listener(
        ack: Ack, body: dict[str, Any], action: dict[str, Any], client: WebClient, context: BoltContext
    ) -> None:
        ack()
        click = Click.read(body, action)
        services = services_of(context)
        try:
            result = change_task(services, click.target_id, use_case, Actor.slack_user(click.user_id))
        except LeadActionRefused as refused:
            click.answer(client, f"Nothing changed: {refused}.")
            return
        if answer is not None:
            click.answer(client, answer(business_of(context), result))

    listener.__name__ = f"on_task_{use_case.__name__.strip('_')}"
    return listener


# --- buttons that open a modal ------------------------------------------------------------------


def on_lead_booked(
    ack: Ack, body: dict[str, Any], action: dict[str, Any], client: WebClient, context: BoltContext
) -> None:
    ack()
    click = Click.read(body, action)
    services = services_of(context)
    with services.session_factory() as session:
        lead = session.get(Lead, click.target_id) if click.target_id is not None else None
        name = plain_name(lead) if lead else None
    if name is None:
        click.answer(client, "This lead no longer exists.")
        return
    origin = ModalOrigin(lead_id=click.target_id, channel=click.channel_id, thread_ts=click.thread_ts)
    client.views_open(trigger_id=click.trigger_id, view=book_modal(name, origin))


def on_task_booked(
    ack: Ack, body: dict[str, Any], action: dict[str, Any], client: WebClient, context: BoltContext
) -> None:
    ack()
    click = Click.read(body, action)
    task = _open_task(client, services_of(context), click)
    if task is None:
        return
    name, _reason = task
    origin = ModalOrigin(task_id=click.target_id, channel=click.channel_id, thread_ts=click.thread_ts)
    client.views_open(trigger_id=click.trigger_id, view=book_modal(name, origin))


def on_task_log_outcome(
    ack: Ack, body: dict[str, Any], action: dict[str, Any], client: WebClient, context: BoltContext
) -> None:
    ack()
    click = Click.read(body, action)
    task = _open_task(client, services_of(context), click)
    if task is None:
        return
    name, reason = task
    origin = ModalOrigin(task_id=click.target_id, channel=click.channel_id, thread_ts=click.thread_ts)
    client.views_open(trigger_id=click.trigger_id, view=log_outcome_modal(name, reason, origin))


def _open_task(client: WebClient, services: Services, click: Click) -> tuple[str, str] | None:
    """The lead's name and the reason of a call task still open, or None after telling the person why not."""
    with services.session_factory() as session:
        task = session.get(CallTask, click.target_id) if click.target_id is not None else None
        lead = session.get(Lead, task.lead_id) if task else None
        if task is None or lead is None:
            problem = "this call task no longer exists"
        elif task.status not in (CallTaskStatus.OPEN, CallTaskStatus.CLAIMED):
            problem = f"this call task is already {task.status}"
        else:
            return plain_name(lead), task.reason
    click.answer(client, f"Nothing to do: {problem}.")
    return None


def on_lead_reply(
    ack: Ack, body: dict[str, Any], action: dict[str, Any], client: WebClient, context: BoltContext
) -> None:
    ack()
    click = Click.read(body, action)
    services = services_of(context)
    with services.session_factory() as session:
        lead = session.get(Lead, click.target_id) if click.target_id is not None else None
        name = plain_name(lead) if lead else None
        channels = _open_channels(lead) if lead else []
    if name is None or not channels:
        why = (
            "this lead no longer exists"
            if name is None
            else "the lead cannot be reached: they opted out, or have no phone or email that works"
        )
        click.answer(client, f"Can't reply: {why}.")
        return
    origin = ModalOrigin(lead_id=click.target_id, channel=click.channel_id, thread_ts=click.thread_ts)
    client.views_open(trigger_id=click.trigger_id, view=reply_modal(name, channels, origin))


def _open_channels(lead: Lead) -> list[str]:
    """The channels a team reply may still use: consent given (or the lead wrote first), not opted out, reachable."""
    return [
        channel for channel, allowed in (("sms", lead.sms_answer_allowed), ("email", lead.email_allowed)) if allowed
    ]


def on_email_open(
    ack: Ack, body: dict[str, Any], action: dict[str, Any], client: WebClient, context: BoltContext
) -> None:
    """Show a whole email of a lead's thread in a modal (the thread shows its subject and first line)."""
    ack()
    click = Click.read(body, action)
    services = services_of(context)
    with services.session_factory() as session:
        message = session.get(Message, click.target_id) if click.target_id is not None else None
        lead = session.get(Lead, message.lead_id) if message is not None else None
        if message is None or lead is None or message.channel != "email":
            view = None
        else:
            who = plain_name(lead)
            heading = (
                f":incoming_envelope: *Email from {escape(who)}*"
                if message.direction == "in"
                else f":outbox_tray: *Email to {escape(who)}*"
            )
            view = email_modal(heading, message.subject, message.body)
    if view is None:
        click.answer(client, "This email is no longer stored.")
        return
    client.views_open(trigger_id=click.trigger_id, view=view)
