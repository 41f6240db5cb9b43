"""Shared fixtures: every database test runs on SQLite and on PostgreSQL, with a fixed clock."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from textwrap import dedent

import pytest

from bot import SHIPPED_SEQUENCES, SHIPPED_TEMPLATES
from bot.app import build_services
from bot.core.clock import ManualClock
from bot.settings import Settings
from bot.store.db import make_engine, upgrade
from bot.usecases.services import Services
from tests.fakes import FakeEmailSender, FakeSmsSender
from tests.support.databases import POSTGRES_URL, MigratedTemplates
from tests.support.databases import postgres_problem as _postgres_problem

#: Wednesday 2026-11-25 09:00 in Chicago (the sample clinic's time zone): inside every window.
NOW = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)


#: What `--fast` leaves out: the edges (Slack listeners through Bolt, webhooks and stand-ins over HTTP), real
#: processes, browsers, fuzzing and wheel builds. What stays is the pure and use-case tests and the contracts.
EDGE_PATHS = (
    "tests/handlers",
    "tests/webhooks",
    "tests/standins",
    "tests/scale",
    "tests/sandbox",
    "tests/fuzz",
    "tests/test_followup_run.py",
    "tests/test_packaging.py",
)
ROOT = Path(__file__).resolve().parent.parent


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--fast",
        action="store_true",
        help="the fast subset: pure and use-case tests on SQLite only (no edges, processes or browsers)",
    )


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if config.getoption("--fast") and collection_path.resolve().is_relative_to(ROOT):
        relative = collection_path.resolve().relative_to(ROOT).as_posix()
        if any(relative == edge or relative.startswith(edge + "/") for edge in EDGE_PATHS):
            return True
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under `--fast`, deselect the PostgreSQL half: the full suite (`pytest -q`, `.ci/run`) runs both."""
    if not config.getoption("--fast"):
        return
    on_postgres = [
        item
        for item in items
        if getattr(item, "callspec", None) and item.callspec.params.get("database_url") == "postgresql"
    ]
    if on_postgres:
        config.hook.pytest_deselected(items=on_postgres)
        chosen = set(map(id, on_postgres))
        items[:] = [item for item in items if id(item) not in chosen]


@pytest.fixture(scope="session")
def postgres_problem() -> str | None:
    return _postgres_problem()


@pytest.fixture(scope="session")
def migrated_templates(tmp_path_factory: pytest.TempPathFactory):
    """The schema migrated once per test session, copied for every test that needs a database."""
    templates = MigratedTemplates(tmp_path_factory.mktemp("migrated"))
    yield templates
    templates.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(
    request: pytest.FixtureRequest, tmp_path: Path, postgres_problem: str | None, migrated_templates: MigratedTemplates
):
    """A fresh database of the test's own: a SQLite file, or a PostgreSQL schema.

    It is fully migrated when the test uses `engine` (a copy of the session's migrated template), and
    empty otherwise, so that what migrates on start (the CLI, `followup run`) still does so for real;
    under `@pytest.mark.real_migrations` it is empty and `engine` runs the migrations.
    """
    migrated = "engine" in request.fixturenames and not request.node.get_closest_marker("real_migrations")
    if request.param == "sqlite":
        path = tmp_path / "followup.db"
        yield migrated_templates.sqlite(path) if migrated else f"sqlite:///{path}"
        return
    if postgres_problem:
        if os.environ.get("FOLLOWUP_REQUIRE_POSTGRES"):
            pytest.fail(f"PostgreSQL is required here but did not answer: {postgres_problem}")
        pytest.skip(f"no PostgreSQL server answers at {POSTGRES_URL}: {postgres_problem}")
    url = migrated_templates.postgres() if migrated else migrated_templates.empty_postgres()
    yield url
    migrated_templates.drop(url)


@pytest.fixture
def engine(request: pytest.FixtureRequest, database_url: str):
    """An engine on the test's fresh, fully migrated database."""
    engine = make_engine(database_url)
    if request.node.get_closest_marker("real_migrations"):
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
    settings = Settings(
        DATABASE_URL=str(engine.url), FOLLOWUP_BUSINESS=business_file, PUBLIC_BASE_URL="https://followup.example.com"
    )
    return build_services(settings, engine=engine, clock=clock, sms=sms, email=email, migrate=False)
