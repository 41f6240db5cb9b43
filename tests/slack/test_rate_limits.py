"""The poster keeps Slack's rate limits itself (about one post a second per channel, small bursts),
so Slack never has to answer 429, and a busy channel holds up neither other channels nor card updates.

Time is fake: the limiter's clock moves only when the poster sleeps, and the Slack stand-in
notes that clock as each call arrives, so the tests measure the rate without waiting for it.
"""

from __future__ import annotations

import uuid

import pytest
from slack_sdk import WebClient
from slack_sdk.models.blocks import Block

from bot.slack.limits import POST_BURST, POST_RATE, SlackLimits
from bot.slack.poster import SlackPoster
from bot.standins.server import RecordedRequest, Reply
from bot.standins.slack_api import SlackApiStandin
from bot.store.audit import SYSTEM
from bot.store.models import Lead
from bot.store.outbox import Notice, publish
from bot.usecases.leads import LeadInput, add_lead
from tests.fakes import WEB_FORM_CONSENT
from tests.support.fake_time import FakeTime

BOT_TOKEN = "xoxb-limits"


class TimedSlack(SlackApiStandin):
    """The Slack stand-in, noting the fake time at which each chat call arrives."""

    def __init__(self, time: FakeTime) -> None:
        super().__init__(BOT_TOKEN)
        self.time = time
        #: (fake seconds, method, channel) of every chat call, in arrival order.
        self.arrivals: list[tuple[float, str, str]] = []

    def handle(self, route: str, params: dict[str, str], request: RecordedRequest) -> Reply:
        if route.startswith("chat."):
            self.arrivals.append((self.time.now, route, str((request.data or {}).get("channel"))))
        return super().handle(route, params, request)

    def post_times(self, channel: str) -> list[float]:
        return [at for at, method, to in self.arrivals if method == "chat.postMessage" and to == channel]


@pytest.fixture
def time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def slack(time: FakeTime):
    with TimedSlack(time) as standin:
        yield standin
    assert not [r for r in standin.requests if r.status == 429], "Slack had to answer 429"
    for call in standin.calls("chat.postMessage") + standin.calls("chat.update"):
        for block in Block.parse_all(call["blocks"]):
            block.validate_json()


def poster_for(services, slack: TimedSlack, time: FakeTime, channel: str) -> SlackPoster:
    client = WebClient(token=BOT_TOKEN, base_url=slack.url + "/api/", timeout=2)
    return SlackPoster(services, client, channel, limits=SlackLimits(clock=time.clock, sleep=time.sleep))


def new_channel() -> str:
    return f"C0{uuid.uuid4().hex[:10].upper()}"


def lead_with_card(services, slack: TimedSlack, time: FakeTime, channel: str, phone: str) -> int:
    """A lead whose card is already in `channel` (its own poster put it there, at a fresh time)."""
    data = LeadInput.parse(
        {"name": f"Lead {phone[-2:]}", "phone": phone, "message": "Any openings?", **WEB_FORM_CONSENT}
    )
    with services.session_factory.begin() as session:
        lead_id = add_lead(
            session,
            data,
            business=services.business,
            sequence=services.playbooks.get(),
            now=services.clock.now(),
            actor=SYSTEM,
        ).lead_id
    poster_for(services, slack, FakeTime(), channel).drain_once()
    with services.session_factory() as session:
        assert session.get(Lead, lead_id).slack_channel == channel
    slack.arrivals.clear()
    return lead_id


def queue_notes(services, lead_id: int, count: int, label: str) -> None:
    with services.session_factory.begin() as session:
        for n in range(count):
            publish(session, Notice.DECISION, lead_id=lead_id, at=services.clock.now(), text=f"{label} {n}")


