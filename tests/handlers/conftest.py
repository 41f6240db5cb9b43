"""The real Bolt app behind the real HTTP route, against the local Slack Web API stand-in, with signed requests."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import uvicorn
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View
from slack_sdk.signature import SignatureVerifier
from sqlalchemy import select
from starlette.applications import Starlette

from bot.settings import Settings
from bot.slack_app import build_slack_app, slack_route
from bot.standins.server import RecordedRequest, Reply
from bot.standins.slack_api import SlackApiStandin
from bot.store.audit import SYSTEM
from bot.store.models import CallTask, Lead
from bot.usecases.call_tasks import open_call_task
from bot.usecases.leads import LeadInput, add_lead
from tests.fakes import WEB_FORM_CONSENT
from tests.support.ports import free_port

BOT_TOKEN = "xoxb-test-token"
SIGNING_SECRET = "test-signing-secret"
LEADS = "C0LEADS"
ALICE = "U0ALICE"
BOB = "U0BOB"
ADMIN = "U0ADMIN"
CARD_TS = "1764082800.000100"
CHICAGO_PHONE = "+13125550142"


#: For tests of the Slack edge where the database plays no part: one run on SQLite, not one per database.
any_database = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


class SlackWithResponseUrls(SlackApiStandin):
    """The Web API stand-in, also taking the posts Bolt's `respond()` makes to a command's response_url."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.routes = self.routes | {"response_url"}

    def route(self, method: str, path: str) -> tuple[str, dict[str, str]] | None:
        if method == "POST" and path.startswith("/respond/"):
            return "response_url", {"id": path.rsplit("/", 1)[-1]}
        return super().route(method, path)

    def handle(self, route: str, params: dict[str, str], request: RecordedRequest) -> Reply:
        if route == "response_url":
            return Reply(200, b"ok", {"Content-Type": "text/plain"})
        return super().handle(route, params, request)

    def responses(self) -> list[dict[str, Any]]:
        """What was posted to response_urls (Bolt's respond()), oldest first."""
        return [r.data for r in self.requests_for("response_url")]


class TrackingExecutor(ThreadPoolExecutor):
    """Bolt's listener pool, able to say when every listener (and its after-ack work) has finished."""

    def __init__(self) -> None:
        super().__init__(max_workers=4, thread_name_prefix="bolt-listener")
        self._idle = threading.Condition()
        self._running = 0

    def submit(self, fn, /, *args, **kwargs):  # noqa: ANN001, ANN201 - Executor's signature
        with self._idle:
            self._running += 1

        def run():  # noqa: ANN202 - returns whatever the wrapped listener returns
            try:
                return fn(*args, **kwargs)
            finally:
                with self._idle:
                    self._running -= 1
                    self._idle.notify_all()

        return super().submit(run)

    def wait_idle(self, timeout: float = 10.0) -> None:
        with self._idle:
            if not self._idle.wait_for(lambda: self._running == 0, timeout):
                raise TimeoutError(f"{self._running} Bolt listeners still running after {timeout}s")


def valid_blocks(blocks: list[dict[str, Any]], limit: int = 50) -> list[dict[str, Any]]:
    """Fail unless slack_sdk parses and validates every block and there are no more than `limit`."""
    assert blocks, "no blocks"
    assert len(blocks) <= limit, f"{len(blocks)} blocks, more than {limit}"
    parsed = Block.parse_all(blocks)
    assert all(block is not None for block in parsed), f"unknown block type in {blocks}"
    for block in parsed:
        block.validate_json()
    return blocks


def valid_view(view: dict[str, Any]) -> dict[str, Any]:
    """Fail unless slack_sdk validates the whole view (title, submit, blocks) within 100 blocks."""
    valid_blocks(view["blocks"], limit=100)
    View(
        **{
            k: v
            for k, v in view.items()
            if k in ("type", "callback_id", "title", "submit", "close", "blocks", "private_metadata", "external_id")
        }
    ).validate_json()
    return view


