"""Two businesses in one database: the same phone or email is a separate lead of each, with its own consent.

Dedupe, replies, STOP, consent, imports, bookings and webhook idempotency look only within the business
the message, lead or event came to. One Services serves both: clinic A ("main", the services' own
business, what a use case told of no business acts for) and clinic B ("b").
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.core.businesses import Businesses, UnknownBusiness
from bot.core.reply_classifier import load_reply_rules
from bot.core.rules import LeadSignal
from bot.store.audit import SYSTEM
from bot.store.models import Appointment, ConsentEntry, Lead, Message, OutboxEvent
from bot.usecases.appointments import BookingRequest, CalendarChange, UnknownLead, take_booking, take_calendar_change
from bot.usecases.conversations import InboundMessage, take_inbound, take_missed_call
from bot.usecases.delivery import first_delivery
from bot.usecases.lead_import import import_leads_csv
from bot.usecases.leads import LeadInput, find_lead, take_in_lead
from bot.usecases.replies import IncomingEmail, IncomingText, take_email, take_text
from bot.usecases.services import Services
from tests.fakes import WEB_FORM_CONSENT

PHONE = "+13125550142"
EMAIL = "dana@example.com"
RULES = load_reply_rules()


@pytest.fixture
def agency(services: Services) -> Services:
    """One deployment serving clinic A (its own business) and clinic B."""
    clinic_b = replace(services.business, slug="b", name="Riverside Dental")
    return replace(services, every_business=Businesses([services.business, clinic_b]))


@pytest.fixture
def clinic_a(agency: Services) -> Services:
    return agency


@pytest.fixture
def clinic_b(agency: Services) -> Services:
    return agency


def form_lead(services: Services, business: str, **fields: str) -> int:
    data = LeadInput.parse({"name": "Dana Lee", "phone": PHONE, "email": EMAIL, **WEB_FORM_CONSENT, **fields})
    return take_in_lead(services, data, actor=SYSTEM, business=business).lead_id


def lead(services: Services, lead_id: int) -> Lead:
    with services.session_factory() as session:
        found = session.get(Lead, lead_id)
        assert found is not None
        return found


def consent_log(services: Services, lead_id: int) -> list[tuple[bool, str]]:
    with services.session_factory() as session:
        return [
            (entry.granted, entry.method)
            for entry in session.scalars(
                select(ConsentEntry).where(ConsentEntry.lead_id == lead_id).order_by(ConsentEntry.id)
            )
        ]


def test_the_same_phone_and_email_are_a_separate_lead_of_each_business(clinic_a, clinic_b):
    a, b = form_lead(clinic_a, "main"), form_lead(clinic_b, "b")
    assert a != b
    assert (lead(clinic_a, a).business, lead(clinic_b, b).business) == ("main", "b")


def test_a_business_dedupes_its_own_leads_only(clinic_a, clinic_b):
    a = form_lead(clinic_a, "main")
    b = form_lead(clinic_b, "b")
    assert form_lead(clinic_a, "main", message="again") == a
    assert form_lead(clinic_b, "b", message="again") == b
    with clinic_a.session_factory() as session:
        assert sorted(session.scalars(select(Lead.business).where(Lead.phone == PHONE))) == ["b", "main"]


def test_a_new_lead_s_notices_and_rows_belong_to_its_business(clinic_b):
    b = form_lead(clinic_b, "b")
    with clinic_b.session_factory() as session:
        kinds = {(event.kind, event.business) for event in session.scalars(select(OutboxEvent))}
    assert ("lead_created", "b") in kinds and {business for _, business in kinds} == {"b"}
    assert lead(clinic_b, b).business == "b"


def test_a_stop_sent_to_clinic_a_does_not_stop_clinic_b(clinic_a, clinic_b):
    a, b = form_lead(clinic_a, "main"), form_lead(clinic_b, "b")
    take_text(clinic_a, RULES, IncomingText(phone=PHONE, body="STOP", provider_id="SM-stop"), business="main")
    stopped, kept = lead(clinic_a, a), lead(clinic_b, b)
    assert stopped.sms_opted_out_at is not None and not stopped.sms_allowed
    assert kept.sms_opted_out_at is None and kept.sms_consent and kept.sms_allowed
    # B keeps its own consent record: granted at its form, never revoked.
    assert consent_log(clinic_b, b) == [(True, "web_form")]
    assert consent_log(clinic_a, a) == [(True, "web_form"), (False, "opt_out")]


def test_a_reply_to_clinic_b_is_clinic_b_s_lead_s_reply_only(clinic_a, clinic_b):
    a, b = form_lead(clinic_a, "main"), form_lead(clinic_b, "b")
    result = take_inbound(
        clinic_b,
        InboundMessage(channel="sms", sender=PHONE, body="Is Thursday ok?", signal=LeadSignal.PLAIN, provider_id="SM1"),
        business="b",
    )
    assert result.lead_id == b and result.applied
    with clinic_a.session_factory() as session:
        inbound = {m.lead_id for m in session.scalars(select(Message).where(Message.direction == "in"))}
    assert inbound == {b} and a not in inbound


def test_a_text_from_someone_only_clinic_a_knows_is_a_new_lead_of_clinic_b(clinic_a, clinic_b):
    a = form_lead(clinic_a, "main")
    take_text(
        clinic_b, RULES, IncomingText(phone=PHONE, body="Hi, do you do cleanings?", provider_id="SM2"), business="b"
    )
    with clinic_b.session_factory() as session:
        leads = {row.business: row.id for row in session.scalars(select(Lead).where(Lead.phone == PHONE))}
    assert leads["main"] == a and set(leads) == {"main", "b"}
    assert lead(clinic_a, a).sms_lead_started_at is None  # A's lead did not text A


def test_one_email_sent_to_both_businesses_is_a_message_to_each(clinic_a, clinic_b):
    a, b = form_lead(clinic_a, "main"), form_lead(clinic_b, "b")
    email = IncomingEmail(email=EMAIL, body="Can I come Friday?", subject="Visit", message_id="<m1@example.com>")
    take_email(clinic_a, RULES, email, business="main")
    take_email(clinic_b, RULES, email, business="b")
    take_email(clinic_b, RULES, email, business="b")  # redelivered to B: still one
    with clinic_a.session_factory() as session:
        inbound = sorted(m.lead_id for m in session.scalars(select(Message).where(Message.direction == "in")))
    assert inbound == sorted([a, b])


def test_a_missed_call_to_clinic_b_leaves_clinic_a_s_lead_alone(clinic_a, clinic_b):
    a = form_lead(clinic_a, "main")
    answer = take_missed_call(clinic_b, PHONE, "CA1", business="b")
    assert answer.lead_id != a and lead(clinic_b, answer.lead_id).business == "b"
    again = take_missed_call(clinic_b, PHONE, "CA1", business="b")
    assert again.lead_id == answer.lead_id


def test_an_import_into_clinic_b_takes_in_clinic_a_s_known_leads_as_b_s_own(clinic_a, clinic_b, tmp_path: Path):
    a = form_lead(clinic_a, "main")
    csv_file = tmp_path / "leads.csv"
    csv_file.write_text(f"name,phone,email\nDana Lee,{PHONE},{EMAIL}\n")
    report = import_leads_csv(clinic_b, csv_file, consent="signed intake form", business="b")
    assert (report.added, report.existing) == (1, 0)
    again = import_leads_csv(clinic_b, csv_file, consent="signed intake form", business="b")
    assert (again.added, again.existing) == (0, 1)
    assert lead(clinic_a, a).source != "import"


def test_a_booking_for_clinic_b_is_matched_to_clinic_b_s_lead_and_calendar_ids_are_per_business(clinic_a, clinic_b):
    a, b = form_lead(clinic_a, "main"), form_lead(clinic_b, "b")
    start = clinic_a.clock.now() + timedelta(days=2)

    def book(services: Services, slug: str):
        request = BookingRequest(start_at=start, source="booking", external_id="42", phone=PHONE)
        return take_booking(services, request, business=slug)

    booked_b = book(clinic_b, "b")
    booked_a = book(clinic_a, "main")  # clinic A's own booking number 42: another booking
    assert (booked_b.lead_id, booked_a.lead_id) == (b, a)
    assert booked_a.appointment_id != booked_b.appointment_id and booked_a.created and booked_b.created
    with clinic_a.session_factory() as session:
        owners = dict(session.execute(select(Appointment.id, Appointment.business)).tuples().all())
    assert owners == {booked_a.appointment_id: "main", booked_b.appointment_id: "b"}
    assert take_calendar_change(clinic_b, CalendarChange("booking", "42", "cancel"), business="b") == "cancelled"
    with clinic_a.session_factory() as session:
        assert session.get(Appointment, booked_a.appointment_id).status == "booked"


def test_a_booking_naming_another_business_s_lead_is_refused(clinic_a, clinic_b):
    a = form_lead(clinic_a, "main")
    request = BookingRequest(start_at=clinic_a.clock.now() + timedelta(days=2), source="booking", lead_id=a)
    with pytest.raises(UnknownLead):
        take_booking(clinic_b, request, business="b")


def test_a_person_looking_within_one_business_finds_only_its_leads(clinic_a, clinic_b):
    a, b = form_lead(clinic_a, "main"), form_lead(clinic_b, "b")
    with clinic_a.session_factory() as session:
        for reference in (PHONE, EMAIL, "Dana"):
            assert [found.id for found in find_lead(session, reference, business="b")] == [b]
            assert sorted(found.id for found in find_lead(session, reference)) == sorted([a, b])
        assert find_lead(session, str(a), business="b") == []


def test_a_use_case_told_of_a_business_it_does_not_serve_refuses_instead_of_using_its_own(agency):
    for refused in (
        lambda: take_in_lead(agency, LeadInput.parse({"phone": PHONE}), actor=SYSTEM, business="nowhere"),
        lambda: take_text(agency, RULES, IncomingText(phone=PHONE, body="STOP", provider_id="SM9"), business="nowhere"),
    ):
        with pytest.raises(UnknownBusiness):
            refused()
    with agency.session_factory() as session:
        assert session.scalars(select(Lead)).all() == []  # nothing stored


def test_a_use_case_told_of_no_business_acts_for_the_single_business(agency):
    lead_id = take_in_lead(agency, LeadInput.parse({"phone": PHONE}), actor=SYSTEM).lead_id
    assert lead(agency, lead_id).business == "main"


def test_the_same_vendor_event_id_for_two_businesses_is_two_events(clinic_a):
    now = clinic_a.clock.now()
    with clinic_a.session_factory.begin() as session:
        assert first_delivery(session, "calendly", "event-1", now, business="main")
        assert first_delivery(session, "calendly", "event-1", now, business="b")
        assert not first_delivery(session, "calendly", "event-1", now, business="b")
        assert not first_delivery(session, "calendly", "event-1", now, business="main")


def test_a_lead_s_outbound_webhook_events_belong_to_its_business(agency):
    from bot.store.db import make_session_factory
    from bot.store.models import OutboundWebhook

    engine = agency.session_factory.kw["bind"]
    listening = replace(
        agency, session_factory=make_session_factory(engine, webhook_receivers=("https://crm.example.com/hook",))
    )
    form_lead(listening, "b")
    with listening.session_factory() as session:
        events = {(event.event, event.business) for event in session.scalars(select(OutboundWebhook))}
    assert events == {("lead.created", "b")}
