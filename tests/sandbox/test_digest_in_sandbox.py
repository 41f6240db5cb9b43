"""The weekly digest in the sandbox: `/followup digest` previews it, and Monday's post shows its chart."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from pathlib import Path

import pytest

from bot.reports.digest import DigestSchedule
from bot.sandbox.runner import Sandbox
from bot.slack.digest import WeeklyDigestJob
from bot.slack_app import slack_client
from tests.sandbox.conftest import chiropractic
from tests.sandbox.test_sandbox_page import DANA, open_page

pytestmark = pytest.mark.usefixtures("browser")


def next_monday_8(sandbox: Sandbox) -> datetime:
    zone = chiropractic(sandbox).timezone
    local = sandbox.clock.now().astimezone(zone)
    day = local.date() + timedelta(days=(7 - local.weekday()) % 7 or 7)
    return datetime.combine(day, time(8, 1), tzinfo=zone)


def post_weekly_digest(sandbox: Sandbox) -> None:
    """What the scheduler's minute tick does at Lakeside's digest hour (the week's claim keeps it to one post)."""
    job = WeeklyDigestJob(
        sandbox.services,
        slack_client(sandbox.settings),
        chiropractic(sandbox).slack.channel,
        DigestSchedule.parse("mon 08:00"),
        business=chiropractic(sandbox),
    )
    job.run_once()
    sandbox.world.touch()


def digest_message(page):  # noqa: ANN001, ANN201 - a Playwright Page in, a Locator out
    """The digest posted in the channel (not the preview only its asker sees)."""
    return (
        page.get_by_test_id("channel")
        .locator("article.msg:not(.ephemeral)")
        .filter(has=page.locator(".bk-header", has_text="Week of"))
    )


def test_the_digest_previews_on_command_and_its_weekly_post_shows_the_chart(
    browser, sandbox: Sandbox, debug_screenshots: Path
) -> None:
    from playwright.sync_api import expect

    sandbox.actions.submit_lead(
        {
            "name": "Maria Gonzalez",
            "phone": "(312) 555-0177",
            "source": "Website",
            "email": "maria.gonzalez@example.com",
            "message": "Lower back pain",
        }
    )
    dana = open_page(browser, sandbox, DANA)

    dana.locator("#command").fill("/followup digest")
    dana.locator("#command").press("Enter")
    preview = dana.get_by_test_id("ephemeral").last
    expect(preview).to_contain_text("(preview)")
    expect(preview).to_contain_text("Leads in")

    sandbox.skip(next_monday_8(sandbox) - sandbox.clock.now())
    post_weekly_digest(sandbox)

    digest = digest_message(dana)
    expect(digest).to_have_count(1)
    digest.locator(".thread-link").click()
    chart = dana.get_by_test_id("thread").get_by_test_id("file").locator("img")
    expect(chart).to_be_visible()
    expect(chart).to_have_attribute("alt", "This week: funnel and leads per day by source")
    dana.wait_for_function("img => img.complete && img.naturalWidth > 200", arg=chart.element_handle())
    dana.screenshot(path=str(debug_screenshots / "digest.png"))
    assert not dana.problems  # type: ignore[attr-defined]  # open_page hangs the console problems on the page


def test_a_file_not_shared_in_the_channel_is_not_served(sandbox: Sandbox) -> None:
    import httpx

    answer = httpx.get(f"{sandbox.page_url.rsplit('/sandbox', 1)[0]}/sandbox/api/files/FNOSUCHFILE")

    assert answer.status_code == 404 and answer.json() == {"ok": False, "error": "file_not_found"}
