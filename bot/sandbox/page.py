"""The sandbox page's routes: the page itself, a state snapshot, live updates (SSE), and a person's actions.

Each action route takes what the person did as JSON and hands it to `PersonActions`, which sends
the bot what the vendor would. `/sandbox/slack/respond/{token}` stands in for Slack's response_url.
"""

from __future__ import annotations

import asyncio
import json
import mimetypes
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from bot.core.clock import utc
from bot.core.playbook import step_label
from bot.sandbox.actions import ActionRefused, BotAnswer
from bot.sandbox.calendar import CalendarRefused
from bot.store.models import Enrollment, EnrollmentState, Lead, Touch, TouchStatus
from bot.usecases.dispatch import Dispatcher

if TYPE_CHECKING:
    from bot.sandbox.runner import Sandbox

STATIC = Path(__file__).parent / "static"
#: The page loads nothing from anywhere else: scripts, styles, images and frames are all its own.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "frame-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'"
)
#: Files the page shows inline, as Slack does; every other file is a download.
SHOWN_IMAGES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
SPEEDS = {"real": 1.0, "hour": 3600.0, "day": 86400.0}
MAX_BODY = 64 * 1024


class PageError(Exception):
    """The page sent something the sandbox cannot act on; the message says what."""


def page_routes(sandbox: Sandbox) -> list[BaseRoute]:
    api = SandboxApi(sandbox)
    return [
        Route("/", lambda request: RedirectResponse("/sandbox", status_code=307), methods=["GET"]),
        Route("/sandbox", api.index, methods=["GET"]),
        Mount("/sandbox/static", app=StaticFiles(directory=STATIC), name="sandbox-static"),
        Route("/sandbox/api/state", api.state, methods=["GET"]),
        Route("/sandbox/api/events", api.events, methods=["GET"]),
        Route("/sandbox/api/lead", api.action(api.new_lead), methods=["POST"]),
        Route("/sandbox/api/sms", api.action(api.sms), methods=["POST"]),
        Route("/sandbox/api/email", api.action(api.email), methods=["POST"]),
        Route("/sandbox/api/slack/click", api.action(api.click), methods=["POST"]),
        Route("/sandbox/api/slack/view-action", api.action(api.view_action), methods=["POST"]),
        Route("/sandbox/api/slack/submit", api.action(api.submit), methods=["POST"]),
        Route("/sandbox/api/slack/close", api.action(api.close), methods=["POST"]),
        Route("/sandbox/api/slack/thread", api.action(api.thread), methods=["POST"]),
        Route("/sandbox/api/slack/command", api.action(api.command), methods=["POST"]),
        Route("/sandbox/api/slack/home", api.action(api.home), methods=["POST"]),
        Route("/sandbox/api/clock", api.action(api.clock), methods=["POST"]),
        Route("/sandbox/api/calendar", api.action(api.calendar), methods=["POST"]),
        Route("/sandbox/api/files/{file_id}", api.file, methods=["GET"]),
        Route("/sandbox/slack/respond/{token}", api.respond, methods=["POST"]),
    ]


