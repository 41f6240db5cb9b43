"""Two clinics in one deployment: every request reaches the business it was sent to, every send goes out as its lead's.

The real web app on a real port, the real Twilio and SendGrid adapters against the stand-ins (which show
the sender each message went out from), requests signed as the vendors sign them, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from bot.app import build_services
from bot.channels.sendgrid_email import SendGridEmailSender
from bot.channels.twilio_sms import TwilioSmsSender
from bot.settings import Settings
from bot.store.models import Appointment, Enrollment, Lead, Message, Touch
from tests.fakes import WEB_FORM_CONSENT
from tests.support.businesses import HARBOR, HARBOR_FIRST_TEXT, LAKESIDE, Clinic, two_clinics
from tests.support.ports import free_port
from tests.webhooks.conftest import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    INBOUND_TOKEN,
    SENDGRID_EVENT_PUBLIC_KEY,
    SENDGRID_KEY,
    post_inbound_parse,
    serving,
)
from tests.webhooks.test_calendar_webhooks import calcom, calcom_booking, calendly, calendly_invitee

#: The adapters' own sender, for a message that names none: no message to a clinic's lead may use it.
DEPLOYMENT_FROM = "nobody@deployment.example"
DANA_PHONE = "+13125550142"
#: A Los Angeles number: Harbor's kind of lead.
SAM_PHONE = "+13105550142"
#: Wednesday 2026-11-25 12:00 in Chicago, 10:00 in Los Angeles: both clinics open.
BOTH_OPEN = datetime(2026, 11, 25, 18, 0, tzinfo=UTC)


@pytest.fixture
def clinics_settings(tmp_path, business_file, database_url, twilio, sendgrid) -> Settings:
    """The deployment's own settings: one Twilio account and SendGrid key for every clinic, no sender of its own."""
    port = free_port()
    return Settings(
        DATABASE_URL=database_url,
        FOLLOWUP_BUSINESS=business_file,
        PORT=port,
        PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
        SENDGRID_INBOUND_TOKEN=INBOUND_TOKEN,
        SENDGRID_WEBHOOK_PUBLIC_KEY=SENDGRID_EVENT_PUBLIC_KEY,
        TWILIO_ACCOUNT_SID=ACCOUNT_SID,
        TWILIO_AUTH_TOKEN=AUTH_TOKEN,
        TWILIO_API_URL=twilio.url,
        SENDGRID_API_KEY=SENDGRID_KEY,
        SENDGRID_API_URL=sendgrid.url,
    )


@pytest.fixture
def clinics(clinics_settings: Settings, tmp_path, engine, clock, twilio, sendgrid):
    """Lakeside (Chicago) and Harbor (Los Angeles) served by one bot, the clock where both are open."""
    clock.set(BOTH_OPEN)
    sms = TwilioSmsSender(ACCOUNT_SID, AUTH_TOKEN, api_url=twilio.url, timeout=1.0)
    email = SendGridEmailSender(SENDGRID_KEY, DEPLOYMENT_FROM, api_url=sendgrid.url, timeout=1.0)
    services = build_services(clinics_settings, engine=engine, clock=clock, sms=sms, email=email, migrate=False)
    with serving(two_clinics(services, tmp_path / "clinics"), clinics_settings) as bot:
        yield bot


def new_lead(bot, clinic: Clinic, *, path: str = "/webhooks/leads", **fields):
    lead = {"name": "Dana Lee", "phone": DANA_PHONE, "email": "dana@example.com", **WEB_FORM_CONSENT, **fields}
    return bot.http.post(path, json=lead, headers={"Authorization": f"Bearer {clinic.lead_token}"})


def leads(bot) -> list[tuple[str, str | None]]:
    with bot.services.session_factory() as session:
        return [(lead.business, lead.phone) for lead in session.scalars(select(Lead).order_by(Lead.id))]


def lead_of(bot, clinic: Clinic) -> Lead:
    with bot.services.session_factory() as session:
        return session.scalars(select(Lead).where(Lead.business == clinic.slug)).one()


def twilio_post(bot, path: str, params: dict[str, str]):
    """Post to a Twilio route as Twilio does (signed with the account's token), keeping the whole answer."""
    signature = RequestValidator(AUTH_TOKEN).compute_signature(f"{bot.url}{path}", params)
    return bot.http.post(path, data=params, headers={"X-Twilio-Signature": signature})


