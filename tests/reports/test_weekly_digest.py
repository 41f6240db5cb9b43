"""The weekly digest: its numbers from a known week, its chart, and one post a week through Slack's upload flow."""

from __future__ import annotations

import io
import secrets
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from PIL import Image
from slack_sdk import WebClient
from slack_sdk.models.blocks import Block

from bot.reports.digest import DigestSchedule, DigestScheduleError, build_digest
from bot.reports.digest_chart import render_chart
from bot.slack.digest import WeeklyDigestJob, digest_blocks
from bot.standins.slack_api import SlackApiStandin
from bot.store.models import Appointment, AuditEntry, CallTask, Enrollment, Lead, Message, Touch

CHICAGO = ZoneInfo("America/Chicago")
#: Monday 2026-11-30 08:00 in Chicago: the digest's moment; its week began Monday 2026-11-23 08:00.
MONDAY_8 = datetime(2026, 11, 30, 14, 0, tzinfo=UTC)
LEADS = "C0LEADS"


def _lead(session, name: str, source: str, at: datetime, stage: str = "contacted", *, business: str = "main") -> Lead:
    lead = Lead(
        business=business,
        name=name,
        phone=None,
        email=None,
        source=source,
        timezone="America/Chicago",
        stage=stage,
        link_token=secrets.token_urlsafe(12),
        unsubscribe_token=secrets.token_urlsafe(12),
        created_at=at,
        updated_at=at,
    )
    session.add(lead)
    session.flush()
    return lead


def _sent(session, lead: Lead, step: str, at: datetime, *, option: int | None = None) -> Touch:
    enrollment = session.query(Enrollment).filter_by(lead_id=lead.id).one_or_none()
    if enrollment is None:
        enrollment = Enrollment(lead_id=lead.id, sequence_name="default", state="active", enrolled_at=at)
        session.add(enrollment)
        session.flush()
    touch = Touch(
        enrollment_id=enrollment.id,
        lead_id=lead.id,
        step_id=step,
        position=0 if step == "first" else 1,
        channel="email" if option is not None else "sms",
        planned_at=at,
        due_at=at,
        status="sent",
        sent_at=at,
        subject_option=option,
        subject=f"Hi {lead.name}" if option is not None else None,
        provider_id=secrets.token_hex(8),
    )
    session.add(touch)
    session.flush()
    session.add(
        Message(
            lead_id=lead.id,
            direction="out",
            channel=touch.channel,
            touch_id=touch.id,
            provider_id=touch.provider_id,
            body="hello",
            status="delivered",
            created_at=at,
        )
    )
    return touch


def _reply(session, lead: Lead, at: datetime) -> None:
    session.add(
        Message(
            lead_id=lead.id,
            direction="in",
            channel="sms",
            body="yes please",
            classification="plain",
            status="received",
            created_at=at,
        )
    )


@pytest.fixture
def known_week(services):
    """Four leads this week (three from the web, one by text), one last week; replies, a visit, a loss, calls."""
    start = MONDAY_8 - timedelta(days=7)
    with services.session_factory.begin() as session:
        dana = _lead(session, "Dana Lee", "web", start + timedelta(days=1, hours=1))
        sam = _lead(session, "Sam Ortiz", "web", start + timedelta(days=1, hours=2))
        kim = _lead(session, "Kim Park", "sms", start + timedelta(days=3))
        lou = _lead(session, "Lou Grant", "web", start + timedelta(days=4), stage="lost")
        _lead(session, "Old Lead", "web", start - timedelta(days=3))
        for lead in (dana, sam, kim, lou):
            _sent(session, lead, "first", lead.created_at + timedelta(seconds=30))
        for lead in (dana, sam, kim):
            _sent(session, lead, "day1_email", lead.created_at + timedelta(days=1), option=0)
        _reply(session, dana, dana.created_at + timedelta(days=1, hours=2))  # after the email
        _reply(session, kim, kim.created_at + timedelta(minutes=5))  # after the first text
        session.add_all(
            [
                Appointment(
                    business="main",
                    lead_id=dana.id,
                    start_at=MONDAY_8 - timedelta(days=1),
                    status="attended",
                    created_at=dana.created_at,
                ),
                Appointment(
                    business="main",
                    lead_id=kim.id,
                    start_at=MONDAY_8 - timedelta(hours=30),
                    status="no_show",
                    created_at=kim.created_at,
                ),
                AuditEntry(
                    lead_id=lou.id,
                    at=lou.created_at + timedelta(hours=3),
                    actor_type="lead",
                    actor_id="",
                    action="stage_changed",
                    details={"old": "contacted", "new": "lost", "reason": "not interested"},
                ),
                AuditEntry(
                    lead_id=sam.id,
                    at=sam.created_at + timedelta(days=1),
                    actor_type="slack_user",
                    actor_id="U0FRONT",
                    action="call_outcome",
                    details={"outcome": "no_answer"},
                ),
                AuditEntry(
                    lead_id=sam.id,
                    at=sam.created_at + timedelta(days=2),
                    actor_type="slack_user",
                    actor_id="U0FRONT",
                    action="call_outcome",
                    details={"outcome": "left_voicemail"},
                ),
                AuditEntry(
                    lead_id=kim.id,
                    at=kim.created_at + timedelta(hours=1),
                    actor_type="slack_user",
                    actor_id="U0DESK",
                    action="call_outcome",
                    details={"outcome": "no_answer"},
                ),
                CallTask(
                    lead_id=sam.id,
                    reason="asked a question",
                    due_at=MONDAY_8,
                    status="open",
                    created_at=MONDAY_8 - timedelta(hours=1),
                ),
            ]
        )
    return services


