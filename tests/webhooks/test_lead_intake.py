"""POST /webhooks/leads: a website form or a JSON call brings a lead in, texted within the request."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from bot.store.models import Lead
from tests.fakes import WEB_FORM_CONSENT
from tests.webhooks.conftest import LEAD_TOKEN

AUTH = {"Authorization": f"Bearer {LEAD_TOKEN}"}
DANA = {
    "name": "Dana Lee",
    "phone": "(312) 555-0142",
    "email": "dana@example.com",
    "source": "website",
    "message": "Lower back pain, any openings this week?",
    "insurance": "Aetna",
    **WEB_FORM_CONSENT,
}


def lead_count(bot) -> int:
    with bot.services.session_factory() as session:
        return session.scalar(select(func.count(Lead.id)))


def test_a_json_lead_is_created_and_texted_at_once(running_bot, twilio):
    answer = running_bot.http.post("/webhooks/leads", json=DANA, headers=AUTH)
    assert answer.status_code == 201
    lead_id = answer.json()["lead_id"]
    sent = twilio.messages
    assert len(sent) == 1 and sent[0]["to"] == "+13125550142" and "Reply STOP to opt out" in sent[0]["body"]
    assert twilio.status_callback_for(sent[0]["sid"]) == f"{running_bot.url}/webhooks/twilio/status"
    with running_bot.services.session_factory() as session:
        lead = session.get(Lead, lead_id)
        assert lead.phone == "+13125550142" and lead.custom_fields == {"insurance": "Aetna"}
        assert lead.stage == "contacted"


def test_a_form_post_works_like_json(running_bot, twilio):
    answer = running_bot.http.post("/webhooks/leads", data=DANA, headers=AUTH)
    assert answer.status_code == 201 and len(twilio.messages) == 1


def test_the_same_lead_again_answers_200_with_the_same_id_and_no_second_text(running_bot, twilio):
    first = running_bot.http.post("/webhooks/leads", json=DANA, headers=AUTH).json()["lead_id"]
    again = running_bot.http.post("/webhooks/leads", json={"phone": "+1 312 555 0142"}, headers=AUTH)
    assert again.status_code == 200 and again.json()["lead_id"] == first
    assert len(twilio.messages) == 1 and lead_count(running_bot) == 1


def test_a_missing_or_wrong_token_is_refused_and_nothing_is_stored(running_bot, twilio):
    assert running_bot.http.post("/webhooks/leads", json=DANA).status_code == 401
    wrong = running_bot.http.post("/webhooks/leads", json=DANA, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and "error" in wrong.json()
    assert lead_count(running_bot) == 0 and twilio.messages == []


def test_invalid_contact_details_answer_422_with_every_reason(running_bot):
    answer = running_bot.http.post("/webhooks/leads", json={"phone": "12", "email": "dana@"}, headers=AUTH)
    assert answer.status_code == 422
    reasons = answer.json()["reasons"]
    assert any(r.startswith("phone:") for r in reasons) and any(r.startswith("email:") for r in reasons)
    neither = running_bot.http.post("/webhooks/leads", json={"name": "Nobody"}, headers=AUTH)
    assert neither.status_code == 422 and "phone or email" in neither.json()["reasons"][0]


def test_a_us_time_zone_abbreviation_is_stored_as_the_place_it_names(running_bot):
    answer = running_bot.http.post("/webhooks/leads", json={**DANA, "timezone": "EST"}, headers=AUTH)
    assert answer.status_code == 201
    with running_bot.services.session_factory() as session:
        assert session.get(Lead, answer.json()["lead_id"]).timezone == "America/New_York"


def test_a_time_zone_that_is_not_a_place_answers_422_naming_the_field(running_bot):
    for written in ("EST5EDT", "Etc/GMT+5", "Eastern Standard"):
        answer = running_bot.http.post("/webhooks/leads", json={**DANA, "timezone": written}, headers=AUTH)
        assert answer.status_code == 422
        [reason] = answer.json()["reasons"]
        assert reason.startswith(f"timezone: {written!r}") and "America/Chicago" in reason
    assert lead_count(running_bot) == 0


def test_an_unknown_sequence_is_refused_naming_the_known_ones(running_bot):
    answer = running_bot.http.post("/webhooks/leads", json={**DANA, "sequence": "nope"}, headers=AUTH)
    assert answer.status_code == 422 and "sequence" in answer.json()["reasons"][0]
    assert "default" in answer.json()["known_sequences"] and "default" in answer.json()["reasons"][0]


@pytest.mark.parametrize(
    "sequence",
    [
        "../sequences/default",
        "/etc/passwd",
        "default.yml",
        "sequences/default.yml",
        "..\\default",
        "business",
        "nurture/../default",
    ],
)
def test_a_sequence_is_a_playbook_name_never_a_path(running_bot, sequence):
    answer = running_bot.http.post("/webhooks/leads", json={**DANA, "sequence": sequence}, headers=AUTH)
    assert answer.status_code == 422 and answer.json()["known_sequences"]
    with running_bot.services.session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Lead)) == 0


def test_a_known_sequence_by_name_is_used(running_bot):
    answer = running_bot.http.post("/webhooks/leads", json={**DANA, "sequence": "dental"}, headers=AUTH)
    assert answer.status_code == 201


def test_malformed_and_oversized_bodies_get_a_clear_4xx(running_bot):
    bad_json = running_bot.http.post(
        "/webhooks/leads", content=b"{not json", headers={**AUTH, "Content-Type": "application/json"}
    )
    assert bad_json.status_code == 400 and "JSON" in bad_json.json()["error"]
    not_object = running_bot.http.post("/webhooks/leads", json=[1, 2], headers=AUTH)
    assert not_object.status_code == 400
    huge = running_bot.http.post(
        "/webhooks/leads", content=b"{" + b" " * 400_000 + b"}", headers={**AUTH, "Content-Type": "application/json"}
    )
    assert huge.status_code == 413
    invalid_utf8 = running_bot.http.post(
        "/webhooks/leads", content=b'{"name": "\xff\xfe"}', headers={**AUTH, "Content-Type": "application/json"}
    )
    assert invalid_utf8.status_code == 400
    assert lead_count(running_bot) == 0


def test_health_answers_once_the_database_does(running_bot):
    assert running_bot.http.get("/healthz").json() == {"ok": True}


def test_the_confirmation_email_repeats_nothing_a_stranger_could_have_typed(running_bot, sendgrid, clock):
    """Anyone can type anyone's address into the form: the email to it must not carry their words."""
    from datetime import timedelta

    lead = {
        **DANA,
        "name": "Win $500 at evil.example",
        "email": "victim@example.org",
        "message": "Claim your prize: https://evil.example/claim",
        "insurer": "Call 1-900-555-0100",
    }
    assert (
        running_bot.http.post(
            "/webhooks/leads", json=lead, headers={"Authorization": f"Bearer {LEAD_TOKEN}"}
        ).status_code
        == 201
    )
    clock.advance(timedelta(minutes=30))
    running_bot.dispatch()
    [email] = [e for e in sendgrid.emails if e.to == ["victim@example.org"]]
    for words in ("evil.example", "prize", "$500", "1-900"):
        assert words not in email.subject + email.text + email.html
    assert email.text.startswith("Hi there,")


def test_a_name_is_greeted_by_when_it_reads_as_one(running_bot, sendgrid, clock):
    from datetime import timedelta

    lead = {**DANA, "name": "Zoë O'Brien-Núñez", "message": "Lower back pain"}
    running_bot.http.post("/webhooks/leads", json=lead, headers={"Authorization": f"Bearer {LEAD_TOKEN}"})
    clock.advance(timedelta(minutes=30))
    running_bot.dispatch()
    [email] = sendgrid.emails
    assert email.text.startswith("Hi Zoë,") and "Lower back pain" not in email.text
