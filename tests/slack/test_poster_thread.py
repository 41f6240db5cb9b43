"""The poster runs in a thread of its own and waits for Slack's pace instead of spinning.

It sleeps until a notice is published (a wake-up) or until a rate-limit token frees up; a backlog
waiting for its channel costs the same few queries however long it is; stopping leaves what is
queued in the database. APScheduler's skipped runs (a wake-up while a job runs) are said once.
"""

from __future__ import annotations

import logging
import threading

import pytest
from slack_sdk import WebClient
from sqlalchemy import event

from bot.scheduler import WorkScheduler
from bot.slack.limits import POST_BURST, SlackLimits
from bot.slack.poster import SlackPoster
from bot.standins.slack_api import SlackApiStandin
from bot.store.audit import SYSTEM
from bot.store.models import Lead
from bot.store.outbox import Notice, publish
from bot.usecases.leads import LeadInput, add_lead
from tests.fakes import WEB_FORM_CONSENT
from tests.support.fake_time import FakeTime

BOT_TOKEN = "xoxb-thread"
LEADS = "C0LEADS"


@pytest.fixture
def slack():
    with SlackApiStandin(BOT_TOKEN) as standin:
        yield standin


def client_for(slack: SlackApiStandin) -> WebClient:
    return WebClient(token=BOT_TOKEN, base_url=slack.url + "/api/", timeout=5)


def new_lead(services, phone: str) -> int:
    data = LeadInput.parse(
        {"name": f"Lead {phone[-2:]}", "phone": phone, "message": "Any openings?", **WEB_FORM_CONSENT}
    )
    with services.session_factory.begin() as session:
        return add_lead(
            session,
            data,
            business=services.business,
            sequence=services.playbooks.get(),
            now=services.clock.now(),
            actor=SYSTEM,
        ).lead_id


def queue_notes(services, lead_id: int, count: int) -> None:
    with services.session_factory.begin() as session:
        for n in range(count):
            publish(session, Notice.DECISION, lead_id=lead_id, at=services.clock.now(), text=f"note {n}")


def lead_with_card(services, slack: SlackApiStandin, phone: str) -> int:
    lead_id = new_lead(services, phone)
    SlackPoster(services, client_for(slack), LEADS, limits=SlackLimits(clock=FakeTime().clock)).drain_once()
    with services.session_factory() as session:
        assert session.get(Lead, lead_id).slack_ts
    return lead_id


def test_the_poster_thread_posts_what_is_queued_at_start_and_what_a_wake_up_announces(services, slack):
    first = new_lead(services, "+13125550101")
    # No idle look for a minute: only the start and the wake-up can have posted the second card.
    poster = SlackPoster(services, client_for(slack), LEADS)
    poster.start(idle_seconds=60)
    try:
        slack.wait_for_requests("chat.postMessage", 1, timeout=10)
        second = new_lead(services, "+13125550102")
        poster.wake()
        slack.wait_for_requests("chat.postMessage", 2, timeout=10)
    finally:
        poster.stop()
    with services.session_factory() as session:
        assert session.get(Lead, first).slack_ts and session.get(Lead, second).slack_ts
    assert poster.pending() == 0


def test_a_backlog_waiting_for_its_channel_costs_the_same_few_queries_however_long_it_is(services, slack, engine):
    """The poster once ran its "next event" query again for every queued event (each passed over in
    turn), so a bot with a backlog and nothing else to do sat at 100 % of a core."""
    time = FakeTime()
    poster = SlackPoster(services, client_for(slack), LEADS, limits=SlackLimits(clock=time.clock, sleep=time.sleep))
    statements: list[str] = []

    def count(_conn, _cursor, statement, *_args) -> None:
        statements.append(statement)

    poster.drain_once()  # a first look also asks which businesses have notices queued (then once a minute)
    queries = []
    for backlog, first_phone in ((5, 1000), (100, 2000)):
        for n in range(backlog):  # new leads, each waiting for its card to be posted
            new_lead(services, f"+1312555{first_phone + n:04d}")
        poster.limits.posts.hold(LEADS, 30)  # Slack said Retry-After: 30 for the channel
        statements.clear()
        event.listen(engine, "before_cursor_execute", count)
        try:
            assert poster.drain_once() == 0
        finally:
            event.remove(engine, "before_cursor_execute", count)
        queries.append(len([s for s in statements if s.lstrip().upper().startswith("SELECT")]))
        assert poster.next_look_in == pytest.approx(30)
        time.now += 30
        while poster.drain_once(1000):
            pass
        assert poster.pending() == 0

    assert queries[0] == queries[1] <= 2