def text_to(bot, clinic_number: str, body: str, *, sender: str = DANA_PHONE, sid: str = "SM" + "1" * 32):
    return twilio_post(
        bot, "/webhooks/twilio/sms", {"MessageSid": sid, "From": sender, "To": clinic_number, "Body": body}
    )


def email_to(bot, address: str, *, sender: str = "sam@example.com", text: str = "Do you have time on Friday?"):
    fields = {
        "from": f"Sam Park <{sender}>",
        "to": address,
        "subject": "A question",
        "text": text,
        "headers": f"Message-ID: <q1@mail.example.com>\nFrom: {sender}\n",
        "envelope": json.dumps({"to": [address], "from": sender}),
        "SPF": "pass",
        "dkim": "{@example.com : pass}",
    }
    return post_inbound_parse(bot.http, fields)


def texts_from(twilio, number: str) -> list[dict]:
    return [message for message in twilio.messages if message["from"] == number]


# --- inbound: each request reaches its own business -----------------------------------------------


def test_a_web_form_lead_belongs_to_the_business_whose_token_it_carries(clinics):
    assert new_lead(clinics, LAKESIDE).status_code == 201
    assert new_lead(clinics, HARBOR, path="/webhooks/leads/harbor", phone=SAM_PHONE).status_code == 201
    assert leads(clinics) == [("lakeside", DANA_PHONE), ("harbor", SAM_PHONE)]


@pytest.mark.parametrize(
    "clinic, path, status",
    [
        (LAKESIDE, "/webhooks/leads/harbor", 401),  # a token of Lakeside on Harbor's path
        (Clinic(**{**LAKESIDE.__dict__, "lead_token": "nobody's-token"}), "/webhooks/leads", 401),
        (LAKESIDE, "/webhooks/leads/nowhere", 404),
    ],
)
def test_a_lead_webhook_that_names_no_business_of_its_token_is_refused_and_stores_nothing(
    clinics, clinic, path, status
):
    answer = new_lead(clinics, clinic, path=path)
    assert answer.status_code == status and answer.json()["error"]
    assert leads(clinics) == []


def test_a_text_goes_to_the_lead_of_the_business_whose_number_it_was_sent_to(clinics, twilio):
    assert (
        text_to(clinics, HARBOR.number, "Hi, do you have openings for a cleaning?", sender=SAM_PHONE).status_code == 200
    )
    assert leads(clinics) == [("harbor", SAM_PHONE)]
    # Answered at once, from the number it was sent to.
    assert [(m["to"], m["from"]) for m in twilio.messages] == [(SAM_PHONE, HARBOR.number)]


def test_a_text_to_a_number_of_no_business_is_refused_and_stores_nothing(clinics, twilio):
    answer = text_to(clinics, "+16175550199", "Hi there")
    assert answer.status_code == 404 and "+16175550199" in answer.json()["error"]
    assert leads(clinics) == []
    with clinics.services.session_factory() as session:
        assert session.scalars(select(Message)).all() == []
    assert twilio.messages == []


def test_a_missed_call_is_answered_in_the_name_of_the_business_called(clinics, twilio):
    params = {"CallSid": "CA" + "3" * 32, "From": SAM_PHONE, "To": HARBOR.number, "CallStatus": "ringing"}
    answer = twilio_post(clinics, "/webhooks/twilio/voice", params)
    assert answer.status_code == 200 and "Harbor Dental" in answer.text and "Lakeside" not in answer.text
    assert leads(clinics) == [("harbor", SAM_PHONE)]
    assert [m["from"] for m in twilio.messages] == [HARBOR.number]


def test_a_call_to_a_number_of_no_business_is_refused(clinics):
    params = {"CallSid": "CA" + "4" * 32, "From": SAM_PHONE, "To": "+16175550199", "CallStatus": "ringing"}
    answer = twilio_post(clinics, "/webhooks/twilio/voice", params)
    assert answer.status_code == 404 and answer.json()["error"]
    assert leads(clinics) == []


def test_an_email_goes_to_the_business_whose_inbound_address_it_was_sent_to(clinics):
    assert email_to(clinics, HARBOR.inbound_address).status_code == 200
    with clinics.services.session_factory() as session:
        lead = session.scalars(select(Lead)).one()
        assert (lead.business, lead.email) == ("harbor", "sam@example.com")


