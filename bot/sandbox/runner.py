"""Start the stand-ins, point the real bot at them, run it in this process, and serve the page.

Nothing in the bot knows it is in a sandbox: it gets ordinary settings (tokens, signing secrets,
base URLs) and a folder of business files (FOLLOWUP_BUSINESSES) that happen to name local stand-ins,
and it is composed from the same pieces as `followup run`. The sandbox adds only what the vendors
would do on their side (deliver texts and post status callbacks, send Inbound Parse and Slack
requests for the people on the page) and the clock control.

It runs two clinics, as an agency's deployment does (bot/sandbox/clinics/): a chiropractic practice
and a dental practice, each with its own Slack channel, Twilio number, inbound email address and
lead-form token, so the page shows one clinic's leads never reaching the other's channel, number or
inbox. With a business.yml of your own (FOLLOWUP_BUSINESS, or one in the working directory) it runs
that one clinic instead, as `followup run` would.
"""

from __future__ import annotations

import base64
import functools
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
import uuid
import webbrowser
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from bot.app import assemble, load_businesses, request_limits
from bot.core.business import Business, load_business
from bot.core.businesses import Businesses
from bot.core.clock import ScaledClock, utc
from bot.core.send_times import NoSendTime, may_send_at, next_send_time
from bot.request_limits import RefusalLog, uvicorn_options
from bot.sandbox.actions import PersonActions
from bot.sandbox.calendar import CalendlyDesk
from bot.sandbox.world import SINGLE_CLINIC, World
from bot.settings import Settings
from bot.standins.sendgrid_api import SendGridApiStandin
from bot.standins.server import RecordedRequest
from bot.standins.slack_api import SlackApiStandin
from bot.standins.twilio_api import TwilioApiStandin
from bot.store.models import Lead
from bot.usecases.dispatch import Dispatcher
from bot.usecases.services import Services

log = logging.getLogger(__name__)

DATABASE_FILE = "followup-sandbox.db"
STATE_FILE = "followup-sandbox.json"
#: The sandbox's two clinics, one business file each (FOLLOWUP_BUSINESSES).
CLINICS = Path(__file__).parent / "clinics"
#: Their slugs: the chiropractic practice (the page starts on it) and the dental practice.
CHIROPRACTIC = "lakeside-chiro"
DENTAL = "summit-dental"

# Made-up credentials: the stand-ins check them exactly as the vendors check real ones. The clinics'
# own secrets (lead tokens, calendar keys) are in their business files; the ones below are the single
# business.yml's (a sandbox of your own clinic), which takes them from settings.
TWILIO_ACCOUNT_SID = "AC" + "5a4d" * 8
TWILIO_AUTH_TOKEN = "sandbox-twilio-auth-token"
SENDGRID_API_KEY = "SG.sandbox.api-key"
SLACK_BOT_TOKEN = "xoxb-sandbox-bot-token"
SLACK_SIGNING_SECRET = "sandbox-slack-signing-secret"
LEAD_WEBHOOK_TOKEN = "sandbox-lead-token"
BOOKING_WEBHOOK_TOKEN = "sandbox-booking-token"
CALENDLY_SIGNING_KEY = "sandbox-calendly-signing-key"
CALCOM_WEBHOOK_SECRET = "sandbox-calcom-webhook-secret"
SENDGRID_INBOUND_TOKEN = "sandbox-inbound-token"
#: One business.yml's leads channel (a sandbox of your own clinic).
LEADS_CHANNEL = "C0SANDLEADS"
FROM_EMAIL = "frontdesk@clinic.sandbox.example"
REPLY_TO_EMAIL = "replies@clinic.sandbox.example"
#: How long after Twilio accepts a text the handset has it (the status callbacks follow).
DELIVERY_DELAY = 0.3
#: Real seconds between two hops of simulated time when the clock runs fast.
FAST_FORWARD_TICK = 0.05
#: Real seconds a due touch may hold time still while the dispatcher takes it.
STALL_LIMIT = 1.0


@dataclass(frozen=True)
class TeamMember:
    """A made-up person in the sandbox's Slack workspace (the agency's), in the channels of their clinics."""

    user_id: str
    name: str
    real_name: str
    role: str
    admin: bool = False
    #: The slugs of the clinics whose channels they are in; empty: every clinic's (the agency's people).
    clinics: tuple[str, ...] = ()
    tz: str = "America/Chicago"
    tz_offset: int = -21600


