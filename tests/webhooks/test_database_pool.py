"""The HTTP routes have database connections of their own, and say "busy, retry" instead of stalling."""

from __future__ import annotations

from contextlib import ExitStack

from sqlalchemy import text
from twilio.request_validator import RequestValidator

from bot.store.db import WEB_CONNECTIONS
from tests.fakes import WEB_FORM_CONSENT
from tests.webhooks.conftest import AUTH_TOKEN, LEAD_TOKEN


def hold_every_connection(stack: ExitStack, engine) -> int:  # noqa: ANN001 - the engine fixture
    """Check out connections until the pool has none left (as a dispatcher under load would)."""
    pool = engine.pool
    held = 0
    while held < pool.size() + engine.pool._max_overflow:  # noqa: SLF001 - the pool's own limit
        connection = stack.enter_context(engine.connect())
        connection.execute(text("SELECT 1"))
        held += 1
    return held


def status_callback(bot):
    url = f"{bot.url}/webhooks/twilio/status"
    params = {"MessageSid": "SM" + "0" * 32, "MessageStatus": "delivered"}
    signature = RequestValidator(AUTH_TOKEN).compute_signature(url, params)
    return bot.http.post("/webhooks/twilio/status", data=params, headers={"X-Twilio-Signature": signature})


def test_a_webhook_is_answered_while_the_dispatchers_pool_is_exhausted(running_bot):
    with ExitStack() as stack:
        assert hold_every_connection(stack, running_bot.services.session_factory.kw["bind"]) > WEB_CONNECTIONS
        assert status_callback(running_bot).status_code == 204
        assert running_bot.http.get("/healthz").status_code == 200


def test_with_the_web_pool_exhausted_a_request_gets_503_and_retry_after_and_nothing_is_stored(running_bot):
    with ExitStack() as stack:
        hold_every_connection(stack, running_bot.app.state.web_engine)
        answer = running_bot.http.post(
            "/webhooks/leads",
            json={"name": "Dana Lee", "phone": "+13125550142", **WEB_FORM_CONSENT},
            headers={"Authorization": f"Bearer {LEAD_TOKEN}"},
        )
        assert answer.status_code == 503 and answer.headers["Retry-After"] == "1" and answer.json()["error"]
    answer = running_bot.http.post(
        "/webhooks/leads",
        json={"name": "Dana Lee", "phone": "+13125550142", **WEB_FORM_CONSENT},
        headers={"Authorization": f"Bearer {LEAD_TOKEN}"},
    )
    assert answer.status_code == 201