def test_an_email_to_an_address_of_no_business_is_refused_and_stores_nothing(clinics):
    answer = email_to(clinics, "reply@inbound.elsewhere.example")
    assert answer.status_code == 404 and answer.json()["error"]
    assert leads(clinics) == []


def test_a_calendly_booking_belongs_to_the_business_whose_key_signed_it(clinics):
    answer = calendly(clinics, "invitee.created", calendly_invitee(), key=HARBOR.calendly_key)
    assert answer.status_code == 200 and answer.json()["created"]
    with clinics.services.session_factory() as session:
        appointment = session.scalars(select(Appointment)).one()
        assert appointment.business == "harbor" and session.get(Lead, appointment.lead_id).business == "harbor"


@pytest.mark.parametrize(
    "key, path, status",
    [
        ("nobody's-key", "/webhooks/calendly", 403),
        (HARBOR.calendly_key, "/webhooks/calendly/lakeside", 403),  # Harbor's key on Lakeside's path
        (HARBOR.calendly_key, "/webhooks/calendly/nowhere", 404),
    ],
)
def test_a_calendly_request_no_business_of_its_path_signed_is_refused_and_stores_nothing(clinics, key, path, status):
    answer = calendly(clinics, "invitee.created", calendly_invitee(), key=key, path=path)
    assert answer.status_code == status and answer.json()["error"]
    assert leads(clinics) == []


def test_a_calcom_booking_on_a_business_path_belongs_to_that_business(clinics):
    answer = calcom(
        clinics, "BOOKING_CREATED", calcom_booking(), secret=LAKESIDE.calcom_secret, path="/webhooks/calcom/lakeside"
    )
    assert answer.status_code == 200 and answer.json()["created"]
    refused = calcom(
        clinics,
        "BOOKING_CREATED",
        calcom_booking(uid="bk_other"),
        secret=HARBOR.calcom_secret,
        path="/webhooks/calcom/lakeside",
    )
    assert refused.status_code == 403
    with clinics.services.session_factory() as session:
        assert [a.business for a in session.scalars(select(Appointment))] == ["lakeside"]


def test_a_booking_webhook_belongs_to_the_business_whose_token_it_carries(clinics):
    booking = {"phone": SAM_PHONE, "name": "Sam Park", "start": "2026-11-30T10:00:00-08:00", "external_id": "42"}
    for clinic in (HARBOR, LAKESIDE):
        answer = clinics.http.post(
            "/webhooks/booking", json=booking, headers={"Authorization": f"Bearer {clinic.booking_token}"}
        )
        assert answer.status_code == 201
    wrong = clinics.http.post(
        "/webhooks/booking/harbor", json=booking, headers={"Authorization": f"Bearer {LAKESIDE.booking_token}"}
    )
    assert wrong.status_code == 401
    # The same booking number at two clinics is two bookings, one each.
    with clinics.services.session_factory() as session:
        assert sorted(a.business for a in session.scalars(select(Appointment))) == ["harbor", "lakeside"]


# --- outbound: each lead's texts and emails go out as its business's -------------------------------


def test_each_business_texts_from_its_own_number_in_its_own_wording(clinics, twilio):
    new_lead(clinics, LAKESIDE)
    new_lead(clinics, HARBOR, phone=SAM_PHONE, email="sam@example.com")
    [lakeside] = texts_from(twilio, LAKESIDE.number)
    [harbor] = texts_from(twilio, HARBOR.number)
    assert lakeside["to"] == DANA_PHONE and "it's Lakeside Chiropractic" in lakeside["body"]
    assert harbor["to"] == SAM_PHONE and harbor["body"].startswith(HARBOR_FIRST_TEXT)


def test_each_business_emails_from_its_own_address_with_its_own_reply_to(clinics, sendgrid, clock):
    new_lead(clinics, LAKESIDE)
    new_lead(clinics, HARBOR, phone=SAM_PHONE, email="sam@example.com")
    clock.advance(timedelta(minutes=16))
    clinics.dispatch()
    sent = {email.to[0]: email for email in sendgrid.emails}
    assert set(sent) == {"dana@example.com", "sam@example.com"}
    assert sent["dana@example.com"].body["from"]["email"] == LAKESIDE.from_address
    assert sent["dana@example.com"].reply_to == LAKESIDE.inbound_address
    assert sent["sam@example.com"].body["from"]["email"] == HARBOR.from_address
    assert sent["sam@example.com"].reply_to == HARBOR.inbound_address
    assert "Harbor Dental" in sent["sam@example.com"].text and "Lakeside" not in sent["sam@example.com"].text