TEAM = (
    TeamMember("U0SANDDANA", "dana", "Dana Whitfield", "Front desk, Lakeside", clinics=(CHIROPRACTIC,)),
    TeamMember("U0SANDSAM", "sam", "Sam Okafor", "Chiropractor, Lakeside", clinics=(CHIROPRACTIC,)),
    TeamMember("U0SANDALEX", "alex", "Alex Rivera", "Agency owner (admin)", admin=True),
    TeamMember(
        "U0SANDMEI",
        "mei",
        "Mei Chen",
        "Front desk, Summit Dental",
        clinics=(DENTAL,),
        tz="America/Denver",
        tz_offset=-25200,
    ),
    TeamMember(
        "U0SANDLUIS",
        "luis",
        "Luis Romero",
        "Dentist, Summit Dental",
        clinics=(DENTAL,),
        tz="America/Denver",
        tz_offset=-25200,
    ),
)


def team_for(businesses: Businesses, team: tuple[TeamMember, ...]) -> tuple[TeamMember, ...]:
    """The people of these clinics: each member of a clinic that runs, and the agency's.

    One business.yml (a sandbox of your own clinic) has the chiropractic team: the clinic the
    sandbox used to be.
    """
    slugs = set(businesses.slugs)
    if businesses.only is not None and businesses.only.slug == SINGLE_CLINIC:
        slugs = {CHIROPRACTIC}
    return tuple(m for m in team if not m.clinics or slugs.intersection(m.clinics))


def channels_of(member: TeamMember, businesses: Businesses) -> list[str]:
    """The clinics' channels this person is in."""
    if businesses.only is not None:
        return [businesses.only.slack.channel]
    return [b.slack.channel for b in businesses if not member.clinics or b.slug in member.clinics]


def channel_name(business: Business) -> str:
    """What Slack calls a clinic's channel: #leads for one business.yml, #<slug>-leads for each of several."""
    return "leads" if business.slug == SINGLE_CLINIC else f"{business.slug}-leads"


