"""Several real `followup run` processes on one PostgreSQL database, started, stopped and killed."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from textwrap import dedent

import pytest
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
from tests.support.content import always_open_business, midday_zone, phone
from tests.support.databases import MigratedTemplates
from tests.support.ports import free_port
from tests.support.processes import start_followup_run, stop, wait_healthy

ACCOUNT_SID = "AC" + "5" * 32
AUTH_TOKEN = "scale-test-token"
SENDGRID_KEY = "SG.scale"
FINAL = ("sent", "failed", "skipped", "cancelled", "unknown")


@pytest.fixture
def postgres_url(postgres_problem: str | None, migrated_templates: MigratedTemplates):
    """A fresh, migrated PostgreSQL schema, shared by every process of one test."""
    if postgres_problem:
        if os.environ.get("FOLLOWUP_REQUIRE_POSTGRES"):
            pytest.fail(f"PostgreSQL is required here but did not answer: {postgres_problem}")
        pytest.skip(f"several processes share one database only on PostgreSQL: {postgres_problem}")
    url = migrated_templates.postgres()
    yield url
    migrated_templates.drop(url)


@pytest.fixture
def fleet_content(tmp_path: Path) -> tuple[Path, Path]:
    """A business that may send at any hour and a compressed playbook: three texts, seconds apart."""
    sequences = tmp_path / "sequences"
    sequences.mkdir()
    (sequences / "compressed.yml").write_text(
        dedent("""\
        name: compressed
        description: Two texts a few seconds apart (scale tests).
        steps:
          - {id: first_sms, after: 0s, channel: sms, template: default/instant_sms}
          - {id: second_sms, after: 3s, channel: sms, template: default/checkin_sms}
        """)
    )
    (sequences / "compressed_email.yml").write_text(
        dedent("""\
        name: compressed_email
        description: A text and an email a few seconds apart (crash tests).
        steps:
          - {id: first_sms, after: 0s, channel: sms, template: default/instant_sms}
          - id: first_email
            after: 1s
            channel: email
            template: default/confirmation
            subjects: ["Thanks for reaching out, {{ lead.first_name }}"]
          - {id: second_sms, after: 2s, channel: sms, template: default/checkin_sms}
        """)
    )
    return always_open_business(tmp_path, sequence="compressed"), sequences


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


@pytest.fixture
def fleet(postgres_url: str, fleet_content, tmp_path: Path):
    business, sequences = fleet_content
    with (
        TwilioApiStandin(ACCOUNT_SID, AUTH_TOKEN) as twilio,
        SendGridApiStandin(SENDGRID_KEY, rate_limit_per_minute=None) as sendgrid,
    ):
        world = Fleet(postgres_url, business, sequences, twilio, sendgrid, tmp_path)
        try:
            yield world
        finally:
            for process in world.processes:
                if process.running:
                    process.process.kill()  # type: ignore[union-attr]  # a running process has been started
                    process.process.wait(timeout=5)  # type: ignore[union-attr]  # a running process has been started


def texts_by_number(twilio: TwilioApiStandin) -> dict[str, list[str]]:
    """The bodies Twilio accepted for each number, in the order it accepted them."""
    sent: dict[str, list[str]] = {}
    for message in twilio.messages:
        sent.setdefault(message["to"], []).append(message["body"])
    return sent