def test_each_business_texts_only_in_its_own_hours_and_time_zone(clinics, twilio, clock):
    # Wednesday 09:00 in Chicago is 07:00 in Los Angeles: Lakeside is open, Harbor opens at 09:00 its time.
    clock.set(datetime(2026, 11, 25, 15, 0, tzinfo=UTC))
    new_lead(clinics, LAKESIDE)
    new_lead(clinics, HARBOR, phone=SAM_PHONE, email="sam@example.com")
    assert [m["from"] for m in twilio.messages] == [LAKESIDE.number]
    with clinics.services.session_factory() as session:
        held = session.scalars(
            select(Touch)
            .join(Lead, Lead.id == Touch.lead_id)
            .where(Lead.business == "harbor", Touch.step_id == "instant_sms")
        ).one()
        assert held.due_at == datetime(2026, 11, 25, 17, 0, tzinfo=UTC)  # 09:00 in Los Angeles
    clock.set(datetime(2026, 11, 25, 17, 0, tzinfo=UTC))
    clinics.dispatch()
    assert [m["from"] for m in twilio.messages] == [LAKESIDE.number, HARBOR.number]


def test_a_day_one_business_is_closed_holds_only_its_own_texts(clinics, twilio, clock):
    # Friday 2026-11-27, noon in both: Harbor is closed that day, Lakeside is open.
    clock.set(datetime(2026, 11, 27, 20, 0, tzinfo=UTC))
    new_lead(clinics, LAKESIDE)
    new_lead(clinics, HARBOR, phone=SAM_PHONE, email="sam@example.com")
    assert [m["from"] for m in twilio.messages] == [LAKESIDE.number]
    with clinics.services.session_factory() as session:
        held = session.scalars(
            select(Touch)
            .join(Lead, Lead.id == Touch.lead_id)
            .where(Lead.business == "harbor", Touch.step_id == "instant_sms")
        ).one()
        assert held.due_at == datetime(2026, 11, 30, 17, 0, tzinfo=UTC)  # Monday 09:00 in Los Angeles


# --- end to end: one phone, two clinics ------------------------------------------------------------


def both_know_dana(bot) -> None:
    assert new_lead(bot, LAKESIDE).status_code == 201
    assert new_lead(bot, HARBOR).status_code == 201
    assert sorted(leads(bot)) == [("harbor", DANA_PHONE), ("lakeside", DANA_PHONE)]


def test_a_reply_to_one_clinics_number_reaches_that_clinics_lead_only(clinics):
    both_know_dana(clinics)
    assert text_to(clinics, LAKESIDE.number, "ok thanks, I'll check my calendar").status_code == 200
    with clinics.services.session_factory() as session:
        replies = session.scalars(select(Message).where(Message.direction == "in")).all()
        assert [session.get(Lead, m.lead_id).business for m in replies] == ["lakeside"]
        states = {session.get(Lead, e.lead_id).business: e.state for e in session.scalars(select(Enrollment))}
    assert states == {"lakeside": "paused", "harbor": "active"}


def test_a_stop_sent_to_clinic_a_does_not_stop_clinic_b(clinics, twilio, clock):
    both_know_dana(clinics)
    assert text_to(clinics, LAKESIDE.number, "STOP").status_code == 200
    assert lead_of(clinics, LAKESIDE).sms_opted_out_at is not None
    assert lead_of(clinics, HARBOR).sms_opted_out_at is None
    sent_before = {number: len(texts_from(twilio, number)) for number in (LAKESIDE.number, HARBOR.number)}
    for _ in range(12):  # to Monday: Thanksgiving closes both, Harbor is closed Friday and weekends too
        clock.advance(timedelta(hours=12))
        clinics.dispatch()
    assert len(texts_from(twilio, LAKESIDE.number)) == sent_before[LAKESIDE.number]  # nothing after the STOP
    later = texts_from(twilio, HARBOR.number)[sent_before[HARBOR.number] :]
    assert later and all(m["to"] == DANA_PHONE for m in later)  # Harbor keeps its own consent and keeps texting
