"""A ten-minute Slack outage loses no card, thread message or call task, and doubles none.

The whole bot runs on one fake clock: the core's clock, the poster's rate limiter and its sleeps.
Each tick does what `followup run`'s scheduler does every few seconds (dispatch due touches,
drain the Slack outbox), so ten minutes of outage take a few real seconds. Slack is the local
stand-in, answering every request with a mix of outage faults until it comes back.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from pathlib import Path
from textwrap import dedent

import pytest
from slack_sdk import WebClient
from slack_sdk.models.blocks import Block
from sqlalchemy import select

from bot import SHIPPED_TEMPLATES
from bot.app import build_services
from bot.core.clock import ManualClock
from bot.core.rules import LeadSignal
from bot.settings import Settings
from bot.slack.limits import SlackLimits
from bot.slack.poster import MAX_BACKOFF_SECONDS, SlackPoster
from bot.standins.server import Fault
from bot.standins.slack_api import SlackApiStandin
from bot.store.audit import SYSTEM
from bot.store.models import CallTask, Lead, Message, OutboxEvent
from bot.store.outbox import Notice, publish
from bot.usecases.conversations import InboundMessage, take_inbound
from bot.usecases.delivery import SmsStatusReport, apply_sms_status
from bot.usecases.dispatch import Dispatcher
from bot.usecases.leads import LeadInput, add_lead
from tests.fakes import WEB_FORM_CONSENT
from tests.support.content import always_open_business

BOT_TOKEN = "xoxb-outage"
LEADS = "C0LEADS"
ONCALL = "S0ONCALL"
#: How Slack misbehaves while it is down: each leaves the work undone, as a Slack that is down does.
OUTAGE = (
    Fault(status=503),
    Fault(status=429, retry_after=30),
    Fault(status=502, malformed=True),  # a proxy's error page, not JSON
    Fault(status=504, delay=0.4),  # slower than the client's timeout during the outage
    Fault(drop=True),  # the connection closes without an answer
)
#: How often `followup run` drains the outbox, in (fake) seconds.
TICK = timedelta(seconds=5)
#: The poster's longest wait between two attempts: its cap plus 20 % jitter.
LONGEST_BACKOFF = timedelta(seconds=MAX_BACKOFF_SECONDS * 1.2)
#: The client's timeout in real seconds: short while Slack is down (so a slow answer costs little
#: real time), ample otherwise (so a busy test machine never looks like a slow Slack).
OUTAGE_TIMEOUT, NORMAL_TIMEOUT = 0.2, 5


@pytest.fixture
def services(engine, clock, sms, email, tmp_path: Path):
    """The bot with a playbook compressed into minutes: a text, an email, a call, another text."""
    sequences = tmp_path / "sequences"
    sequences.mkdir()
    (sequences / "minutes.yml").write_text(
        dedent("""\
        name: minutes
        description: Four touches over eight minutes (outage tests).
        steps:
          - {id: first_sms, after: 0s, channel: sms, template: default/instant_sms}
          - id: first_email
            after: 2m
            channel: email
            template: default/confirmation
            subjects: ["Thanks for reaching out, {{ lead.first_name }}"]
          - {id: first_call, after: 4m, channel: call_task, template: default/first_call}
          - {id: second_sms, after: 8m, channel: sms, template: default/checkin_sms, when: [no_reply_yet]}
        """)
    )
    business = always_open_business(tmp_path, sequence="minutes")
    settings = Settings(
        DATABASE_URL=str(engine.url),
        FOLLOWUP_BUSINESS=business,
        FOLLOWUP_SEQUENCES_DIR=sequences,
        FOLLOWUP_TEMPLATES_DIR=SHIPPED_TEMPLATES,
        PUBLIC_BASE_URL="https://followup.example.com",
    )
    return build_services(settings, engine=engine, clock=clock, sms=sms, email=email, migrate=False)


@pytest.fixture
def slack():
    with SlackApiStandin(BOT_TOKEN) as standin:
        yield standin


class Bot:
    """followup as its scheduler runs it, on the fake clock: every tick dispatches and drains."""

    def __init__(self, services, slack: SlackApiStandin, clock: ManualClock):
        self.services = services
        self.slack = slack
        self.clock = clock
        # The client's own retries are off: what the poster does about failures is under test.
        self.client = WebClient(
            token=BOT_TOKEN, base_url=slack.url + "/api/", timeout=NORMAL_TIMEOUT, retry_handlers=[]
        )
        limits = SlackLimits(
            clock=lambda: clock.now().timestamp(), sleep=lambda seconds: clock.advance(timedelta(seconds=seconds))
        )
        self.poster = SlackPoster(services, self.client, LEADS, ONCALL, limits=limits)

    def slack_goes_down(self) -> None:
        self.slack.go_down(*OUTAGE)
        self.client.timeout = OUTAGE_TIMEOUT

    def slack_comes_back(self) -> None:
        self.slack.come_back()
        self.client.timeout = NORMAL_TIMEOUT

    def run_for(self, span: timedelta) -> None:
        end = self.clock.now() + span
        while self.clock.now() < end:
            Dispatcher(self.services).run_due()
            self.poster.drain_once()
            self.clock.advance(TICK)

    def new_lead(self, name: str, phone: str) -> int:
        data = LeadInput.parse(
            {
                "name": name,
                "phone": phone,
                "email": f"{name.split()[0].lower()}@example.com",
                "message": "Lower back pain, any openings this week?",
                **WEB_FORM_CONSENT,
            }
        )
        with self.services.session_factory.begin() as session:
            return add_lead(
                session,
                data,
                business=self.services.business,
                sequence=self.services.playbooks.get(),
                now=self.clock.now(),
                actor=SYSTEM,
            ).lead_id

    def lead_texts(self, phone: str, body: str, signal: LeadSignal) -> None:
        take_inbound(
            self.services,
            InboundMessage(
                channel="sms",
                sender=phone,
                body=body,
                signal=signal,
                provider_id=f"SM{abs(hash((phone, body))):032x}"[:34],
            ),
        )

    def first_text_delivered(self, lead_id: int) -> None:
        with self.services.session_factory() as session:
            sid = session.scalars(
                select(Message.provider_id)
                .where(Message.lead_id == lead_id, Message.direction == "out")
                .order_by(Message.id)
            ).first()
        apply_sms_status(self.services, SmsStatusReport(message_sid=sid, status="delivered"))

    def lead(self, lead_id: int) -> Lead:
        with self.services.session_factory() as session:
            return session.get(Lead, lead_id)

    def tasks(self, lead_id: int) -> list[CallTask]:
        with self.services.session_factory() as session:
            return list(session.scalars(select(CallTask).where(CallTask.lead_id == lead_id)))

    def pending(self) -> int:
        return self.poster.pending()


def shown(message: dict) -> str:
    return message.get("text", "") + json.dumps(message.get("blocks"), ensure_ascii=False)


#: The start of each kind of thread entry, as far as a story needs to tell them apart.
STORY_PREFIXES = (
    "SMS sent: Hi Ann, checking in",
    "SMS sent: Hi Ann",
    "SMS sent: Hi Ben",
    "SMS sent: Hi Cat",
    "Email sent:",
)


def story(slack: SlackApiStandin, lead: Lead) -> list[str]:
    """A lead's thread replies in the order Slack shows them, touches cut to their first words."""
    lines = [m["text"] for m in slack.thread(LEADS, lead.slack_ts) if m["ts"] != lead.slack_ts]
    return [next((p for p in STORY_PREFIXES if line.startswith(p)), line) for line in lines]


