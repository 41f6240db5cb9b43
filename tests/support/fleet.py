"""Several real `followup run` processes on one database, with the vendors' stand-ins: what the scale
tests (tests/scale) and the full-size benchmarks (bench/) both drive.

A fleet serves one business.yml, or a folder of business files (FOLLOWUP_BUSINESSES) such as
`write_clinic_folder` writes: many clinics, each with its own number, channel, address, token and wording.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from textwrap import dedent

import httpx
from sqlalchemy import select

from bot.app import build_services
from bot.settings import Settings
from bot.standins.sendgrid_api import SendGridApiStandin
from bot.standins.slack_api import SlackApiStandin
from bot.standins.twilio_api import TwilioApiStandin
from bot.store.audit import Actor
from bot.store.db import make_engine
from bot.store.models import Lead, OutboxEvent, Touch
from bot.usecases.leads import LeadInput, add_lead
from tests.fakes import consented
from tests.support.content import midday_zone, phone
from tests.support.ports import free_port
from tests.support.processes import start_followup_run, stop, wait_healthy

ACCOUNT_SID = "AC" + "5" * 32
AUTH_TOKEN = "scale-test-token"
SENDGRID_KEY = "SG.scale"
SLACK_TOKEN = "xoxb-scale"
FINAL = ("sent", "failed", "skipped", "cancelled", "unknown")
#: How a clinic of `write_clinic_folder` is named: every text and card it causes carries its name, no other's.
CLINIC_NAME = re.compile(r"Clinic (\d{2}) Health")


@dataclass(frozen=True)
class FleetClinic:
    """One clinic of a many-clinic fleet, as its business file says it: what its leads' texts and cards must carry."""

    index: int

    @property
    def slug(self) -> str:
        return f"clinic-{self.index:02d}"

    @property
    def name(self) -> str:
        return f"Clinic {self.index:02d} Health"

    @property
    def channel(self) -> str:
        return f"C0CLINIC{self.index:02d}"

    @property
    def number(self) -> str | None:
        """Its Twilio number; every fifth clinic sends through a messaging service instead."""
        return None if self.index % 5 == 4 else f"+1415555{100 + self.index:04d}"

    @property
    def messaging_service(self) -> str | None:
        return f"MG{self.index:032d}" if self.number is None else None

    @property
    def sender(self) -> str:
        """What the Twilio stand-in records its texts as coming from: the number, or the messaging service."""
        return self.number or self.messaging_service or ""

    @property
    def lead_token(self) -> str:
        return f"{self.slug}-lead-token"

    @property
    def greeting(self) -> str:
        """How its own first text begins (its templates/default/instant_sms.sms.j2 overrides the shared one)."""
        return f"{self.name} front desk {self.index:02d}"

    def lead_name(self, index: int) -> str:
        """Lead `index` of this clinic: the tag (C07N0042) names the clinic, so a card in another channel shows."""
        return f"Pat C{self.index:02d}N{index:04d}"

    def consent_text(self) -> str:
        return f"I agree to receive texts from {self.name} about my inquiry. Reply STOP to opt out."


#: A lead's tag in its name: the clinic and the lead's index in it.
LEAD_TAG = re.compile(r"C(\d{2})N(\d{4})")


