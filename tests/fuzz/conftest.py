"""The whole web app (webhooks and Slack) in process, with every secret configured, for hostile input."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import func, select
from starlette.testclient import TestClient

from bot.app import build_services
from bot.settings import Settings
from bot.slack_app import build_slack_app, slack_client, slack_route
from bot.standins.slack_api import SlackApiStandin
from bot.store.models import Base
from bot.web import create_web_app
from tests.fakes import FakeEmailSender, FakeSmsSender

LEAD_TOKEN = "fuzz-lead-token"
BOOKING_TOKEN = "fuzz-booking-token"
TWILIO_TOKEN = "fuzz-twilio-token"
INBOUND_TOKEN = "fuzz-inbound-token"
SLACK_SECRET = "fuzz-slack-secret"
SLACK_TOKEN = "xoxb-fuzz"
PUBLIC = "https://followup.example.com"


def sendgrid_public_key() -> str:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


#: The team: members of the leads channel (the admin among them); the fuzz also acts as people who are not.
TEAM = ("U0ALICE", "U0BOB", "U0ADMIN")


class FuzzedBot:
    def __init__(self, client: TestClient, services, sms: FakeSmsSender, slack: SlackApiStandin | None = None):
        self.client = client
        self.services = services
        self.sms = sms
        self.slack = slack

    def snapshot(self) -> dict[str, int]:
        """Row counts of every table: an unauthenticated request must change none of them."""
        with self.services.session_factory() as session:
            return {
                table.name: session.scalar(select(func.count()).select_from(table))
                for table in Base.metadata.sorted_tables
            }


@pytest.fixture
def fuzzed_bot(engine, clock, business_file: Path, tmp_path: Path):
    with SlackApiStandin(SLACK_TOKEN) as slack:
        slack.join("C0LEADS", *TEAM)
        slack.add_user("U0GUEST", "guest", guest="multi-channel")
        slack.add_user("U0PARTNER", "partner", team_id="T0PARTNER")
        slack.join("C0LEADS", "U0GUEST", "U0PARTNER")
        settings = Settings(
            DATABASE_URL=str(engine.url),
            FOLLOWUP_BUSINESS=business_file,
            PUBLIC_BASE_URL=PUBLIC,
            LEAD_WEBHOOK_TOKEN=LEAD_TOKEN,
            BOOKING_WEBHOOK_TOKEN=BOOKING_TOKEN,
            TWILIO_ACCOUNT_SID="AC" + "9" * 32,
            TWILIO_AUTH_TOKEN=TWILIO_TOKEN,
            TWILIO_FROM_NUMBER="+13125550100",
            SENDGRID_INBOUND_TOKEN=INBOUND_TOKEN,
            SENDGRID_WEBHOOK_PUBLIC_KEY=sendgrid_public_key(),
            SLACK_BOT_TOKEN=SLACK_TOKEN,
            SLACK_SIGNING_SECRET=SLACK_SECRET,
            SLACK_API_URL=slack.url + "/api/",
            SLACK_LEADS_CHANNEL="C0LEADS",
            SLACK_ADMINS="U0ADMIN",
        )
        sms = FakeSmsSender()
        services = build_services(settings, engine=engine, clock=clock, sms=sms, email=FakeEmailSender(), migrate=False)
        slack_app = build_slack_app(services, settings, client=slack_client(settings))
        app = create_web_app(services, settings, extra_routes=[slack_route(slack_app)])
        # Server exceptions surface as failures with their traceback, not as a bare 500.
        with TestClient(app, base_url=PUBLIC, raise_server_exceptions=True) as client:
            yield FuzzedBot(client, services, sms, slack)