@functools.cache
def sendgrid_event_key() -> Any:
    """The sandbox's SendGrid signs its Event Webhook posts as the real one does (ECDSA P-256), with this key."""
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def sendgrid_event_public_key() -> str:
    from cryptography.hazmat.primitives import serialization

    public = (
        sendgrid_event_key()
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return base64.b64encode(public).decode()


def signed_sendgrid_events(events: list[dict[str, Any]]) -> tuple[str, dict[str, str]]:
    """The body and headers of a Signed Event Webhook post."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    body, timestamp = json.dumps(events), str(int(time.time()))
    signature = sendgrid_event_key().sign((timestamp + body).encode(), ec.ECDSA(hashes.SHA256()))
    return body, {
        "Content-Type": "application/json",
        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
        "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
    }


def sandbox_settings(
    *,
    directory: Path,
    public_base_url: str,
    twilio_url: str,
    sendgrid_url: str,
    slack_url: str,
    business_path: Path | None = None,
    businesses_dir: Path | None = None,
    team: tuple[TeamMember, ...] = TEAM,
    from_number: str | None = None,
) -> Settings:
    """Settings that point the bot at the stand-ins; every vendor setting is given, so none comes from .env.

    With `businesses_dir` (the sandbox's two clinics) each clinic's channel, number, addresses and
    secrets are in its business file, and the single-business settings are left empty.
    """
    values: dict[str, Any] = {
        "DATABASE_URL": f"sqlite:///{(directory / DATABASE_FILE).resolve()}",
        "PUBLIC_BASE_URL": public_base_url,
        "FOLLOWUP_TIME_SCALE": 1.0,
        "FOLLOWUP_POLL_SECONDS": 0.25,
        "LEAD_WEBHOOK_TOKEN": LEAD_WEBHOOK_TOKEN,
        "BOOKING_WEBHOOK_TOKEN": BOOKING_WEBHOOK_TOKEN,
        "CALENDLY_WEBHOOK_SIGNING_KEY": CALENDLY_SIGNING_KEY,
        "CALCOM_WEBHOOK_SECRET": CALCOM_WEBHOOK_SECRET,
        "TWILIO_ACCOUNT_SID": TWILIO_ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": TWILIO_AUTH_TOKEN,
        "TWILIO_FROM_NUMBER": from_number,
        "TWILIO_MESSAGING_SERVICE_SID": None,
        "TWILIO_API_URL": twilio_url,
        "SENDGRID_API_KEY": SENDGRID_API_KEY,
        "SENDGRID_FROM_EMAIL": FROM_EMAIL,
        "SENDGRID_REPLY_TO": REPLY_TO_EMAIL,
        "SENDGRID_WEBHOOK_PUBLIC_KEY": sendgrid_event_public_key(),
        "SENDGRID_INBOUND_TOKEN": SENDGRID_INBOUND_TOKEN,
        "SENDGRID_API_URL": sendgrid_url,
        "SLACK_BOT_TOKEN": SLACK_BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SLACK_SIGNING_SECRET,
        "SLACK_APP_TOKEN": None,  # HTTP mode: the page posts Slack's requests to /slack/events
        "SLACK_LEADS_CHANNEL": LEADS_CHANNEL,
        "SLACK_ONCALL": team[0].user_id,
        "SLACK_ADMINS": ",".join(member.user_id for member in team if member.admin),
        "SLACK_API_URL": f"{slack_url}/api/",
    }
    if businesses_dir is not None:
        for alias in (
            "LEAD_WEBHOOK_TOKEN",
            "BOOKING_WEBHOOK_TOKEN",
            "CALENDLY_WEBHOOK_SIGNING_KEY",
            "CALCOM_WEBHOOK_SECRET",
            "TWILIO_FROM_NUMBER",
            "SENDGRID_FROM_EMAIL",
            "SENDGRID_REPLY_TO",
            "SLACK_LEADS_CHANNEL",
            "SLACK_ONCALL",
        ):
            values[alias] = None
        values["SLACK_ADMINS"] = ""
        values["FOLLOWUP_BUSINESSES"] = businesses_dir
    elif business_path is not None:
        values["FOLLOWUP_BUSINESS"] = business_path
    return Settings(**values)


def demo_start(now: datetime, services: Services) -> datetime:
    """When the sandbox's day starts: now if the first clinic may text now, else an hour after it next opens.

    A person trying the sandbox at night or on a Sunday should still see the first text go out. The
    first clinic (the chiropractic practice) is the one the page's new-lead form starts on.
    """
    business = next(iter(services.businesses))
    zones = (business.timezone.key,)
    if may_send_at(now, business=business, respect_lead_daytime=True, lead_timezones=zones):
        return now
    try:
        opening = next_send_time(now, business=business, respect_lead_daytime=True, lead_timezones=zones)
    except NoSendTime:
        return now
    later = opening + timedelta(hours=1)
    return later if may_send_at(later, business=business, respect_lead_daytime=True, lead_timezones=zones) else opening


def _shown_at(message: dict[str, Any]) -> float | None:
    """When what a bot post shows happened (its tag's `at`), in simulated epoch seconds.

    The poster may take a post out long after the event it shows (Slack's pace, a backlog): at a
    high clock speed a second's delay is hours of simulated time, so the time Slack took the post
    would stamp it late.
    """
    payload = (message.get("metadata") or {}).get("event_payload") or {}
    try:
        return datetime.fromisoformat(str(payload["at"])).timestamp() if payload.get("at") else None
    except ValueError:
        return None


class Sandbox:
    """The whole bot on one machine: stand-ins, the bot, the scheduler and the page, in one process.

    `start()` serves from a background thread (tests); `serve_forever()` serves in the calling
    thread until Ctrl-C or SIGTERM (the CLI).
    """

    def __init__(
        self,
        *,
        port: int = 3000,
        host: str = "127.0.0.1",
        directory: Path | str = ".",
        business_path: Path | None = None,
        businesses_dir: Path | None = None,
        start_at: datetime | None = None,
        team: tuple[TeamMember, ...] = TEAM,
    ):
        self.host = host
        self.requested_port = port
        self.directory = Path(directory)
        #: One business.yml (a sandbox of your own clinic), or else a folder of business files (the two clinics).
        self.business_path = business_path
        self.businesses_dir = None if business_path is not None else (businesses_dir or CLINICS)
        self.start_at = start_at
        self.team = team
        self.state_path = self.directory / STATE_FILE
        #: Pieces of the bot that could not be wired, each with the reason (shown on the page).
        self.missing: list[str] = []
        #: What a person starting the sandbox should know (an earlier sandbox set aside), shown on the page.
        self.notices: list[str] = []
        self.started_at = time.monotonic()
        self._socket: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._speed = 1.0
        self._forward: threading.Thread | None = None
        self._saver: threading.Thread | None = None
        self._saved_version = -1

    # -- lifecycle --------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._socket is None:
            raise RuntimeError("the sandbox is not started")
        return self._socket.getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def page_url(self) -> str:
        return f"{self.url}/sandbox"

    @property
    def stopping(self) -> threading.Event:
        return self._stopping

    def shutting_down(self) -> bool:
        """Whether the server is on its way down (live-update streams end at once, not after a timeout)."""
        return self._stopping.is_set() or bool(self._server and self._server.should_exit)

    def prepare(self) -> Sandbox:
        """Start the stand-ins and build the bot and the page (nothing served yet)."""
        try:
            return self._prepare()
        except BaseException:
            self.stop()  # whatever was started (stand-ins, the socket) stops with it
            raise

    def _prepare(self) -> Sandbox:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._socket = _listen(self.host, self.requested_port)
        clinics, from_number = self._clinics()
        self.team = team_for(clinics, self.team)
        self._set_aside_an_earlier_sandbox(clinics)
        self.world = World.load(self.state_path)
        if clinics.only is not None and from_number:
            self.world.single_clinic_number(from_number)
        self.world.clinics = list(clinics.slugs)

        self.twilio = TwilioApiStandin(TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN).start()
        self.sendgrid = SendGridApiStandin(SENDGRID_API_KEY, rate_limit_per_minute=None).start()
        self.channel_names = {b.slack.channel: channel_name(b) for b in clinics}
        self.slack = SlackApiStandin(SLACK_BOT_TOKEN, channels=dict(self.channel_names)).start()
        self._members: dict[str, tuple[str, ...]] = {}
        for member in self.team:
            self.slack.add_user(
                member.user_id,
                member.name,
                real_name=member.real_name,
                email=f"{member.name}@agency.sandbox.example",
                tz=member.tz,
                tz_offset=member.tz_offset,
            )
            for channel in channels_of(member, clinics):  # each clinic's team is its channel's members
                self.slack.join(channel, member.user_id)
                self._members[channel] = (*self._members.get(channel, ()), member.user_id)
        _restore_slack(self.slack, self.world)
        for number, clinic_number in self.world.opted_out:
            self.twilio.set_opted_out(number, clinic_number)

        self.settings = sandbox_settings(
            directory=self.directory,
            public_base_url=self.url,
            twilio_url=self.twilio.url,
            sendgrid_url=self.sendgrid.url,
            slack_url=self.slack.url,
            business_path=self.business_path,
            businesses_dir=self.businesses_dir,
            team=self.team,
            # One business.yml: the clinic's own number sends the texts, so the phone shows the number leads know.
            from_number=from_number,
        )

        self.clock = ScaledClock(1.0)
        # The same parts `followup run` runs, with the sandbox's clock so the page can speed it up.
        parts = assemble(self.settings, clock=self.clock)
        self.services, self.scheduler, self.app = parts.services, parts.scheduler, parts.app
        self._set_start_time()
        self.world.clock = lambda: self.clock.now().timestamp()
        if parts.poster is None:
            self.missing.append("Slack poster: not built (SLACK_BOT_TOKEN or a clinic's Slack channel missing)")
        if not any(getattr(route, "path", None) == "/slack/events" for route in self.app.routes):
            self.missing.append(
                "Slack listeners: no /slack/events route; buttons, modals, /followup and App Home get no answer"
            )

        self.actions = PersonActions(
            self.settings,
            businesses=self.services.businesses,
            slack=self.slack,
            twilio=self.twilio,
            world=self.world,
            team={m.user_id: m.real_name for m in self.team},
            bot_url=self.url,
            channel_names=self.channel_names,
            clinics_of_phone=self._clinics_of_phone,
        )
        self.calendar = CalendlyDesk(self.services, bot_url=self.url)
        self.twilio.on_request.append(self._on_twilio_request)
        self.sendgrid.on_request.append(self._on_sendgrid_request)
        self.slack.on_request.append(self._on_slack_request)

        from bot.sandbox.page import page_routes

        # The page's routes go in front of the bot's own; the bot's routes are untouched.
        self.app.router.routes[0:0] = page_routes(self)
        # The same HTTP edge limits as `followup run`: the sandbox serves the bot's real routes.
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=2,
            **uvicorn_options(request_limits(self.settings), RefusalLog()),
        )
        self._server = uvicorn.Server(config)
        return self

    def _clinics_of_phone(self, number: str) -> list[str]:
        with self.services.session_factory() as session:
            return list(session.scalars(select(Lead.business).where(Lead.phone == number).distinct()))

    def slack_members(self) -> dict[str, tuple[str, ...]]:
        """Who is in each clinic's channel (the sandbox put them there), by channel id."""
        return dict(self._members)

    def _clinics(self) -> tuple[Businesses, str | None]:
        """The clinics this sandbox runs, read as `followup run` reads them; and one business.yml's texting number."""
        probe = sandbox_settings(
            directory=self.directory,
            public_base_url=self.url,
            twilio_url="http://127.0.0.1:9",
            sendgrid_url="http://127.0.0.1:9",
            slack_url="http://127.0.0.1:9",
            business_path=self.business_path,
            businesses_dir=self.businesses_dir,
        )
        if probe.folder_mode:
            return load_businesses(probe), None
        phone = load_business(probe.business_path).phone
        return load_businesses(probe.model_copy(update={"twilio_from_number": phone})), phone

    def _set_aside_an_earlier_sandbox(self, clinics: Businesses) -> None:
        """Keep a sandbox saved here for other clinics (the one-clinic sandbox before this) aside, and start afresh.

        Its leads belong to a business this one does not run: the bot would refuse to act on them (and
        an older page file does not say which clinic texted which phone). Nothing is deleted.
        """
        database = self.directory / DATABASE_FILE
        saved = _saved_clinics(self.state_path, database)
        if saved is None or set(saved) <= set(clinics.slugs):
            return
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        kept = []
        companions = [database.with_name(database.name + suffix) for suffix in ("-wal", "-shm")]
        for path in (database, *companions, self.state_path):
            if path.exists():
                aside = path.with_name(f"{path.name}.set-aside-{stamp}")
                os.replace(path, aside)
                kept.append(aside.name)
        names = " and ".join(b.name for b in clinics)
        notice = (
            f"The sandbox saved in {self.directory} was for other clinics ({', '.join(saved)}); it is kept as "
            f"{', '.join(kept)}, and this one starts afresh with {names}."
        )
        log.warning("sandbox: %s", notice)
        self.notices.append(notice)

    def start(self) -> Sandbox:
        """Serve from a background thread; return once the page answers."""
        if self._server is None:
            self.prepare()
        assert self._server is not None and self._socket is not None
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, name="sandbox-http", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the sandbox's web server did not start")
            time.sleep(0.02)
        self._start_background_work()
        return self

    def serve_forever(self) -> None:
        """Serve in this thread until Ctrl-C or SIGTERM, then stop everything."""
        if self._server is None:
            self.prepare()
        assert self._server is not None and self._socket is not None
        self._start_background_work()
        try:
            self._server.run(sockets=[self._socket])
        finally:
            self.stop()

    def stop(self) -> None:
        """Stop serving, the scheduler and the stand-ins; save what the page shows."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=15)
        for thread in (self._saver, self._forward):
            if thread is not None:
                thread.join(timeout=5)
        if hasattr(self, "services"):
            self.save()
        for standin in ("twilio", "sendgrid", "slack"):
            if hasattr(self, standin):
                getattr(self, standin).stop()
        if self._socket is not None:
            self._socket.close()
        if hasattr(self, "services"):
            self.services.session_factory.kw["bind"].dispose()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- the clock --------------------------------------------------------------------------

    def _set_start_time(self) -> None:
        now = self.clock.now()
        if self.start_at is not None:
            target = self.start_at
        elif self.world.simulated_now is not None:
            target = datetime.fromtimestamp(self.world.simulated_now, UTC)  # time goes on where it stopped
        elif self.settings.clock_start is not None:
            target = self.settings.clock_start  # FOLLOWUP_CLOCK_START, as `followup run` takes it
        else:
            target = demo_start(now, self.services)
        self.clock.advance(target - now)

    @property
    def speed(self) -> float:
        """How many simulated seconds pass each real second."""
        return self._speed

    def set_speed(self, scale: float) -> None:
        """Run time at `scale`: real time moves the clock, and the hops of `_fast_forward` add the rest."""
        if scale <= 0:
            raise ValueError("speed must be positive")
        self._speed = float(scale)
        self.scheduler.wake()
        self.world.touch()

    def _fast_forward(self) -> None:
        """Move simulated time on in short hops, each stopping at the next due touch.

        A clock merely running fast would let a day pass between two scheduler ticks, and the bot
        would find its texts hours late (and skip them, as it must after an outage). Hopping to
        each due moment and waking the scheduler there keeps every touch on time at any speed.
        """
        stalled_since: float | None = None
        while not self._stopping.wait(FAST_FORWARD_TICK):
            if self._speed <= 1.0:
                stalled_since = None
                continue
            now = self.clock.now()
            due = self._next_due()
            if due is not None and due <= now:
                # Due and not yet taken: give the dispatcher a moment. A touch that cannot go
                # (retrying later, waiting behind another) must not stop time for ever.
                if stalled_since is None:
                    stalled_since = time.monotonic()
                    self.scheduler.wake()
                if time.monotonic() - stalled_since < STALL_LIMIT:
                    continue
                due = None
            stalled_since = None
            step = timedelta(seconds=(self._speed - 1.0) * FAST_FORWARD_TICK)
            if due is not None and due - now <= step:
                self.clock.advance(due - now + timedelta(milliseconds=1))
                self.scheduler.wake()
            else:
                self.clock.advance(step)

    def _next_due(self) -> datetime | None:
        try:
            due = Dispatcher(self.services).next_due_at()
        except SQLAlchemyError as error:
            log.warning("sandbox: could not read the next due touch: %s", error)
            return None
        return utc(due) if due is not None else None

    def skip(self, delta: timedelta) -> None:
        """Jump simulated time forward, then let the bot catch up at once."""
        if delta.total_seconds() > 0:
            self.clock.advance(delta)
        self.scheduler.wake()
        self.services.wake_poster()
        self.world.touch()

    # -- what the vendors do on their side --------------------------------------------------

    def _on_twilio_request(self, request: RecordedRequest) -> None:
        if request.route != "messages.create" or request.status != 201 or not isinstance(request.response, dict):
            if request.route == "messages.create" and isinstance(request.response, dict):
                form = request.data if isinstance(request.data, dict) else {}
                sender, service = _single(form.get("From")), _single(form.get("MessagingServiceSid"))
                self.world.add_text(
                    number=_single(form.get("To")),
                    clinic_number=self._clinic_number(sender, service),
                    direction="refused",
                    body=_single(form.get("Body")),
                    status=f"refused: {request.response.get('code')} {request.response.get('message')}",
                )
            return
        resource = request.response
        self.world.add_text(
            number=resource["to"],
            clinic_number=self._clinic_number(resource.get("from"), resource.get("messaging_service_sid")),
            direction="out",
            body=resource["body"],
            status=resource["status"],
            sid=resource["sid"],
        )
        threading.Thread(target=self._deliver, args=(resource["sid"],), name="sandbox-delivery", daemon=True).start()

    def _clinic_number(self, sender: str | None, service: str | None) -> str | None:
        """The number a lead's phone shows a text came from: the clinic's (through a messaging service, its own)."""
        businesses = self.services.businesses
        business = (businesses.by_sms_number(sender) if sender else None) or (
            businesses.by_messaging_service(service) if service else None
        )
        if business is None:
            return sender
        return business.sms.number or business.phone

    def _deliver(self, sid: str) -> None:
        """The carrier's part: sent, then delivered (or undelivered), each with Twilio's signed callback."""
        for status in ("sent", None):
            if self._stopping.wait(DELIVERY_DELAY / 2):
                return
            try:
                self.twilio.deliver_status(sid, status)
            except (ValueError, OSError) as error:
                log.warning("sandbox: status callback for %s failed: %s", sid, error)
                return
            message = self.twilio.message(sid)
            self.world.set_text_status(sid, message["status"], message.get("error_code"))

    def _on_sendgrid_request(self, request: RecordedRequest) -> None:
        if request.route != "mail.send" or request.status != 202:
            return
        accepted = next((e for e in reversed(self.sendgrid.emails) if e.received_at == request.received_at), None)
        if accepted is None:
            return
        sender = accepted.body.get("from", {})
        clinic = self._clinic_emailing(str(sender.get("email") or ""))
        for to in accepted.to:
            self.world.add_email(
                direction="out",
                clinic=clinic,
                to=[to],
                **{"from": sender.get("email")},
                from_name=sender.get("name"),
                subject=accepted.subject,
                text=accepted.text,
                html=accepted.html,
                reply_to=accepted.reply_to,
                message_id=accepted.message_id,
            )
        threading.Thread(target=self._email_events, args=(accepted,), name="sandbox-email-events", daemon=True).start()

    def _clinic_emailing(self, address: str) -> str | None:
        """The slug of the clinic whose from-address this is."""
        businesses = self.services.businesses
        if businesses.only is not None:
            return businesses.only.slug
        wanted = address.strip().lower()
        return next((b.slug for b in businesses if b.email.from_address.lower() == wanted), None)

    def _email_events(self, accepted: Any) -> None:
        """SendGrid's Event Webhook: processed, then delivered, with the send's custom_args flattened in."""
        for event in ("processed", "delivered"):
            if self._stopping.wait(DELIVERY_DELAY / 2):
                return
            events = [
                {
                    # Stamped by the sandbox's clock, which may run ahead of the wall's: SendGrid lives in its world.
                    "email": to,
                    "timestamp": int(self.clock.now().timestamp()),
                    "event": event,
                    "sg_event_id": uuid.uuid4().hex,
                    "sg_message_id": f"{accepted.message_id}.filterdrecv-sandbox.0",
                    "smtp-id": f"<{accepted.message_id}@sendgrid.sandbox>",
                    **dict(accepted.custom_args),
                }
                for to in accepted.to
            ]
            try:
                body, headers = signed_sendgrid_events(events)
                httpx.post(f"{self.url}/webhooks/sendgrid/events", content=body, headers=headers, timeout=5)
            except httpx.HTTPError as error:
                log.warning("sandbox: email event webhook failed: %s", error)
                return

    def _on_slack_request(self, request: RecordedRequest) -> None:
        if request.route == "chat.postMessage" and isinstance(request.response, dict) and request.response.get("ok"):
            self.world.note_posted(str(request.response["ts"]), _shown_at(request.response.get("message") or {}))
        if (
            request.route == "files.completeUploadExternal"
            and isinstance(request.response, dict)
            and request.response.get("ok")
        ):
            # The message sharing an upload (a digest chart, a lead's photo) shows the simulated
            # moment it was shared, like every other post, not the wall clock's.
            stored = self.slack.files
            for completed in request.response.get("files") or []:
                for share in (stored.get(str(completed.get("id"))) or {}).get("shares") or []:
                    self.world.note_posted(str(share["ts"]))
        if request.route in ("views.open", "views.push") and isinstance(request.response, dict):
            view = request.response.get("view") or {}
            arguments = request.data if isinstance(request.data, dict) else {}
            if request.response.get("ok") and view.get("id"):
                self.actions.note_view_opened(
                    _single(arguments.get("trigger_id") or request.query.get("trigger_id")), view["id"]
                )
        if request.route not in ("auth.test", "users.info", "conversations.info", "chat.getPermalink"):
            self.world.touch()

    # -- saving the page --------------------------------------------------------------------

    def save(self) -> None:
        with self.world.lock:
            self.world.slack_messages = {channel: self.slack.messages(channel) for channel in self.channel_names}
            self.world.slack_home_views = self.slack.home_views
            self.world.simulated_now = self.clock.now().timestamp()
        self.world.save(self.state_path)

    def _start_background_work(self) -> None:
        """Save the page's state every few seconds, and run the fast clock's hops."""

        def keep_saving() -> None:
            rounds = 0
            while not self._stopping.wait(2.0):
                rounds += 1
                if rounds % 30 == 0:  # the stand-ins record every request: a long session would keep them all
                    for standin in (self.twilio, self.sendgrid, self.slack):
                        standin.forget_requests()
                if self.world.version != self._saved_version:
                    self._saved_version = self.world.version
                    try:
                        self.save()
                    except OSError as error:
                        log.warning("sandbox: could not save %s: %s", self.state_path, error)

        self._saver = threading.Thread(target=keep_saving, name="sandbox-saver", daemon=True)
        self._saver.start()
        self._forward = threading.Thread(target=self._fast_forward, name="sandbox-fast-forward", daemon=True)
        self._forward.start()


def _restore_slack(slack: SlackApiStandin, world: World) -> None:
    """Put the saved channel back into the Slack stand-in so chat.update finds the cards it stored.

    The stand-in has no public way to be seeded, so this writes its store under its own lock.
    """
    if not world.slack_messages and not world.slack_home_views:
        return
    with slack._store_lock:  # noqa: SLF001 - see the docstring
        for channel, messages in world.slack_messages.items():
            slack._messages[channel] = [dict(m) for m in messages]  # noqa: SLF001 - the sandbox restores its own stand-in's saved state
        slack._home_views.update(world.slack_home_views)  # noqa: SLF001 - the sandbox restores its own stand-in's saved state
        newest = [m["ts"] for messages in world.slack_messages.values() for m in messages]
        if newest:
            seconds, _, micros = max(newest, key=lambda ts: tuple(map(int, ts.split(".")))).partition(".")
            slack._last_ts = max(slack._last_ts, int(seconds) * 1_000_000 + int(micros or 0))  # noqa: SLF001 - the sandbox restores its own stand-in's saved state


def _saved_clinics(state_path: Path, database: Path) -> list[str] | None:
    """The clinics a sandbox saved in this directory was for (None: nothing saved, or nothing that says).

    The page's file says (a version-1 file is one business.yml's); without it, the database's leads do
    (a database older than businesses, migration 0014, is one business.yml's too).
    """
    try:
        data = json.loads(state_path.read_text()) if state_path.exists() else None
    except (OSError, ValueError):
        data = None  # World.load sets an unreadable file aside itself
    if isinstance(data, dict) and data.get("version") == 1:
        return [SINGLE_CLINIC]
    if isinstance(data, dict) and isinstance(data.get("clinics"), list) and data["clinics"]:
        return [str(slug) for slug in data["clinics"]]
    if not database.exists():
        return None
    import sqlite3

    try:
        with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as connection:
            tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if "leads" not in tables:
                return None
            columns = {row[1] for row in connection.execute("PRAGMA table_info(leads)")}
            if "business" not in columns:
                has_leads = connection.execute("SELECT 1 FROM leads LIMIT 1").fetchone() is not None
                return [SINGLE_CLINIC] if has_leads else None
            found = [row[0] for row in connection.execute("SELECT DISTINCT business FROM leads")]
    except sqlite3.Error:
        return None
    return [str(slug) for slug in found] or None


def _single(value: Any) -> Any:
    return value[-1] if isinstance(value, list) else value


def _listen(host: str, port: int) -> socket.socket:
    """Bind the page's port first: the bot's PUBLIC_BASE_URL (and so Twilio's signatures) must name it."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError as error:
        listener.close()
        raise PortInUse(f"port {port} on {host} is taken ({error.strerror}); try --port {port + 1}") from error
    listener.listen(128)
    listener.set_inheritable(True)
    return listener


class PortInUse(Exception):
    """The page's port is taken by another program."""


def can_open_browser() -> bool:
    """A browser is opened only for a person at a terminal on a machine with a screen."""
    if not (sys.stdin and sys.stdin.isatty()):
        return False
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    try:
        browser = webbrowser.get()
    except webbrowser.Error:
        return False
    # Console browsers (lynx, w3m) would take over the terminal and block: only background ones.
    return not isinstance(browser, webbrowser.GenericBrowser) or isinstance(browser, webbrowser.BackgroundBrowser)


def own_business_file(settings: Settings) -> Path | None:
    """Your own business.yml, when you have one (FOLLOWUP_BUSINESS, or business.yml here): the sandbox runs it.

    Without one, the sandbox runs its two clinics (bot/sandbox/clinics/).
    """
    if "business_path" in settings.model_fields_set or Path("business.yml").exists():
        return Path(settings.business_path)
    return None


def run_sandbox(
    *, port: int = 3000, open_browser: bool = True, directory: Path | str = ".", business_path: Path | None = None
) -> int:
    """`followup sandbox`: print the URL, maybe open a browser, serve until interrupted."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if hasattr(signal, "SIGPIPE"):
        # A server, not a filter: a browser or client that hangs up must not end the process.
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    sandbox = Sandbox(port=port, directory=directory, business_path=business_path)
    try:
        sandbox.prepare()
    except PortInUse as error:
        print(f"followup sandbox: {error}", file=sys.stderr)
        return 1
    names = " and ".join(business.name for business in sandbox.services.businesses)
    print(f"followup sandbox: {names} on {sandbox.page_url}")
    print(f"  database {sandbox.directory / DATABASE_FILE}, page state {sandbox.state_path}; Ctrl-C stops")
    for notice in sandbox.notices:
        print(f"  {notice}")
    for problem in sandbox.missing:
        print(f"  not wired: {problem}")
    sys.stdout.flush()
    if open_browser and can_open_browser():
        threading.Thread(target=webbrowser.open, args=(sandbox.page_url,), daemon=True).start()
    if threading.current_thread() is threading.main_thread():
        # uvicorn stops gracefully on SIGTERM, then raises it again: make that a KeyboardInterrupt we expect.
        signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        sandbox.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0