def write_clinic_folder(folder: Path, count: int, *, sequence: str) -> list[FleetClinic]:
    """A FOLLOWUP_BUSINESSES folder of `count` clinics that may send at any hour, each with its own first text.

    The tokens are written in the files (`followup check` warns about that): the fleet's processes and
    the test's own services then read the same folder whatever their environment.
    """
    if not 0 < count <= 100:
        raise ValueError("a clinic folder holds 1 to 100 clinics (their numbers are 555-0100 to 555-0199)")
    folder.mkdir(parents=True, exist_ok=True)
    clinics = [FleetClinic(index) for index in range(count)]
    for clinic in clinics:
        sender = (
            f'  from_number: "{clinic.number}"'
            if clinic.number
            else f"  messaging_service_sid: {clinic.messaging_service}"
        )
        (folder / f"{clinic.slug}.yml").write_text(
            dedent(f"""\
            name: {clinic.name}
            timezone: America/Chicago
            phone: "+1847555{100 + clinic.index:04d}"
            address: {100 + clinic.index} W Lake St, Chicago, IL 60601
            booking_link: https://{clinic.slug}.example/book
            sequence: {sequence}
            send_window: always
            slack:
              channel: {clinic.channel}
            sms:
            {sender}
            email:
              from_address: hello@{clinic.slug}.example
              inbound_address: replies@in.{clinic.slug}.example
            webhooks:
              lead_token: {clinic.lead_token}
            """)
        )
        wording = folder / clinic.slug / "templates" / "default"
        wording.mkdir(parents=True, exist_ok=True)
        (wording / "instant_sms.sms.j2").write_text(
            f"{clinic.greeting}: hi {{{{ lead.first_name }}}}, we got your message and will call you today.\n"
        )
    return clinics


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
    """The shared world of one test: database, vendor stand-ins, and the bot processes.

    `business` is one business.yml, or a folder of business files (FOLLOWUP_BUSINESSES), each naming its
    own sender, address and channel. With `slack`, every process posts there (SLACK_API_URL).
    """

    database_url: str
    business: Path
    sequences: Path
    twilio: TwilioApiStandin
    sendgrid: SendGridApiStandin
    workdir: Path
    processes: list[BotProcess] = field(default_factory=list)
    slack: SlackApiStandin | None = None

    @property
    def folder(self) -> bool:
        """Whether the fleet serves a folder of business files rather than one business.yml."""
        return self.business.is_dir()

    def env(self, **extra: str) -> dict[str, str]:
        env = {
            **os.environ,
            "DATABASE_URL": self.database_url,
            "FOLLOWUP_SEQUENCES_DIR": str(self.sequences),
            "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "TWILIO_API_URL": self.twilio.url,
            "SENDGRID_API_KEY": SENDGRID_KEY,
            "SENDGRID_API_URL": self.sendgrid.url,
            "FOLLOWUP_POLL_SECONDS": "0.2",
            # Long enough for any request in flight when a process died to have landed at the stand-in.
            "FOLLOWUP_SEND_LEASE_SECONDS": "3",
        }
        if self.folder:
            env["FOLLOWUP_BUSINESSES"] = str(self.business)  # each file names its own number and address
        else:
            env |= {
                "FOLLOWUP_BUSINESS": str(self.business),
                "TWILIO_FROM_NUMBER": "+13125550100",
                "SENDGRID_FROM_EMAIL": "hello@lakeside.example",
            }
        if self.slack is not None:
            env |= {"SLACK_BOT_TOKEN": self.slack.bot_token, "SLACK_API_URL": self.slack.url + "/api/"}
        return {**env, **extra}

    def settings(self) -> Settings:
        """The deployment's settings as this test process reads them (to enroll and look, not to serve)."""
        if self.folder:
            return Settings(
                DATABASE_URL=self.database_url, FOLLOWUP_BUSINESSES=self.business, FOLLOWUP_SEQUENCES_DIR=self.sequences
            )
        return Settings(
            DATABASE_URL=self.database_url, FOLLOWUP_BUSINESS=self.business, FOLLOWUP_SEQUENCES_DIR=self.sequences
        )

    def add_process(self, **extra: str) -> BotProcess:
        process = BotProcess(self.env(**extra), self.workdir / f"bot{len(self.processes)}.log")
        self.processes.append(process)
        return process

    def enroll(self, count: int, *, sequence: str = "compressed", start: int = 0, email: bool = False) -> None:
        """Enroll leads straight into the shared database, as the lead webhook would."""
        engine = make_engine(self.database_url)
        services = build_services(self.settings(), engine=engine, migrate=False)
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

    def enroll_at(self, batches: Mapping[FleetClinic, Iterable[int]], *, sequence: str | None = None) -> None:
        """Enroll each clinic's leads straight into the shared database, one transaction a clinic, as its lead
        webhook would.

        Lead `index` of every clinic has the same phone, `phone(index)`: each is a lead of all of them at once.
        """
        engine = make_engine(self.database_url)
        try:
            services = build_services(self.settings(), engine=engine, migrate=False)
            zone = midday_zone(datetime.now(UTC))
            for clinic, indexes in batches.items():
                business = services.business_of(clinic.slug)
                playbook = services.playbooks_of(clinic.slug).get(sequence)
                with services.session_factory.begin() as session:
                    for index in indexes:
                        add_lead(
                            session,
                            LeadInput(
                                name=clinic.lead_name(index), phone=phone(index), timezone=zone, sms_consent=consented()
                            ),
                            business=business,
                            sequence=playbook,
                            now=services.clock.now(),
                            actor=Actor.lead(0),
                        )
        finally:
            engine.dispose()

    def leads(self) -> list:
        """Every lead: its business, phone, name, card and opt-out, by id."""
        engine = make_engine(self.database_url)
        try:
            with engine.connect() as connection:
                return list(
                    connection.execute(
                        select(
                            Lead.id,
                            Lead.business,
                            Lead.phone,
                            Lead.name,
                            Lead.slack_channel,
                            Lead.slack_ts,
                            Lead.sms_opted_out_at,
                        ).order_by(Lead.id)
                    )
                )
        finally:
            engine.dispose()

    def notices_pending(self) -> int:
        """Slack notices (cards, thread entries) not yet carried out."""
        engine = make_engine(self.database_url)
        try:
            with engine.connect() as connection:
                return len(list(connection.execute(select(OutboxEvent.id).where(OutboxEvent.delivered_at.is_(None)))))
        finally:
            engine.dispose()

    def wait_for_slack(self, timeout: float) -> None:
        """Wait until every Slack notice was carried out (posted, or given up on with its reason)."""
        deadline = time.monotonic() + timeout
        while (pending := self.notices_pending()) and time.monotonic() < deadline:
            time.sleep(0.5)
        if pending:
            raise AssertionError(f"{pending} Slack notices still pending after {timeout}s")

    def running(self) -> list[BotProcess]:
        return [process for process in self.processes if process.running]

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
                            Touch.due_at,
                            Touch.sent_at,
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


