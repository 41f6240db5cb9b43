"""Messages outside the playbook: what a lead sends in, and what a person sends them directly."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from sqlalchemy import select

from bot.channels.twilio_sms import SentSms
from bot.core.ports import OUTCOME_UNKNOWN, OutgoingSms, SendReceipt, TransientSendError
from bot.core.rules import LeadSignal
from bot.store.audit import SYSTEM, Actor
from bot.store.models import Enrollment, Lead, Message, OutboxEvent
from bot.usecases.conversations import InboundMessage, send_direct, take_inbound
from bot.usecases.leads import LeadInput, add_lead
from bot.usecases.send_recovery import recover_abandoned
from tests.fakes import WEB_FORM_CONSENT, FakeSmsSender

CHICAGO_PHONE = "+13125550142"
ALICE = Actor.slack_user("U0ALICE")
LEASE_SECONDS = 60.0
PAST_LEASE = timedelta(seconds=LEASE_SECONDS + 1)


class Crash(BaseException):
    """The process stops here (killed, out of memory, the machine lost power)."""


@dataclass
class AskableSms(FakeSmsSender):
    """A fake Twilio that also answers which messages it holds for a number, as the real one can be asked."""

    held: list[tuple[str, SentSms]] = field(default_factory=list)
    #: Stop the process right after Twilio took the message, before the bot hears back.
    crash_after_send: bool = False

    def send_sms(self, message: OutgoingSms) -> SendReceipt:
        receipt = super().send_sms(message)
        self.held.append((message.to, SentSms(sid=receipt.provider_id, body=message.body, status="sent")))
        if self.crash_after_send:
            raise Crash
        return receipt

    def messages_to(self, to: str) -> list[SentSms]:
        return [sms for number, sms in reversed(self.held) if number == to]


@pytest.fixture
def sms() -> AskableSms:
    return AskableSms()


def new_lead(services, **fields) -> int:
    data = LeadInput.parse(
        {
            "name": "Dana Lee",
            "phone": CHICAGO_PHONE,
            "email": "dana@example.com",
            "message": "Lower back pain, any openings this week?",
            **WEB_FORM_CONSENT,
            **fields,
        }
    )
    with services.session_factory.begin() as session:
        result = add_lead(
            session,
            data,
            business=services.business,
            sequence=services.playbooks.get(),
            now=services.clock.now(),
            actor=SYSTEM,
        )
    return result.lead_id


def text_in(services, body: str, signal: LeadSignal, *, sid: str, sender: str = CHICAGO_PHONE):
    return take_inbound(
        services, InboundMessage(channel="sms", sender=sender, body=body, signal=signal, provider_id=sid)
    )


def received(services, lead_id: int) -> list[tuple[str, str]]:
    """Each stored reply and each reply notice for the team, with the class it was understood as."""
    with services.session_factory() as session:
        stored = [
            ("stored", m.classification)
            for m in session.scalars(
                select(Message).where(Message.lead_id == lead_id, Message.direction == "in").order_by(Message.id)
            )
        ]
        notices = [
            ("notice", e.payload["reply_class"])
            for e in session.scalars(
                select(OutboxEvent).where(OutboxEvent.kind == "message_received").order_by(OutboxEvent.id)
            )
        ]
    return stored + notices


def enrollment_states(services, lead_id: int) -> list[str]:
    with services.session_factory() as session:
        return [e.state for e in session.scalars(select(Enrollment).where(Enrollment.lead_id == lead_id))]


# --- YES is an opt-in keyword only for a lead who opted out ----------------------------------------


def test_yes_from_a_lead_who_never_opted_out_is_a_plain_reply_everywhere_the_team_looks(services):
    lead_id = new_lead(services)
    result = text_in(services, "Yes", LeadSignal.OPT_IN, sid="SM-yes-1")
    assert result.decision is not None and result.decision.sequence == "pause" and result.decision.alert_team
    assert received(services, lead_id) == [("stored", "plain"), ("notice", "plain")]
    assert enrollment_states(services, lead_id) == ["paused"]


def test_yes_from_a_lead_who_opted_out_of_texts_opts_them_back_in(services):
    lead_id = new_lead(services)
    text_in(services, "STOP", LeadSignal.OPT_OUT, sid="SM-stop")
    text_in(services, "YES", LeadSignal.OPT_IN, sid="SM-yes-2")
    assert received(services, lead_id)[:2] == [("stored", "opt_out"), ("stored", "opt_in")]
    with services.session_factory() as session:
        assert session.get(Lead, lead_id).sms_opted_out_at is None


def test_yes_as_the_first_text_from_an_unknown_number_is_an_inquiry_not_an_opt_in(services):
    result = text_in(services, "Yes", LeadSignal.OPT_IN, sid="SM-yes-3", sender="+16175550123")
    assert result.lead_created and result.decision is None
    assert received(services, result.lead_id) == [("stored", "plain"), ("notice", "plain")]
    assert enrollment_states(services, result.lead_id) == ["active"]


# --- a one-off message is never lost or sent twice --------------------------------------------------


def direct_messages(services, lead_id: int) -> list[Message]:
    with services.session_factory() as session:
        return list(
            session.scalars(
                select(Message).where(
                    Message.lead_id == lead_id, Message.direction == "out", Message.touch_id.is_(None)
                )
            )
        )


def notices(services, lead_id: int, kind: str) -> list[dict]:
    with services.session_factory() as session:
        return [
            e.payload
            for e in session.scalars(
                select(OutboxEvent)
                .where(OutboxEvent.lead_id == lead_id, OutboxEvent.kind == kind)
                .order_by(OutboxEvent.id)
            )
        ]


def quiet_lead(services) -> int:
    """A lead whose sequence will not send anything on its own during the test."""
    lead_id = new_lead(services)
    text_in(services, "thanks, talk soon", LeadSignal.PLAIN, sid="SM-pause")  # pauses the sequence
    return lead_id


def test_a_reply_recorded_as_sending_before_the_provider_call_and_with_its_sid_after(services, sms):
    lead_id = quiet_lead(services)
    seen_while_sending = []
    sms.during_send = lambda _: seen_while_sending.extend(
        (m.status, m.provider_id) for m in direct_messages(services, lead_id)
    )
    sent = send_direct(services, lead_id, body="See you at 3!", author=ALICE)
    assert seen_while_sending == [("sending", None)]
    [stored] = direct_messages(services, lead_id)
    assert (stored.id, stored.status, stored.provider_id) == (sent.id, "queued", sms.held[0][1].sid)


def test_a_reply_whose_outcome_twilio_left_unknown_is_flagged_for_a_person_not_reported_failed(services, sms):
    lead_id = quiet_lead(services)
    sms.failures = [TransientSendError("Twilio did not answer in time", code=OUTCOME_UNKNOWN)]
    sent = send_direct(services, lead_id, body="See you at 3!", author=ALICE)
    assert sent.status == "unknown"
    [stored] = direct_messages(services, lead_id)
    assert stored.status == "unknown" and "did not answer" in stored.details["error"]
    [flag] = notices(services, lead_id, "needs_person")
    assert "not known whether" in flag["text"] and "before sending it again" in flag["text"]


def test_a_reply_twilio_took_just_before_the_process_stopped_is_recorded_with_its_sid_not_resent(services, sms, clock):
    lead_id = quiet_lead(services)
    sms.crash_after_send = True
    with pytest.raises(Crash):
        send_direct(services, lead_id, body="See you at 3!", author=ALICE)
    [stored] = direct_messages(services, lead_id)
    assert (stored.status, stored.provider_id) == ("sending", None)
    clock.advance(PAST_LEASE)
    assert recover_abandoned(services, lease_seconds=LEASE_SECONDS).messages == 1
    [stored] = direct_messages(services, lead_id)
    assert (stored.status, stored.provider_id) == ("sent", sms.held[0][1].sid)
    assert len(sms.sent) == 1 and notices(services, lead_id, "needs_person") == []
    assert notices(services, lead_id, "message_status")[-1] == {"message_id": stored.id, "status": "sent"}
    assert recover_abandoned(services, lease_seconds=LEASE_SECONDS).messages == 0


def test_a_reply_that_never_reached_twilio_is_marked_failed_for_a_person_and_not_resent(services, sms, clock):
    lead_id = quiet_lead(services)

    def stop(_: OutgoingSms) -> None:
        raise Crash

    sms.during_send = stop
    with pytest.raises(Crash):
        send_direct(services, lead_id, body="See you at 3!", author=ALICE)
    clock.advance(PAST_LEASE)
    assert recover_abandoned(services, lease_seconds=LEASE_SECONDS).messages == 1
    [stored] = direct_messages(services, lead_id)
    assert stored.status == "failed" and stored.provider_id is None
    assert sms.sent == []
    [flag] = notices(services, lead_id, "needs_person")
    assert "did not go out" in flag["text"] and "See you at 3!" in flag["text"]


def test_a_reply_when_twilio_holds_other_unrecorded_texts_is_left_to_a_person(services, sms, clock):
    lead_id = quiet_lead(services)
    sms.held.append((CHICAGO_PHONE, SentSms(sid="SM-someone-else", body="Hello from the front desk", status="sent")))
    sms.crash_after_send = True
    with pytest.raises(Crash):
        send_direct(services, lead_id, body="See you at 3!", author=ALICE)
    clock.advance(PAST_LEASE)
    assert recover_abandoned(services, lease_seconds=LEASE_SECONDS).messages == 1
    [stored] = direct_messages(services, lead_id)
    assert stored.status == "unknown" and len(sms.sent) == 1
    [flag] = notices(services, lead_id, "needs_person")
    assert "not known whether" in flag["text"]


def test_an_email_reply_left_sending_is_left_to_a_person_since_sendgrid_cannot_be_asked(services, email, clock):
    lead_id = quiet_lead(services)
    email.failures = [Crash()]
    with pytest.raises(Crash):
        send_direct(services, lead_id, body="See you at 3!", author=ALICE, channel="email")
    clock.advance(PAST_LEASE)
    assert recover_abandoned(services, lease_seconds=LEASE_SECONDS).messages == 1
    [stored] = direct_messages(services, lead_id)
    assert stored.status == "unknown" and email.sent == []
    [flag] = notices(services, lead_id, "needs_person")
    assert "cannot be asked" in flag["text"]


def test_a_reply_still_within_its_lease_is_left_alone(services, sms, clock):
    lead_id = quiet_lead(services)
    sms.crash_after_send = True
    with pytest.raises(Crash):
        send_direct(services, lead_id, body="See you at 3!", author=ALICE)
    clock.advance(timedelta(seconds=LEASE_SECONDS - 5))
    assert recover_abandoned(services, lease_seconds=LEASE_SECONDS).messages == 0
    assert [m.status for m in direct_messages(services, lead_id)] == ["sending"]


# --- speed to lead ------------------------------------------------------------------------------


def test_a_text_from_an_unknown_number_sends_that_new_lead_s_instant_text_at_once(services):
    sent_now: list[int] = []
    services.wakeups.connect(lead=sent_now.append)  # the scheduler's fast lane, beside any batch in progress
    result = text_in(
        services, "Hi, do you have anything Saturday?", LeadSignal.ASKS_TIME, sid="SM-new-lead", sender="+13125550177"
    )
    assert result.lead_created and sent_now == [result.lead_id]


def test_a_reply_from_a_known_lead_only_wakes_the_dispatcher(services):
    new_lead(services)
    sent_now: list[int] = []
    woken: list[bool] = []
    services.wakeups.connect(lead=sent_now.append, dispatcher=lambda: woken.append(True))
    text_in(services, "Thanks!", LeadSignal.PLAIN, sid="SM-known")
    assert sent_now == [] and woken == [True]
