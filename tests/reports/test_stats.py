"""The team's numbers and lists: speed to lead, reply and booking rates, what got the replies, failures, today."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.core.ports import FailureKind, PermanentSendError
from bot.core.rules import LeadSignal
from bot.reports.stats import (
    ChannelDelivery,
    StepKind,
    TouchResult,
    day_numbers,
    lead_lines,
    lead_stats,
    median,
    open_call_lines,
    percentile,
    rate,
    start_of_day,
)
from bot.store.audit import SYSTEM, Actor
from bot.store.models import Lead
from bot.usecases.call_tasks import open_call_task
from bot.usecases.dispatch import Dispatcher
from bot.usecases.lead_actions import book, receive_message
from bot.usecases.leads import LeadInput, add_lead
from tests.fakes import WEB_FORM_CONSENT

CHICAGO = ZoneInfo("America/Chicago")


@pytest.mark.parametrize(
    ("values", "fraction", "expected"),
    [
        ([], 0.9, None),
        ([5.0], 0.9, 5.0),
        ([0.0, 120.0, 0.0], 0.9, 120.0),
        ([float(n) for n in range(1, 11)], 0.9, 9.0),
        ([float(n) for n in range(1, 11)], 0.5, 5.0),
        ([float(n) for n in range(1, 101)], 0.9, 90.0),
        ([3.0, 1.0, 2.0], 1.0, 3.0),
    ],
)
def test_percentile_is_the_nearest_rank_a_value_that_really_occurred(values, fraction, expected):
    assert percentile(values, fraction) == expected


@pytest.mark.parametrize(("values", "expected"), [([], None), ([4.0], 4.0), ([1.0, 3.0], 2.0), ([9.0, 1.0, 5.0], 5.0)])
def test_median_of_the_values(values, expected):
    assert median(values) == expected


@pytest.mark.parametrize(("part", "whole", "expected"), [(1, 4, 0.25), (0, 3, 0.0), (0, 0, None)])
def test_a_rate_of_nothing_is_no_rate(part, whole, expected):
    assert rate(part, whole) == expected


def test_the_day_starts_at_local_midnight():
    assert start_of_day(datetime(2026, 11, 25, 3, 0, tzinfo=UTC), CHICAGO) == datetime(2026, 11, 24, 6, 0, tzinfo=UTC)


# --- a week of leads ----------------------------------------------------------------------------


def take_in(services, phone: str, email: str | None = None, name: str = "Lead") -> int:
    data = LeadInput.parse({"name": name, "phone": phone, **({"email": email} if email else {}), **WEB_FORM_CONSENT})
    with services.session_factory.begin() as session:
        return add_lead(
            session,
            data,
            business=services.business,
            sequence=services.playbooks.get(),
            now=services.clock.now(),
            actor=SYSTEM,
        ).lead_id


def lead_says(services, lead_id: int, signal: LeadSignal, body: str) -> None:
    with services.session_factory.begin() as session:
        receive_message(
            session,
            services,
            session.get(Lead, lead_id),
            channel="sms",
            body=body,
            signal=signal,
            now=services.clock.now(),
        )


@pytest.fixture
def week(services, clock, sms):
    """Five leads: one replies to the email, one books, one cannot be texted, one auto-replies, one is old."""
    start = clock.now()
    dispatcher = Dispatcher(services)
    replied = take_in(services, "+13125550101", "replied@example.com", "Replied")
    dispatcher.run_due()  # its first text goes at once
    clock.advance(timedelta(minutes=10))
    booked = take_in(services, "+13125550102", name="Booked")
    clock.advance(timedelta(minutes=2))
    dispatcher.run_due()  # two minutes after it came in
    sms.failures.append(PermanentSendError("landline", code="21614", kind=FailureKind.UNREACHABLE))
    failed = take_in(services, "+13125550103", name="Failed")
    dispatcher.run_due()
    auto = take_in(services, "+13125550104", name="Auto")
    dispatcher.run_due()
    clock.advance(timedelta(minutes=5))
    dispatcher.run_due()  # the first lead's same-day email (15 min after it came in)
    lead_says(services, replied, LeadSignal.PLAIN, "Yes, Thursday works")
    lead_says(services, auto, LeadSignal.AUTO_REPLY, "I am out of the office")
    with services.session_factory.begin() as session:
        book(
            session,
            services,
            session.get(Lead, booked),
            start_at=clock.now() + timedelta(days=2),
            now=clock.now(),
            actor=Actor.slack_user("U0ALICE"),
        )
    now = clock.now()
    clock.set(start - timedelta(days=10))
    old = take_in(services, "+13125550105", name="Old")
    clock.set(now)
    return {"replied": replied, "booked": booked, "failed": failed, "auto": auto, "old": old}


def test_stats_count_the_leads_in_and_how_fast_the_first_touch_went(services, clock, week):
    with services.session_factory() as session:
        stats = lead_stats(session, now=clock.now(), days=7)

    assert (stats.leads_in, stats.contacted) == (4, 3)  # the landline got nothing
    assert stats.speed_to_lead_median == timedelta(0)
    assert stats.speed_to_lead_p90 == timedelta(minutes=2)


def test_reply_rate_counts_people_not_auto_replies_and_booking_rate_counts_leads_in(services, clock, week):
    with services.session_factory() as session:
        stats = lead_stats(session, now=clock.now(), days=7)

    assert (stats.replied, stats.contacted, stats.reply_rate) == (1, 3, pytest.approx(1 / 3))
    assert (stats.booked, stats.booking_rate) == (1, 0.25)


def test_the_reply_is_credited_to_the_last_touch_and_subject_before_it(services, clock, week):
    with services.session_factory() as session:
        stats = lead_stats(session, now=clock.now(), days=7)

    by_step = {result.step_id: result for result in stats.by_touch}
    assert by_step["same_day_email"] == TouchResult(
        "default", "same_day_email", 1, sent=1, replies=1, bookings=0, channel="email"
    )
    # Three first texts went out (the landline's failed): one booking followed one of them.
    assert by_step["instant_sms"] == TouchResult(
        "default", "instant_sms", 0, sent=3, replies=0, bookings=1, channel="sms"
    )
    assert (by_step["same_day_email"].reply_rate, by_step["instant_sms"].booking_rate) == (1.0, pytest.approx(1 / 3))
    [subject] = stats.by_subject
    assert (subject.step_id, subject.option, subject.sent, subject.replies) == ("same_day_email", 0, 1, 1)
    assert subject.sent_subject == "Thanks for reaching out, Replied"


def test_a_lead_who_says_they_booked_counts_as_booked(services, clock, week):
    lead_says(services, week["replied"], LeadSignal.BOOKED, "Booked online for Thursday, thanks!")
    with services.session_factory() as session:
        stats = lead_stats(session, now=clock.now(), days=7)

    assert (stats.booked, stats.booking_rate) == (2, 0.5)
    by_step = {result.step_id: result for result in stats.by_touch}
    assert by_step["same_day_email"].bookings == 1


def test_delivery_failures_are_counted_per_channel(services, clock, week):
    with services.session_factory() as session:
        stats = lead_stats(session, now=clock.now(), days=7)

    assert stats.deliveries == (ChannelDelivery("email", 1, 0), ChannelDelivery("sms", 4, 1))


def test_thirty_days_take_in_older_leads(services, clock, week):
    with services.session_factory() as session:
        stats = lead_stats(session, now=clock.now(), days=30)

    assert stats.leads_in == 5 and stats.days == 30


def test_no_leads_give_no_rates_rather_than_zero(services, clock):
    with services.session_factory() as session:
        stats = lead_stats(session, now=clock.now(), days=7)

    assert (stats.leads_in, stats.reply_rate, stats.booking_rate, stats.speed_to_lead_median) == (0, None, None, None)
    assert stats.deliveries == ()


def test_todays_numbers_count_from_local_midnight(services, clock, week):
    with services.session_factory() as session:
        today = day_numbers(session, now=clock.now(), zone=CHICAGO)

    # The landline's first text, with no email to go by, became a call at once.
    assert (today.leads_in, today.messages_sent, today.replies, today.booked, today.open_calls) == (4, 4, 1, 1, 1)


# --- lists --------------------------------------------------------------------------------------


def test_lead_lines_filter_and_say_each_leads_next_step(services, clock, week):
    with services.session_factory.begin() as session:
        lead = session.get(Lead, week["failed"])
        lead.owner = "U0ALICE"  # its first text could not reach the landline: a call task is open for it

    with services.session_factory() as session:
        everyone = {line.lead_id: line.next_step for line in lead_lines(session, now=clock.now(), limit=50).rows}
        mine = lead_lines(session, now=clock.now(), owner="U0ALICE")
        paused = lead_lines(session, now=clock.now(), paused=True)
        booked = lead_lines(session, now=clock.now(), stages=("booked",))

    assert everyone[week["failed"]].kind == StepKind.CALL and everyone[week["failed"]].detail.startswith(
        "texts cannot reach this number"
    )
    assert everyone[week["booked"]].kind == StepKind.VISIT
    assert everyone[week["replied"]].kind == StepKind.PAUSED
    assert everyone[week["auto"]].kind == StepKind.TOUCH and everyone[week["auto"]].detail == "same_day_email"
    assert [line.lead_id for line in mine.rows] == [week["failed"]]
    assert [line.lead_id for line in paused.rows] == [week["replied"]]
    assert [line.lead_id for line in booked.rows] == [week["booked"]]


def test_a_list_page_says_how_many_more_there_are(services, clock, week):
    with services.session_factory() as session:
        page = lead_lines(session, now=clock.now(), limit=2)

    assert (len(page.rows), page.total, page.more) == (2, 5, 3)


def test_open_calls_are_listed_most_overdue_first(services, clock, week):
    with services.session_factory.begin() as session:
        for key, hours in (("replied", 3), ("auto", 1)):
            open_call_task(
                session,
                services,
                session.get(Lead, week[key]),
                reason=key,
                now=clock.now(),
                actor=SYSTEM,
                due_at=clock.now() + timedelta(hours=hours),
            )

    with services.session_factory() as session:
        page = open_call_lines(session)

    landline = "texts cannot reach this number"  # the landline's first text, due when it failed
    reasons = [line.reason if not line.reason.startswith(landline) else landline for line in page.rows]
    assert reasons == [landline, "auto", "replied"] and page.total == 3
