"""The Slack side of the composition root: the Bolt app, its HTTP route, and Socket Mode.

Build one app per process with `build_slack_app(services, settings)`. In HTTP mode mount
`slack_route(app)` (POST /slack/events: events, commands and interactivity); with
SLACK_APP_TOKEN set, `start_socket_mode(app, token)` connects out instead and needs no public URL.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import Any
from urllib.parse import parse_qsl

from slack_bolt import App, BoltRequest, BoltResponse
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_bolt.adapter.starlette.handler import to_starlette_response
from slack_bolt.middleware import Middleware
from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.settings import Settings
from bot.usecases.services import Services
from handlers import register_slack
from handlers.http_edge import BadRequest, read_body
from handlers.slack_edge import ADMINS, SERVICES
from handlers.slack_guard import GuardSettings, SlackGuard

log = logging.getLogger(__name__)

SLACK_EVENTS_PATH = "/slack/events"
#: Slack's payloads are small (a modal's state at most a few KB); anything far bigger is not Slack.
MAX_SLACK_BODY = 1024 * 1024
#: Seconds a listener's Slack Web API call may take (views.open must beat the 3 s trigger expiry anyway).
CLIENT_TIMEOUT = 10


class UnreadableSlackBody(ValueError):
    """The body is no Slack request: not UTF-8, not a JSON object, or not shaped as Slack shapes its payloads."""


def readable_body(body: bytes, content_type: str) -> str:
    """The body as text Bolt can parse, checked the way Bolt will read it; UnreadableSlackBody if it cannot.

    Bolt parses the body before it checks the signature, and reaches into payloads without checking
    their types: a body that would make it fail is refused here with a 400, signed or not.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise UnreadableSlackBody("the body is not UTF-8") from error
    media_type = content_type.split(";", 1)[0].strip().lower()
    # Bolt reads a body as JSON when it says so or starts with "{", else as a form with an optional JSON payload.
    if media_type == "application/json" or text.startswith("{"):
        check_payload_shape(_json_object(text, "the JSON body"))
    elif "payload" in text:
        payload = dict(parse_qsl(text, keep_blank_values=True)).get("payload")
        if payload is not None:
            check_payload_shape(_json_object(payload, "the payload field"))
    return text


def _json_object(text: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as error:
        raise UnreadableSlackBody(f"{what} is not JSON") from error
    if not isinstance(value, dict):
        raise UnreadableSlackBody(f"{what} is not a JSON object")
    return value


#: Keys Bolt reads as objects, as text, or as either (events name a channel by id, interactivity as an object).
_OBJECT_KEYS = (
    "event",
    "view",
    "container",
    "message",
    "previous_message",
    "item",
    "assistant_thread",
    "function_data",
    "workflow_step",
    "state",
)
_TEXT_KEYS = (
    "type",
    "callback_id",
    "action_id",
    "user_id",
    "channel_id",
    "team_id",
    "enterprise_id",
    "ts",
    "thread_ts",
    "subtype",
    "bot_id",
    "tab",
    "channel_type",
    "trigger_id",
    "response_url",
)
_TEXT_OR_OBJECT_KEYS = ("user", "channel", "team", "enterprise")
#: Payload types sent for a person's click or submission: they always name the person as an object.
_INTERACTIVE_TYPES = (
    "block_actions",
    "view_submission",
    "view_closed",
    "shortcut",
    "message_action",
    "block_suggestion",
)


def check_payload_shape(payload: dict[str, Any], *, depth: int = 0) -> None:
    """Refuse a payload whose parts do not have the types Slack gives them (UnreadableSlackBody)."""

    def wrong(key: str, expected: str) -> UnreadableSlackBody:
        return UnreadableSlackBody(f"`{key}` is not {expected}")

    for key in _OBJECT_KEYS:
        if payload.get(key) is not None and not isinstance(payload[key], dict):
            raise wrong(key, "an object")
    for key in _TEXT_KEYS:
        if payload.get(key) is not None and not isinstance(payload[key], str):
            raise wrong(key, "text")
    for key in _TEXT_OR_OBJECT_KEYS:
        if payload.get(key) is not None and not isinstance(payload[key], (str, dict)):
            raise wrong(key, "text or an object")
    for key in ("authorizations", "actions"):
        items = payload.get(key)
        if items is not None and not (isinstance(items, list) and all(isinstance(i, dict) for i in items)):
            raise wrong(key, "a list of objects")
    kind = payload.get("type")
    if kind in _INTERACTIVE_TYPES and not isinstance(payload.get("user"), dict):
        raise wrong("user", "an object")
    if kind == "block_actions" and not payload.get("actions"):
        raise wrong("actions", "a list of actions")
    if kind in ("view_submission", "view_closed") and not isinstance((payload.get("view") or {}).get("type"), str):
        raise wrong("view.type", "text")
    if kind == "event_callback" and not isinstance((payload.get("event") or {}).get("type"), str):
        raise wrong("event.type", "text")
    if depth < 3:
        nested = [payload[key] for key in (*_OBJECT_KEYS, *_TEXT_OR_OBJECT_KEYS) if isinstance(payload.get(key), dict)]
        nested += [item for key in ("authorizations", "actions") for item in payload.get(key) or []]
        for part in nested:
            check_payload_shape(part, depth=depth + 1)


class SlackNotConfigured(Exception):
    """Slack needs SLACK_BOT_TOKEN, and SLACK_SIGNING_SECRET (HTTP mode) or SLACK_APP_TOKEN (Socket Mode)."""


def slack_client(settings: Settings) -> WebClient:
    """The Web API client for the bot token, pointed at SLACK_API_URL, retrying Slack's 429s twice."""
    base_url = settings.slack_api_url if settings.slack_api_url.endswith("/") else settings.slack_api_url + "/"
    client = WebClient(token=settings.slack_bot_token, base_url=base_url, timeout=CLIENT_TIMEOUT)
    client.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=2))
    return client