def test_stopping_the_poster_thread_mid_backlog_ends_it_and_keeps_the_rest_queued(services, slack):
    lead_id = lead_with_card(services, slack, "+13125550101")
    queue_notes(services, lead_id, 30)
    before = len(slack.requests_for("chat.postMessage"))
    poster = SlackPoster(services, client_for(slack), LEADS)  # real time: one post a second after the burst
    poster.start(idle_seconds=60)
    slack.wait_for_requests("chat.postMessage", before + POST_BURST, timeout=10)
    thread = poster._thread
    assert thread is not None

    poster.stop()

    assert not thread.is_alive()
    posted = len(slack.requests_for("chat.postMessage")) - before
    assert posted < 30 and poster.pending() == 30 - posted
    # The next start goes on where this one stopped.
    poster = SlackPoster(services, client_for(slack), LEADS, limits=SlackLimits(clock=lambda: 0.0, post_burst=100))
    while poster.drain_once():
        pass
    notes = [m["text"] for m in slack.messages(LEADS) if m.get("thread_ts") and "note" in m["text"]]
    assert [text.split()[-1] for text in notes] == [str(n) for n in range(30)]


def test_a_job_woken_while_it_runs_says_so_once_not_at_every_skipped_run(services, caplog):
    scheduler = WorkScheduler(services, poll_seconds=60)
    started, release = threading.Event(), threading.Event()

    def slow_job() -> None:
        started.set()
        release.wait(10)

    run_now = scheduler.add_periodic("slow_job", slow_job, seconds=60)
    caplog.set_level(logging.WARNING, logger="apscheduler")
    scheduler.start()
    try:
        run_now()
        assert started.wait(10)
        for _ in range(20):
            run_now()
            release.wait(0.05)
    finally:
        release.set()
        scheduler.shutdown()
    skips = [r for r in caplog.records if "maximum number of running instances" in r.getMessage()]
    assert len(skips) == 1 and "slow_job" in skips[0].getMessage()


def test_a_new_lead_posted_from_a_backlog_is_its_card_and_entry_with_no_edits_for_what_they_show(services, slack):
    """Behind a backlog, a lead's card and first entry go out after its text was sent and delivered:
    drawn then, they show it all, so the queued card refresh and delivery status cost no edits
    (Slack allows about 50 edits a minute per workspace; a burst's edits would outlast its posts)."""
    from bot.store.models import Message
    from bot.usecases.delivery import SmsStatusReport, apply_sms_status
    from bot.usecases.dispatch import Dispatcher

    lead_id = new_lead(services, "+13125550101")
    Dispatcher(services).run_due()
    with services.session_factory() as session:
        message = session.query(Message).filter(Message.lead_id == lead_id).one()
    for status in ("queued", "sent"):
        apply_sms_status(services, SmsStatusReport(message_sid=message.provider_id, status=status))
    poster = SlackPoster(services, client_for(slack), LEADS, limits=SlackLimits(clock=FakeTime().clock))

    while poster.drain_once():
        pass

    assert poster.pending() == 0
    assert slack.calls("chat.update") == []
    [card, entry] = slack.messages(LEADS)
    assert entry["thread_ts"] == card["ts"] and "sent" in str(entry["blocks"]).lower()
    # A status that comes after the entry is posted still edits it.
    with services.session_factory() as session:
        assert session.get(Message, message.id).slack_ts == entry["ts"]
    apply_sms_status(services, SmsStatusReport(message_sid=message.provider_id, status="delivered"))
    poster.drain_once()
    assert [call["ts"] for call in slack.calls("chat.update")] == [entry["ts"]]
