"""Shared fixtures: every database test runs on SQLite and on PostgreSQL, with a fixed clock."""

from __future__ import annotations

import os
import uuid
from datetime import datetime, timezone
from pathlib import Path
from textwrap import dedent

import pytest
from sqlalchemy import create_engine, text

from bot import SHIPPED_SEQUENCES, SHIPPED_TEMPLATES
from bot.clock import ManualClock
from bot.app import build_services
from bot.db import make_engine, upgrade
from bot.services import Services
from bot.settings import Settings
from tests.fakes import FakeEmailSender, FakeSmsSender

POSTGRES_URL = os.environ.get("FOLLOWUP_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
#: Wednesday 2026-11-25 09:00 in Chicago (the sample clinic's time zone): inside every window.
NOW = datetime(2026, 11, 25, 15, 0, tzinfo=timezone.utc)


def _postgres_available() -> str | None:
    try:
        probe = create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
        with probe.connect() as connection:
            connection.execute(text("SELECT 1"))
        probe.dispose()
        return None
    except Exception as error:  # noqa: BLE001 - any failure to connect means "no server here"
        return f"{type(error).__name__}: {error}".splitlines()[0]


@pytest.fixture(scope="session")
def postgres_problem() -> str | None:
    return _postgres_available()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path, postgres_problem: str | None):
    """A fresh, migrated database: a SQLite file, or a PostgreSQL schema of its own."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'followup.db'}"
        return
    if postgres_problem:
        if os.environ.get("FOLLOWUP_REQUIRE_POSTGRES"):
            pytest.fail(f"PostgreSQL is required here but did not answer: {postgres_problem}")
        pytest.skip(f"no PostgreSQL server answers at {POSTGRES_URL}: {postgres_problem}")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    with admin.begin() as connection:
        connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture
def engine(database_url: str):
    engine = make_engine(database_url)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


@pytest.fixture
def shipped_sequences() -> Path:
    return SHIPPED_SEQUENCES


@pytest.fixture
def shipped_templates() -> Path:
    return SHIPPED_TEMPLATES

TEST_BUSINESS = dedent(
    """\
    name: Lakeside Chiropractic
    timezone: America/Chicago
    phone: "+13125550111"
    address: 1200 Lakeshore Dr, Chicago, IL 60610
    booking_link: https://example.com/book
    sequence: default
    send_window: Mon-Sat 08:00-20:00
    closed:
      dates: [2026-12-24]
      holidays: US
    """
)


@pytest.fixture
def business_file(tmp_path: Path) -> Path:
    path = tmp_path / "business.yml"
    path.write_text(TEST_BUSINESS)
    return path


@pytest.fixture
def sms() -> FakeSmsSender:
    return FakeSmsSender()


@pytest.fixture
def email() -> FakeEmailSender:
    return FakeEmailSender()


@pytest.fixture
def services(engine, clock, sms, email, business_file: Path) -> Services:
    settings = Settings(DATABASE_URL=str(engine.url), FOLLOWUP_BUSINESS=business_file,
                        PUBLIC_BASE_URL="https://followup.example.com")
    return build_services(settings, engine=engine, clock=clock, sms=sms, email=email, migrate=False)
