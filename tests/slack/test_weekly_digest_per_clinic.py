"""The weekly digest with two clinics in one deployment: each gets its own, counting only its own leads, posted to its
own channel at the digest's hour in its own time zone (through the Slack stand-in and the real client)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from slack_sdk import WebClient
from sqlalchemy import select

from bot.app import digest_jobs
from bot.core.businesses import Businesses
from bot.reports.digest import DigestSchedule, build_digest
from bot.slack.digest import DIGEST_CLAIM, DigestNeedsABusiness, WeeklyDigestJob
from bot.standins.slack_api import SlackApiStandin
from bot.store.models import Appointment, CallTask, Lead, ProcessedDelivery
from tests.reports.test_weekly_digest import _lead as one_lead
from tests.support.clinics import CHIRO_CHANNEL, DENTAL_CHANNEL, clinics_of

#: The digest's hour, Monday 08:00, in each clinic's zone: New York's comes an hour before Chicago's.
MONDAY_8_NEW_YORK = datetime(2026, 11, 30, 13, 0, tzinfo=UTC)
MONDAY_8_CHICAGO = datetime(2026, 11, 30, 14, 0, tzinfo=UTC)
MONDAY_8 = DigestSchedule(0, time(8))


@pytest.fixture
def clinics(services):
    """The chiropractic clinic in Chicago, the dental clinic in New York."""
    chiro, dental = clinics_of(services.business)
    chiro = replace(chiro, timezone=ZoneInfo("America/Chicago"))
    dental = replace(dental, timezone=ZoneInfo("America/New_York"))
    return replace(services, business=chiro, every_business=Businesses([chiro, dental]))


def _lead(session, business: str, name: str, at: datetime) -> Lead:
    return one_lead(session, name, "web", at, business=business)


@pytest.fixture
def week(clinics):
    """This week: two chiro leads (one with a call to make, one visit kept), one dental lead with a call to make."""
    start = MONDAY_8_NEW_YORK - timedelta(days=6)
    with clinics.session_factory.begin() as session:
        chris = _lead(session, "chiro", "Chris Chiro", start)
        _lead(session, "chiro", "Cora Chiro", start + timedelta(days=1))
        dana = _lead(session, "dental", "Dana Dental", start + timedelta(days=2))
        session.add_all(
            [
                CallTask(lead_id=chris.id, reason="asked a question", due_at=start, status="open", created_at=start),
                CallTask(lead_id=dana.id, reason="asked a question", due_at=start, status="open", created_at=start),
                Appointment(
                    business="chiro",
                    lead_id=chris.id,
                    start_at=start + timedelta(days=3),
                    status="attended",
                    created_at=start,
                ),
            ]
        )
    return clinics


@pytest.fixture
def slack():
    with SlackApiStandin("xoxb-test", channels={CHIRO_CHANNEL: "chiro-leads", DENTAL_CHANNEL: "dental-leads"}) as s:
        yield s


def jobs(services, slack) -> dict[str, WeeklyDigestJob]:
    client = WebClient(token="xoxb-test", base_url=slack.url + "/api/", timeout=5)
    return {job.business.slug: job for job in digest_jobs(services, client, MONDAY_8, single_channel="C0UNUSED")}


def posts(slack, channel: str) -> list[dict]:
    return [m for m in slack.messages(channel) if "blocks" in m]


def test_each_clinic_has_a_digest_job_posting_to_its_own_channel(week, slack):
    found = jobs(week, slack)

    assert {slug: job.channel for slug, job in found.items()} == {"chiro": CHIRO_CHANNEL, "dental": DENTAL_CHANNEL}


def test_each_clinic_gets_its_digest_at_eight_its_own_time_counting_only_its_own_leads(week, slack, clock):
    clock.set(MONDAY_8_NEW_YORK + timedelta(seconds=20))  # 08:00 in New York, 07:00 in Chicago
    assert jobs(week, slack)["dental"].run_once() == "2026-W49"
    assert jobs(week, slack)["chiro"].run_once() is None
    [dental_post] = posts(slack, DENTAL_CHANNEL)
    assert posts(slack, CHIRO_CHANNEL) == []

    clock.set(MONDAY_8_CHICAGO + timedelta(seconds=20))
    # The dental clinic's week being claimed does not take the chiropractic clinic's week of the same number.
    assert jobs(week, slack)["chiro"].run_once() == "2026-W49"
    assert jobs(week, slack)["dental"].run_once() is None  # posted once, whatever the other clinic does
    [chiro_post] = posts(slack, CHIRO_CHANNEL)

    assert "Weekly digest: 1 lead in" in dental_post["text"]
    assert "Dana Dental" in str(dental_post["blocks"]) and "Chris" not in str(dental_post["blocks"])
    assert "Weekly digest: 2 leads in" in chiro_post["text"]
    assert "Chris Chiro" in str(chiro_post["blocks"]) and "Dana" not in str(chiro_post["blocks"])
    assert len(posts(slack, DENTAL_CHANNEL)) == 1
    with week.session_factory() as session:
        claims = session.execute(
            select(ProcessedDelivery.business, ProcessedDelivery.delivery_id).where(
                ProcessedDelivery.provider == DIGEST_CLAIM
            )
        ).all()
    assert sorted(claims) == [("chiro", "2026-W49"), ("dental", "2026-W49")]


def test_one_clinics_digest_counts_its_visits_calls_and_waiting_leads_only(week):
    with week.session_factory() as session:
        dental = build_digest(session, end=MONDAY_8_NEW_YORK, zone=ZoneInfo("America/New_York"), business="dental")
        chiro = build_digest(session, end=MONDAY_8_CHICAGO, zone=ZoneInfo("America/Chicago"), business="chiro")
        everyone = build_digest(session, end=MONDAY_8_CHICAGO, zone=ZoneInfo("America/Chicago"))

    assert (dental.stats.leads_in, dental.attended, [w.name for w in dental.waiting]) == (1, 0, ["Dana Dental"])
    assert (chiro.stats.leads_in, chiro.attended, [w.name for w in chiro.waiting]) == (2, 1, ["Chris Chiro"])
    assert sum(dict(counts).get("web", 0) for _, counts in dental.leads_per_day) == 1
    assert everyone.stats.leads_in == 3  # no business named: every stored lead, as one business's deployment counts


def test_a_clinics_digest_counts_leads_per_day_in_its_own_time_zone(clinics, slack):
    # 00:30 on Thursday in New York is still Wednesday in Chicago, the first clinic's zone.
    late = datetime(2026, 11, 26, 5, 30, tzinfo=UTC)
    with clinics.session_factory.begin() as session:
        _lead(session, "dental", "Nell Night", late)

    digest = jobs(clinics, slack)["dental"].digest_for(MONDAY_8_NEW_YORK)

    per_day = {day.isoformat(): dict(counts) for day, counts in digest.leads_per_day}
    assert per_day["2026-11-26"] == {"web": 1} and per_day["2026-11-25"] == {}
    assert digest.zone == ZoneInfo("America/New_York")


def test_with_several_clinics_a_digest_job_must_say_whose(week, slack):
    client = WebClient(token="xoxb-test", base_url=slack.url + "/api/", timeout=5)

    with pytest.raises(DigestNeedsABusiness, match="chiro, dental"):
        WeeklyDigestJob(week, client, CHIRO_CHANNEL, MONDAY_8)


def test_one_business_has_one_digest_job_posting_to_the_deployments_channel(services, slack):
    client = WebClient(token="xoxb-test", base_url=slack.url + "/api/", timeout=5)

    [job] = digest_jobs(services, client, MONDAY_8, single_channel="C0LEADS")

    assert (job.channel, job.business.slug, job.leads_of) == ("C0LEADS", services.business.slug, None)
