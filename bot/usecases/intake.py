"""Intake and the instant answer: take a lead in, and send what falls due for it at once, in one call.

Every way a lead arrives from outside (the web form, `/followup add`, a missed call) takes it in
here, so none can store a new lead and forget its instant text (speed to lead).
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session

from bot.core.playbook import Sequence
from bot.store.audit import Actor
from bot.store.models import Lead
from bot.usecases.leads import IntakeResult, LeadInput, take_in_lead
from bot.usecases.services import Services


def take_in_and_send(
    services: Services,
    data: LeadInput,
    *,
    actor: Actor,
    sequence: Sequence | None = None,
    also: Callable[[Session, Lead, IntakeResult], None] | None = None,
    business: str | None = None,
) -> IntakeResult:
    """Take a lead in (stored and committed, under its lock when known), then send its due touches now.

    Sent only once the lead is committed, on the dispatcher's fast lane, so the answer goes as soon
    as it can without making the caller wait for the provider. `also` and `business` (the slug of the
    business the lead came to; None: the deployment's single business) are `take_in_lead`'s.
    """
    result = take_in_lead(services, data, actor=actor, sequence=sequence, also=also, business=business)
    if result.enrolled:
        services.send_due_now(result.lead_id)
    return result