class SandboxApi:
    """What the page reads and does."""

    def __init__(self, sandbox: Sandbox):
        self.sandbox = sandbox

    # -- reading ---------------------------------------------------------------------------

    async def index(self, request: Request) -> Response:
        response = FileResponse(STATIC / "index.html", media_type="text/html")
        response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        response.headers["Cache-Control"] = "no-store"
        return response

    async def state(self, request: Request) -> Response:
        user = request.query_params.get("user") or self.sandbox.team[0].user_id
        snapshot = await run_in_threadpool(self.snapshot, user)
        return JSONResponse(snapshot, headers={"Cache-Control": "no-store"})

    async def file(self, request: Request) -> Response:
        """A file the bot shared in the leads channel (the digest's chart, a lead's photo), as Slack shows it."""
        found = self.sandbox.slack.shared_file(
            request.path_params["file_id"], self.sandbox.settings.slack_leads_channel or ""
        )
        if found is None:
            return JSONResponse({"ok": False, "error": "file_not_found"}, status_code=404)
        name, content = found
        media_type = mimetypes.guess_type(name)[0] or ""
        headers = {
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'",
        }
        if media_type not in SHOWN_IMAGES:
            # Anything but a picture is downloaded, never rendered by the page's origin.
            media_type = "application/octet-stream"
            headers["Content-Disposition"] = "attachment"
        return Response(content, media_type=media_type, headers=headers)

    async def events(self, request: Request) -> Response:
        """Server-sent events: the world's version each time it changes, and a heartbeat."""
        world = self.sandbox.world

        async def stream():  # noqa: ANN202 - an async generator of server-sent events, typed by its use
            seen, quiet = -1, 0.0
            yield "retry: 1000\n\n"
            while not self.sandbox.shutting_down():
                if world.version != seen:
                    seen = world.version
                    quiet = 0.0
                    yield f"event: changed\ndata: {seen}\n\n"
                elif quiet >= 15:
                    quiet = 0.0
                    yield ": still here\n\n"
                await asyncio.sleep(0.1)
                quiet += 0.1
                if await request.is_disconnected():
                    return

        return StreamingResponse(
            stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        )

    def snapshot(self, user: str) -> dict[str, Any]:
        sandbox = self.sandbox
        world, slack = sandbox.world, sandbox.slack
        channel = sandbox.settings.slack_leads_channel or ""
        with world.lock:
            version = world.version
            human = [dict(m) for m in world.human_messages if m.get("channel") == channel]
            notes = [dict(n) for n in world.private_notes if n.get("user") == user]
            texts = [dict(t) for t in world.texts]
            emails = [dict(e) for e in world.emails]
            owners, closed = dict(world.view_owners), set(world.closed_views)
            errors = {k: dict(v) for k, v in world.view_errors.items()}
        with world.lock:
            sim_times = dict(world.sim_times)
        messages = [{**m, "author": "bot"} for m in slack.messages(channel)]
        messages += [{**m, "author": "person"} for m in human]
        messages.sort(key=lambda m: _ts_key(m["ts"]))
        for message in messages:
            message["sim_at"] = sim_times.get(message["ts"])
        ephemerals = [
            {
                "ts": e["message_ts"],
                "thread_ts": e.get("thread_ts"),
                "text": e.get("text", ""),
                "blocks": e.get("blocks"),
                "from": "bot",
            }
            for e in slack.ephemerals
            if e.get("user") == user and e.get("channel") == channel
        ]
        ephemerals += [
            {
                "ts": n["ts"],
                "thread_ts": n.get("thread_ts"),
                "text": n.get("text", ""),
                "blocks": n.get("blocks"),
                "from": "me" if n.get("kind") == "command" else "bot",
                "kind": n.get("kind"),
            }
            for n in notes
        ]
        ephemerals.sort(key=lambda m: _ts_key(m["ts"]))
        modals = [v for vid, v in slack.views.items() if owners.get(vid) == user and vid not in closed]
        modal = modals[-1] if modals else None
        if modal is not None:
            modal["errors"] = errors.get(modal["id"], {})
        leads = self._leads()
        clock = sandbox.clock
        return {
            "version": version,
            "me": user,
            "team": [
                {"id": m.user_id, "name": m.name, "real_name": m.real_name, "role": m.role, "admin": m.admin}
                for m in sandbox.team
            ],
            "business": {
                "name": sandbox.services.business.name,
                "phone": sandbox.settings.twilio_from_number,
                "timezone": sandbox.services.business.timezone.key,
                "email": sandbox.settings.sendgrid_from_email,
                "reply_to": sandbox.settings.sendgrid_reply_to,
            },
            "channel": {"id": channel, "name": "leads"},
            "messages": messages,
            "ephemerals": ephemerals,
            "modal": modal,
            "home": slack.home_views.get(user),
            "leads": leads,
            "phones": _phones(texts, leads, world.opted_out_numbers),
            "emails": emails,
            "clock": {
                "now": clock.now().timestamp(),
                "scale": sandbox.speed,
                "speed": next((name for name, scale in SPEEDS.items() if scale == sandbox.speed), None),
                "timezone": sandbox.services.business.timezone.key,
                "next_due": self._next_due(),
            },
            "calendar": sandbox.calendar.bookings(),
            "missing": list(sandbox.missing),
            "send_marker": _send_marker(),
        }

    def _leads(self) -> list[dict[str, Any]]:
        with self.sandbox.services.session_factory() as session:
            rows = session.scalars(select(Lead).order_by(Lead.id.desc()).limit(200)).all()
            return [
                {
                    "id": lead.id,
                    "name": lead.name,
                    "phone": lead.phone,
                    "email": lead.email,
                    "stage": lead.stage,
                    "owner": lead.owner,
                    "opted_out": lead.sms_opted_out_at is not None,
                }
                for lead in rows
            ]

    def _step_label(self, sequence: str, step_id: str) -> str:
        try:
            playbook = self.sandbox.services.playbooks.get(sequence)
        except Exception:  # noqa: BLE001 - a playbook gone: the id reads as words
            playbook = None
        return step_label(playbook, step_id)

    def _next_due(self) -> dict[str, Any] | None:
        services = self.sandbox.services
        due = Dispatcher(services).next_due_at()
        if due is None:
            return None
        with services.session_factory() as session:
            row = session.execute(
                select(Touch.step_id, Touch.channel, Lead.id, Lead.name, Enrollment.sequence_name)
                .join(Enrollment, Enrollment.id == Touch.enrollment_id)
                .join(Lead, Lead.id == Touch.lead_id)
                .where(Touch.status == TouchStatus.SCHEDULED, Enrollment.state == EnrollmentState.ACTIVE)
                .order_by(Touch.due_at, Touch.id)
                .limit(1)
            ).first()
        at = utc(due)
        return {
            "at": at.timestamp(),
            # What people read for the step ("Thank-you email"), never its id.
            "step": self._step_label(row.sequence_name, row.step_id) if row else None,
            "channel": row.channel if row else None,
            "lead_id": row.id if row else None,
            "lead_name": row.name if row else None,
        }

    # -- acting as a person ----------------------------------------------------------------

    def action(self, work: Callable[[dict[str, Any]], Any]) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            body = await request.body()
            if len(body) > MAX_BODY:
                return JSONResponse({"ok": False, "error": "request too large"}, status_code=413)
            try:
                data = json.loads(body or b"{}")
                if not isinstance(data, dict):
                    raise PageError("send a JSON object")
                result = await run_in_threadpool(work, data)
            except (PageError, ActionRefused, json.JSONDecodeError) as error:
                return JSONResponse({"ok": False, "error": str(error)}, status_code=400)
            if isinstance(result, BotAnswer):
                return JSONResponse(
                    {
                        "ok": result.ok,
                        "status": result.status,
                        "answer": result.body,
                        "error": None if result.ok else _bot_error(result),
                    }
                )
            return JSONResponse({"ok": True, **(result or {})})

        return endpoint

    def calendar(self, data: dict[str, Any]) -> BotAnswer:
        """Book, move, cancel or mark a no-show on the clinic's calendar (Calendly's signed webhooks)."""
        desk = self.sandbox.calendar
        what = _required(data, "action")
        try:
            if what == "book":
                return desk.book(_number(data, "lead_id"), self._visit_time(data))
            if what == "move":
                return desk.move(_number(data, "appointment_id"), self._visit_time(data))
            if what == "cancel":
                return desk.cancel(_number(data, "appointment_id"))
            if what == "no_show":
                return desk.no_show(_number(data, "appointment_id"))
        except CalendarRefused as refused:
            raise PageError(str(refused)) from refused
        raise PageError(f"unknown calendar action {what!r}: book, move, cancel or no_show")

    def _visit_time(self, data: dict[str, Any]) -> datetime:
        """The date and time picked on the calendar, read in the business's time zone."""
        try:
            day = date.fromisoformat(_required(data, "date"))
            clock = time.fromisoformat(_required(data, "time"))
        except ValueError as error:
            raise PageError("pick a date (YYYY-MM-DD) and a time (HH:MM)") from error
        return datetime.combine(day, clock, tzinfo=self.sandbox.services.business.timezone).astimezone(UTC)

    def new_lead(self, data: dict[str, Any]) -> BotAnswer:
        fields = {
            key: _text(data, key, 5000)
            for key in ("name", "phone", "email", "message", "source", "consent", "consent_text")
        }
        return self.sandbox.actions.submit_lead({k: v for k, v in fields.items() if v})

    def sms(self, data: dict[str, Any]) -> BotAnswer:
        return self.sandbox.actions.text_from_lead(_required(data, "number"), _text(data, "body", 1600))

    def email(self, data: dict[str, Any]) -> BotAnswer:
        in_reply_to = data.get("in_reply_to")
        return self.sandbox.actions.email_from_lead(
            _required(data, "from"),
            _text(data, "subject", 500),
            _text(data, "text", 20000),
            sender_name=_text(data, "from_name", 200),
            in_reply_to=int(in_reply_to) if isinstance(in_reply_to, int) else None,
        )

    def click(self, data: dict[str, Any]) -> BotAnswer:
        action = data.get("action")
        if not isinstance(action, dict):
            raise PageError("action: the element's action_id, type and value")
        return self.sandbox.actions.click(
            _required(data, "user"),
            channel=_required(data, "channel"),
            message_ts=_required(data, "ts"),
            block_id=_text(data, "block_id", 255),
            action=action,
            ephemeral=bool(data.get("ephemeral")),
        )

    def view_action(self, data: dict[str, Any]) -> BotAnswer:
        action = data.get("action")
        if not isinstance(action, dict):
            raise PageError("action: the element's action_id, type and value")
        return self.sandbox.actions.click_in_view(
            _required(data, "user"),
            view_id=_required(data, "view_id"),
            block_id=_text(data, "block_id", 255),
            action=action,
            values=_values(data),
        )

    def submit(self, data: dict[str, Any]) -> BotAnswer:
        return self.sandbox.actions.submit_view(
            _required(data, "user"), view_id=_required(data, "view_id"), values=_values(data)
        )

    def close(self, data: dict[str, Any]) -> BotAnswer:
        return self.sandbox.actions.close_view(_required(data, "user"), view_id=_required(data, "view_id"))

    def thread(self, data: dict[str, Any]) -> BotAnswer:
        return self.sandbox.actions.write_in_thread(
            _required(data, "user"),
            channel=_required(data, "channel"),
            thread_ts=_required(data, "thread_ts"),
            text=_text(data, "text", 4000),
        )

    def command(self, data: dict[str, Any]) -> BotAnswer:
        return self.sandbox.actions.slash_command(
            _required(data, "user"), _text(data, "text", 2000), channel=self.sandbox.settings.slack_leads_channel or ""
        )

    def home(self, data: dict[str, Any]) -> BotAnswer:
        return self.sandbox.actions.open_home(_required(data, "user"))

    def clock(self, data: dict[str, Any]) -> dict[str, Any]:
        sandbox = self.sandbox
        if "speed" in data:
            speed = data["speed"]
            if speed not in SPEEDS:
                raise PageError(f"speed: one of {', '.join(SPEEDS)}")
            sandbox.set_speed(SPEEDS[speed])
        if data.get("skip") == "next":
            due = Dispatcher(sandbox.services).next_due_at()
            if due is None:
                raise PageError("nothing is scheduled")
            sandbox.skip(utc(due) - sandbox.clock.now() + timedelta(seconds=1))
        elif "skip_seconds" in data:
            seconds = data["skip_seconds"]
            if not isinstance(seconds, (int, float)) or not 0 < seconds <= 400 * 86400:
                raise PageError("skip_seconds: a positive number of seconds, at most 400 days")
            sandbox.skip(timedelta(seconds=seconds))
        return {"now": sandbox.clock.now().timestamp(), "scale": sandbox.speed}

    # -- Slack's response_url ----------------------------------------------------------------

    async def respond(self, request: Request) -> Response:
        try:
            body = json.loads(await request.body() or b"{}")
        except json.JSONDecodeError:
            return JSONResponse({"ok": False, "error": "invalid_json"}, status_code=400)
        if not isinstance(body, dict):
            return JSONResponse({"ok": False, "error": "invalid_payload"}, status_code=400)
        done = await run_in_threadpool(self.sandbox.actions.respond, request.path_params["token"], body)
        if not done:
            return Response("expired_url", status_code=404, media_type="text/plain")
        return Response("ok", media_type="text/plain")


