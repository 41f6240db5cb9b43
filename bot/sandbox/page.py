"""The sandbox page's routes: the page itself, a state snapshot, live updates (SSE), and a person's actions.

Each action route takes what the person did as JSON and hands it to `PersonActions`, which sends
the bot what the vendor would. `/sandbox/slack/respond/{token}` stands in for Slack's response_url.

The snapshot is of one channel (one clinic's: `?channel=`), as Slack shows one channel at a time;
the leads' side (phones, inboxes, the forms, the calendars) shows every clinic, each thing marked
with the clinic it came from or goes to.
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

from bot.core.business import Business
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
        channel = request.query_params.get("channel") or ""
        snapshot = await run_in_threadpool(self.snapshot, user, channel)
        return JSONResponse(snapshot, headers={"Cache-Control": "no-store"})

    async def file(self, request: Request) -> Response:
        """A file the bot shared in a clinic's channel (the digest's chart, a lead's photo), as Slack shows it."""
        found = next(
            (
                shared
                for channel in self.sandbox.channel_names
                if (shared := self.sandbox.slack.shared_file(request.path_params["file_id"], channel)) is not None
            ),
            None,
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

    def clinic_of_channel(self, channel: str) -> Business | None:
        return self.sandbox.services.businesses.by_channel(channel) if channel else None

    def channel_shown(self, user: str, channel: str) -> Business:
        """The clinic whose channel the page shows: the one asked for, else the person's first channel's."""
        clinics = self.sandbox.services.businesses
        found = self.clinic_of_channel(channel)
        if found is not None:
            return found
        member_of = self.sandbox.slack_members()
        return next((b for b in clinics if user in member_of.get(b.slack.channel, ())), next(iter(clinics)))

    def clinics(self) -> list[dict[str, Any]]:
        """Each clinic as the page lists it: its channel and members, number, addresses, hours and playbook."""
        sandbox = self.sandbox
        members = sandbox.slack_members()
        listed = []
        for business in sandbox.services.businesses:
            channel = business.slack.channel
            try:
                playbook = sandbox.services.playbooks_of(business.slug).get().label
            except Exception:  # noqa: BLE001 - a playbook that does not load: the page still lists the clinic
                playbook = business.sequence
            listed.append(
                {
                    "slug": business.slug,
                    "name": business.name,
                    "channel": {"id": channel, "name": sandbox.channel_names.get(channel)},
                    "members": sorted(members.get(channel, ())),
                    "phone": sandbox.actions.clinic_number(business),
                    "timezone": business.timezone.key,
                    "address": business.address,
                    "hours": business.send_window.describe(),
                    "email": business.email.from_address,
                    "inbound": business.email.inbound_address or business.email.reply_to,
                    "playbook": playbook,
                    "lead_route": f"/webhooks/leads/{business.slug}",
                }
            )
        return listed

    def snapshot(self, user: str, channel_id: str = "") -> dict[str, Any]:
        sandbox = self.sandbox
        world, slack = sandbox.world, sandbox.slack
        shown = self.channel_shown(user, channel_id)
        channel = shown.slack.channel
        with world.lock:
            version = world.version
            human = [dict(m) for m in world.human_messages if m.get("channel") == channel]
            notes = [dict(n) for n in world.private_notes if n.get("user") == user and n.get("channel") == channel]
            texts = [dict(t) for t in world.texts]
            emails = [dict(e) for e in world.emails]
            opted_out = set(world.opted_out)
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
        clinics = self.clinics()
        clock = sandbox.clock
        return {
            "version": version,
            "me": user,
            "team": [
                {"id": m.user_id, "name": m.name, "real_name": m.real_name, "role": m.role, "admin": m.admin}
                for m in sandbox.team
            ],
            "clinics": clinics,
            # The clinic whose channel is shown: its name, number, zone and addresses.
            "business": next(c for c in clinics if c["slug"] == shown.slug),
            "channel": {"id": channel, "name": sandbox.channel_names.get(channel, channel)},
            "messages": messages,
            "ephemerals": ephemerals,
            "modal": modal,
            "home": slack.home_views.get(user),
            "leads": leads,
            "phones": _phones(texts, leads, opted_out, clinics),
            "emails": emails,
            "clock": {
                "now": clock.now().timestamp(),
                "scale": sandbox.speed,
                "speed": next((name for name, scale in SPEEDS.items() if scale == sandbox.speed), None),
                "timezone": shown.timezone.key,
                "next_due": self._next_due(),
            },
            "calendar": sandbox.calendar.bookings(),
            "missing": list(sandbox.missing),
            "notices": list(sandbox.notices),
            "send_marker": _send_marker(),
        }

    def _leads(self) -> list[dict[str, Any]]:
        with self.sandbox.services.session_factory() as session:
            rows = session.scalars(select(Lead).order_by(Lead.id.desc()).limit(200)).all()
            return [
                {
                    "id": lead.id,
                    "clinic": lead.business,
                    "name": lead.name,
                    "phone": lead.phone,
                    "email": lead.email,
                    "stage": lead.stage,
                    "owner": lead.owner,
                    "opted_out": lead.sms_opted_out_at is not None,
                }
                for lead in rows
            ]

    def _step_label(self, business: str, sequence: str, step_id: str) -> str:
        try:
            playbook = self.sandbox.services.playbooks_of(business).get(sequence)
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
                select(Touch.step_id, Touch.channel, Lead.id, Lead.name, Lead.business, Enrollment.sequence_name)
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
            "step": self._step_label(row.business, row.sequence_name, row.step_id) if row else None,
            "channel": row.channel if row else None,
            "lead_id": row.id if row else None,
            "lead_name": row.name if row else None,
            "clinic": self._clinic_name(row.business) if row else None,
        }

    def _clinic_name(self, slug: str) -> str:
        business = self.sandbox.services.businesses.by_slug(slug)
        return business.name if business is not None else slug

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
        """Book, move, cancel or mark a no-show on the lead's clinic's calendar (its Calendly's signed webhooks)."""
        desk = self.sandbox.calendar
        what = _required(data, "action")
        try:
            if what == "book":
                lead_id = _number(data, "lead_id")
                return desk.book(lead_id, self._visit_time(data, desk.clinic_of(lead_id)))
            if what == "move":
                appointment_id = _number(data, "appointment_id")
                return desk.move(appointment_id, self._visit_time(data, desk.clinic_of_booking(appointment_id)))
            if what == "cancel":
                return desk.cancel(_number(data, "appointment_id"))
            if what == "no_show":
                return desk.no_show(_number(data, "appointment_id"))
        except CalendarRefused as refused:
            raise PageError(str(refused)) from refused
        raise PageError(f"unknown calendar action {what!r}: book, move, cancel or no_show")

    def _visit_time(self, data: dict[str, Any], business: Business) -> datetime:
        """The date and time picked on the calendar, read in its clinic's time zone."""
        try:
            day = date.fromisoformat(_required(data, "date"))
            clock = time.fromisoformat(_required(data, "time"))
        except ValueError as error:
            raise PageError("pick a date (YYYY-MM-DD) and a time (HH:MM)") from error
        return datetime.combine(day, clock, tzinfo=business.timezone).astimezone(UTC)

    def new_lead(self, data: dict[str, Any]) -> BotAnswer:
        fields = {
            key: _text(data, key, 5000)
            for key in ("name", "phone", "email", "message", "source", "consent", "consent_text")
        }
        return self.sandbox.actions.submit_lead(
            {k: v for k, v in fields.items() if v}, clinic=_text(data, "clinic", 100) or None
        )

    def sms(self, data: dict[str, Any]) -> BotAnswer:
        return self.sandbox.actions.text_from_lead(
            _required(data, "number"), _text(data, "body", 1600), to=_text(data, "to", 40) or None
        )

    def email(self, data: dict[str, Any]) -> BotAnswer:
        in_reply_to = data.get("in_reply_to")
        return self.sandbox.actions.email_from_lead(
            _required(data, "from"),
            _text(data, "subject", 500),
            _text(data, "text", 20000),
            sender_name=_text(data, "from_name", 200),
            in_reply_to=int(in_reply_to) if isinstance(in_reply_to, int) else None,
            clinic=_text(data, "clinic", 100) or None,
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
        channel = _text(data, "channel", 40)
        if channel and self.clinic_of_channel(channel) is None:
            raise PageError(f"{channel} is no clinic's channel")
        user = _required(data, "user")
        return self.sandbox.actions.slash_command(
            user, _text(data, "text", 2000), channel=self.channel_shown(user, channel).slack.channel
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


def _phones(
    texts: list[dict[str, Any]],
    leads: list[dict[str, Any]],
    opted_out: set[tuple[str, str]],
    clinics: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """One phone per number, newest lead first, each with a conversation per clinic number it has heard from.

    A phone's messages app keeps a thread per sender: the same person can be a lead of two clinics, and
    each clinic's texts (and a STOP to it) stay in that clinic's conversation.
    """
    by_number = {c["phone"]: c for c in clinics}
    by_slug = {c["slug"]: c for c in clinics}
    phones: dict[str, dict[str, Any]] = {}

    def phone_of(number: str) -> dict[str, Any]:
        return phones.setdefault(
            number, {"number": number, "lead_id": None, "name": "", "leads": [], "conversations": {}}
        )

    def conversation(phone: dict[str, Any], clinic_number: str) -> dict[str, Any]:
        clinic = by_number.get(clinic_number) or {}
        return phone["conversations"].setdefault(
            clinic_number,
            {
                "clinic_number": clinic_number,
                "clinic": clinic.get("slug"),
                "clinic_name": clinic.get("name") or clinic_number,
                "texts": [],
            },
        )

    for lead in leads:
        if not lead["phone"]:
            continue
        phone = phone_of(lead["phone"])
        if phone["lead_id"] is None:
            phone.update(lead_id=lead["id"], name=lead["name"])
        phone["leads"].append({"id": lead["id"], "name": lead["name"], "clinic": lead["clinic"]})
        clinic = by_slug.get(lead["clinic"])
        if clinic is not None:
            conversation(phone, clinic["phone"])
    for text in texts:
        number = text.get("number")
        if not number:
            continue
        conversation(phone_of(number), str(text.get("clinic_number") or ""))["texts"].append(text)
    listed = []
    for phone in phones.values():
        conversations = list(phone["conversations"].values())
        for talk in conversations:
            talk["opted_out"] = (phone["number"], talk["clinic_number"]) in opted_out
        # The conversation with the newest text first, as a phone lists them.
        conversations.sort(key=lambda c: -max([t.get("at") or 0 for t in c["texts"]] or [0]))
        phone["conversations"] = conversations
        phone["opted_out"] = bool(conversations) and all(c["opted_out"] for c in conversations)
        listed.append(phone)
    return listed


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
