"""The real web app served by uvicorn on loopback, the real senders against local vendor stand-ins."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from starlette.testclient import TestClient

from bot.app import build_services
from bot.channels.sendgrid_email import SendGridEmailSender
from bot.channels.twilio_sms import TwilioSmsSender
from bot.settings import Settings
from bot.standins.sendgrid_api import SendGridApiStandin
from bot.standins.twilio_api import TwilioApiStandin
from bot.usecases.dispatch import Dispatcher
from bot.usecases.services import Services
from bot.web import create_web_app
from tests.support.ports import free_port

ACCOUNT_SID = "AC" + "0" * 32
AUTH_TOKEN = "twilio-test-auth-token"
SENDGRID_KEY = "SG.test-key"
CLINIC_NUMBER = "+13125550100"
LEAD_TOKEN = "lead-token-123"
BOOKING_TOKEN = "booking-token-456"
CALENDLY_KEY = "calendly-signing-key-789"
CALCOM_SECRET = "calcom-webhook-secret-012"
INBOUND_TOKEN = "inbound-parse-token-345"
#: The key SendGrid signs event posts with; its public half is SENDGRID_WEBHOOK_PUBLIC_KEY.
SENDGRID_EVENT_KEY = ec.generate_private_key(ec.SECP256R1())
SENDGRID_EVENT_PUBLIC_KEY = base64.b64encode(
    SENDGRID_EVENT_KEY.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
).decode()


def sendgrid_event_headers(
    body: str, timestamp: str, key: ec.EllipticCurvePrivateKey = SENDGRID_EVENT_KEY
) -> dict[str, str]:
    """The headers of a Signed Event Webhook post: ECDSA P-256 over timestamp + raw body, as SendGrid signs."""
    signature = base64.b64encode(key.sign((timestamp + body).encode(), ec.ECDSA(hashes.SHA256()))).decode()
    return {
        "Content-Type": "application/json",
        "X-Twilio-Email-Event-Webhook-Signature": signature,
        "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
    }


def post_sendgrid_events(http: httpx.Client, events: Any, *, timestamp: str | None = None) -> httpx.Response:
    """Post events to the bot as SendGrid's Signed Event Webhook does."""
    body = json.dumps(events)
    return http.post(
        "/webhooks/sendgrid/events",
        content=body,
        headers=sendgrid_event_headers(body, timestamp or str(int(time.time()))),
    )


def post_inbound_parse(
    http: httpx.Client, fields: dict[str, str], *, query: str | None = None, auth: tuple[str, str] | None = None
) -> httpx.Response:
    """Post an email to the bot as Inbound Parse does (multipart), with the token in the URL unless told otherwise."""
    path = "/webhooks/sendgrid/inbound" + (f"?token={INBOUND_TOKEN}" if query is None else query)
    return http.post(path, files={k: (None, v) for k, v in fields.items()}, auth=auth)


@pytest.fixture
def twilio():
    with TwilioApiStandin(ACCOUNT_SID, AUTH_TOKEN) as standin:
        yield standin


@pytest.fixture
def sendgrid():
    with SendGridApiStandin(SENDGRID_KEY) as standin:
        yield standin


class RunningBot:
    """The bot's HTTP app on a real port, with the dispatcher run inline whenever it is woken."""

    def __init__(self, services, settings, url: str, app=None):
        self.services = services
        self.app = app
        self.settings = settings
        self.url = url
        self.http = httpx.Client(base_url=url, timeout=10)

    def dispatch(self):
        return Dispatcher(self.services).run_due()

    def with_settings(self, **changes) -> TestClient:
        """The same bot's routes built with some settings changed (settings are read once, when the app is built)."""
        return TestClient(create_web_app(self.services, self.settings.model_copy(update=changes)))

    def restarted_with(self, **changes) -> TestClient:
        """The same bot restarted with some settings changed: its services (the businesses' keys) read them anew."""
        settings = self.settings.model_copy(update=changes)
        services = build_services(
            settings,
            engine=self.services.session_factory.kw["bind"],
            clock=self.services.clock,
            sms=self.services.sms,
            email=self.services.email,
            migrate=False,
        )
        return TestClient(create_web_app(services, settings))


@pytest.fixture
def bot_settings(tmp_path: Path, business_file: Path, database_url: str, twilio, sendgrid) -> Settings:
    port = free_port()
    return Settings(
        DATABASE_URL=database_url,
        FOLLOWUP_BUSINESS=business_file,
        PORT=port,
        PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
        LEAD_WEBHOOK_TOKEN=LEAD_TOKEN,
        BOOKING_WEBHOOK_TOKEN=BOOKING_TOKEN,
        CALENDLY_WEBHOOK_SIGNING_KEY=CALENDLY_KEY,
        CALCOM_WEBHOOK_SECRET=CALCOM_SECRET,
        SENDGRID_INBOUND_TOKEN=INBOUND_TOKEN,
        SENDGRID_WEBHOOK_PUBLIC_KEY=SENDGRID_EVENT_PUBLIC_KEY,
        TWILIO_ACCOUNT_SID=ACCOUNT_SID,
        TWILIO_AUTH_TOKEN=AUTH_TOKEN,
        TWILIO_FROM_NUMBER=CLINIC_NUMBER,
        TWILIO_API_URL=twilio.url,
        SENDGRID_API_KEY=SENDGRID_KEY,
        SENDGRID_FROM_EMAIL="hello@lakeside.example",
        SENDGRID_REPLY_TO="reply@inbound.lakeside.example",
        SENDGRID_API_URL=sendgrid.url,
    )


@pytest.fixture
def running_bot(bot_settings: Settings, engine, clock, twilio, sendgrid):
    sms = TwilioSmsSender(ACCOUNT_SID, AUTH_TOKEN, from_number=CLINIC_NUMBER, api_url=twilio.url, timeout=1.0)
    email = SendGridEmailSender(
        SENDGRID_KEY,
        "hello@lakeside.example",
        "Lakeside Chiropractic",
        "reply@inbound.lakeside.example",
        api_url=sendgrid.url,
        timeout=1.0,
    )
    services = build_services(bot_settings, engine=engine, clock=clock, sms=sms, email=email, migrate=False)
    with serving(services, bot_settings) as bot:
        yield bot


@contextmanager
def serving(services: Services, settings: Settings) -> Iterator[RunningBot]:
    """The bot's web app for these services on the settings' port, served by uvicorn until the block ends."""
    services.wakeups.connect(dispatcher=lambda: Dispatcher(services).run_due())
    app = create_web_app(services, settings)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=settings.port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    bot = RunningBot(services, settings, settings.public_base_url, app)
    try:
        yield bot
    finally:
        bot.http.close()
        server.should_exit = True
        thread.join(timeout=10)