def test_the_digest_counts_the_week_as_it_happened(known_week):
    with known_week.session_factory() as session:
        digest = build_digest(session, end=MONDAY_8, zone=CHICAGO)
    assert digest.funnel == (("Leads", 4), ("Contacted", 4), ("Replied", 2), ("Booked", 2), ("Attended", 1))
    assert digest.stats.speed_to_lead_median == timedelta(seconds=30)
    assert (digest.attended, digest.missed, digest.show_rate) == (1, 1, 0.5)
    assert digest.lost_reasons == (("not interested", 1),)
    assert [(p.user_id, p.calls, dict(p.outcomes)) for p in digest.calls_by_person] == [
        ("U0FRONT", 2, {"no_answer": 1, "left_voicemail": 1}),
        ("U0DESK", 1, {"no_answer": 1}),
    ]
    # Rates of those sent: the email got 1 reply of 3 sent, the first text 1 of 4.
    assert (digest.best_touch.step_id, digest.best_touch.replies, digest.best_touch.sent) == ("day1_email", 1, 3)
    assert (digest.best_subject.step_id, digest.best_subject.option) == ("day1_email", 0)
    assert [(w.name, w.why) for w in digest.waiting] == [("Sam Ortiz", "a call to make")]
    per_day = {day.isoformat(): dict(counts) for day, counts in digest.leads_per_day}
    assert per_day["2026-11-24"] == {"web": 2} and per_day["2026-11-26"] == {"sms": 1}
    assert per_day["2026-11-23"] == {} and len(per_day) == 8  # every day shown, quiet ones too


def test_the_digest_blocks_are_valid_block_kit_and_name_no_lead_subject(known_week):
    with known_week.session_factory() as session:
        digest = build_digest(session, end=MONDAY_8, zone=CHICAGO)
    blocks = digest_blocks(digest, known_week.playbooks.get)
    for block in blocks:
        assert Block.parse(block) is not None
        Block.parse(block).validate_json()
    text = str(blocks)
    assert "Week of Nov 23 – Nov 30" in text and "50%" in text and "<@U0FRONT>: 2" in text
    assert "Hi Dana" not in text  # a subject option reads as its template text, not one lead's subject
    assert "1 of 3 sent" in text


def test_the_chart_is_a_png_of_the_funnel_and_the_days(known_week):
    with known_week.session_factory() as session:
        digest = build_digest(session, end=MONDAY_8, zone=CHICAGO)
    png = render_chart(digest)
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG" and image.size == (1000, 400)
    assert len(image.convert("RGB").getcolors(maxcolors=100_000) or []) > 10  # bars drawn, not an empty canvas


@pytest.fixture
def slack():
    with SlackApiStandin("xoxb-test", channels={LEADS: "leads"}) as standin:
        yield standin


def job(services, slack) -> WeeklyDigestJob:
    client = WebClient(token="xoxb-test", base_url=slack.url + "/api/", timeout=5)
    return WeeklyDigestJob(services, client, LEADS, DigestSchedule(0, time(8)))


def test_the_digest_is_posted_once_at_its_hour_with_the_chart_in_its_thread(known_week, slack, clock):
    clock.set(MONDAY_8 - timedelta(minutes=1))  # Sunday night's tick: last week's moment is long past
    assert job(known_week, slack).run_once() is None and slack.messages(LEADS) == []
    clock.set(MONDAY_8 + timedelta(seconds=20))
    assert job(known_week, slack).run_once() == "2026-W49"
    # A second process, or a restart within the hour, finds the week taken.
    assert job(known_week, slack).run_once() is None
    post, chart = slack.messages(LEADS)
    assert "Weekly digest: 4 leads in" in post["text"]
    assert chart["thread_ts"] == post["ts"] and chart["files"][0]["title"].startswith("This week")
    [uploaded] = slack.files.values()
    assert uploaded["bytes"].startswith(b"\x89PNG")
    assert slack.calls("files.completeUploadExternal")


def test_a_digest_slack_refused_is_tried_again_at_the_next_tick(known_week, slack, clock):
    clock.set(MONDAY_8 + timedelta(minutes=1))
    slack.fail_next("chat.postMessage", body={"ok": False, "error": "channel_not_found"})
    assert job(known_week, slack).run_once() is None
    assert job(known_week, slack).run_once() == "2026-W49"
    assert len([m for m in slack.messages(LEADS) if "blocks" in m]) == 1


@pytest.mark.parametrize(
    ("text", "weekday", "at"),
    [
        ("mon 08:00", 0, time(8)),
        ("Friday 17:30", 4, time(17, 30)),
        ("tue 9", 1, time(9)),
    ],
)
def test_the_schedule_reads_a_day_and_an_hour(text, weekday, at):
    assert DigestSchedule.parse(text) == DigestSchedule(weekday, at)


@pytest.mark.parametrize("text", ["someday", "mon 25:00", "funday 08:00", "08:00"])
def test_a_schedule_that_is_not_a_day_and_hour_is_refused_with_the_fix(text):
    with pytest.raises(DigestScheduleError, match="mon 08:00"):
        DigestSchedule.parse(text)


def test_off_means_no_digest():
    assert DigestSchedule.parse("off") is None


def test_the_latest_moment_is_in_business_time_across_daylight_saving():
    schedule = DigestSchedule(0, time(8))
    # Monday 2026-11-02 08:00 CST is 14:00 UTC; the week before it was CDT (13:00 UTC).
    assert schedule.latest_due(datetime(2026, 11, 2, 14, 5, tzinfo=UTC), CHICAGO) == datetime(
        2026, 11, 2, 14, 0, tzinfo=UTC
    )
    assert schedule.latest_due(datetime(2026, 11, 2, 13, 55, tzinfo=UTC), CHICAGO) == datetime(
        2026, 10, 26, 13, 0, tzinfo=UTC
    )
