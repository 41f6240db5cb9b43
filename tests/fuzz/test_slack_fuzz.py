"""Hostile but correctly signed Slack requests at the real listeners: 4xx at worst, never a 5xx, never a lost lead.

Every action_id, modal callback_id and slash command is taken from the code (ActionId,
ModalCallback) and the app manifest, so the fuzz cannot drift away from what the bot listens
for: Bolt answers 404 to anything no listener takes, and every request here must be taken.
Requests are signed as Slack signs them, with the bot's signing secret; without one, the route
refuses everything.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import random
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import yaml
from slack_sdk.signature import SignatureVerifier
from sqlalchemy import func, select
from starlette.applications import Starlette
from starlette.testclient import TestClient

from bot.settings import Settings
from bot.slack.blocks import ActionId, ModalCallback
from bot.slack.command_text import LeadVerb
from bot.slack.modals import ModalOrigin
from bot.slack_app import SlackNotConfigured, build_slack_app, slack_route
from bot.store.audit import SYSTEM
from bot.store.models import AuditEntry, Lead, Message
from bot.usecases.call_tasks import open_call_task
from bot.usecases.leads import LeadInput, add_lead
from tests.fuzz.conftest import PUBLIC, SLACK_SECRET, SLACK_TOKEN, TEAM

_SEED_SETTING = os.environ.get("FOLLOWUP_FUZZ_SEED") or "20261201"
SEED = random.randrange(10**6) if _SEED_SETTING == "random" else int(_SEED_SETTING)
ROUNDS = int(os.environ.get("FOLLOWUP_FUZZ_ROUNDS") or 60)
ROOT = Path(__file__).resolve().parents[2]
LEADS = "C0LEADS"
CARD_TS = "1764082800.000100"

HOSTILE = [
    "{{ 7*7 }}",
    "{{ 9**9**9**9 }}",
    "{% for x in range(99999999) %}x{% endfor %}",
    "%",
    "_",
    "%%",
    "\\",
    "'; DROP TABLE leads; --",
    "<!channel>",
    "<@U0ADMIN>",
    "<https://evil.example|bank.com>",
    "\x00",
    "a\x00b",
    "\u202eevil",
    "😀" * 300,
    "A" * 5000,
    "",
    " ",
    "\r\n\r\nX-Injected: 1",
    "-1",
    "0",
    "999999999999999999999",
    "1e308",
    "null",
    "#1",
    "tomorrow 3pm",
    "+44 20 7946 0958",
    "+1 312 555 0142",
    "dana@example.com",
    "!reply",
]
WRONG_TYPES: list[Any] = [None, True, 0, -1, 10**40, [], {}, ["a"], {"$ne": None}]
PEOPLE = [*TEAM, "U0GUEST", "U0PARTNER", "U0NOBODY"]


def manifest_commands() -> list[str]:
    commands: set[str] = set()
    for manifest in sorted(ROOT.glob("app_manifest*.yml")):
        document = yaml.safe_load(manifest.read_text())
        commands |= {entry["command"] for entry in document["features"]["slash_commands"]}
    return sorted(commands)


def signed(body: str, content_type: str, secret: str = SLACK_SECRET, **headers: str) -> dict[str, str]:
    stamp = str(int(time.time()))
    if secret:
        signature = SignatureVerifier(secret).generate_signature(timestamp=stamp, body=body)
    else:  # what anyone can compute for an app whose secret is empty
        digest = hmac.new(b"", f"v0:{stamp}:{body}".encode(), hashlib.sha256).hexdigest()
        signature = f"v0={digest}"
    return {"Content-Type": content_type, "X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": signature, **headers}


class SlackFuzzer:
    """Builds payloads as Slack shapes them, with real ids in the right places and chaos in the values."""

    def __init__(self, bot, chaos: random.Random):
        self.bot = bot
        self.chaos = chaos
        self.n = 0
        self.lead_id, self.task_id, self.email_id = self._seed_store()

    def _seed_store(self) -> tuple[int, int, int]:
        services = self.bot.services
        data = LeadInput.parse({"name": "Dana Lee", "phone": "+13125550142", "email": "dana@example.com"})
        with services.session_factory.begin() as session:
            result = add_lead(
                session,
                data,
                business=services.business,
                sequence=services.playbooks.get(),
                now=services.clock.now(),
                actor=SYSTEM,
            )
            lead = session.get(Lead, result.lead_id)
            lead.slack_channel, lead.slack_ts = LEADS, CARD_TS
            task = open_call_task(
                session, services, lead, reason="asked a question", now=services.clock.now(), actor=SYSTEM
            )
            email = Message(
                lead_id=lead.id,
                direction="in",
                channel="email",
                subject="Hi",
                body="Any openings?",
                status="received",
                created_at=services.clock.now(),
                details={},
            )
            session.add(email)
            session.flush()
            return lead.id, task.id, email.id

    def text(self) -> Any:
        return self.chaos.choice(HOSTILE) if self.chaos.random() < 0.8 else self.chaos.choice(WRONG_TYPES)

    def some_id(self) -> str:
        return self.chaos.choice(
            [str(self.lead_id), str(self.task_id), str(self.email_id), "999999", str(self.chaos.choice(HOSTILE))[:2000]]
        )

    def user(self) -> dict[str, Any]:
        user_id = self.chaos.choice(PEOPLE)
        return {"id": user_id, "username": user_id.lower(), "team_id": self.chaos.choice(["T0SANDBOX"] * 4 + ["T0X"])}

    def _next(self) -> int:
        self.n += 1
        return self.n

    def command(self, command: str) -> str:
        verb = self.chaos.choice(["help", "new", "list", "stats", "book", *[v.value for v in LeadVerb], "nope"])
        argument = str(self.chaos.choice(HOSTILE))[:2000]
        return urlencode(
            {
                "token": "legacy",
                "team_id": "T0SANDBOX",
                "channel_id": self.chaos.choice([LEADS, "C0ELSE", "D0X"]),
                "user_id": self.chaos.choice(PEOPLE),
                "command": command,
                "text": f"{verb} {argument}",
                "response_url": "http://127.0.0.1:9/nowhere",
                "trigger_id": f"t-{self._next()}",
                "api_app_id": "A0SANDBOX",
            }
        )

    def click(self, action_id: str) -> str:
        n = self._next()
        thread = self.chaos.choice([None, CARD_TS])
        container: dict[str, Any] = {"type": "message", "message_ts": CARD_TS, "channel_id": LEADS}
        if thread:
            container["thread_ts"] = thread
        payload = {
            "type": "block_actions",
            "team": {"id": "T0SANDBOX"},
            "user": self.user(),
            "api_app_id": "A0SANDBOX",
            "container": container,
            "channel": {"id": LEADS},
            "trigger_id": f"t-{n}",
            "message": {"type": "message", "ts": CARD_TS, "text": "card"},
            "actions": [
                {
                    "action_id": action_id,
                    "block_id": "b",
                    "type": "button",
                    "value": self.some_id(),
                    "action_ts": f"{time.time():.6f}",
                }
            ],
        }
        return urlencode({"payload": json.dumps(payload)})

    def submission(self, callback: str) -> str:
        origin = self.chaos.choice(
            [
                ModalOrigin(lead_id=self.lead_id, channel=LEADS, thread_ts=CARD_TS).to_metadata(),
                ModalOrigin(task_id=self.task_id, channel=LEADS).to_metadata(),
                str(self.chaos.choice(HOSTILE))[:3000],
            ]
        )
        element = self.chaos.choice(
            [
                lambda: {"type": "plain_text_input", "value": self.text()},
                lambda: {
                    "type": "radio_buttons",
                    "selected_option": {
                        "value": self.chaos.choice(
                            ["sms", "email", "booked", "call_back", "not_interested", "no_answer", self.text()]
                        )
                    },
                },
                lambda: {
                    "type": "datetimepicker",
                    "selected_date_time": self.chaos.choice([int(time.time()) + 86400, 0, -1, 10**12, "soon", None]),
                },
            ]
        )
        blocks = ["outcome", "when", "notes", "channel", "subject", "body"]
        values = {block: {block: element()} for block in blocks if self.chaos.random() < 0.8}
        if self.chaos.random() < 0.4:  # a form a person filled in well, with hostile words in it
            values = {
                "outcome": {"outcome": {"type": "radio_buttons", "selected_option": {"value": "no_answer"}}},
                "channel": {"channel": {"type": "radio_buttons", "selected_option": {"value": "sms"}}},
                "when": {"when": {"type": "datetimepicker", "selected_date_time": int(time.time()) + 86400}},
                "body": {"body": {"type": "plain_text_input", "value": str(self.chaos.choice(HOSTILE)) + "!"}},
                "notes": {"notes": {"type": "plain_text_input", "value": str(self.chaos.choice(HOSTILE))}},
            }
        payload = {
            "type": "view_submission",
            "team": {"id": "T0SANDBOX"},
            "user": self.user(),
            "trigger_id": f"t-{self._next()}",
            "view": {
                "id": f"V{self.n}",
                "type": "modal",
                "callback_id": callback,
                "private_metadata": origin,
                "state": {"values": values},
            },
        }
        return urlencode({"payload": json.dumps(payload)})

    def event(self) -> str:
        n = self._next()
        event = self.chaos.choice(
            [
                {
                    "type": "message",
                    "channel": LEADS,
                    "user": self.chaos.choice(PEOPLE),
                    "text": self.chaos.choice(["!reply ", "", "!REPLY  "]) + str(self.chaos.choice(HOSTILE)),
                    "ts": f"1764083000.{n:06d}",
                    "thread_ts": self.chaos.choice([CARD_TS, f"1764083000.{n:06d}", "x"]),
                },
                {
                    "type": "app_home_opened",
                    "user": self.chaos.choice(PEOPLE),
                    "tab": self.chaos.choice(["home", "x"]),
                    "channel": "D0X",
                },
                {
                    "type": "message",
                    "channel": LEADS,
                    "user": self.chaos.choice(PEOPLE),
                    "subtype": "message_changed",
                    "ts": f"1764083000.{n:06d}",
                },
            ]
        )
        return json.dumps(
            {
                "type": "event_callback",
                "event_id": f"Ev{SEED}x{n}",
                "team_id": "T0SANDBOX",
                "api_app_id": "A0SANDBOX",
                "event": event,
                "event_time": int(time.time()),
            }
        )


def post(bot, body: str, content_type: str, what: str, **headers: str):
    answer = bot.client.post(
        "/slack/events", content=body.encode("utf-8", "surrogatepass"), headers=signed(body, content_type, **headers)
    )
    assert answer.status_code < 500, f"seed {SEED}: {what} answered {answer.status_code}: {answer.text[:300]}"
    return answer


def test_signed_hostile_clicks_reach_every_real_button_and_never_fail(fuzzed_bot):
    fuzz = SlackFuzzer(fuzzed_bot, random.Random(SEED))
    for action in ActionId:
        for _ in range(max(3, ROUNDS // len(ActionId))):
            answer = post(fuzzed_bot, fuzz.click(str(action)), "application/x-www-form-urlencoded", f"click {action}")
            assert answer.status_code == 200, f"seed {SEED}: no listener took {action} ({answer.status_code})"
    # A made-up id is not taken (Bolt's 404): the 200s above were real listeners.
    control = post(fuzzed_bot, fuzz.click("no_such_action"), "application/x-www-form-urlencoded", "control")
    assert control.status_code == 404
    assert fuzzed_bot.slack.calls("views.open"), "no button ever opened a modal: the fuzz missed the listeners"
    with fuzzed_bot.services.session_factory() as session:
        assert session.get(Lead, fuzz.lead_id) is not None


def test_signed_hostile_modal_submissions_reach_every_real_modal_and_never_fail(fuzzed_bot):
    fuzz = SlackFuzzer(fuzzed_bot, random.Random(SEED))
    for callback in ModalCallback:
        for _ in range(max(3, ROUNDS // len(ModalCallback))):
            answer = post(
                fuzzed_bot, fuzz.submission(str(callback)), "application/x-www-form-urlencoded", f"submit {callback}"
            )
            assert answer.status_code == 200, f"seed {SEED}: no listener took {callback} ({answer.status_code})"
    # The listeners themselves answered some of them (the guard alone would only refuse); they answer
    # after the ack, so give their threads a moment.
    listener_answers = (
        ":calendar:",
        "Not booked",
        "Saved",
        "Outcome not saved",
        ":outbox_tray:",
        ":no_entry: Not sent:",
        ":x:",
        ":telephone_receiver:",
        "Not sent:",
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        said = [e["text"] for e in fuzzed_bot.slack.ephemerals]
        if any(text.startswith(listener_answers) for text in said):
            break
        time.sleep(0.05)
    assert any(text.startswith(listener_answers) for text in said), (
        f"seed {SEED}: no modal listener ever answered: {said[:5]}"
    )
    for message in fuzzed_bot.sms.sent:
        assert "49" not in message.body or "{{" in message.body


@pytest.mark.parametrize("command", manifest_commands())
def test_signed_hostile_slash_commands_are_answered_and_never_fail(fuzzed_bot, command):
    fuzz = SlackFuzzer(fuzzed_bot, random.Random(SEED))
    for _ in range(ROUNDS):
        answer = post(fuzzed_bot, fuzz.command(command), "application/x-www-form-urlencoded", f"{command}")
        assert answer.status_code == 200


def test_signed_hostile_events_never_fail_and_nothing_typed_runs(fuzzed_bot):
    fuzz = SlackFuzzer(fuzzed_bot, random.Random(SEED))
    for _ in range(ROUNDS):
        body = fuzz.event()
        post(fuzzed_bot, body, "application/json", "event")
        # Slack's retry of the same delivery: applied once, answered 200.
        retry = post(fuzzed_bot, body, "application/json", "event retry", **{"X-Slack-Retry-Num": "1"})
        assert retry.status_code == 200
    for message in fuzzed_bot.sms.sent:
        assert "49" not in message.body or "{{" in message.body
    with fuzzed_bot.services.session_factory() as session:
        notes_by_outsiders = session.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.action == "note", AuditEntry.actor_id.in_(["U0GUEST", "U0PARTNER", "U0NOBODY"]))
        )
    assert notes_by_outsiders == 0


def test_without_a_signing_secret_the_bolt_app_is_not_built(fuzzed_bot, engine, business_file):
    settings = Settings(
        DATABASE_URL=str(engine.url),
        FOLLOWUP_BUSINESS=business_file,
        SLACK_BOT_TOKEN=SLACK_TOKEN,
        SLACK_API_URL=fuzzed_bot.slack.url + "/api/",
    )
    with pytest.raises(SlackNotConfigured):
        build_slack_app(fuzzed_bot.services, settings)


def test_an_app_without_a_signing_secret_refuses_every_http_request(fuzzed_bot, engine, business_file):
    # Socket Mode needs no signing secret; its app must then take nothing over HTTP, signed or not.
    settings = Settings(
        DATABASE_URL=str(engine.url),
        FOLLOWUP_BUSINESS=business_file,
        SLACK_BOT_TOKEN=SLACK_TOKEN,
        SLACK_APP_TOKEN="xapp-fuzz",
        SLACK_API_URL=fuzzed_bot.slack.url + "/api/",
        SLACK_LEADS_CHANNEL=LEADS,
    )
    app = build_slack_app(fuzzed_bot.services, settings)
    fuzz = SlackFuzzer(fuzzed_bot, random.Random(SEED))
    with TestClient(Starlette(routes=[slack_route(app)]), base_url=PUBLIC) as client:
        for body in (fuzz.click(str(ActionId.LEAD_NOT_INTERESTED)), fuzz.command("/followup")):
            for secret in ("", SLACK_SECRET):
                answer = client.post(
                    "/slack/events",
                    content=body.encode(),
                    headers=signed(body, "application/x-www-form-urlencoded", secret),
                )
                assert answer.status_code == 503 and "SLACK_SIGNING_SECRET" in answer.json()["error"]
    with fuzzed_bot.services.session_factory() as session:
        assert session.get(Lead, fuzz.lead_id).stage == "new"


def test_unsigned_or_badly_signed_slack_requests_are_refused_and_change_nothing(fuzzed_bot):
    chaos = random.Random(SEED)
    fuzz = SlackFuzzer(fuzzed_bot, chaos)
    before = fuzzed_bot.snapshot()
    for _ in range(ROUNDS):
        body = chaos.choice(
            [
                fuzz.click(str(chaos.choice(list(ActionId)))),
                fuzz.command("/followup"),
                fuzz.submission(str(chaos.choice(list(ModalCallback)))),
            ]
        )
        headers = chaos.choice(
            [
                {},
                {"X-Slack-Signature": "v0=00", "X-Slack-Request-Timestamp": str(int(time.time()))},
                signed(body, "application/x-www-form-urlencoded", "not-our-secret"),
                {**signed(body, "application/x-www-form-urlencoded"), "X-Slack-Request-Timestamp": "1"},
            ]
        )
        answer = fuzzed_bot.client.post(
            "/slack/events",
            content=body.encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded", **headers},
        )
        assert 400 <= answer.status_code < 500, f"seed {SEED}: an unsigned request got {answer.status_code}"
    assert fuzzed_bot.snapshot() == before


def test_a_signed_slack_payload_that_is_not_an_object_is_refused(fuzzed_bot):
    for payload in (
        "text",
        1,
        None,
        [],
        {
            "type": "view_submission",
            "user": {"id": "U0ALICE"},
            "view": {"id": "V1", "type": "modal", "callback_id": str(ModalCallback.REPLY), "state": {"values": "x"}},
        },
    ):
        body = urlencode({"payload": json.dumps(payload)})
        post(fuzzed_bot, body, "application/x-www-form-urlencoded", f"signed Slack payload {payload!r}")
