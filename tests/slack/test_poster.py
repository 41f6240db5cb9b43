"""The poster carries the core's notices into Slack through the real WebClient and the local Slack stand-in."""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import timedelta

import pytest
from slack_sdk import WebClient
from slack_sdk.models.blocks import Block
from sqlalchemy import select

from bot.app import build_slack_poster
from bot.core.ports import OUTCOME_UNKNOWN, PermanentSendError, TransientSendError
from bot.core.rules import CallOutcome, LeadSignal
from bot.settings import Settings
from bot.slack.limits import RateLimiter, SlackLimits
from bot.slack.poster import QUEUE_PAGE_SIZE, SlackPoster, backoff
from bot.standins.slack_api import SlackApiStandin
from bot.store.audit import SYSTEM, Actor
from bot.store.models import CallTask, Lead, Message, OutboxEvent
from bot.store.outbox import Notice, publish
from bot.usecases.conversations import send_direct
from bot.usecases.delivery import SmsStatusReport, apply_sms_status
from bot.usecases.dispatch import Dispatcher
from bot.usecases.lead_actions import claim_call_task, log_call_outcome, receive_message
from bot.usecases.leads import LeadInput, add_lead
from tests.fakes import WEB_FORM_CONSENT

BOT_TOKEN = "xoxb-test"
ONCALL = "S0ONCALL"
ALICE = Actor.slack_user("U0ALICE")
BOB = Actor.slack_user("U0BOB")
HOSTILE = "<!channel> <@U0EVIL> <http://evil.example|bank.com>"


class FakeTime:
    """Monotonic seconds that pass only when slept or advanced, so rate limits cost no real time."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


class Workspace:
    """One test's view of the shared Slack stand-in: its own leads channel, and what was posted there."""

    def __init__(self, standin: SlackApiStandin, channel: str):
        self.standin = standin
        self.channel = channel

    def calls(self, method: str) -> list[dict]:
        return [c for c in self.standin.calls(method) if c.get("channel") == self.channel]

    def messages(self) -> list[dict]:
        return self.standin.messages(self.channel)

    def fail_next(self, *args, **kwargs) -> None:
        self.standin.fail_next(*args, **kwargs)


def assert_every_block_valid(slack: Workspace) -> None:
    """Every block the bot posted or updated is Block Kit that Slack accepts, at most 50 a message."""
    for method in ("chat.postMessage", "chat.update"):
        for call in slack.calls(method):
            blocks = call.get("blocks")
            assert blocks, f"{method} without blocks: {call}"
            assert len(blocks) <= 50
            parsed = Block.parse_all(blocks)
            assert all(block is not None for block in parsed), blocks
            for block in parsed:
                block.validate_json()


@pytest.fixture(scope="module")
def standin():
    with SlackApiStandin(BOT_TOKEN) as server:
        yield server


@pytest.fixture
def slack(standin):
    """A fresh leads channel per test (one stand-in serves the module, which keeps the tests fast)."""
    workspace = Workspace(standin, f"C0{uuid.uuid4().hex[:10].upper()}")
    yield workspace
    standin.clear_faults()
    assert_every_block_valid(workspace)


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


def make_poster(services, slack, fake_time, channel: str | None = None) -> SlackPoster:
    client = WebClient(token=BOT_TOKEN, base_url=slack.standin.url + "/api/", timeout=2)
    return SlackPoster(
        services,
        client,
        channel or slack.channel,
        ONCALL,
        limits=SlackLimits(clock=fake_time.clock, sleep=fake_time.sleep),
    )


@pytest.fixture
def poster(services, slack, fake_time) -> SlackPoster:
    return make_poster(services, slack, fake_time)


