"""Inbound SMS, delivery status and missed calls, signed by Twilio's own RequestValidator."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from twilio.request_validator import RequestValidator

from bot.store.models import CallTask, Enrollment, Lead, Message
from tests.fakes import WEB_FORM_CONSENT
from tests.webhooks.conftest import AUTH_TOKEN, CLINIC_NUMBER, LEAD_TOKEN

DANA_PHONE = "+13125550142"


def new_lead(bot) -> int:
    answer = bot.http.post(
        "/webhooks/leads",
        json={"name": "Dana Lee", "phone": DANA_PHONE, "email": "dana@example.com", **WEB_FORM_CONSENT},
        headers={"Authorization": f"Bearer {LEAD_TOKEN}"},
    )
    return answer.json()["lead_id"]


def text_in(bot, twilio, body: str, sender: str = DANA_PHONE, **extra) -> int:
    return twilio.inbound_sms(f"{bot.url}/webhooks/twilio/sms", sender, body, to=CLINIC_NUMBER, **extra)


def inbound(bot) -> list[Message]:
    with bot.services.session_factory() as session:
        return list(session.scalars(select(Message).where(Message.direction == "in")))


def test_a_reply_is_stored_understood_and_pauses_the_sequence(running_bot, twilio):
    lead_id = new_lead(running_bot)
    assert text_in(running_bot, twilio, "ok thanks, I'll check my calendar") == 200
    [message] = inbound(running_bot)
    assert message.lead_id == lead_id and message.classification == "plain"
    with running_bot.services.session_factory() as session:
        assert session.scalars(select(Enrollment)).one().state == "paused"


def test_a_bad_or_missing_signature_is_refused_and_changes_nothing(running_bot, twilio):
    new_lead(running_bot)
    url = f"{running_bot.url}/webhooks/twilio/sms"
    params = {"MessageSid": "SM" + "1" * 32, "From": DANA_PHONE, "To": CLINIC_NUMBER, "Body": "STOP"}
    forged = RequestValidator("not-the-token").compute_signature(url, params)
    assert (
        running_bot.http.post("/webhooks/twilio/sms", data=params, headers={"X-Twilio-Signature": forged}).status_code
        == 403
    )
    assert running_bot.http.post("/webhooks/twilio/sms", data=params).status_code == 403
    assert inbound(running_bot) == []
    with running_bot.services.session_factory() as session:
        assert session.scalars(select(Lead)).one().sms_opted_out_at is None


def test_a_redelivered_message_is_applied_once(running_bot, twilio):
    new_lead(running_bot)
    params = {
        "MessageSid": "SM" + "2" * 32,
        "AccountSid": "AC" + "0" * 32,
        "From": DANA_PHONE,
        "To": CLINIC_NUMBER,
        "Body": "Do you take Blue Cross?",
        "NumMedia": "0",
    }
    url = f"{running_bot.url}/webhooks/twilio/sms"
    assert twilio.post_signed(url, params) == 200
    assert twilio.post_signed(url, params) == 200
    assert len(inbound(running_bot)) == 1
    with running_bot.services.session_factory() as session:
        assert len(session.scalars(select(CallTask)).all()) == 1


def test_a_text_from_an_unknown_number_creates_a_lead_and_answers_it(running_bot, twilio):
    assert text_in(running_bot, twilio, "Hi, do you have openings for a cleaning?", sender="+16175550123") == 200
    with running_bot.services.session_factory() as session:
        lead = session.scalars(select(Lead)).one()
        assert (lead.phone, lead.source) == ("+16175550123", "sms")
        assert "openings" in lead.first_message
    assert [m["to"] for m in twilio.messages] == ["+16175550123"]


def test_stop_opts_out_at_once_and_nothing_is_ever_texted_again(running_bot, twilio, clock):
    new_lead(running_bot)
    assert len(twilio.messages) == 1
    assert text_in(running_bot, twilio, "STOP") == 200
    for _ in range(20):
        clock.advance(timedelta(hours=12))
        running_bot.dispatch()
    assert len(twilio.messages) == 1  # not even a confirmation: Twilio sends that itself
    with running_bot.services.session_factory() as session:
        lead = session.scalars(select(Lead)).one()
        assert lead.stage == "opted_out" and lead.sms_opted_out_at is not None


def test_start_opts_back_in(running_bot, twilio):
    new_lead(running_bot)
    text_in(running_bot, twilio, "STOP")
    text_in(running_bot, twilio, "START")
    with running_bot.services.session_factory() as session:
        assert session.scalars(select(Lead)).one().sms_opted_out_at is None


def test_help_is_answered_with_the_business_name_and_phone(running_bot, twilio):
    new_lead(running_bot)
    text_in(running_bot, twilio, "HELP")
    answer = twilio.messages[-1]["body"]
    assert "Lakeside Chiropractic" in answer and "(312) 555-0111" in answer


def test_a_request_for_a_time_escalates_to_a_call_task_with_the_time(running_bot, twilio):
    new_lead(running_bot)
    text_in(running_bot, twilio, "can I come tomorrow at 3?")
    [message] = inbound(running_bot)
    assert message.classification == "asks_time"
    with running_bot.services.session_factory() as session:
        task = session.scalars(select(CallTask)).one()
        assert task.requested_time is not None and task.status == "open"


def test_delivery_status_moves_forward_only(running_bot, twilio):
    new_lead(running_bot)
    sid = twilio.messages[0]["sid"]
    assert twilio.deliver_status(sid, "delivered") == 204
    assert twilio.deliver_status(sid, "sent") == 204  # late and out of order
    with running_bot.services.session_factory() as session:
        assert session.scalars(select(Message).where(Message.provider_id == sid)).one().status == "delivered"


def test_an_undelivered_text_to_a_landline_stops_later_texts(running_bot, twilio):
    twilio.set_number_behaviour(DANA_PHONE, 30006)
    new_lead(running_bot)
    sid = twilio.messages[0]["sid"]
    assert twilio.deliver_status(sid) == 204
    with running_bot.services.session_factory() as session:
        message = session.scalars(select(Message).where(Message.provider_id == sid)).one()
        assert (message.status, message.error_code) == ("undelivered", "30006")
        assert "30006" in session.scalars(select(Lead)).one().sms_unreachable_reason


def test_a_status_for_an_unknown_message_is_accepted_and_ignored(running_bot, twilio):
    params = {"MessageSid": "SM" + "9" * 32, "MessageStatus": "delivered", "AccountSid": "AC" + "0" * 32}
    assert twilio.post_signed(f"{running_bot.url}/webhooks/twilio/status", params) == 204


def test_a_missed_call_becomes_a_lead_with_an_instant_text_back(running_bot, twilio):
    url = f"{running_bot.url}/webhooks/twilio/voice"
    params = {"CallSid": "CA" + "3" * 32, "From": "+16175550123", "To": CLINIC_NUMBER, "CallStatus": "ringing"}
    signature = RequestValidator(AUTH_TOKEN).compute_signature(url, params)
    for _ in range(2):  # Twilio may retry the webhook
        answer = running_bot.http.post("/webhooks/twilio/voice", data=params, headers={"X-Twilio-Signature": signature})
        assert answer.status_code == 200 and "<Say>" in answer.text and "Lakeside" in answer.text
    assert [m["to"] for m in twilio.messages] == ["+16175550123"]
    with running_bot.services.session_factory() as session:
        assert session.scalars(select(Lead)).one().source == "missed_call"


def test_yes_to_our_text_from_a_lead_who_never_opted_out_is_a_reply_for_the_team(running_bot, twilio):
    new_lead(running_bot)
    text_in(running_bot, twilio, "Yes", OptOutType="START")  # Twilio reads YES as START whoever sends it
    [message] = inbound(running_bot)
    assert message.classification == "plain"
    with running_bot.services.session_factory() as session:
        assert session.scalars(select(Enrollment)).one().state == "paused"
        assert session.scalars(select(Lead)).one().stage == "engaged"


def test_choosing_1_on_the_final_text_hands_the_team_a_call_to_book_the_visit(running_bot, twilio):
    new_lead(running_bot)
    text_in(running_bot, twilio, "1 please")
    [message] = inbound(running_bot)
    assert message.classification == "asks_time"
    with running_bot.services.session_factory() as session:
        task = session.scalars(select(CallTask)).one()
        assert task.status == "open" and task.requested_time is None
        assert session.scalars(select(Enrollment)).one().state == "paused"


def test_choosing_2_on_the_final_text_ends_the_sales_texts_and_starts_nurture(running_bot, twilio, clock):
    new_lead(running_bot)
    text_in(running_bot, twilio, "2 thanks")
    [message] = inbound(running_bot)
    assert message.classification == "later"
    with running_bot.services.session_factory() as session:
        lead = session.scalars(select(Lead)).one()
        enrollments = {e.sequence_name: e.state for e in session.scalars(select(Enrollment))}
        assert lead.stage == "nurture" and session.scalars(select(CallTask)).all() == []
    assert enrollments == {"default": "stopped", "nurture": "active"}
