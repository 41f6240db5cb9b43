"""Claiming a lead (the card's Claim button or `/followup claim`) claims its open call task too."""

from __future__ import annotations

from bot.core.states import CallTaskStatus
from bot.slack.blocks import ActionId
from tests.handlers.conftest import ALICE, BOB, any_database, new_call_task, new_lead, task_row


@any_database
def test_the_cards_claim_button_claims_the_leads_open_call_task(workspace, services):
    lead_id = new_lead(services)
    task_id = new_call_task(services, lead_id)

    workspace.click(ActionId.LEAD_CLAIM, lead_id, user=ALICE)

    task = task_row(services, task_id)
    assert (task.status, task.claimed_by) == (CallTaskStatus.CLAIMED, ALICE)


@any_database
def test_followup_claim_claims_the_leads_open_call_task(workspace, services):
    lead_id = new_lead(services)
    task_id = new_call_task(services, lead_id)

    workspace.command("claim Dana", user=BOB)

    task = task_row(services, task_id)
    assert (task.status, task.claimed_by) == (CallTaskStatus.CLAIMED, BOB)


@any_database
def test_stopping_a_lead_closes_its_open_call_task_with_a_line_saying_why(workspace, services):
    from sqlalchemy import select

    from bot.store.models import OutboxEvent

    lead_id = new_lead(services)
    task_id = new_call_task(services, lead_id)

    workspace.command("stop Dana", user="U0ADMIN")

    assert task_row(services, task_id).status == CallTaskStatus.CANCELLED
    with services.session_factory() as session:
        lines = [
            e.payload.get("text", "")
            for e in session.scalars(
                select(OutboxEvent).where(OutboxEvent.lead_id == lead_id, OutboxEvent.kind == "decision")
            )
        ]
    assert any(line.startswith("Call task closed (asked a question): lost") for line in lines), lines
