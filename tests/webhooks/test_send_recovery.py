"""A send left open by a process that died is settled by asking Twilio, never resent blindly."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from bot.core.ports import OutgoingSms
from bot.store.audit import Actor
from bot.store.models import Message, OutboxEvent, Touch
from bot.usecases.dispatch import SEND_LEASE_SECONDS, Dispatcher, DispatchReport
from bot.usecases.leads import LeadInput, add_lead
from tests.fakes import consented

DANA_PHONE = "+13125550142"
PAST_LEASE = timedelta(seconds=SEND_LEASE_SECONDS + 1)


def enroll(bot, *, phone: str | None = DANA_PHONE, email: str | None = None) -> int:
    services = bot.services
    with services.session_factory.begin() as session:
        result = add_lead(
            session,
            LeadInput(name="Dana Lee", phone=phone, email=email, sms_consent=consented()),
            business=services.business,
            sequence=services.playbooks.get(),
            now=services.clock.now(),
            actor=Actor.lead(0),
        )
    return result.lead_id


def claim(bot):
    """Claim the due touches as a process would just before it dies: marked `sending`, committed."""
    return Dispatcher(bot.services)._claim_batch(DispatchReport())  # noqa: SLF001 - the claim itself is what this test checks


def touches(bot, lead_id: int) -> list[Touch]:
    with bot.services.session_factory() as session:
        return list(session.scalars(select(Touch).where(Touch.lead_id == lead_id).order_by(Touch.position)))


def needs_person(bot, lead_id: int) -> list[OutboxEvent]:
    with bot.services.session_factory() as session:
        return list(
            session.scalars(
                select(OutboxEvent).where(OutboxEvent.lead_id == lead_id, OutboxEvent.kind == "needs_person")
            )
        )


def test_a_text_that_reached_twilio_before_the_crash_is_recorded_with_its_sid_not_resent(running_bot, twilio, clock):
    lead_id = enroll(running_bot)
    [item] = claim(running_bot)
    receipt = running_bot.services.sms.send_sms(item.outgoing)  # the process dies before recording this
    clock.advance(PAST_LEASE)
    running_bot.dispatch()
    first = touches(running_bot, lead_id)[0]
    assert (first.status, first.provider_id) == ("sent", receipt.provider_id)
    assert len(twilio.messages) == 1
    with running_bot.services.session_factory() as session:
        assert session.scalars(select(Message.provider_id).where(Message.touch_id == first.id)).all() == [
            receipt.provider_id
        ]


def test_a_text_claimed_but_never_sent_goes_out_once_after_the_lease(running_bot, twilio, clock):
    lead_id = enroll(running_bot)
    claim(running_bot)
    running_bot.dispatch()
    assert touches(running_bot, lead_id)[0].status == "sending" and twilio.messages == []  # within the lease
    clock.advance(PAST_LEASE)
    running_bot.dispatch()
    assert touches(running_bot, lead_id)[0].status == "sent"
    assert [m["to"] for m in twilio.messages] == [DANA_PHONE]


def test_the_crashed_process_cannot_send_what_recovery_settled(running_bot, twilio, clock):
    lead_id = enroll(running_bot)
    [stale] = claim(running_bot)
    clock.advance(PAST_LEASE)
    running_bot.dispatch()  # settles and sends it again
    Dispatcher(running_bot.services)._deliver(stale, DispatchReport())  # noqa: SLF001 - the old claim wakes up
    assert len(twilio.messages) == 1 and touches(running_bot, lead_id)[0].status == "sent"


def test_a_text_twilio_holds_an_unrecorded_other_message_for_goes_to_a_person(running_bot, twilio, clock):
    lead_id = enroll(running_bot)
    claim(running_bot)
    running_bot.services.sms.send_sms(
        OutgoingSms(to=DANA_PHONE, body="sent by hand from the console", reference="manual")
    )
    clock.advance(PAST_LEASE)
    running_bot.dispatch()
    assert touches(running_bot, lead_id)[0].status == "unknown"
    assert len(twilio.messages) == 1 and len(needs_person(running_bot, lead_id)) == 1


def test_an_abandoned_email_is_flagged_for_a_person_because_sendgrid_cannot_be_asked(running_bot, sendgrid, clock):
    lead_id = enroll(running_bot, phone=None, email="dana@example.com")
    clock.advance(timedelta(minutes=16))  # the instant text is skipped (no phone); the email is due
    claimed = claim(running_bot) or claim(running_bot)
    assert claimed and all(c.outgoing.to == "dana@example.com" for c in claimed)
    clock.advance(PAST_LEASE)
    running_bot.dispatch()
    assert [t.status for t in touches(running_bot, lead_id)][:2] == ["skipped", "unknown"]
    assert sendgrid.requests_for("mail.send") == [] and len(needs_person(running_bot, lead_id)) == 1


def test_while_twilio_cannot_be_asked_the_touch_waits_and_blocks_the_next(running_bot, twilio, clock):
    lead_id = enroll(running_bot)
    claim(running_bot)
    twilio.fail_next("messages.list", 500)
    clock.advance(timedelta(days=2))  # the day-1 text is due too, but must not overtake the first
    running_bot.dispatch()
    assert [t.status for t in touches(running_bot, lead_id)][:1] == ["sending"] and twilio.messages == []
    running_bot.dispatch()
    sent = [m["body"] for m in twilio.messages]
    assert len(sent) >= 2 and len(set(sent)) == len(sent)
    assert touches(running_bot, lead_id)[0].status == "sent"


def test_a_stopping_dispatcher_hands_back_the_rest_of_its_batch_at_once(running_bot, twilio):
    first, second = enroll(running_bot), enroll(running_bot, phone="+13125550143")
    dispatcher = Dispatcher(running_bot.services)
    call_provider = dispatcher.delivery.call_provider

    def send_then_stop(item):  # noqa: ANN001, ANN202 - SIGTERM arrives during the first send
        outcome = call_provider(item)
        dispatcher.stop()
        return outcome

    dispatcher.delivery.call_provider = send_then_stop  # type: ignore[method-assign]  # the test stops the dispatcher between the provider call and the record
    dispatcher.run_due()
    assert len(twilio.messages) == 1
    handed_back = touches(running_bot, second)[0]
    assert (handed_back.status, handed_back.attempts) == ("scheduled", 0)
    running_bot.dispatch()
    assert touches(running_bot, first)[0].status == touches(running_bot, second)[0].status == "sent"
    assert len(twilio.messages) == 2
