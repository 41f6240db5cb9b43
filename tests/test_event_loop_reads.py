"""No request reads a file on the event loop (issue #10): one slow disk would stall every webhook and Slack at once.

A real `followup run` is started with a Python audit hook (PEP 578) that writes a line to its output for
every file opened by a thread that is running an event loop (a probe at start shows it sees them). Each kind
of route is then called, and the output must hold no such line after startup. Opening Python modules is left
out: an import runs once per process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
from twilio.request_validator import RequestValidator

from bot.standins.sendgrid_api import SendGridApiStandin
from bot.standins.twilio_api import TwilioApiStandin
from tests.conftest import TEST_BUSINESS
from tests.fakes import WEB_FORM_CONSENT
from tests.support.ports import free_port
from tests.support.processes import REPO, stop, wait_healthy

ACCOUNT_SID = "AC" + "2" * 32
AUTH_TOKEN = "loop-test-token"
MARK = "FILE OPENED ON THE EVENT LOOP:"

#: `followup run` under an audit hook that reports files opened on the event loop's thread.
WATCHED_RUN = f"""
import asyncio, sys

def on_the_event_loop():
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True

def watch(event, args):
    if event == "open" and on_the_event_loop():
        path = str(args[0])
        if not path.endswith((".py", ".pyc", ".so")) and "__pycache__" not in path:
            sys.stdout.write("{MARK} " + path + "\\n")
            sys.stdout.flush()

sys.addaudithook(watch)

async def probe():  # proves the watch sees a file opened on a loop: its line comes before the server's
    open(sys.argv[1]).close()

asyncio.run(probe())
from bot.cli import main
sys.exit(main(["run"]))
"""


def test_no_route_opens_a_file_on_the_event_loop(tmp_path: Path):
    business = tmp_path / "business.yml"
    business.write_text(TEST_BUSINESS)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "run.log"
    with TwilioApiStandin(ACCOUNT_SID, AUTH_TOKEN) as twilio, SendGridApiStandin("SG.key") as sendgrid:
        env = {
            **os.environ,
            "DATABASE_URL": f"sqlite:///{tmp_path / 'followup.db'}",
            "FOLLOWUP_BUSINESS": str(business),
            "PORT": str(port),
            "PUBLIC_BASE_URL": url,
            "LEAD_WEBHOOK_TOKEN": "lead-token",
            "BOOKING_WEBHOOK_TOKEN": "booking-token",
            "SENDGRID_INBOUND_TOKEN": "inbound-token",
            "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "TWILIO_FROM_NUMBER": "+13125550100",
            "TWILIO_API_URL": twilio.url,
            "SENDGRID_API_KEY": "SG.key",
            "SENDGRID_FROM_EMAIL": "hello@lakeside.example",
            "SENDGRID_API_URL": sendgrid.url,
            "FOLLOWUP_CLOCK_START": "2026-12-01T09:00:00-06:00",
        }
        with log.open("w") as out:
            process = subprocess.Popen(
                [sys.executable, "-c", WATCHED_RUN, str(business)],
                cwd=REPO,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_healthy(url, process, log=log)
            started = len(log.read_text())
            with httpx.Client(base_url=url, timeout=10) as http:
                lead = {"name": "Dana Lee", "phone": "+13125550142", "email": "dana@example.com", **WEB_FORM_CONSENT}
                bearer = {"Authorization": "Bearer lead-token"}
                answers = [
                    http.post("/webhooks/leads", json={**lead, "sequence": "dental"}, headers=bearer),
                    http.post(
                        "/webhooks/leads",
                        json={**lead, "phone": "+13125550143", "sequence": "../../etc/passwd"},
                        headers=bearer,
                    ),
                    http.post(
                        "/webhooks/leads", json={**lead, "phone": "+13125550144", "sequence": "nope"}, headers=bearer
                    ),
                    http.post(
                        "/webhooks/booking",
                        json={"phone": "+13125550142", "start": "2026-12-03T10:00:00-06:00"},
                        headers={"Authorization": "Bearer booking-token"},
                    ),
                    http.get("/u/unknown-token"),
                    http.post("/u/unknown-token"),
                    http.get("/b/unknown-token"),
                    http.get("/healthz"),
                ]
                params = {
                    "From": "+13125550142",
                    "To": "+13125550100",
                    "Body": "Do you take Blue Cross?",
                    "MessageSid": "SM" + "3" * 32,
                    "AccountSid": ACCOUNT_SID,
                }
                signature = RequestValidator(AUTH_TOKEN).compute_signature(f"{url}/webhooks/twilio/sms", params)
                answers.append(
                    http.post("/webhooks/twilio/sms", data=params, headers={"X-Twilio-Signature": signature})
                )
                answers.append(
                    http.post(
                        "/webhooks/sendgrid/inbound?token=inbound-token",
                        files={
                            "from": (None, "Dana Lee <dana@example.com>"),
                            "to": (None, "reply@inbound.lakeside.example"),
                            "subject": (None, "Re: hello"),
                            "text": (None, "Is Friday open?"),
                            "SPF": (None, "pass"),
                            "headers": (None, "Message-ID: <m1@example.com>\n"),
                        },
                    )
                )
        finally:
            stop(process)
        output = log.read_text()

    assert [a.status_code for a in answers] == [201, 422, 422, 201, 200, 404, 302, 200, 200, 200], [
        (a.request.url.path, a.status_code, a.text[:200]) for a in answers
    ]
    assert f"{MARK} {business}" in output[:started], "the audit hook saw no file opened on the probe's loop"
    opened = [line for line in output[started:].splitlines() if line.startswith(MARK)]
    assert opened == []
