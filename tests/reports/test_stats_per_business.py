"""Stats and lists per business, and the agency's total: each clinic counts only its own leads."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from bot.core.businesses import Businesses
from bot.core.report_request import Breakdown
from bot.core.rules import LeadSignal
from bot.reports.breakdowns import AGENCY_ROW, business_table, stats_table
from bot.reports.stats import day_numbers, lead_lines, lead_stats, open_call_lines
from bot.store.audit import SYSTEM
from bot.store.models import Lead
from bot.usecases.call_tasks import open_call_task
from bot.usecases.dispatch import Dispatcher
from bot.usecases.lead_actions import receive_message
from bot.usecases.leads import LeadInput, add_lead
from tests.fakes import WEB_FORM_CONSENT
from tests.known_history import seed_known_history

DENTAL = "dental"


@pytest.fixture
def services(services, engine):  # engine: the conftest sees the database is to be migrated
    """The deployment serving a second clinic too (its own slug and name): its leads' sends ask for it."""
    dental = replace(services.business, slug=DENTAL, name="Smile Dental")
    return replace(services, every_business=Businesses([services.business, dental]))


@pytest.fixture
def dental(services):
    """The second clinic served by the same deployment."""
    return services.business_of(DENTAL)


def take_in(services, business, *, name: str, phone: str, source: str = "website") -> int:
    fields = {"name": name, "phone": phone, "source": source, **WEB_FORM_CONSENT}
    with services.session_factory.begin() as session:
        return add_lead(
            session,
            LeadInput.parse(fields),
            business=business,
            sequence=services.playbooks.get(),
            now=services.clock.now(),
            actor=SYSTEM,
        ).lead_id


@pytest.fixture
def two_clinics(services, clock, dental):
    """The known history in the main clinic (six leads, five this week), and three dental leads this week.

    One dental lead, Dot, has Ana's phone number: the same person is a lead of each clinic. Of the dental
    leads, Dina replies and Dot has a call open for the team.
    """
    history = seed_known_history(services, clock)
    dina = take_in(services, dental, name="Dina", phone="+13125550201", source="google")
    take_in(services, dental, name="Dan", phone="+13125550202", source="google")
    dot = take_in(services, dental, name="Dot", phone="+13125550101", source="google")
    Dispatcher(services).run_due()
    clock.advance(timedelta(minutes=5))
    with services.session_factory.begin() as session:
        receive_message(
            session,
            services,
            session.get(Lead, dina),
            channel="sms",
            body="Do you take my insurance?",
            signal=LeadSignal.PLAIN,
            now=clock.now(),
        )
        open_call_task(
            session, services, session.get(Lead, dot), reason="asked for a call", now=clock.now(), actor=SYSTEM
        )
    return history


def test_each_business_counts_only_its_own_leads_and_the_agency_counts_them_all(services, clock, two_clinics):
    with services.session_factory() as session:
        main = lead_stats(session, now=clock.now(), days=7, business=services.business.slug)
        dental = lead_stats(session, now=clock.now(), days=7, business=DENTAL)
        agency = lead_stats(session, now=clock.now(), days=7)

    assert (main.leads_in, dental.leads_in, agency.leads_in) == (5, 3, 8)
    assert (dental.contacted, dental.replied, dental.booked) == (3, 1, 0)
    assert main.replied + dental.replied == agency.replied
    assert main.booked == agency.booked
    dental_sent = sum(delivery.attempted for delivery in dental.deliveries)
    agency_sent = sum(delivery.attempted for delivery in agency.deliveries)
    main_sent = sum(delivery.attempted for delivery in main.deliveries)
    assert dental_sent == 3
    assert main_sent + dental_sent == agency_sent


def test_a_breakdown_of_one_business_counts_only_its_leads(services, clock, two_clinics):
    with services.session_factory() as session:
        dental = stats_table(session, now=clock.now(), days=7, by=Breakdown.SOURCE, business=DENTAL)
        main = stats_table(session, now=clock.now(), days=7, by=Breakdown.SOURCE, business=services.business.slug)

    assert [(row["source"], row["leads"], row["replied"]) for row in dental.records()] == [("google", 3, 1)]
    assert "google" not in {row["source"] for row in main.records()}
    assert sum(row["leads"] for row in main.records()) == 5


def test_the_team_s_work_for_one_business_is_counted_for_that_business_only(services, clock, two_clinics):
    with services.session_factory() as session:
        dental = stats_table(session, now=clock.now(), days=7, by=Breakdown.PERSON, business=DENTAL)
        agency = stats_table(session, now=clock.now(), days=7, by=Breakdown.PERSON)

    assert dental.rows == ()
    assert agency.rows != ()


def test_the_business_table_has_a_row_per_business_then_the_agency_total(services, clock, two_clinics):
    names = {services.business.slug: services.business.name, DENTAL: "Smile Dental", "quiet": "Quiet Clinic"}
    with services.session_factory() as session:
        table = business_table(session, now=clock.now(), days=7, businesses=names)

    records = table.records()
    assert [(row["business"], row["name"]) for row in records] == [
        (services.business.slug, services.business.name),
        (DENTAL, "Smile Dental"),
        ("quiet", "Quiet Clinic"),
        (None, AGENCY_ROW),
    ]
    assert [row["leads_in"] for row in records] == [5, 3, 0, 8]
    assert [row["replied"] for row in records[1:3]] == [1, 0]
    assert records[3]["replied"] == records[0]["replied"] + 1
    assert records[3]["contacted"] == records[0]["contacted"] + records[1]["contacted"]
    assert records[2]["reply_rate"] is None  # nothing to count is no rate, not 0 %


def test_a_business_no_longer_configured_still_gets_a_row_so_the_rows_add_up(services, clock, two_clinics):
    with services.session_factory() as session:
        table = business_table(session, now=clock.now(), days=7, businesses={DENTAL: "Smile Dental"})

    records = table.records()
    assert [row["business"] for row in records] == [DENTAL, services.business.slug, None]
    assert records[1]["name"] == services.business.slug
    assert records[0]["leads_in"] + records[1]["leads_in"] == records[2]["leads_in"]


def test_lists_and_todays_numbers_are_of_one_business_when_asked(services, clock, two_clinics):
    zone = services.business.timezone
    with services.session_factory() as session:
        dental_leads = lead_lines(session, now=clock.now(), business=DENTAL)
        dental_calls = open_call_lines(session, business=DENTAL)
        all_calls = open_call_lines(session)
        dental_today = day_numbers(session, now=clock.now(), zone=zone, business=DENTAL)

    assert {line.name for line in dental_leads.rows} == {"Dina", "Dan", "Dot"}
    assert dental_leads.total == 3
    assert [line.lead_name for line in dental_calls.rows] == ["Dot"]
    assert all_calls.total > dental_calls.total
    assert dental_today.replies == 1
    assert dental_today.open_calls == 1
