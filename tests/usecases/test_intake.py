"""Intake and the instant answer: a lead taken in from outside gets its instant text at once, once."""

from __future__ import annotations

from bot.store.audit import Actor
from bot.usecases.dispatch import Dispatcher
from bot.usecases.intake import take_in_and_send
from bot.usecases.leads import LeadInput
from tests.fakes import WEB_FORM_CONSENT

DANA = {"name": "Dana Lee", "phone": "+13125550142", "message": "Lower back pain, any openings?", **WEB_FORM_CONSENT}


def fast_lane(services) -> None:
    """The scheduler's fast lane, run in the caller's thread: the lead's due touches go now."""
    services.wakeups.connect(lead=lambda lead_id: Dispatcher(services).run_leads([lead_id]))


def test_a_new_lead_taken_in_gets_its_instant_text_before_the_call_returns(services, sms):
    fast_lane(services)
    result = take_in_and_send(services, LeadInput.parse(DANA), actor=Actor.lead(0))
    assert result.created and result.enrolled
    assert [message.to for message in sms.sent] == ["+13125550142"]


def test_a_lead_already_in_follow_up_is_not_texted_again_when_taken_in_again(services, sms):
    fast_lane(services)
    take_in_and_send(services, LeadInput.parse(DANA), actor=Actor.lead(0))
    again = take_in_and_send(services, LeadInput.parse(DANA), actor=Actor.lead(0))
    assert not again.created and not again.enrolled
    assert len(sms.sent) == 1
