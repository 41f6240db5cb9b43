"""Several real `followup run` processes on one database, with the vendors' stand-ins: what the scale
tests (tests/scale) and the full-size benchmarks (bench/) both drive."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from bot.app import build_services
from bot.settings import Settings
from bot.standins.sendgrid_api import SendGridApiStandin
from bot.standins.twilio_api import TwilioApiStandin
from bot.store.audit import Actor
from bot.store.db import make_engine
from bot.store.models import Touch
from bot.usecases.leads import LeadInput, add_lead
from tests.fakes import consented
from tests.support.content import midday_zone, phone
from tests.support.ports import free_port
from tests.support.processes import start_followup_run, stop, wait_healthy

ACCOUNT_SID = "AC" + "5" * 32
AUTH_TOKEN = "scale-test-token"
SENDGRID_KEY = "SG.scale"
FINAL = ("sent", "failed", "skipped", "cancelled", "unknown")


@dataclass
class BotProcess:
    """One `followup run`, as an operator starts it, on its own port."""

    env: dict[str, str]
    log_path: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        self.process = start_followup_run(
            {**self.env, "PORT": str(self.port), "PUBLIC_BASE_URL": self.url}, self.log_path
        )

    def wait_healthy(self, timeout: float = 20) -> None:
        assert self.process is not None
        wait_healthy(self.url, self.process, timeout=timeout, log=self.log_path)

    def stop(self, how: signal.Signals = signal.SIGTERM, wait: float = 20) -> None:
        if self.process is not None and self.running and not stop(self.process, how, wait=wait):
            raise AssertionError(f"followup run did not stop within {wait}s after {how.name}")


@dataclass
class Fleet:
    """The shared world of one test: database, vendor stand-ins, and the bot processes."""

    database_url: str
    business: Path
    sequences: Path
    twilio: TwilioApiStandin
    sendgrid: SendGridApiStandin
    workdir: Path
    processes: list[BotProcess] = field(default_factory=list)

    def env(self, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            "DATABASE_URL": self.database_url,
            "FOLLOWUP_BUSINESS": str(self.business),
            "FOLLOWUP_SEQUENCES_DIR": str(self.sequences),
            "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "TWILIO_FROM_NUMBER": "+13125550100",
            "TWILIO_API_URL": self.twilio.url,
            "SENDGRID_API_KEY": SENDGRID_KEY,
            "SENDGRID_FROM_EMAIL": "hello@lakeside.example",
            "SENDGRID_API_URL": self.sendgrid.url,
            "FOLLOWUP_POLL_SECONDS": "0.2",
            # Long enough for any request in flight when a process died to have landed at the stand-in.
            "FOLLOWUP_SEND_LEASE_SECONDS": "3",
            **extra,
        }

    def add_process(self, **extra: str) -> BotProcess:
        process = BotProcess(self.env(**extra), self.workdir / f"bot{len(self.processes)}.log")
        self.processes.append(process)
        return process

    def enroll(self, count: int, *, sequence: str = "compressed", start: int = 0, email: bool = False) -> None:
        """Enroll leads straight into the shared database, as the lead webhook would."""
        settings = Settings(
            DATABASE_URL=self.database_url, FOLLOWUP_BUSINESS=self.business, FOLLOWUP_SEQUENCES_DIR=self.sequences
        )
        engine = make_engine(self.database_url)
        services = build_services(settings, engine=engine, migrate=False)
        zone = midday_zone(datetime.now(UTC))
        playbook = services.playbooks.get(sequence)
        with services.session_factory.begin() as session:
            for index in range(start, start + count):
                add_lead(
                    session,
                    LeadInput(
                        name=f"Lead {index}",
                        phone=phone(index),
                        timezone=zone,
                        email=f"lead{index}@example.com" if email else None,
                        sms_consent=consented(),
                    ),
                    business=services.business,
                    sequence=playbook,
                    now=services.clock.now(),
                    actor=Actor.lead(0),
                )
        engine.dispose()

    def touches(self) -> list[Touch]:
        engine = make_engine(self.database_url)
        try:
            with engine.connect() as connection:
                return list(
                    connection.execute(
                        select(
                            Touch.lead_id,
                            Touch.position,
                            Touch.channel,
                            Touch.status,
                            Touch.body_text,
                            Touch.provider_id,
                        ).order_by(Touch.lead_id, Touch.position)
                    )
                )
        finally:
            engine.dispose()

    def wait_until_settled(self, expected: int, timeout: float) -> list:
        """Wait until every touch reached a final status; return the touches."""
        deadline = time.monotonic() + timeout
        while True:
            rows = self.touches()
            if len(rows) == expected and all(r.status in FINAL for r in rows):
                return rows
            if os.environ.get("FOLLOWUP_SCALE_DEBUG"):
                from collections import Counter

                print(round(time.monotonic(), 1), Counter(r.status for r in rows))
            if time.monotonic() > deadline:
                pending = [r for r in rows if r.status not in FINAL]
                raise AssertionError(
                    f"{len(pending)} of {len(rows)} touches still pending after {timeout}s, e.g. {pending[:3]}"
                )
            time.sleep(0.25)

    def stop_all(self) -> None:
        for process in self.processes:
            process.stop()

    def kill_all(self) -> None:
        """At the end of a test, whatever happened: no process outlives it."""
        for process in self.processes:
            if process.process is not None and process.running:
                process.process.kill()
                process.process.wait(timeout=5)


def texts_by_number(twilio: TwilioApiStandin) -> dict[str, list[str]]:
    """The bodies Twilio accepted for each number, in the order it accepted them."""
    sent: dict[str, list[str]] = {}
    for message in twilio.messages:
        sent.setdefault(message["to"], []).append(message["body"])
    return sent
