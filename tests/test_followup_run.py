"""`followup run` as users start it: a real process that migrates, serves, and texts a new lead."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from bot.standins.sendgrid_api import SendGridApiStandin
from bot.standins.slack_api import SlackApiStandin
from bot.standins.twilio_api import TwilioApiStandin
from tests.fakes import WEB_FORM_CONSENT
from tests.support.ports import free_port
from tests.support.processes import wait_healthy

ACCOUNT_SID = "AC" + "1" * 32
AUTH_TOKEN = "run-test-token"


@pytest.fixture
def run_process(tmp_path: Path, business_file: Path, database_url: str):
    port = free_port()
    with TwilioApiStandin(ACCOUNT_SID, AUTH_TOKEN) as twilio, SendGridApiStandin("SG.key") as sendgrid:
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "FOLLOWUP_BUSINESS": str(business_file),
            "PORT": str(port),
            "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
            "LEAD_WEBHOOK_TOKEN": "lead-token",
            "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "TWILIO_FROM_NUMBER": "+13125550100",
            "TWILIO_API_URL": twilio.url,
            "SENDGRID_API_KEY": "SG.key",
            "SENDGRID_FROM_EMAIL": "hello@lakeside.example",
            "SENDGRID_API_URL": sendgrid.url,
            # A Tuesday morning in Chicago, whatever the hour here: texts may go out at once.
            "FOLLOWUP_CLOCK_START": "2026-12-01T09:00:00-06:00",
        }
        process = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "run"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            wait_healthy(url, process)
            yield url, twilio, process
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()


def test_followup_run_serves_and_texts_a_new_lead_within_a_second(run_process):
    url, twilio, process = run_process
    answer = httpx.post(
        f"{url}/webhooks/leads",
        json={"name": "Dana Lee", "phone": "+13125550142", **WEB_FORM_CONSENT},
        headers={"Authorization": "Bearer lead-token"},
        timeout=5,
    )
    assert answer.status_code == 201
    deadline = time.monotonic() + 5
    while not twilio.messages and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [m["to"] for m in twilio.messages] == ["+13125550142"]


def test_followup_run_stops_cleanly_on_sigterm(run_process):
    _url, _twilio, process = run_process
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=15)
    # uvicorn finishes the shutdown, then re-raises the signal so the exit status tells a supervisor why.
    assert process.returncode in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in output


def test_followup_run_names_each_route_closed_for_want_of_its_secret(run_process):
    url, _twilio, process = run_process
    answer = httpx.post(
        f"{url}/webhooks/sendgrid/events", json=[{"event": "unsubscribe", "email": "a@b.example"}], timeout=5
    )
    assert answer.status_code == 503 and "SENDGRID_WEBHOOK_PUBLIC_KEY" in answer.json()["error"]
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=15)
    closed = [line for line in output.splitlines() if " is closed" in line]
    # Lead intake and Twilio have their secrets here; everything else is named once, with the setting that opens it.
    for setting in (
        "BOOKING_WEBHOOK_TOKEN",
        "CALENDLY_WEBHOOK_SIGNING_KEY",
        "CALCOM_WEBHOOK_SECRET",
        "SENDGRID_INBOUND_TOKEN",
        "SENDGRID_WEBHOOK_PUBLIC_KEY",
        "SLACK_SIGNING_SECRET",
    ):
        assert sum(setting in line for line in closed) == 1, (setting, closed)
    assert not any("LEAD_WEBHOOK_TOKEN" in line or "TWILIO_AUTH_TOKEN" in line for line in closed)


def test_sigterm_stops_followup_run_with_a_slack_backlog_and_the_backlog_stays_queued(
    tmp_path: Path, business_file: Path, database_url: str
):
    """With cards queued behind Slack's pace (one post a second) and a post under way, SIGTERM still
    stops the process within 5 s (it once took 43 s), and what was not posted waits in the database."""
    port = free_port()
    with TwilioApiStandin(ACCOUNT_SID, AUTH_TOKEN) as twilio, SlackApiStandin("xoxb-run") as slack:
        slack.fail_next("chat.postMessage", delay=1.5, times=1000)  # a slow Slack: a post is under way
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "FOLLOWUP_BUSINESS": str(business_file),
            "PORT": str(port),
            "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
            "LEAD_WEBHOOK_TOKEN": "lead-token",
            "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "TWILIO_FROM_NUMBER": "+13125550100",
            "TWILIO_API_URL": twilio.url,
            "SLACK_BOT_TOKEN": "xoxb-run",
            "SLACK_LEADS_CHANNEL": "C0LEADS",
            "SLACK_API_URL": slack.url + "/api/",
            "FOLLOWUP_CLOCK_START": "2026-12-01T09:00:00-06:00",
        }
        process = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "run"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            wait_healthy(url, process)
            with httpx.Client(headers={"Authorization": "Bearer lead-token"}, timeout=10) as http:
                for n in range(30):
                    answer = http.post(
                        f"{url}/webhooks/leads",
                        json={"name": f"Lead {n}", "phone": f"+1312555{n + 200:04d}", **WEB_FORM_CONSENT},
                    )
                    assert answer.status_code == 201
            slack.wait_for_requests("chat.postMessage", 1, timeout=10)

            process.send_signal(signal.SIGTERM)
            output, _ = process.communicate(timeout=5)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()

    assert process.returncode in (0, -signal.SIGTERM), output
    assert "Application shutdown complete" in output
    assert "maximum number of running instances" not in output
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            cards = connection.execute(
                text("SELECT COUNT(*), COUNT(delivered_at) FROM outbox WHERE kind = 'lead_created'")
            ).one()
            posted = connection.scalar(text("SELECT COUNT(*) FROM leads WHERE slack_ts IS NOT NULL"))
    finally:
        engine.dispose()
    queued, delivered = cards
    assert queued == 30 and delivered < 30 and posted == delivered