def new_lead(services, **fields) -> int:
    data = LeadInput.parse(
        {
            "name": "Dana Lee",
            "phone": "+13125550142",
            "email": "dana@example.com",
            "message": "Lower back pain, any openings this week?",
            **WEB_FORM_CONSENT,
            **fields,
        }
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


def lead_writes(services, lead_id: int, signal: LeadSignal, body: str, requested_time=None) -> None:
    with services.session_factory.begin() as session:
        receive_message(
            session,
            services,
            session.get(Lead, lead_id),
            channel="sms",
            body=body,
            signal=signal,
            now=services.clock.now(),
            requested_time=requested_time,
        )


def lead_row(services, lead_id: int) -> Lead:
    with services.session_factory() as session:
        return session.get(Lead, lead_id)


def the_task(services) -> CallTask:
    with services.session_factory() as session:
        return session.scalars(select(CallTask)).one()


def cards(slack: Workspace) -> list[dict]:
    return [m for m in slack.messages() if "thread_ts" not in m]


def replies(slack: Workspace, ts: str) -> list[dict]:
    return [m for m in slack.messages() if m.get("thread_ts") == ts]


def shown(message: dict) -> str:
    return json.dumps(message.get("blocks"), ensure_ascii=False) + message.get("text", "")


def pending(services) -> list[OutboxEvent]:
    with services.session_factory() as session:
        return list(
            session.scalars(select(OutboxEvent).where(OutboxEvent.delivered_at.is_(None)).order_by(OutboxEvent.id))
        )


# --- cards and threads --------------------------------------------------------------------------


def test_a_new_lead_gets_exactly_one_card_and_its_first_sms_in_the_thread(services, poster, slack, sms):
    lead_id = new_lead(services)
    Dispatcher(services).run_due()

    assert poster.drain_once() >= 3
    assert poster.drain_once() == 0

    lead = lead_row(services, lead_id)
    [card] = cards(slack)
    assert (lead.slack_channel, lead.slack_ts) == (slack.channel, card["ts"])
    assert "Dana Lee" in shown(card) and "Lower back pain" in shown(card)
    # Seven touches can reach a lead with a phone and an email (the SMS-only alternative is not counted).
    assert "Standard follow-up · touch 1 of 7" in shown(card) and "next: *Thank-you email* (Email) " in shown(card)
    assert "instant_sms" not in shown(card) and "(default)" not in shown(card)
    [entry] = replies(slack, card["ts"])
    assert sms.sent[0].body.split("\n")[0][:40] in shown(entry) and "SMS sent" in shown(entry)
    with services.session_factory() as session:
        assert session.scalars(select(Message.slack_ts)).one() == entry["ts"]
    assert all(
        call["unfurl_links"] is False and call["unfurl_media"] is False for call in slack.calls("chat.postMessage")
    )
    assert not pending(services)


def test_the_card_is_edited_in_place_when_the_stage_changes(services, poster, slack):
    lead_id = new_lead(services)
    Dispatcher(services).run_due()
    poster.drain_once()
    card_ts = lead_row(services, lead_id).slack_ts

    lead_writes(services, lead_id, LeadSignal.PLAIN, "Yes please, call me")
    poster.drain_once()

    [card] = cards(slack)
    assert card["ts"] == card_ts and "Engaged" in shown(card) and "Automation paused" in shown(card)
    assert {call["ts"] for call in slack.calls("chat.update")} == {card_ts}
    assert "lead_resume" in shown(card) and "lead_pause" not in shown(card)
    thread = [shown(m) for m in replies(slack, card_ts)]
    assert any("Yes please, call me" in t and "understood as" in t for t in thread)
    # The decision alerts the team: on-call is mentioned in the thread.
    assert any("a person takes over" in t and f"<!subteam^{ONCALL}>" in t for t in thread)


def test_a_delivery_status_edits_the_sms_entry_in_its_thread(services, poster, slack, sms):
    new_lead(services)
    Dispatcher(services).run_due()
    poster.drain_once()
    with services.session_factory() as session:
        message = session.scalars(select(Message)).one()

    apply_sms_status(services, SmsStatusReport(message_sid=message.provider_id, status="delivered"))
    poster.drain_once()

    [update] = [c for c in slack.calls("chat.update") if c["ts"] == message.slack_ts]
    assert "delivered" in json.dumps(update["blocks"])
    card = cards(slack)[0]
    assert len(replies(slack, card["ts"])) == 1


def test_a_thread_entry_for_a_lead_without_a_card_posts_the_card_first(services, poster, slack):
    lead_id = new_lead(services)
    with services.session_factory.begin() as session:  # as if Slack was not configured when it came in
        for event in session.scalars(select(OutboxEvent)):
            event.delivered_at = services.clock.now()
    Dispatcher(services).run_due()

    poster.drain_once()

    [card] = cards(slack)
    assert lead_row(services, lead_id).slack_ts == card["ts"]
    assert len(replies(slack, card["ts"])) == 1


def test_a_restart_does_not_repost_the_card(services, poster, slack, fake_time):
    lead_id = new_lead(services)
    Dispatcher(services).run_due()
    poster.drain_once()

    restarted = make_poster(services, slack, fake_time)
    lead_writes(services, lead_id, LeadSignal.PLAIN, "Sounds good")
    restarted.drain_once()

    assert len(cards(slack)) == 1
    assert slack.calls("chat.update")[-1]["ts"] == lead_row(services, lead_id).slack_ts


def test_lead_supplied_mentions_and_links_are_escaped_everywhere(services, poster, slack):
    lead_id = new_lead(services, name=f"Eve {HOSTILE}", message=f"hi {HOSTILE} & bye", source="web")
    Dispatcher(services).run_due()
    lead_writes(services, lead_id, LeadSignal.QUESTION, f"<!here> {HOSTILE}")

    poster.drain_once()

    calls = slack.calls("chat.postMessage") + slack.calls("chat.update")
    assert len(calls) >= 5
    for call in calls:
        everything = json.dumps(call["blocks"], ensure_ascii=False) + call["text"]
        for raw in ("<!channel>", "<!here>", "<@U0EVIL>", "<http://evil"):
            assert raw not in everything
    assert "&lt;!channel&gt;" in shown(cards(slack)[0])


def test_a_team_reply_appears_in_the_thread_with_its_author_and_status(services, poster, slack):
    lead_id = new_lead(services)
    poster.drain_once()

    send_direct(services, lead_id, body="Yes, 3pm works. See you then!", author=ALICE)
    poster.drain_once()

    card_ts = lead_row(services, lead_id).slack_ts
    [entry] = [m for m in replies(slack, card_ts) if "See you then" in shown(m)]
    assert "SMS from <@U0ALICE>" in shown(entry) and "queued" in shown(entry)
    with services.session_factory() as session:
        assert session.scalars(select(Message.slack_ts).where(Message.author == "U0ALICE")).one() == entry["ts"]


def test_a_touch_that_failed_for_good_shows_in_the_thread(services, poster, slack, sms):
    lead_id = new_lead(services)
    sms.failures.append(PermanentSendError("carrier refused", code="30007"))
    Dispatcher(services).run_due()

    poster.drain_once()

    thread = [shown(m) for m in replies(slack, lead_row(services, lead_id).slack_ts)]
    assert any("SMS not sent" in t and "carrier refused" in t and "First text" in t for t in thread)


def test_a_send_of_unknown_outcome_asks_a_person_and_pings_oncall(services, poster, slack, sms):
    lead_id = new_lead(services)
    sms.failures.append(TransientSendError("timed out after sending", code=OUTCOME_UNKNOWN))
    Dispatcher(services).run_due()

    poster.drain_once()

    thread = [m for m in replies(slack, lead_row(services, lead_id).slack_ts)]
    [alert] = [m for m in thread if "Needs a person" in shown(m)]
    assert f"<!subteam^{ONCALL}>" in alert["text"] and "the first text" in shown(alert)


def test_a_deleted_card_is_posted_again_when_the_lead_changes(services, poster, slack):
    lead_id = new_lead(services)
    poster.drain_once()
    with services.session_factory.begin() as session:
        session.get(Lead, lead_id).slack_ts = "1.000001"  # a card nobody can find any more

    Dispatcher(services).run_due()
    poster.drain_once()

    assert len(cards(slack)) == 2
    assert lead_row(services, lead_id).slack_ts == cards(slack)[-1]["ts"]
    assert not pending(services)


# --- call tasks ---------------------------------------------------------------------------------


def test_a_call_task_is_posted_once_in_the_channel_with_a_one_line_pointer_in_the_thread(services, poster, slack):
    lead_id = new_lead(services)
    lead_writes(services, lead_id, LeadSignal.QUESTION, "Do you take Blue Cross?")

    poster.drain_once()

    task = the_task(services)
    card_ts = lead_row(services, lead_id).slack_ts
    in_thread = [m for m in replies(slack, card_ts) if m["ts"] == task.slack_thread_ts]
    in_channel = [m for m in cards(slack) if m["ts"] == task.slack_channel_ts]
    assert in_thread and in_channel and task.slack_channel == slack.channel
    assert f"<!subteam^{ONCALL}>" in in_channel[0]["text"]
    channel_copy = shown(in_channel[0])
    assert "asked a question" in channel_copy and "Call script" in channel_copy and "task_claim" in channel_copy
    assert "tel:+13125550142" in channel_copy and "Do you take Blue Cross?" in channel_copy
    [pointer] = in_thread[0]["blocks"]
    assert pointer["type"] == "context" and "asked a question" in shown(in_thread[0])
    assert "Call script" not in shown(in_thread[0]) and ONCALL not in shown(in_thread[0])
    # The call is in the thread once: the pointer, not a second copy of the task.
    assert sum("Call task" in shown(m) or "Call script" in shown(m) for m in replies(slack, card_ts)) == 1


def test_an_owned_lead_s_call_task_mentions_the_owner(services, poster, slack):
    lead_id = new_lead(services)
    with services.session_factory.begin() as session:
        session.get(Lead, lead_id).owner = "U0ALICE"
    lead_writes(services, lead_id, LeadSignal.QUESTION, "How much is a visit?")

    poster.drain_once()

    task = the_task(services)
    [copy] = [m for m in cards(slack) if m["ts"] == task.slack_channel_ts]
    assert "<@U0ALICE>" in copy["text"] and ONCALL not in copy["text"]


def test_claim_and_outcome_update_both_copies_and_remove_buttons_that_no_longer_apply(services, poster, slack):
    lead_id = new_lead(services)
    lead_writes(services, lead_id, LeadSignal.QUESTION, "Do you take Blue Cross?")
    poster.drain_once()
    task = the_task(services)

    with services.session_factory.begin() as session:
        claim_call_task(session, task.id, now=services.clock.now(), actor=ALICE)
    poster.drain_once()

    [pointer] = [m for m in slack.messages() if m["ts"] == task.slack_thread_ts]
    [copy] = [m for m in slack.messages() if m["ts"] == task.slack_channel_ts]
    assert "Claimed by <@U0ALICE>" in shown(copy) and "claimed by <@U0ALICE>" in shown(pointer)
    assert "task_claim" not in shown(copy) and "task_log_outcome" in shown(copy)

    with services.session_factory.begin() as session:
        log_call_outcome(
            session,
            services,
            task.id,
            CallOutcome.LEFT_VOICEMAIL,
            now=services.clock.now(),
            actor=BOB,
            notes="left the script",
        )
    poster.drain_once()

    [pointer] = [m for m in slack.messages() if m["ts"] == task.slack_thread_ts]
    [copy] = [m for m in slack.messages() if m["ts"] == task.slack_channel_ts]
    assert "Left voicemail" in shown(copy) and "logged by <@U0BOB>" in shown(copy)
    assert "done: Left voicemail" in shown(pointer)
    for message in (copy, pointer):
        assert not [b for b in message["blocks"] if b["type"] == "actions"]
    thread = replies(slack, lead_row(services, lead_id).slack_ts)
    outcome = [m for m in thread if "Call outcome" in shown(m)]
    assert len(outcome) == 1 and "left the script" in shown(outcome[0])
    # One note for the click: the outcome entry says what follows; no separate decision note.
    assert "sequence continues" in shown(outcome[0])
    assert not [m for m in thread if m["ts"] > outcome[0]["ts"]]


# --- faults -------------------------------------------------------------------------------------


def test_a_429_with_retry_after_delays_but_loses_nothing_and_keeps_order(services, poster, slack, clock, fake_time):
    lead_id = new_lead(services)
    Dispatcher(services).run_due()
    slack.fail_next("chat.postMessage", 429, retry_after=7)

    assert poster.drain_once() == 0
    [first, *_] = pending(services)
    assert first.attempts == 1 and first.next_attempt_at >= clock.now() + timedelta(seconds=7)
    assert "rate limited" in first.last_error and first.retry_reason == "rate_limited"
    assert poster.drain_once() == 0  # not due yet, and the limiter holds the channel

    clock.advance(timedelta(seconds=8))
    fake_time.now += 8
    assert poster.drain_once() >= 3

    [card] = cards(slack)
    assert lead_row(services, lead_id).slack_ts == card["ts"]
    [entry] = replies(slack, card["ts"])
    assert float(entry["ts"]) > float(card["ts"])
    assert not pending(services)


def test_one_lead_s_failing_posts_do_not_block_another_lead(services, poster, slack):
    first = new_lead(services, phone="+13125550101", email="a@example.com", name="Ann")
    second = new_lead(services, phone="+13125550102", email="b@example.com", name="Ben")
    Dispatcher(services).run_due()
    slack.fail_next("chat.postMessage", 500)  # Ann's card

    poster.drain_once()

    # Ben's card went ahead of Ann's; once Slack answered again, Ann's was tried at once, not after a backoff.
    ann, ben = lead_row(services, first), lead_row(services, second)
    assert [card["ts"] for card in cards(slack)] == [ben.slack_ts, ann.slack_ts]
    assert len(replies(slack, ben.slack_ts)) == 1 and len(replies(slack, ann.slack_ts)) == 1
    with services.session_factory() as session:
        ann_card_event = session.scalars(
            select(OutboxEvent).where(OutboxEvent.lead_id == first).order_by(OutboxEvent.id)
        ).first()
    assert ann_card_event.attempts == 1 and "HTTP 500" in ann_card_event.last_error
    assert not pending(services)


def test_a_lead_waiting_out_a_retry_hides_no_other_lead_behind_its_own_queued_notices(services, poster, slack, clock):
    waiting = new_lead(services, phone="+13125550101", email="a@example.com", name="Ann")
    with services.session_factory.begin() as session:
        ann_card = session.scalars(select(OutboxEvent).where(OutboxEvent.lead_id == waiting)).first()
        ann_card.attempts, ann_card.next_attempt_at = 1, clock.now() + timedelta(hours=1)
        # More of Ann's notices than the poster reads in one look at the queue, all waiting behind her card.
        for _ in range(2 * QUEUE_PAGE_SIZE + 1):
            publish(session, Notice.LEAD_CHANGED, lead_id=waiting, at=clock.now())
    queued_for_ann = len(pending(services))
    other = new_lead(services, phone="+13125550102", email="b@example.com", name="Ben")

    poster.drain_once()

    assert [card["ts"] for card in cards(slack)] == [lead_row(services, other).slack_ts]
    assert lead_row(services, waiting).slack_ts is None
    assert len(pending(services)) == queued_for_ann  # Ann's, in her order, untouched until her card goes


def test_slack_unreachable_keeps_everything_queued_and_stops_the_drain_early(services, slack, fake_time, clock):
    leads = [new_lead(services, phone=f"+131255501{n:02d}", email=f"u{n}@example.com") for n in range(5)]
    Dispatcher(services).run_due()
    # No client-side retry of the refused connection: the poster's own backoff is under test.
    client = WebClient(token=BOT_TOKEN, base_url="http://127.0.0.1:9/api/", timeout=1, retry_handlers=[])
    offline = SlackPoster(
        services, client, slack.channel, ONCALL, limits=SlackLimits(clock=fake_time.clock, sleep=fake_time.sleep)
    )

    assert offline.drain_once() == 0

    tried = [e for e in pending(services) if e.attempts]
    assert len(tried) == 3 and all(e.attempts == 1 and "Connection" in e.last_error for e in tried)
    clock.advance(timedelta(minutes=10))
    make_poster(services, slack, fake_time).drain_once()
    assert all(lead_row(services, lead_id).slack_ts for lead_id in leads) and not pending(services)
    assert len(cards(slack)) == 5


@pytest.mark.parametrize(
    "lost_post, fault",
    [
        ("card", {"malformed": True}),  # Slack posted, and its answer was cut short
        ("card", {"delay": 1.5}),  # Slack posted, after the client had given up waiting
        ("thread entry", {"malformed": True}),
    ],
)
def test_a_post_whose_answer_was_lost_is_found_in_slack_not_posted_twice(
    services, slack, fake_time, clock, lost_post, fault
):
    timeout = 1 if "delay" in fault else 5  # a short wait only where the slow answer needs one
    client = WebClient(token=BOT_TOKEN, base_url=slack.standin.url + "/api/", timeout=timeout, retry_handlers=[])
    poster = SlackPoster(
        services, client, slack.channel, ONCALL, limits=SlackLimits(clock=fake_time.clock, sleep=fake_time.sleep)
    )
    lead_id = new_lead(services)
    if lost_post == "thread entry":
        poster.drain_once()
        lead_writes(services, lead_id, LeadSignal.PLAIN, "Sounds good")
    slack.fail_next("chat.postMessage", **fault)

    poster.drain_once()
    deadline = time.monotonic() + 5
    while len(slack.messages()) < (1 if lost_post == "card" else 2) and time.monotonic() < deadline:
        time.sleep(0.05)  # a slow answer: the post lands at Slack after the client stopped waiting
    clock.advance(timedelta(minutes=1))
    poster.drain_once()

    [card] = cards(slack)
    assert lead_row(services, lead_id).slack_ts == card["ts"]
    if lost_post == "thread entry":
        [entry] = [m for m in replies(slack, card["ts"]) if "Sounds good" in shown(m)]
        with services.session_factory() as session:
            reply = session.scalars(select(Message).where(Message.direction == "in")).one()
        assert reply.slack_ts == entry["ts"]
    assert len(slack.calls("conversations.history" if lost_post == "card" else "conversations.replies")) == 1
    assert not pending(services)


def test_the_poster_is_built_from_settings_only_when_slack_is_configured(services, business_file):
    configured = Settings(
        FOLLOWUP_BUSINESS=business_file,
        SLACK_BOT_TOKEN="xoxb-1",
        SLACK_LEADS_CHANNEL="C0LEADS",
        SLACK_ONCALL="S0ONCALL",
        SLACK_API_URL="http://127.0.0.1:1/api",
    )
    built = build_slack_poster(configured, services)
    assert built is not None and (built.channel, built.oncall) == ("C0LEADS", "S0ONCALL")
    assert built.client.base_url == "http://127.0.0.1:1/api/"
    unconfigured = Settings(FOLLOWUP_BUSINESS=business_file, SLACK_BOT_TOKEN=None, SLACK_LEADS_CHANNEL=None)
    assert build_slack_poster(unconfigured, services) is None


def test_a_permanent_error_is_recorded_once_and_never_retried(services, slack, fake_time):
    new_lead(services)
    Dispatcher(services).run_due()
    wrong_channel = make_poster(services, slack, fake_time)
    slack.fail_next("chat.postMessage", body={"ok": False, "error": "channel_not_found"}, times=50)

    handled = wrong_channel.drain_once()

    assert handled >= 3 and not pending(services)
    with services.session_factory() as session:
        errors = [e.last_error for e in session.scalars(select(OutboxEvent))]
    assert any(e and "channel_not_found" in e for e in errors)
    assert wrong_channel.drain_once() == 0


@pytest.mark.parametrize(
    "attempts, retry_after, low, high", [(1, None, 1.6, 2.4), (3, None, 6.4, 9.6), (30, None, 48, 72), (1, 30, 30, 30)]
)
def test_backoff_grows_with_jitter_and_honours_retry_after(attempts, retry_after, low, high):
    assert low <= backoff(attempts, retry_after).total_seconds() <= high


def test_two_posters_on_postgresql_post_each_card_once(services, slack, fake_time, database_url):
    if not database_url.startswith("postgresql"):
        pytest.skip("several posters share one database only on PostgreSQL")
    for n in range(8):
        new_lead(services, phone=f"+1312555{n:04d}", email=f"p{n}@example.com", name=f"Lead {n}")
    Dispatcher(services).run_due()
    posters = [make_poster(services, slack, fake_time) for _ in range(2)]
    threads = [threading.Thread(target=p.drain_once, kwargs={"limit": 1000}) for p in posters]

    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    while posters[0].drain_once():
        pass

    assert len(cards(slack)) == 8
    for card in cards(slack):
        assert len(replies(slack, card["ts"])) == 1
    assert not pending(services)


# --- the rate limiter ---------------------------------------------------------------------------


def test_the_limiter_allows_a_burst_then_one_a_second_per_channel(fake_time):
    limiter = RateLimiter(1.0, 3, clock=fake_time.clock, sleep=fake_time.sleep)

    for _ in range(3):
        limiter.acquire("C1")
    assert fake_time.slept == []
    limiter.acquire("C1")
    limiter.acquire("C2")
    assert fake_time.slept == [pytest.approx(1.0)]
    limiter.acquire("C1")
    assert fake_time.slept[-1] == pytest.approx(1.0)


def test_the_limiter_waits_out_a_hold_and_declines_to_wait_too_long(fake_time):
    limiter = RateLimiter(1.0, 3, clock=fake_time.clock, sleep=fake_time.sleep)
    limiter.hold("C1", 30)

    assert limiter.acquire("C1", max_wait=2) is False
    assert limiter.wait_time("C1") == pytest.approx(30)
    assert limiter.acquire("C1") is True and fake_time.slept == [pytest.approx(30)]


def test_the_limiter_serves_threads_in_turn_at_its_rate():
    times: list[float] = []
    lock = threading.Lock()
    clock = [0.0]

    def sleep(seconds: float) -> None:
        with lock:
            times.append(seconds)

    limiter = RateLimiter(2.0, 1, clock=lambda: clock[0], sleep=sleep)
    threads = [threading.Thread(target=limiter.acquire, args=("C1",)) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(times) == pytest.approx([0.5, 1.0, 1.5, 2.0])


def test_a_lost_answer_that_cannot_be_looked_up_is_posted_again_rather_than_dropped(services, poster, slack, clock):
    lead_id = new_lead(services)
    slack.fail_next("chat.postMessage", status=502, malformed=True)  # a proxy's page: maybe posted, maybe not
    poster.drain_once()
    assert [event.retry_reason for event in pending(services)][:1] == ["maybe_posted"]
    slack.fail_next("conversations.history", body={"ok": False, "error": "missing_scope"})

    clock.advance(timedelta(minutes=1))
    poster.drain_once()

    [card] = cards(slack)
    assert lead_row(services, lead_id).slack_ts == card["ts"] and not pending(services)


# --- erasure ---------------------------------------------------------------------------------------


def test_forget_edits_the_card_every_thread_entry_and_the_call_task_copy_to_say_the_data_was_erased(
    services, poster, slack, monkeypatch, capsys
):
    from bot.cli import build_parser

    lead_id = new_lead(services)
    Dispatcher(services).run_due()
    lead_writes(services, lead_id, LeadSignal.ASKS_TIME, "Could I come in Friday? My neck is worse")
    while poster.drain_once():
        pass
    posted = slack.messages()
    assert len(posted) >= 4 and any("Dana" in shown(m) for m in posted)
    assert any("neck is worse" in shown(m) for m in posted)
    task = the_task(services)
    assert task.slack_channel_ts and task.slack_thread_ts

    monkeypatch.setenv("DATABASE_URL", services.session_factory.kw["bind"].url.render_as_string(hide_password=False))
    monkeypatch.setenv("FOLLOWUP_BUSINESS", str(services.business.path))
    args = build_parser().parse_args(["forget", str(lead_id), "--yes"])
    assert args.func(args) == 0
    assert "edited to say the data was erased" in capsys.readouterr().out
    while poster.drain_once():
        pass

    after = slack.messages()
    assert [m["ts"] for m in after] == [m["ts"] for m in posted]  # edited in place, nothing new posted
    for message in after:
        assert f"Lead #{lead_id}: this lead's details and messages were erased on request." in shown(message)
        for personal in ("Dana", "Lee", "dana@example.com", "555-0142", "5550142", "neck is worse", "Lower back"):
            assert personal not in shown(message), (personal, message)
    edited = {call["ts"] for call in slack.calls("chat.update")}
    assert {lead_row(services, lead_id).slack_ts, task.slack_channel_ts, task.slack_thread_ts} <= edited
    assert not pending(services)
