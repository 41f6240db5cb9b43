"""Modal submissions: check the form (field errors go back in the ack), then call one use case and answer.

Reading the form is pure and instant, so it happens before the ack that carries its errors; the
use case runs after the ack. A refusal found then (a task someone else just closed) reaches the
person as an ephemeral message where they clicked.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from slack_bolt import Ack, App, BoltContext
from slack_sdk import WebClient

from bot.core.rules import CallOutcome
from bot.slack.blocks import OUTCOME_LABELS, ModalCallback, escape
from bot.slack.home import when
from bot.slack.modals import (
    CHANNEL_LABELS,
    FormErrors,
    ModalOrigin,
    StaleModal,
    book_modal,
    read_book_form,
    read_outcome_form,
    read_reply_form,
    read_reschedule_form,
    reschedule_modal,
)
from bot.store.audit import Actor
from bot.store.models import CallTask, Lead
from bot.usecases.appointments import closed_day_warning, reschedule, upcoming
from bot.usecases.conversations import DirectMessageRefused, send_direct
from bot.usecases.lead_actions import LeadActionRefused, book, log_call_outcome
from bot.usecases.team_actions import after_change, change_lead, change_task
from handlers.slack_edge import business_of, plain_name, services_of, tell

log = logging.getLogger(__name__)


def register(app: App) -> None:
    app.view(str(ModalCallback.LOG_OUTCOME))(on_log_outcome)
    app.view(str(ModalCallback.BOOK))(on_book)
    app.view(str(ModalCallback.REPLY))(on_reply)
    app.view(str(ModalCallback.RESCHEDULE))(on_reschedule)


def _origin(ack: Ack, view: dict[str, Any]) -> ModalOrigin | None:
    try:
        return ModalOrigin.from_metadata(view.get("private_metadata"))
    except StaleModal as stale:
        # Only the bot writes private_metadata: this is an old modal or not ours. Close it quietly.
        log.warning("slack: %s submitted with %s", view.get("callback_id"), stale)
        ack()
        return None


def _values(view: dict[str, Any]) -> dict[str, Any]:
    return ((view.get("state") or {}).get("values")) or {}


def _answer(client: WebClient, origin: ModalOrigin, user: str, text: str) -> None:
    tell(client, channel=origin.channel, user=user, thread_ts=origin.thread_ts, text=text)


def on_log_outcome(
    ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient, context: BoltContext
) -> None:
    services = services_of(context)
    origin = _origin(ack, view)
    if origin is None:
        return
    try:
        form = read_outcome_form(_values(view), now=services.clock.now())
    except FormErrors as invalid:
        ack(response_action="errors", errors=invalid.errors)
        return
    ack()
    user = body["user"]["id"]
    try:
        change_task(
            services,
            origin.task_id,
            lambda session, services, task_id, now, actor: log_call_outcome(
                session, services, task_id, form.outcome, now=now, actor=actor, notes=form.notes, when=form.when
            ),
            Actor.slack_user(user),
        )
    except LeadActionRefused as refused:
        _answer(client, origin, user, f"Outcome not saved: {refused}.")
        return
    if form.outcome == CallOutcome.CALL_BACK and form.when is not None:
        _answer(
            client,
            origin,
            user,
            f":telephone_receiver: Saved. A call back is set for {when(form.when, business_of(context).timezone)}.",
        )
    else:
        warning = (
            closed_day_warning(business_of(context), form.when)
            if form.outcome == CallOutcome.BOOKED and form.when is not None
            else None
        )
        # Booked on a closed day: kept (the person may mean it), and said so where they can move it.
        extra = f" :warning: {escape(warning)}: booked anyway; Reschedule on the card moves it." if warning else ""
        _answer(client, origin, user, f"Saved: {OUTCOME_LABELS.get(str(form.outcome), str(form.outcome))}.{extra}")


def on_book(ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient, context: BoltContext) -> None:
    services = services_of(context)
    origin = _origin(ack, view)
    if origin is None:
        return
    try:
        form = read_book_form(_values(view), now=services.clock.now())
    except FormErrors as invalid:
        ack(response_action="errors", errors=invalid.errors)
        return
    warning = closed_day_warning(business_of(context), form.start_at)
    if warning and origin.warned != int(form.start_at.timestamp()):
        # The person booking hears it first; a second submit at the same time books it anyway.
        warned = replace(origin, warned=int(form.start_at.timestamp()))
        ack(
            response_action="update",
            view=book_modal(_lead_name(services, origin), warned, warning=warning, initial=form.start_at),
        )
        return
    ack()
    user = body["user"]["id"]
    actor = Actor.slack_user(user)
    try:
        if origin.task_id is not None:
            # Booked from a call: the call is done with that outcome, and the visit is booked.
            change_task(
                services,
                origin.task_id,
                lambda session, services, task_id, now, actor: log_call_outcome(
                    session,
                    services,
                    task_id,
                    CallOutcome.BOOKED,
                    now=now,
                    actor=actor,
                    notes=form.notes,
                    when=form.start_at,
                ),
                actor,
            )
        else:
            change_lead(
                services,
                origin.lead_id,
                lambda session, services, lead, now, actor: book(
                    session, services, lead, start_at=form.start_at, now=now, actor=actor, notes=form.notes
                ),
                actor,
                missing=f"lead #{origin.lead_id} no longer exists",
            )
    except LeadActionRefused as refused:
        _answer(client, origin, user, f"Not booked: {refused}.")
        return
    _answer(client, origin, user, f":calendar: Booked for {when(form.start_at, business_of(context).timezone)}.")


def _lead_name(services: Any, origin: ModalOrigin) -> str:
    with services.session_factory() as session:
        lead_id = origin.lead_id
        if lead_id is None and origin.task_id is not None:
            task = session.get(CallTask, origin.task_id)
            lead_id = task.lead_id if task else None
        lead = session.get(Lead, lead_id) if lead_id is not None else None
        return plain_name(lead) if lead else "this lead"


def on_reschedule(
    ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient, context: BoltContext
) -> None:
    services = services_of(context)
    origin = _origin(ack, view)
    if origin is None:
        return
    zone = business_of(context).timezone
    try:
        start_at = read_reschedule_form(_values(view), now=services.clock.now(), zone=zone)
    except FormErrors as invalid:
        ack(response_action="errors", errors=invalid.errors)
        return
    warning = closed_day_warning(business_of(context), start_at)
    if warning and origin.warned != int(start_at.timestamp()):
        warned = replace(origin, warned=int(start_at.timestamp()))
        ack(
            response_action="update",
            view=reschedule_modal(
                _lead_name(services, origin), when(start_at, zone), warned, zone=zone, initial=start_at, warning=warning
            ),
        )
        return
    ack()
    user = body["user"]["id"]
    try:
        change_lead(
            services,
            origin.lead_id,
            lambda session, services, lead, now, actor: reschedule(
                session, services, upcoming(session, lead.id), start_at=start_at, now=now, actor=actor
            ),
            Actor.slack_user(user),
            missing=f"lead #{origin.lead_id} no longer exists",
        )
    except LeadActionRefused as refused:
        _answer(client, origin, user, f"Not moved: {refused}.")
        return
    _answer(
        client,
        origin,
        user,
        f":arrows_counterclockwise: Moved to {when(start_at, zone)}; the lead is told the new time.",
    )


def on_reply(ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient, context: BoltContext) -> None:
    services = services_of(context)
    origin = _origin(ack, view)
    if origin is None:
        return
    try:
        form = read_reply_form(_values(view))
    except FormErrors as invalid:
        ack(response_action="errors", errors=invalid.errors)
        return
    ack()
    user = body["user"]["id"]
    if origin.lead_id is None:
        _answer(client, origin, user, "Not sent: the form names no lead.")
        return
    how = CHANNEL_LABELS[form.channel].lower() if form.channel == "email" else "text"
    try:
        message = send_direct(
            services,
            origin.lead_id,
            body=form.body,
            author=Actor.slack_user(user),
            channel=form.channel,
            subject=form.subject,
        )
    except DirectMessageRefused as refused:
        _answer(client, origin, user, f":no_entry: Not sent: {escape(str(refused))}. Nothing left Slack.")
        return
    after_change(services)
    if message.status == "failed":
        why = (message.details or {}).get("error") or message.error_code or "the provider refused it"
        _answer(client, origin, user, f":x: Your {how} was not sent: {escape(str(why))}.")
        return
    _answer(
        client,
        origin,
        user,
        f":outbox_tray: Your {how} is on its way to the lead; its delivery status shows in the lead's thread.",
    )
