"""Several real `followup run` processes on one PostgreSQL database, started, stopped and killed."""

from __future__ import annotations

import os
from pathlib import Path
from textwrap import dedent

import pytest

from bot.standins.sendgrid_api import SendGridApiStandin
from bot.standins.twilio_api import TwilioApiStandin
from tests.support.content import always_open_business
from tests.support.databases import MigratedTemplates
from tests.support.fleet import ACCOUNT_SID, AUTH_TOKEN, SENDGRID_KEY, BotProcess, Fleet, texts_by_number

__all__ = ["BotProcess", "Fleet", "texts_by_number"]  # the scale tests import them from here


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


#: Two texts a few seconds apart: what the scale tests send each lead.
COMPRESSED_PLAYBOOK = dedent("""\
    name: compressed
    description: Two texts a few seconds apart (scale tests).
    steps:
      - {id: first_sms, after: 0s, channel: sms, template: default/instant_sms}
      - {id: second_sms, after: 3s, channel: sms, template: default/checkin_sms}
    """)


@pytest.fixture
def fleet_content(tmp_path: Path) -> tuple[Path, Path]:
    """A business that may send at any hour and a compressed playbook: three texts, seconds apart."""
    sequences = tmp_path / "sequences"
    sequences.mkdir()
    (sequences / "compressed.yml").write_text(COMPRESSED_PLAYBOOK)
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
            world.kill_all()
