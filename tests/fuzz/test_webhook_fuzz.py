"""Every HTTP route, with its secrets unset and set: odd but signed payloads and impossible values get a 4xx.

The routes are read from the app itself (bot/web.py and handlers/calendar_webhooks.py), so a route
added later is fuzzed too. Signed requests are signed as the vendors sign them.
"""

from __future__ import annotations

import base64
import json
import random
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from starlette.routing import Route
from starlette.testclient import TestClient

from bot.app import build_services
from bot.core.business import SINGLE_BUSINESS_SLUG
from bot.settings import Settings
from bot.web import create_web_app
from handlers.calendar_webhooks import calcom_signature, calendly_signature
from tests.fakes import FakeEmailSender, FakeSmsSender
from tests.fuzz.conftest import FuzzedBot
from tests.fuzz.test_hostile_requests import (
    HOSTILE_TEXT,
    JSON_BODIES,
    ROUNDS,
    SEED,
    WRONG_TYPES,
    as_text_fields,
    check,
    form_body,
    hostile_fields,
    json_body,
)

PUBLIC = "https://followup.example.com"
BOOKING_TOKEN = "fuzz-booking-token"
CALENDLY_KEY = "fuzz-calendly-key"
CALCOM_SECRET = "fuzz-calcom-secret"
EVENT_KEY = ec.generate_private_key(ec.SECP256R1())
#: Dates no clinic books, and text that is not a date at all.
IMPOSSIBLE_STARTS: list[Any] = [
    "0001-01-01T00:00:00+05:00",
    "9999-12-31T23:00:00-05:00",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z",
    "1970-01-01T00:00:00Z",
    "2026-02-30T10:00:00Z",
    "2026-12-01T25:00:00Z",
    "2026-12-01T10:00:00+25:00",
    "2026-12-01",
    "+275760-09-13T00:00:00Z",
    "",
    " ",
    "NaN",
    1764080000,
    -1,
    1e308,
    None,
    True,
    [],
    {},
]


def _app_for(settings: Settings, engine, clock) -> tuple[TestClient, FuzzedBot]:  # noqa: ANN001 - the engine fixture
    services = build_services(
        settings, engine=engine, clock=clock, sms=FakeSmsSender(), email=FakeEmailSender(), migrate=False
    )
    app = create_web_app(services, settings)
    client = TestClient(app, base_url=PUBLIC, raise_server_exceptions=True)
    return client, FuzzedBot(client, services, services.sms)


@pytest.fixture
def closed_bot(engine, clock, business_file: Path):
    """The web app as it starts with no secret set at all: the defaults."""
    settings = Settings(
        DATABASE_URL=str(engine.url), FOLLOWUP_BUSINESS=business_file, PUBLIC_BASE_URL=PUBLIC, _env_file=None
    )
    client, bot = _app_for(settings, engine, clock)
    with client:
        yield bot


@pytest.fixture
def signed_bot(engine, clock, business_file: Path):
    public = EVENT_KEY.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    settings = Settings(
        DATABASE_URL=str(engine.url),
        FOLLOWUP_BUSINESS=business_file,
        PUBLIC_BASE_URL=PUBLIC,
        BOOKING_WEBHOOK_TOKEN=BOOKING_TOKEN,
        CALENDLY_WEBHOOK_SIGNING_KEY=CALENDLY_KEY,
        CALCOM_WEBHOOK_SECRET=CALCOM_SECRET,
        SENDGRID_WEBHOOK_PUBLIC_KEY=base64.b64encode(public).decode(),
        _env_file=None,
    )
    client, bot = _app_for(settings, engine, clock)
    with client:
        yield bot


def every_route(bot: FuzzedBot) -> list[tuple[str, str]]:
    """(method, path) for each route the app serves, path parameters filled with a plausible token and the
    deployment's own business (a business's path must be as closed as the shared one)."""
    found = []
    for route in bot.client.app.routes:
        assert isinstance(route, Route)
        path = route.path.replace("{token}", "AbCdEfGh12345678").replace("{slug}", SINGLE_BUSINESS_SLUG)
        found.extend((method, path) for method in sorted(route.methods or ()))
    return found


