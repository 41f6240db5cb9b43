"""What an idle `followup run` keeps out of memory: the vendor SDKs and the date parser load when first needed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from bot.standins.sendgrid_api import SendGridApiStandin
from bot.standins.slack_api import SlackApiStandin
from bot.standins.twilio_api import TwilioApiStandin
from tests.fakes import WEB_FORM_CONSENT
from tests.support.content import always_open_business
from tests.support.ports import free_port
from tests.support.processes import wait_healthy

ACCOUNT_SID = "AC" + "3" * 32
AUTH_TOKEN = "idle-test-token"
#: Packages of several MiB resident each that an idle bot has no use for.
NOT_NEEDED_AT_IDLE = ("dateparser", "holidays", "twilio.rest", "requests", "sendgrid", "cryptography")


def loaded(import_log: Path) -> set[str]:
    """The modules the process has imported so far, from Python's own import log (-X importtime)."""
    return {
        line.rsplit("|", 1)[1].strip()
        for line in import_log.read_text().splitlines()
        if line.startswith("import time:") and "|" in line
    }


def test_an_idle_bot_with_every_vendor_configured_has_not_loaded_their_sdks_until_the_first_text(
    tmp_path: Path, database_url: str
):
    port = free_port()
    import_log = tmp_path / "imports.log"
    with (
        TwilioApiStandin(ACCOUNT_SID, AUTH_TOKEN) as twilio,
        SendGridApiStandin("SG.key") as sendgrid,
        SlackApiStandin("xoxb-idle") as slack,
        import_log.open("w") as log,
    ):
        env = {
            **os.environ,
            "PYTHONPROFILEIMPORTTIME": "1",
            "DATABASE_URL": database_url,
            "FOLLOWUP_BUSINESS": str(always_open_business(tmp_path, sequence="default")),
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
            "SLACK_BOT_TOKEN": "xoxb-idle",
            "SLACK_LEADS_CHANNEL": "C0LEADS",
            "SLACK_API_URL": slack.url + "/api/",
            "FOLLOWUP_POLL_SECONDS": "0.2",
            # The lead's own 08:00-21:00 holds the text back before 14:00 UTC: a Chicago morning, whenever run.
            "FOLLOWUP_CLOCK_START": "2026-12-01T09:00:00-06:00",
        }
        process = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "run"], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=log
        )
        try:
            url = f"http://127.0.0.1:{port}"
            wait_healthy(url, process)
            at_idle = loaded(import_log)
            answer = httpx.post(
                f"{url}/webhooks/leads",
                json={"name": "Dana Lee", "phone": "+13125550142", **WEB_FORM_CONSENT},
                headers={"Authorization": "Bearer lead-token"},
                timeout=10,
            )
            deadline = time.monotonic() + 10
            while not twilio.messages and time.monotonic() < deadline:
                time.sleep(0.05)
            after_a_text = loaded(import_log)
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()

    assert "bot.server" in at_idle  # the log is read: the process was serving
    assert sorted(at_idle & set(NOT_NEEDED_AT_IDLE)) == []
    assert answer.status_code == 201 and [m["to"] for m in twilio.messages] == ["+13125550142"]
    assert "twilio.rest" in after_a_text  # loaded by the first text, and it went out
