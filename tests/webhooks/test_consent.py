"""SMS consent on record (TCPA), through the real routes: who may be texted by a sequence, and why not."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select
from twilio.request_validator import RequestValidator

from bot.reports.lead_views import lead_detail
from bot.store.audit import Actor
from bot.store.models import CallTask, ConsentEntry, Lead, Touch
from bot.usecases.conversations import DirectMessageRefused, send_direct
from tests.fakes import WEB_FORM_CONSENT
from tests.webhooks.conftest import AUTH_TOKEN, CLINIC_NUMBER, LEAD_TOKEN

AUTH = {"Authorization": f"Bearer {LEAD_TOKEN}"}
DANA = {
    "name": "Dana Lee",
    "phone": "(312) 555-0142",
    "email": "dana@example.com",
    "message": "Lower back pain, any openings this week?",
}


def detail(bot, lead_id: int) -> dict:
    with bot.services.session_factory() as session:
        return lead_detail(session, session.get(Lead, lead_id))


def touches(bot, lead_id: int) -> dict[str, Touch]:
    with bot.services.session_factory() as session:
        return {t.step_id: t for t in session.scalars(select(Touch).where(Touch.lead_id == lead_id))}


def test_the_form_s_consent_checkbox_and_its_wording_go_on_record_and_the_lead_is_texted(running_bot, twilio):
    answer = running_bot.http.post(
        "/webhooks/leads",
        data={**DANA, "consent": "on", "consent_text": WEB_FORM_CONSENT["consent_text"]},
        headers=AUTH,
    )
    assert answer.status_code == 201
    assert [m["to"] for m in twilio.messages] == ["+13125550142"]
    consent = detail(running_bot, answer.json()["lead_id"])["consent"]
    assert consent["sms"] is True and consent["sms_method"] == "web_form"
    [entry] = consent["log"]
    assert entry == {
        "channel": "sms",
        "granted": True,
        "method": "web_form",
        "evidence": WEB_FORM_CONSENT["consent_text"],
        "by": "the lead",
        "at": consent["sms_at"],
    }


def test_malformed_consent_answers_422_naming_the_field_and_stores_nothing(running_bot, twilio):
    cases = [
        ({"consent": "maybe"}, "consent: 'maybe' is not yes or no"),
        ({"consent": {"sms": True}}, "consent: a dict is not yes or no"),
        ({"consent": True}, "consent_text: give the words the lead agreed to"),
        ({"consent": True, "consent_text": 42}, "consent_text: must be text"),
        ({"consent": True, "consent_text": "x" * 2001}, "consent_text: longer than 2000 characters"),
    ]
    for fields, reason in cases:
        answer = running_bot.http.post("/webhooks/leads", json={**DANA, **fields}, headers=AUTH)
        assert answer.status_code == 422, fields
        assert any(r.startswith(reason) for r in answer.json()["reasons"]), (fields, answer.json())
    with running_bot.services.session_factory() as session:
        assert session.scalar(select(func.count(Lead.id))) == 0
    assert twilio.messages == []


def test_a_lead_without_consent_gets_the_instant_text_by_email_and_the_card_says_why(running_bot, twilio, sendgrid):
    answer = running_bot.http.post("/webhooks/leads", json=DANA, headers=AUTH)
    assert answer.status_code == 201
    lead_id = answer.json()["lead_id"]
    assert twilio.messages == []  # no automated text without consent on record
    [email] = sendgrid.emails
    assert email.to == ["dana@example.com"] and "Dana" in (email.text or "")
    instant = touches(running_bot, lead_id)["instant_sms"]
    assert instant.status == "sending" or instant.status == "sent"
    assert instant.skip_reason == "sent by email: no SMS consent on record"

    from bot.slack.cards import lead_card

    with running_bot.services.session_factory() as session:
        lead = session.get(Lead, lead_id)
        card = lead_card(
            lead,
            enrollments=list(lead.enrollments),
            touches=[],
            appointment=None,
            zone=running_bot.services.business.timezone,
        )
        assert card.unreachable == "no SMS consent on record: automated texts go by email or as calls"
    assert detail(running_bot, lead_id)["consent"]["why_no_sms"] == "no SMS consent on record"


def test_a_lead_without_consent_or_email_gets_a_call_instead_of_each_text(running_bot, twilio):
    lead_id = running_bot.http.post(
        "/webhooks/leads", json={"name": "Sam Ortiz", "phone": "(312) 555-0143"}, headers=AUTH
    ).json()["lead_id"]
    assert twilio.messages == []
    with running_bot.services.session_factory() as session:
        [task] = session.scalars(select(CallTask).where(CallTask.lead_id == lead_id))
        assert task.reason.startswith("no SMS consent on record; say it by phone: ")
    assert touches(running_bot, lead_id)["instant_sms"].skip_reason == (
        "handed to the team as a call: no SMS consent on record"
    )


def call_in(bot, caller: str, sid: str) -> None:
    url = f"{bot.url}/webhooks/twilio/voice"
    params = {"CallSid": sid, "From": caller, "To": CLINIC_NUMBER, "CallStatus": "ringing"}
    signature = RequestValidator(AUTH_TOKEN).compute_signature(url, params)
    assert (
        bot.http.post("/webhooks/twilio/voice", data=params, headers={"X-Twilio-Signature": signature}).status_code
        == 200
    )


def test_a_caller_gets_the_text_back_that_answers_the_call_and_later_texts_become_calls(running_bot, twilio, clock):
    call_in(running_bot, "+16175550123", "CA" + "3" * 32)
    assert [m["to"] for m in twilio.messages] == ["+16175550123"]  # the answer to their own call
    with running_bot.services.session_factory() as session:
        lead = session.scalars(select(Lead)).one()
        lead_id = lead.id
        [entry] = session.scalars(select(ConsentEntry))
        assert (entry.granted, entry.method) == (True, "lead_called") and "CA333" in entry.evidence
        assert lead.sms_consent is False

    clock.set(touches(running_bot, lead_id)["day1_checkin_sms"].due_at + timedelta(minutes=1))
    running_bot.dispatch()
    assert len(twilio.messages) == 1  # the day-1 check-in is not texted: no consent to automated texts
    checkin = touches(running_bot, lead_id)["day1_checkin_sms"]
    assert checkin.skip_reason == (
        "handed to the team as a call: no SMS consent on record beyond answering the lead's own message"
    )
    with running_bot.services.session_factory() as session:
        reasons = [t.reason for t in session.scalars(select(CallTask).where(CallTask.lead_id == lead_id))]
    assert any(r.startswith("no SMS consent on record beyond answering") for r in reasons)


def test_a_lead_who_texted_first_is_answered_by_text_and_a_team_reply_may_follow(running_bot, twilio):
    assert (
        twilio.inbound_sms(
            f"{running_bot.url}/webhooks/twilio/sms", "+16175550199", "Hi, do you do sports massage?", to=CLINIC_NUMBER
        )
        == 200
    )
    assert [m["to"] for m in twilio.messages] == ["+16175550199"]
    with running_bot.services.session_factory() as session:
        lead_id = session.scalars(select(Lead.id)).one()
    send_direct(
        running_bot.services, lead_id, body="Yes we do! Want a time this week?", author=Actor.slack_user("U0TEAM")
    )
    assert len(twilio.messages) == 2
    assert detail(running_bot, lead_id)["consent"]["log"][0]["method"] == "lead_texted"


def test_a_team_reply_by_text_to_a_lead_without_consent_is_refused_with_the_way_forward(running_bot, twilio):
    lead_id = running_bot.http.post("/webhooks/leads", json=DANA, headers=AUTH).json()["lead_id"]
    try:
        send_direct(running_bot.services, lead_id, body="Hi Dana", author=Actor.slack_user("U0TEAM"), channel="sms")
    except DirectMessageRefused as refused:
        assert "no SMS consent on record" in str(refused) and f"/followup consent {lead_id} verbal" in str(refused)
    else:
        raise AssertionError("a text went to a lead without consent")
    assert twilio.messages == []


def test_stop_revokes_consent_in_the_log_and_start_grants_it_again(running_bot, twilio):
    running_bot.http.post("/webhooks/leads", json={**DANA, **WEB_FORM_CONSENT}, headers=AUTH)
    url = f"{running_bot.url}/webhooks/twilio/sms"
    twilio.inbound_sms(url, "+13125550142", "STOP", to=CLINIC_NUMBER, OptOutType="STOP")
    twilio.inbound_sms(url, "+13125550142", "START", to=CLINIC_NUMBER, OptOutType="START")
    with running_bot.services.session_factory() as session:
        log = [(e.granted, e.method) for e in session.scalars(select(ConsentEntry).order_by(ConsentEntry.id))]
        lead = session.scalars(select(Lead)).one()
        assert lead.sms_consent is True and lead.sms_consent_method == "keyword"
    assert log == [(True, "web_form"), (False, "opt_out"), (True, "keyword")]