def texts_by_sender(twilio: TwilioApiStandin) -> dict[tuple[str, str], list[str]]:
    """The bodies Twilio accepted from each sender (number or messaging service) to each number, in order."""
    sent: dict[tuple[str, str], list[str]] = {}
    for message in twilio.messages:
        sender = message["from"] or message["messaging_service_sid"] or ""
        sent.setdefault((sender, message["to"]), []).append(message["body"])
    return sent


def post_lead(
    processes: list[BotProcess], clinic: FleetClinic, index: int, *, by_path: bool, sequence: str | None = None
) -> dict:
    """A clinic's web form posts lead `index` to a running process: on its own path, or by its token alone.

    A process that refuses the connection (stopped meanwhile, or not listening yet) took nothing: the form
    tries the next. Nothing is retried once a request reached a process, since a second form sent by the same
    lead would read as the lead writing again.
    """
    lead = {
        "name": clinic.lead_name(index),
        "phone": phone(index),
        "timezone": midday_zone(datetime.now(UTC)),
        "consent": True,
        "consent_text": clinic.consent_text(),
    }
    if sequence:
        lead["sequence"] = sequence
    path = f"/webhooks/leads/{clinic.slug}" if by_path else "/webhooks/leads"
    refused: list[str] = []
    for process in processes:
        try:
            answer = httpx.post(
                process.url + path,
                json=lead,
                headers={"Authorization": f"Bearer {clinic.lead_token}"},
                timeout=30,
            )
        except httpx.ConnectError as error:
            refused.append(f"{process.url}: {error}")
            continue
        if answer.status_code != 201:
            raise AssertionError(f"{clinic.slug} lead {index}: {answer.status_code} {answer.text[:300]}")
        return answer.json()
    raise AssertionError(f"no process took {clinic.slug}'s lead {index}: {refused}")