def build_slack_app(
    services: Services,
    settings: Settings,
    client: WebClient | None = None,
    *,
    listener_executor: Executor | None = None,
) -> App:
    """The Bolt app with every listener registered; it calls auth.test once, now, to learn who it is."""
    if not settings.slack_bot_token:
        raise SlackNotConfigured("SLACK_BOT_TOKEN is not set: the Slack app cannot be built without it")
    if not (settings.slack_signing_secret or settings.slack_app_token):
        raise SlackNotConfigured("set SLACK_SIGNING_SECRET (HTTP mode) or SLACK_APP_TOKEN (Socket Mode)")
    app = App(
        client=client or slack_client(settings),
        # Bolt verifies every HTTP request's signature and timestamp with it (Socket Mode needs none).
        signing_secret=settings.slack_signing_secret or "",
        name="followup",
        listener_executor=listener_executor,
    )
    app.use(ProvideServices(services, settings.slack_admin_ids))
    # After Bolt's own signature check, before every listener: replays dropped, permissions decided.
    app.use(
        SlackGuard(
            GuardSettings(
                leads_channel=settings.slack_leads_channel,
                admins=settings.slack_admin_ids,
                team_group=settings.slack_team_group,
                new_leads_per_hour=settings.slack_new_leads_per_hour,
            )
        )
    )
    register_slack(app)
    return app


class ProvideServices(Middleware):
    """Give every listener the services and the admin list through Bolt's context.

    A Middleware subclass rather than a function: Bolt builds a function middleware's arguments
    from the whole payload, and a signed payload of an odd shape would fail there with a 500.
    """

    def __init__(self, services: Services, admins: frozenset[str]):
        self.services = services
        self.admins = admins

    def process(
        self,
        *,
        req: BoltRequest,
        resp: BoltResponse,
        next: Callable[[], BoltResponse],  # noqa: A002 - Bolt passes the next middleware by this keyword
    ) -> BoltResponse | None:
        req.context[SERVICES] = self.services
        req.context[ADMINS] = self.admins
        return next()


def slack_route(app: App, path: str = SLACK_EVENTS_PATH) -> Route:
    """POST /slack/events for the Starlette app: Bolt verifies, acknowledges and dispatches off the event loop."""

    # Closed by default: an app built without a signing secret (Socket Mode) must not take HTTP requests,
    # since Bolt would check their signatures against an empty secret that anyone can sign with.
    signed = bool(getattr(app, "_signing_secret", ""))

    async def slack_events(request: Request) -> Response:
        if not signed:
            return JSONResponse(
                {"error": "SLACK_SIGNING_SECRET is not set: this route takes no Slack requests"}, status_code=503
            )
        try:
            body = await read_body(request, MAX_SLACK_BODY)
            text = readable_body(body, request.headers.get("content-type", ""))
        except BadRequest as error:
            return error.response()
        except UnreadableSlackBody as error:
            # Bolt would fail parsing it before checking the signature: refuse it here, signed or not.
            return JSONResponse({"error": str(error)}, status_code=400)
        # As plain dicts, the form Bolt's request is typed to take. Built from items(), each keeps a repeated
        # name's last value, as Bolt does when handed Starlette's multidicts (Headers[name] would be the first).
        headers: dict[str, str | Sequence[str]] = dict(request.headers.items())
        bolt_request = BoltRequest(body=text, query=dict(request.query_params.items()), headers=headers)
        # Bolt's dispatch blocks until the listener acks: run it in a worker thread, not on the loop.
        answer = await run_in_threadpool(app.dispatch, bolt_request)
        return to_starlette_response(answer)

    return Route(path, slack_events, methods=["POST"])


def start_socket_mode(app: App, app_token: str) -> SocketModeHandler:
    """Connect to Slack over Socket Mode in background threads; call `.close()` on the handler to stop."""
    handler = SocketModeHandler(app, app_token)
    handler.connect()
    log.info("slack: connected over Socket Mode")
    return handler
