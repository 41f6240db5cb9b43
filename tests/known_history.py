"""A known history for the reports: leads from three sources, touches, replies, bookings, a visit kept and
one missed, calls logged by two people; every step taken through the use cases, on the fixed clock.

What it holds, for the last seven days (the numbers the report tests expect):

    lead  source    touches sent                  then
    Ana   website   First text, Thank-you email   replies to the text; resumed, the email goes; booked by
                                                  Alice, comes to the visit; claimed by Alice
    Ben   website   First text                    no reply; Bob logs no answer, Alice a voicemail
    Cara  facebook  First text                    replies; claimed by Bob, who books her on a call; no-show
    Dev   facebook  First text                    replies not interested: lost
    Eve   referral  Thank-you email (no phone)    books on the calendar without writing
    Old   website   First text                    came in nine days ago and replied: only in the thirty days

Ana's booking is the one the attribution rule decides: the email went after her reply, so the booking
counts for the First text (the last touch before she first answered), not for the email.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from bot.core.rules import CallOutcome, LeadSignal
from bot.store.audit import SYSTEM, Actor
from bot.store.models import CallTask, Lead
from bot.usecases.appointments import book as book_visit
from bot.usecases.appointments import mark_attended, mark_no_show, upcoming
from bot.usecases.call_tasks import open_call_task
from bot.usecases.dispatch import Dispatcher
from bot.usecases.lead_actions import book, claim_lead, log_call_outcome, receive_message, resume_lead
from bot.usecases.leads import LeadInput, add_lead
from tests.fakes import WEB_FORM_CONSENT

ALICE = "U0ALICE"
BOB = "U0BOB"


def _take_in(services, *, name: str, source: str, phone: str | None = None, email: str | None = None) -> int:
    fields = {"name": name, "source": source, **WEB_FORM_CONSENT}
    if phone:
        fields["phone"] = phone
    if email:
        fields["email"] = email
    with services.session_factory.begin() as session:
        return add_lead(
            session,
            LeadInput.parse(fields),
            business=services.business,
            sequence=services.playbooks.get(),
            now=services.clock.now(),
            actor=SYSTEM,
        ).lead_id


def _says(services, lead_id: int, signal: LeadSignal, body: str) -> None:
    with services.session_factory.begin() as session:
        receive_message(
            session,
            services,
            session.get(Lead, lead_id),
            channel="sms",
            body=body,
            signal=signal,
            now=services.clock.now(),
        )


def _call(services, lead_id: int, user: str, outcome: CallOutcome, **when) -> None:  # noqa: ANN003 - log_call_outcome's keyword arguments, passed on
    with services.session_factory.begin() as session:
        lead = session.get(Lead, lead_id)
        task = session.scalars(
            select(CallTask).where(CallTask.lead_id == lead_id, CallTask.status.in_(("open", "claimed")))
        ).first()
        if task is None:
            task = open_call_task(
                session, services, lead, reason="call the lead", now=services.clock.now(), actor=SYSTEM
            )
            session.flush()
        log_call_outcome(
            session, services, task.id, outcome, now=services.clock.now(), actor=Actor.slack_user(user), **when
        )


def seed_known_history(services, clock) -> dict[str, int]:
    """Play the history above on the services' clock; return the leads' ids by name. The clock ends at 'now'."""
    dispatcher = Dispatcher(services)
    start = clock.now()
    clock.set(start - timedelta(days=9))
    old = _take_in(services, name="Old Lead", source="website", phone="+13125550109")
    dispatcher.run_due()
    clock.advance(timedelta(hours=1))
    _says(services, old, LeadSignal.PLAIN, "Thanks, I will think about it")  # the reply holds the follow-up
    clock.set(start)

    ana = _take_in(services, name="Ana Alvarez", source="website", phone="+13125550101", email="ana@example.com")
    ben = _take_in(services, name="Ben Brooks", source="website", phone="+13125550102")
    cara = _take_in(services, name="Cara Cole", source="facebook", phone="+13125550103")
    dev = _take_in(services, name="Dev Dunn", source="facebook", phone="+13125550104")
    eve = _take_in(services, name="Eve Evans", source="referral", email="eve@example.com")
    dispatcher.run_due()  # the first texts, at once

    clock.advance(timedelta(minutes=5))
    _says(services, ana, LeadSignal.PLAIN, "Hi, what times do you have?")
    _says(services, cara, LeadSignal.PLAIN, "Yes please call me")
    _says(services, dev, LeadSignal.NOT_INTERESTED, "No thanks, not interested")
    with services.session_factory.begin() as session:
        claim_lead(session, session.get(Lead, ana), now=clock.now(), actor=Actor.slack_user(ALICE))
        resume_lead(session, services, session.get(Lead, ana), now=clock.now(), actor=Actor.slack_user(ALICE))
        claim_lead(session, session.get(Lead, cara), now=clock.now(), actor=Actor.slack_user(BOB))

    clock.advance(timedelta(minutes=15))
    dispatcher.run_due()  # the thank-you emails: Ana's (after her reply) and Eve's

    clock.advance(timedelta(minutes=10))
    visit_at = clock.now() + timedelta(hours=2)
    with services.session_factory.begin() as session:
        book(
            session, services, session.get(Lead, ana), start_at=visit_at, now=clock.now(), actor=Actor.slack_user(ALICE)
        )
        book_visit(
            session,
            services,
            session.get(Lead, eve),
            start_at=visit_at,
            now=clock.now(),
            actor=SYSTEM,
            source="calendly",
            external_id="invitee-eve",
        )
    _call(services, ben, BOB, CallOutcome.NO_ANSWER)
    _call(services, cara, BOB, CallOutcome.BOOKED, when=visit_at)
    clock.advance(timedelta(minutes=30))
    _call(services, ben, ALICE, CallOutcome.LEFT_VOICEMAIL)

    clock.set(visit_at + timedelta(hours=1))
    with services.session_factory.begin() as session:
        mark_attended(session, services, upcoming(session, ana), now=clock.now(), actor=Actor.slack_user(ALICE))
        mark_no_show(session, services, upcoming(session, cara), now=clock.now(), actor=Actor.slack_user(BOB))
    return {"ana": ana, "ben": ben, "cara": cara, "dev": dev, "eve": eve, "old": old}
