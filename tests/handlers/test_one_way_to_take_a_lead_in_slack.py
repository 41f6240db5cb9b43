"""What the team does in Slack changes a lead only under its lock, like everything else.

The lock is bot.store.lead_locks.taking_lead.

A lead is worked from Slack through the real listeners (claim, pause and resume, a call logged from
its modal, a team reply in the thread, consent noted, a visit booked, moved, cancelled, marked, the
lead stopped) with a watch on the database that notes any change to the lead made without its lock.
"""

from __future__ import annotations

from sqlalchemy import select

from bot.slack.blocks import ActionId
from bot.store.models import Appointment, CallTask, Lead, Message
from tests.handlers.conftest import ADMIN, ALICE, any_database, new_call_task, new_lead
from tests.support.unlocked_changes import UnlockedChanges


@any_database
def test_nothing_the_team_does_in_slack_changes_a_lead_without_its_lock(workspace, services, clock):
    lead_id = new_lead(services)
    task_id = new_call_task(services, lead_id, reason="asked about prices")
    watch = UnlockedChanges(services)

    workspace.click(ActionId.LEAD_CLAIM, lead_id)
    workspace.click(ActionId.LEAD_PAUSE, lead_id)
    workspace.click(ActionId.LEAD_RESUME, lead_id)
    workspace.click(ActionId.TASK_CLAIM, task_id)
    workspace.click(ActionId.TASK_LOG_OUTCOME, task_id)
    workspace.submit(
        workspace.opened_view(),
        {
            "outcome": {"type": "radio_buttons", "selected_option": {"value": "left_voicemail"}},
            "notes": {"type": "plain_text_input", "value": "left the voicemail script"},
        },
    )
    workspace.thread_reply("!reply Thanks Dana, we will call you after 5.")
    workspace.command(f'consent {lead_id} verbal "agreed to texts on the phone"')
    workspace.command(f"book {lead_id} 2026-12-03 10:00")
    workspace.command(f"reschedule {lead_id} 2026-12-04 11:00")
    workspace.command(f"cancel {lead_id}")
    workspace.command(f"stop {lead_id}", user=ADMIN)

    # Each of them was carried out (none refused), so the watch saw real changes.
    with services.session_factory() as session:
        lead = session.get(Lead, lead_id)
        visits = [
            a.status
            for a in session.scalars(select(Appointment).where(Appointment.lead_id == lead_id).order_by(Appointment.id))
        ]
        logged = session.scalars(select(CallTask).where(CallTask.id == task_id)).one().outcome
        team_reply = session.scalars(
            select(Message).where(Message.lead_id == lead_id, Message.author.is_not(None))
        ).all()
    assert (lead.stage, lead.owner, lead.sms_consent_method) == ("lost", ALICE, "verbal")
    assert visits == ["rescheduled", "cancelled"] and logged == "left_voicemail" and team_reply
    assert watch.found == [], "\n".join(watch.found)
