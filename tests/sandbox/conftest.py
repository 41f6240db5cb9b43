"""The sandbox as people use it: started in-process on a free port, and driven in headless Chromium."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.core.business import Business
from bot.sandbox.runner import CHIROPRACTIC, DENTAL, Sandbox

CHROMIUM = Path("/usr/bin/chromium")
#: The machine's closed network refuses Chromium's background connections: switch them off.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: Tuesday 2 March 2027, 10:00 at the chiropractic clinic (Chicago; 9:00 at the dental one in Denver): both open,
#: no holiday near.
START = datetime(2027, 3, 2, 10, 0, tzinfo=ZoneInfo("America/Chicago"))
ROOT = Path(__file__).resolve().parents[2]


def _browser_problem() -> str | None:
    if not CHROMIUM.exists() and not shutil.which("chromium"):
        return "Debian's chromium is not installed (.ci/install-browser installs it)"
    try:
        import playwright.sync_api  # noqa: F401 - imported only to see whether it is installed
    except ImportError:
        return "the playwright package is not installed (pip install playwright; no browser download is needed)"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    problem = _browser_problem()
    if problem:
        if os.environ.get("CI") == "true":
            pytest.fail(f"browser tests must run in CI: {problem}")
        pytest.skip(problem)
    from playwright.sync_api import expect, sync_playwright

    # The page waits for the bot, which waits for the scheduler: on a shared, loaded machine that
    # takes longer than Playwright's 5 s default. A longer wait costs nothing when things are quick.
    expect.set_options(timeout=20_000)
    with sync_playwright() as playwright:
        executable = CHROMIUM if CHROMIUM.exists() else Path(shutil.which("chromium") or "")
        chromium = playwright.chromium.launch(executable_path=str(executable), args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    directory = tmp_path_factory.mktemp("sandbox")
    with Sandbox(port=0, directory=directory, start_at=START) as running:
        yield running


def chiropractic(sandbox: Sandbox) -> Business:
    """The sandbox's chiropractic clinic (Lakeside), the one its page starts on."""
    return sandbox.services.business_of(CHIROPRACTIC)


def dental(sandbox: Sandbox) -> Business:
    """The sandbox's dental practice (Summit), in its own channel, with its own number and inbox."""
    return sandbox.services.business_of(DENTAL)


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """docs/ when FOLLOWUP_SANDBOX_SCREENSHOTS=docs (to refresh the README's pictures), else a temporary folder.

    Only the realistic day (test_realistic_day.py) takes the README's pictures; other tests use debug_screenshots.
    """
    if os.environ.get("FOLLOWUP_SANDBOX_SCREENSHOTS") == "docs":
        return ROOT / "docs"
    return tmp_path_factory.mktemp("screenshots")


@pytest.fixture(scope="session")
def debug_screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Pictures of what a test saw, to look at when it fails: never the README's (they carry test strings)."""
    return tmp_path_factory.mktemp("debug-screenshots")