def assert_valid_blocks(slack: SlackApiStandin) -> None:
    for message in slack.messages(LEADS):
        parsed = Block.parse_all(message["blocks"])
        assert all(block is not None for block in parsed) and len(parsed) <= 50
        for block in parsed:
            block.validate_json()


def test_a_ten_minute_slack_outage_loses_and_doubles_nothing(services, slack, clock, caplog):
    caplog.set_level(logging.INFO, logger="bot.slack.poster")
    bot = Bot(services, slack, clock)
    ann = bot.new_lead("Ann Avery", "+13125550101")
    bot.run_for(timedelta(seconds=30))
    assert len(slack.messages(LEADS)) == 2  # Ann's card and her first text
    posted_before = len(slack.requests_for("chat.postMessage"))

    bot.slack_goes_down()
    bot.run_for(timedelta(minutes=1))
    ben = bot.new_lead("Ben Brooks", "+13125550102")
    cat = bot.new_lead("Cat Chen", "+13125550103")
    bot.run_for(timedelta(seconds=30))
    bot.first_text_delivered(ann)
    bot.run_for(timedelta(minutes=3))  # Ann's email goes out, then her call falls due
    bot.lead_texts("+13125550102", "Yes please, can someone call me?", LeadSignal.QUESTION)
    bot.run_for(timedelta(minutes=2))
    bot.lead_texts("+13125550103", "STOP", LeadSignal.OPT_OUT)
    bot.run_for(timedelta(minutes=3, seconds=30))

    # Ten minutes down: every attempt failed, nothing was given up on, and the outage is reported.
    assert len(slack.messages(LEADS)) == 2
    assert len(slack.requests_for("chat.postMessage")) > posted_before
    assert bot.pending() >= 12
    assert any(r.levelno == logging.ERROR and "Slack has been unavailable" in r.getMessage() for r in caplog.records)
    assert [t.status for t in bot.tasks(ann)] == ["open"] and not bot.tasks(ann)[0].slack_thread_ts

    bot.slack_comes_back()
    slack.fail_next("chat.postMessage", malformed=True)  # back, but its first answer is cut short after posting
    # Every queued notice waits out at most the longest jittered backoff before it tries again.
    bot.run_for(LONGEST_BACKOFF + 2 * TICK)

    assert bot.pending() == 0
    assert any("Slack answers again" in r.getMessage() for r in caplog.records)
    # Posts whose answers were lost were looked for before being posted again.
    assert slack.requests_for("conversations.history") + slack.requests_for("conversations.replies")
    # One card per lead, and one channel copy of Ann's call; nothing else at the top level.
    leads = {lead_id: bot.lead(lead_id) for lead_id in (ann, ben, cat)}
    top_level = [m for m in slack.messages(LEADS) if "thread_ts" not in m]
    tasks = [task for lead_id in leads for task in bot.tasks(lead_id)]
    assert sorted(m["ts"] for m in top_level) == sorted(
        [lead.slack_ts for lead in leads.values()] + [t.slack_channel_ts for t in tasks if t.slack_channel_ts]
    )
    # Each thread tells the lead's story once, in the order it happened, calls included.
    assert story(slack, leads[ann]) == [
        "SMS sent: Hi Ann",
        "Email sent:",
        "Call task in the channel: Same-day call: scheduled follow-up call (open)",
        "SMS sent: Hi Ann, checking in",
    ]
    assert story(slack, leads[ben]) == [
        "SMS sent: Hi Ben",
        "Email sent:",
        "Reply by SMS: Yes please, can someone call me?",
        "Call task in the channel: asked a question (open)",
    ]
    assert story(slack, leads[cat]) == [
        "SMS sent: Hi Cat",
        "Email sent:",
        "Call Cat Chen: Same-day call: scheduled follow-up call (cancelled)",
        "Reply by SMS: STOP",
        "Call task closed (Same-day call: scheduled follow-up call): opted out",
        "opted out",
    ]
    for task in tasks:
        assert task.slack_thread_ts in [m["ts"] for m in slack.thread(LEADS, leads[task.lead_id].slack_ts)]
    # Ann's first text shows it was delivered.
    [first_text] = [m for m in slack.messages(LEADS) if m["text"].startswith("SMS sent: Hi Ann, it's")]
    assert "delivered" in shown(first_text)
    # Each card shows the lead as it is now: refreshing it again changes nothing.
    cards_now = {
        lead_id: shown(next(m for m in top_level if m["ts"] == lead.slack_ts)) for lead_id, lead in leads.items()
    }
    assert "Opted out" in cards_now[cat]
    with services.session_factory.begin() as session:
        for lead_id in leads:
            publish(session, Notice.LEAD_CHANGED, lead_id=lead_id, at=clock.now())
    bot.run_for(TICK)
    assert {
        lead_id: shown(next(m for m in slack.messages(LEADS) if m["ts"] == lead.slack_ts))
        for lead_id, lead in leads.items()
    } == cards_now
    assert not [
        r
        for r in caplog.records
        if "refused for good" in r.getMessage() or "could not be carried out" in r.getMessage()
    ]
    with services.session_factory() as session:
        assert session.scalars(select(OutboxEvent).where(OutboxEvent.delivered_at.is_(None))).all() == []
    assert_valid_blocks(slack)