def test_posting_many_messages_to_one_channel_keeps_to_one_a_second_after_a_burst(services, slack, time):
    channel = new_channel()
    lead_id = lead_with_card(services, slack, time, channel, "+13125550101")
    queue_notes(services, lead_id, 12, "note")
    poster = poster_for(services, slack, time, channel)

    while poster.drain_once():
        pass

    times = slack.post_times(channel)
    assert len(times) == 12 and poster.pending() == 0
    # In any stretch of time, no more posts than the burst plus one a second.
    for first in range(len(times)):
        for last in range(first, len(times)):
            assert last - first + 1 <= POST_BURST + (times[last] - times[first]) * POST_RATE + 1e-6
    assert times[:POST_BURST] == [0.0] * POST_BURST
    assert times[-1] == pytest.approx((12 - POST_BURST) / POST_RATE)


def test_a_busy_channel_holds_up_neither_another_channel_nor_card_updates(services, slack, time):
    busy, quiet = new_channel(), new_channel()
    chatty = lead_with_card(services, slack, time, busy, "+13125550101")
    other = lead_with_card(services, slack, time, quiet, "+13125550102")
    queue_notes(services, chatty, 10, "busy")
    queue_notes(services, other, 3, "quiet")  # queued after every busy-channel note
    with services.session_factory.begin() as session:
        publish(session, Notice.LEAD_CHANGED, lead_id=other, at=services.clock.now())
    poster = poster_for(services, slack, time, busy)

    while poster.drain_once():
        pass

    assert len(slack.post_times(busy)) == 10 and slack.post_times(busy)[-1] == pytest.approx(10 - POST_BURST)
    # The other channel's notes and card update went out before the busy channel's backlog cleared.
    assert slack.post_times(quiet) == [0.0, 0.0, 0.0]
    [update] = [at for at, method, _ in slack.arrivals if method == "chat.update"]
    assert update == 0.0
    thread = [m["text"] for m in slack.messages(quiet) if m.get("thread_ts")]
    assert [t.split(" ")[-2:] for t in thread] == [["quiet", "0"], ["quiet", "1"], ["quiet", "2"]]
    assert poster.pending() == 0


def test_a_drain_leaves_a_long_wait_for_the_next_tick_instead_of_sleeping_through_it(services, slack, time):
    channel = new_channel()
    lead_id = lead_with_card(services, slack, time, channel, "+13125550101")
    queue_notes(services, lead_id, 3, "note")
    poster = poster_for(services, slack, time, channel)
    poster.limits.posts.hold(channel, 30)  # Slack said Retry-After: 30

    assert poster.drain_once() == 0

    assert time.now == 0.0 and slack.post_times(channel) == [] and poster.pending() == 3
    time.now = 30.0
    assert poster.drain_once() == 3


def test_an_event_of_several_updates_finishes_when_the_update_limit_refills_one_token_at_a_time(services, slack, time):
    """A call task shown in the channel and in the thread is two edits: both go, once each, even
    when each try of the event finds only one token free (the sandbox's poster once stalled so)."""
    from bot.slack.limits import UPDATE_BURST
    from bot.store.audit import SYSTEM as system
    from bot.usecases.call_tasks import open_call_task

    channel = new_channel()
    lead_id = lead_with_card(services, slack, time, channel, "+13125550101")
    with services.session_factory.begin() as session:
        task_id = open_call_task(
            session,
            services,
            session.get(Lead, lead_id),
            reason="asked for a call",
            now=services.clock.now(),
            actor=system,
        ).id
    poster = poster_for(services, slack, time, channel)
    while poster.drain_once():
        pass
    for _ in range(UPDATE_BURST):  # the workspace's edits are used up for now
        assert poster.limits.updates.try_acquire("chat.update") == 0.0
    slack.arrivals.clear()
    with services.session_factory.begin() as session:
        publish(session, Notice.CALL_TASK_CHANGED, lead_id=lead_id, at=services.clock.now(), call_task_id=task_id)

    for _ in range(5):
        if not poster.pending():
            break
        poster.drain_once()

    assert poster.pending() == 0
    assert [method for _, method, _ in slack.arrivals] == ["chat.update", "chat.update"]