def test_the_fuzz_reaches_every_route_the_app_serves(closed_bot):
    paths = {path for _method, path in every_route(closed_bot)}
    assert {
        "/webhooks/leads",
        "/webhooks/booking",
        "/webhooks/calendly",
        "/webhooks/calcom",
        "/webhooks/twilio/sms",
        "/webhooks/twilio/status",
        "/webhooks/twilio/voice",
        "/webhooks/sendgrid/inbound",
        "/webhooks/sendgrid/events",
        "/healthz",
    } <= paths


def test_with_no_secret_set_every_webhook_answers_503_with_a_reason_and_nothing_changes(closed_bot):
    chaos = random.Random(SEED)
    before = closed_bot.snapshot()
    for method, path in every_route(closed_bot):
        for _ in range(max(ROUNDS // 8, 3)):
            fields = as_text_fields(hostile_fields(chaos, ["name", "phone", "email", "start", "From", "Body", "event"]))
            if chaos.random() < 0.5:
                answer = closed_bot.client.request(
                    method,
                    path,
                    content=form_body(fields),
                    headers={"Content-Type": "application/x-www-form-urlencoded"},
                )
            else:
                answer = closed_bot.client.request(
                    method,
                    path,
                    headers={"Content-Type": "application/json"},
                    content=chaos.choice(JSON_BODIES + [json.dumps([fields]).encode()]),
                )
            if path.startswith("/webhooks/"):
                assert answer.status_code == 503 and answer.json()["error"], f"seed {SEED}: {path} is open"
            else:
                check(answer, f"{method} {path} with no secrets")
    assert closed_bot.snapshot() == before


def _booking(bot: FuzzedBot, start: Any, **fields: Any):
    return bot.client.post(
        "/webhooks/booking",
        content=json_body({"email": "dana@example.com", "start": start, **fields}),
        headers={"Authorization": f"Bearer {BOOKING_TOKEN}", "Content-Type": "application/json"},
    )


@pytest.mark.parametrize("start", IMPOSSIBLE_STARTS)
def test_a_booking_at_an_impossible_time_is_a_422_with_a_reason(signed_bot, start):
    before = signed_bot.snapshot()
    answer = _booking(signed_bot, start)
    assert answer.status_code == 422 and answer.json()["error"]
    assert signed_bot.snapshot() == before


@pytest.mark.parametrize("lead_id", [10**40, "9" * 40, -1, 0, "²", "1e5", 1.5, "", [], {}])
def test_a_booking_for_an_impossible_lead_id_is_a_422(signed_bot, lead_id):
    answer = signed_bot.client.post(
        "/webhooks/booking",
        content=json_body({"lead_id": lead_id, "start": "2026-12-01T10:00:00-06:00"}),
        headers={"Authorization": f"Bearer {BOOKING_TOKEN}", "Content-Type": "application/json"},
    )
    assert answer.status_code == 422 and answer.json()["error"]


def _calendly(bot: FuzzedBot, payload: Any, event: Any = "invitee.created"):
    body = json.dumps({"event": event, "payload": payload}).encode()
    return bot.client.post(
        "/webhooks/calendly",
        content=body,
        headers={
            "Content-Type": "application/json",
            "Calendly-Webhook-Signature": calendly_signature(CALENDLY_KEY, body, int(time.time())),
        },
    )


def _calcom(bot: FuzzedBot, payload: Any, trigger: Any = "BOOKING_CREATED"):
    body = json.dumps({"triggerEvent": trigger, "createdAt": "2026-11-25T15:00:00.000Z", "payload": payload}).encode()
    return bot.client.post(
        "/webhooks/calcom",
        content=body,
        headers={"Content-Type": "application/json", "X-Cal-Signature-256": calcom_signature(CALCOM_SECRET, body)},
    )


@pytest.mark.parametrize("start", IMPOSSIBLE_STARTS)
def test_a_signed_calendar_booking_at_an_impossible_time_never_fails_the_server(signed_bot, start):
    calendly = {
        "uri": "https://api.calendly.com/scheduled_events/E1/invitees/I1",
        "email": "sam@example.com",
        "name": "Sam Park",
        "scheduled_event": {"uri": "https://api.calendly.com/scheduled_events/E1", "start_time": start},
    }
    calcom = {"uid": "bk_1", "startTime": start, "attendees": [{"email": "sam@example.com", "name": "Sam"}]}
    for answer, what in ((_calendly(signed_bot, calendly), "calendly"), (_calcom(signed_bot, calcom), "cal.com")):
        check(answer, f"{what} start {start!r}")
        assert answer.status_code in (200, 422) and answer.json()


def _shaped_like(chaos: random.Random, value: Any, depth: int = 0) -> Any:
    """The same shape as a real payload, with some values swapped for hostile text or wrong types."""
    if isinstance(value, dict):
        return {key: _shaped_like(chaos, item, depth + 1) for key, item in value.items()}
    if isinstance(value, list):
        return [_shaped_like(chaos, item, depth + 1) for item in value]
    if chaos.random() < 0.35:
        return chaos.choice(HOSTILE_TEXT) if chaos.random() < 0.5 else chaos.choice(WRONG_TYPES)
    return value


CALENDLY_SHAPE = {
    "uri": "https://api.calendly.com/scheduled_events/E1/invitees/I1",
    "email": "sam@example.com",
    "name": "Sam Park",
    "rescheduled": False,
    "old_invitee": None,
    "status": "active",
    "questions_and_answers": [{"question": "Mobile phone", "answer": "+1 312 555 0199"}],
    "no_show": {"uri": "https://api.calendly.com/invitee_no_shows/N1"},
    "scheduled_event": {
        "uri": "https://api.calendly.com/scheduled_events/E1",
        "start_time": "2026-11-30T21:00:00.000000Z",
    },
}
CALCOM_SHAPE = {
    "uid": "bk_1",
    "startTime": "2026-11-30T21:00:00.000Z",
    "rescheduleUid": None,
    "status": "ACCEPTED",
    "attendees": [{"email": "sam@example.com", "name": "Sam", "timeZone": "America/Chicago"}],
    "responses": {"phone": {"value": "+13125550199"}},
    "noShowHost": False,
}


def test_signed_calendar_payloads_with_odd_shapes_never_fail_the_server(signed_bot):
    chaos = random.Random(SEED)
    for _ in range(ROUNDS):
        event = chaos.choice(["invitee.created", "invitee.canceled", "invitee_no_show.created", 7, None, "x"])
        answer = _calendly(signed_bot, _shaped_like(chaos, CALENDLY_SHAPE), event)
        check(answer, f"signed calendly {event!r}")
        trigger = chaos.choice(
            ["BOOKING_CREATED", "BOOKING_RESCHEDULED", "BOOKING_CANCELLED", "BOOKING_NO_SHOW_UPDATED", [], "x"]
        )
        answer = _calcom(signed_bot, _shaped_like(chaos, CALCOM_SHAPE), trigger)
        check(answer, f"signed cal.com {trigger!r}")
    for body in (None, [], "text", 1, {"payload": []}):
        check(_calendly(signed_bot, body), f"calendly payload {body!r}")
        check(_calcom(signed_bot, body), f"cal.com payload {body!r}")


def _signed_events(bot: FuzzedBot, events: Any):
    body, stamp = json.dumps(events), str(int(time.time()))
    signature = base64.b64encode(EVENT_KEY.sign((stamp + body).encode(), ec.ECDSA(hashes.SHA256()))).decode()
    return bot.client.post(
        "/webhooks/sendgrid/events",
        content=body,
        headers={
            "Content-Type": "application/json",
            "X-Twilio-Email-Event-Webhook-Signature": signature,
            "X-Twilio-Email-Event-Webhook-Timestamp": stamp,
        },
    )


def test_signed_sendgrid_events_with_odd_values_never_fail_the_server(signed_bot, clock):
    chaos = random.Random(SEED)
    shape = {
        "email": "dana@example.com",
        "timestamp": int(clock.now().timestamp()),
        "event": "delivered",
        "sg_event_id": "ev-1",
        "sg_message_id": "abc.filter0001.1.0",
        "touch_id": "1",
        "lead_id": "1",
        "type": "bounce",
    }
    for round_ in range(ROUNDS):
        events = [{**_shaped_like(chaos, shape), "sg_event_id": f"ev-{round_}-{n}"} for n in range(3)]
        check(_signed_events(signed_bot, events), f"signed events {events!r:.300}")
    for body in (None, {}, "x", [1, 2], [[]], [{"timestamp": 10**30}], [{"timestamp": float("1e308")}]):
        answer = _signed_events(signed_bot, body)
        check(answer, f"signed events {body!r}")