#: The only <...> the bot writes itself: mentions of team members, channels and links it built.
OWN_MARKUP = re.compile(r"<(@[UW][A-Z0-9]+|#C[A-Z0-9]+|https?://[^|>]+(\|[^>]+)?|tel:\+\d+\|[^>]+)>")


def only_own_markup(text: str) -> None:
    """Fail when text would make Slack ping or link anything the bot did not mean to."""
    for markup in re.findall(r"<[^<>]*>", text):
        assert OWN_MARKUP.fullmatch(markup), f"raw Slack markup {markup!r} in {text!r}"


class Workspace:
    """Slack as the team sees it: signed requests to the bot's HTTP route, the Web API stand-in behind."""

    def __init__(
        self,
        http: httpx.Client,
        slack: SlackWithResponseUrls,
        executor: TrackingExecutor,
        services,
        errors: list[BaseException],
    ):
        self.http = http
        self.slack = slack
        self.executor = executor
        self.services = services
        self.errors = errors
        self._ids = 0
        self.last_request: tuple[str, dict[str, str]] = ("", {})

    def _next(self) -> int:
        self._ids += 1
        return self._ids

    # --- raw requests -------------------------------------------------------------------------

    def post(
        self,
        body: str,
        content_type: str,
        *,
        headers: dict[str, str] | None = None,
        timestamp: int | None = None,
        signature: str | None = None,
    ) -> httpx.Response:
        stamp = str(timestamp if timestamp is not None else int(time.time()))
        sign = signature or SignatureVerifier(SIGNING_SECRET).generate_signature(timestamp=stamp, body=body)
        sent = {
            "Content-Type": content_type,
            "X-Slack-Request-Timestamp": stamp,
            "X-Slack-Signature": sign,
            **(headers or {}),
        }
        self.last_request = (body, sent)
        answer = self.http.post("/slack/events", content=body.encode(), headers=sent)
        self.executor.wait_idle()
        return answer

    def replay(self, extra_headers: dict[str, str] | None = None) -> httpx.Response:
        """Send the last request again, byte for byte with its signature, as an attacker or a retry would."""
        body, sent = self.last_request
        answer = self.http.post("/slack/events", content=body.encode(), headers={**sent, **(extra_headers or {})})
        self.executor.wait_idle()
        return answer

    # --- what people do -----------------------------------------------------------------------

    def command(
        self, text: str, *, user: str = ALICE, channel: str = LEADS, command: str = "/followup"
    ) -> httpx.Response:
        n = self._next()
        form = {
            "token": "legacy",
            "team_id": "T0SANDBOX",
            "team_domain": "sandbox",
            "channel_id": channel,
            "channel_name": "leads",
            "user_id": user,
            "user_name": user.lower(),
            "command": command,
            "text": text,
            "api_app_id": "A0SANDBOX",
            "is_enterprise_install": "false",
            "response_url": f"{self.slack.url}/respond/{n}",
            "trigger_id": f"trigger-{n}",
        }
        return self.post(urlencode(form), "application/x-www-form-urlencoded")

    def click(
        self,
        action_id: str,
        value: int | str,
        *,
        user: str = ALICE,
        channel: str = LEADS,
        message_ts: str = CARD_TS,
        thread_ts: str | None = None,
    ) -> httpx.Response:
        n = self._next()
        message: dict[str, Any] = {
            "type": "message",
            "ts": message_ts,
            "user": "U0BOT",
            "bot_id": "B0BOT",
            "text": "card",
        }
        container: dict[str, Any] = {
            "type": "message",
            "message_ts": message_ts,
            "channel_id": channel,
            "is_ephemeral": False,
        }
        if thread_ts:
            message["thread_ts"] = container["thread_ts"] = thread_ts
        payload = {
            "type": "block_actions",
            "api_app_id": "A0SANDBOX",
            "token": "legacy",
            "team": {"id": "T0SANDBOX", "domain": "sandbox"},
            "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": "T0SANDBOX"},
            "container": container,
            "channel": {"id": channel, "name": "leads"},
            "message": message,
            "trigger_id": f"trigger-{n}",
            "response_url": f"{self.slack.url}/respond/{n}",
            "actions": [
                {
                    "action_id": str(action_id),
                    "block_id": "actions",
                    "type": "button",
                    "value": str(value),
                    "action_ts": f"{int(time.time())}.000{n}",
                    "text": {"type": "plain_text", "text": "button"},
                }
            ],
        }
        return self.post(urlencode({"payload": json.dumps(payload)}), "application/x-www-form-urlencoded")

    def home_click(self, action_id: str, value: int | str, *, user: str = ALICE) -> httpx.Response:
        """Press a button on the person's App Home tab (its container is the Home view, it names no channel)."""
        n = self._next()
        payload = {
            "type": "block_actions",
            "api_app_id": "A0SANDBOX",
            "token": "legacy",
            "team": {"id": "T0SANDBOX", "domain": "sandbox"},
            "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": "T0SANDBOX"},
            "container": {"type": "view", "view_id": "V0HOME"},
            "trigger_id": f"trigger-{n}",
            "view": {"id": "V0HOME", "type": "home", "blocks": []},
            "actions": [
                {
                    "action_id": str(action_id),
                    "block_id": "closed",
                    "type": "button",
                    "value": str(value),
                    "action_ts": f"{int(time.time())}.000{n}",
                    "text": {"type": "plain_text", "text": "Reopen"},
                }
            ],
        }
        return self.post(urlencode({"payload": json.dumps(payload)}), "application/x-www-form-urlencoded")

    def submit(self, view: dict[str, Any], values: dict[str, dict[str, Any]], *, user: str = ALICE) -> httpx.Response:
        """Submit an opened modal with state values given as {block_id: element state}."""
        state = {block_id: {block_id: element} for block_id, element in values.items()}
        payload = {
            "type": "view_submission",
            "api_app_id": "A0SANDBOX",
            "token": "legacy",
            "team": {"id": "T0SANDBOX", "domain": "sandbox"},
            "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": "T0SANDBOX"},
            "trigger_id": f"trigger-{self._next()}",
            "view": {**view, "state": {"values": state}},
        }
        return self.post(urlencode({"payload": json.dumps(payload)}), "application/x-www-form-urlencoded")

    def event(
        self, event: dict[str, Any], *, event_id: str | None = None, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        envelope = {
            "token": "legacy",
            "team_id": "T0SANDBOX",
            "api_app_id": "A0SANDBOX",
            "type": "event_callback",
            "event_id": event_id or f"Ev{self._next():08d}",
            "event_time": int(time.time()),
            "event": event,
            "authorizations": [{"team_id": "T0SANDBOX", "user_id": "U0BOT", "is_bot": True}],
        }
        return self.post(json.dumps(envelope), "application/json", headers=headers)

    def thread_reply(
        self,
        text: str,
        *,
        user: str = ALICE,
        thread_ts: str = CARD_TS,
        channel: str = LEADS,
        event_id: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> httpx.Response:
        n = self._next()
        event = {
            "type": "message",
            "channel": channel,
            "user": user,
            "text": text,
            "ts": f"1764083000.{n:06d}",
            "thread_ts": thread_ts,
            "channel_type": "channel",
            "event_ts": f"1764083000.{n:06d}",
            **extra,
        }
        return self.event(event, event_id=event_id, headers=headers)

    # --- what the bot said ----------------------------------------------------------------------

    def answers(self) -> list[dict[str, Any]]:
        """Ephemeral answers to commands (through response_url), oldest first."""
        return self.slack.responses()

    def last_answer(self) -> str:
        answers = self.answers()
        assert answers, "the bot did not answer the command"
        answer = answers[-1]
        assert answer.get("response_type") == "ephemeral"
        if answer.get("blocks"):
            valid_blocks(answer["blocks"])
        said = answer["text"] + "\n" + json.dumps(answer.get("blocks") or [])
        only_own_markup(said)
        return said

    def ephemerals_to(self, user: str) -> list[str]:
        return [e["text"] for e in self.slack.ephemerals if e["user"] == user]

    def opened_view(self) -> dict[str, Any]:
        views = list(self.slack.views.values())
        assert views, "no modal was opened"
        return valid_view(views[-1])


class CurrentApp:
    """An ASGI app forwarding to the app of the test running now: one server for the whole session."""

    def __init__(self) -> None:
        self.app: Starlette | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert self.app is not None, "no test app is mounted"
        await self.app(scope, receive, send)


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """Serve an ASGI app with uvicorn on a loopback port for the length of the block."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def slack_server() -> Iterator[tuple[httpx.Client, CurrentApp]]:
    """One uvicorn server and one HTTP client for the session; each test mounts its own Bolt app."""
    current = CurrentApp()
    with serving(current) as url, httpx.Client(base_url=url, timeout=10) as http:
        yield http, current


#: The team: members of the leads channel (admins among them).
TEAM = (ALICE, BOB, ADMIN, "U0OTHERADMIN")


@pytest.fixture
def slack():
    with SlackWithResponseUrls(BOT_TOKEN) as standin:
        standin.join(LEADS, *TEAM)
        yield standin


@pytest.fixture
def slack_settings(engine, business_file, slack) -> Settings:
    return Settings(
        DATABASE_URL=str(engine.url),
        FOLLOWUP_BUSINESS=business_file,
        PUBLIC_BASE_URL="https://followup.example.com",
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=slack.url + "/api/",
        SLACK_LEADS_CHANNEL=LEADS,
        SLACK_ADMINS=f"{ADMIN}, U0OTHERADMIN",
    )


@pytest.fixture
def workspace(services, slack_settings, slack, slack_server):
    executor = TrackingExecutor()
    app = build_slack_app(services, slack_settings, listener_executor=executor)
    errors: list[BaseException] = []

    @app.error
    def collect(error: BaseException) -> None:
        errors.append(error)

    http, current = slack_server
    current.app = Starlette(routes=[slack_route(app)])
    yield Workspace(http, slack, executor, services, errors)
    current.app = None
    executor.wait_idle()
    executor.shutdown()
    assert not errors, f"listeners raised: {errors!r}"


# --- the store, as the core and the poster leave it -----------------------------------------------


def new_lead(
    services,
    *,
    card: bool = True,
    card_ts: str = CARD_TS,
    business: str | None = None,
    channel: str = LEADS,
    **fields: Any,
) -> int:
    """A lead taken in by the core, with its card in the leads channel as the poster stores it.

    `business` (a slug) makes it that business's lead (default: the single business); `channel` is where its card is.
    """
    data = LeadInput.parse(
        {
            "name": "Dana Lee",
            "phone": CHICAGO_PHONE,
            "email": "dana@example.com",
            "message": "Lower back pain, any openings this week?",
            **WEB_FORM_CONSENT,
            **fields,
        }
    )
    with services.session_factory.begin() as session:
        owner = services.business_of(business) if business else services.business
        result = add_lead(
            session,
            data,
            business=owner,
            sequence=services.playbooks_of(owner.slug).get(),
            now=services.clock.now(),
            actor=SYSTEM,
        )
        if card:
            lead = session.get(Lead, result.lead_id)
            lead.slack_channel, lead.slack_ts = channel, card_ts
    return result.lead_id


def new_call_task(services, lead_id: int, reason: str = "asked a question") -> int:
    with services.session_factory.begin() as session:
        lead = session.get(Lead, lead_id)
        task = open_call_task(session, services, lead, reason=reason, now=services.clock.now(), actor=SYSTEM)
        return task.id


def lead_row(services, lead_id: int) -> Lead:
    with services.session_factory() as session:
        lead = session.get(Lead, lead_id)
        assert lead is not None
        return lead


def task_row(services, task_id: int) -> CallTask:
    with services.session_factory() as session:
        return session.scalars(select(CallTask).where(CallTask.id == task_id)).one()