def _phones(texts: list[dict[str, Any]], leads: list[dict[str, Any]], opted_out: set[str]) -> list[dict[str, Any]]:
    """One phone per lead with a number, newest lead first, each with its conversation."""
    by_number: dict[str, dict[str, Any]] = {}
    for lead in leads:
        if lead["phone"] and lead["phone"] not in by_number:
            by_number[lead["phone"]] = {
                "number": lead["phone"],
                "lead_id": lead["id"],
                "name": lead["name"],
                "texts": [],
            }
    for text in texts:
        number = text.get("number")
        if not number:
            continue
        phone = by_number.setdefault(number, {"number": number, "lead_id": None, "name": "", "texts": []})
        phone["texts"].append(text)
    for phone in by_number.values():
        phone["opted_out"] = phone["number"] in opted_out
    return list(by_number.values())


def _ts_key(ts: str) -> tuple[int, int]:
    seconds, _, micros = str(ts).partition(".")
    return int(seconds or 0), int(micros or 0)


def _text(data: dict[str, Any], key: str, limit: int) -> str:
    value = data.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise PageError(f"{key}: must be text")
    if len(value) > limit:
        raise PageError(f"{key}: longer than {limit} characters")
    return value


def _number(data: dict[str, Any], key: str) -> int:
    value = data.get(key)
    if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, str) and value.isdigit())):
        raise PageError(f"{key} must be a number")
    return int(value)


def _required(data: dict[str, Any], key: str) -> str:
    value = _text(data, key, 500).strip()
    if not value:
        raise PageError(f"{key} is required")
    return value


def _values(data: dict[str, Any]) -> dict[str, Any]:
    values = data.get("values") or {}
    if not isinstance(values, dict) or not all(isinstance(v, dict) for v in values.values()):
        raise PageError("values: {block_id: {action_id: {type, value...}}}")
    return values


def _bot_error(answer: BotAnswer) -> str:
    body = answer.body
    if answer.status == 404:
        return "The bot has no listener for this (HTTP 404): Slack would show the user an error."
    if isinstance(body, dict):
        return str(body.get("error") or body.get("reasons") or body)
    return f"The bot answered HTTP {answer.status}: {str(body)[:300]}"


def _send_marker() -> str | None:
    """What a team member starts a thread message with to send it to the lead (the Slack side defines it)."""
    try:
        from bot.slack.command_text import SEND_MARKER
    except ImportError:
        return None
    return SEND_MARKER
