"""A realistic morning at a chiropractic front desk, played in the sandbox: the README's and docs' pictures.

`FOLLOWUP_SANDBOX_SCREENSHOTS=docs pytest tests/sandbox/test_realistic_day.py` writes them to docs/;
without it they go to a temporary folder, and the test still checks each scene shows what it should.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest

from bot.sandbox.runner import Sandbox
from tests.sandbox.conftest import chiropractic
from tests.sandbox.test_digest_in_sandbox import digest_message, next_monday_8, post_weekly_digest
from tests.sandbox.test_sandbox_page import DANA, SAM, call_task, card, open_page

pytestmark = pytest.mark.usefixtures("browser")


def _pick_phone(page, name: str) -> None:  # noqa: ANN001 - a Playwright Page
    page.get_by_role("tab", name="Phones").click()
    pick = page.get_by_test_id("phone-pick")
    label = next(text for text in pick.locator("option").all_inner_texts() if text.startswith(name))
    pick.select_option(label=label)


def test_a_morning_at_lakeside_chiropractic(browser, sandbox: Sandbox, screenshots: Path) -> None:
    from playwright.sync_api import expect

    # Two leads from the night before are already in; the week's texts went out to them.
    sandbox.actions.submit_lead(
        {
            "name": "James Carter",
            "phone": "(312) 555-0142",
            "email": "james.carter@example.com",
            "source": "Google Ads",
            "message": "Neck stiffness from desk work. Do you take Blue Cross?",
        }
    )
    sandbox.actions.submit_lead(
        {
            "name": "Priya Shah",
            "phone": "(773) 555-0119",
            "source": "Referral",
            "message": "Looking for a chiropractor after a car accident last month.",
        }
    )
    dana = open_page(browser, sandbox, DANA)
    expect(card(dana, "Priya Shah")).to_be_visible(timeout=20000)

    # 10 a.m.: Maria fills in the clinic's website form.
    dana.get_by_role("tab", name="New lead").click()
    form = dana.get_by_test_id("lead-form")
    form.get_by_label("Name").fill("Maria Gonzalez")
    form.get_by_label("Mobile phone").fill("(312) 555-0177")
    form.get_by_label("Email").fill("maria.gonzalez@example.com")
    form.get_by_label("How can we help?").fill(
        "Lower back pain since Friday; sitting at work makes it worse. Any openings this week?"
    )
    form.get_by_role("button", name="Send", exact=True).click()
    phone = dana.get_by_test_id("phone")
    expect(phone.get_by_test_id("sms-out").first).to_contain_text("Reply STOP to opt out", timeout=5000)
    maria = card(dana, "Maria Gonzalez")
    # Lakeside follows the shipped chiropractic playbook (sequences/chiropractic.yml).
    expect(maria).to_contain_text("Chiropractic new-patient follow-up · touch 1 of", timeout=20000)
    maria.locator(".thread-link").click()
    expect(dana.get_by_test_id("thread")).to_contain_text("First text")
    dana.screenshot(path=str(screenshots / "sandbox-new-lead.png"))
    shown = dana.get_by_test_id("channel").inner_text() + dana.get_by_test_id("thread").inner_text()
    assert "instant_sms" not in shown and "(default)" not in shown and "<@U" not in shown

    # She answers the text asking for a time: the team gets a call with what she asked for.
    _pick_phone(dana, "Maria Gonzalez")
    dana.locator("#sms-text").fill("Thanks! Could I come in tomorrow around 3?")
    dana.get_by_role("button", name="Send text").click()
    escalation = call_task(dana, "Maria Gonzalez")
    expect(escalation).to_contain_text("They asked for", timeout=20000)
    expect(dana.get_by_test_id("thread")).to_contain_text("Call task:")
    escalation.evaluate("el => el.scrollIntoView({block: 'start'})")
    dana.screenshot(path=str(screenshots / "sandbox-escalation.png"))

    # Sam's screen is a moment behind: Dana claims the call first, and Sam is told privately.
    sam = open_page(browser, sandbox, SAM)
    expect(call_task(sam, "Maria Gonzalez").get_by_role("button", name="Claim")).to_be_visible()
    sam.route("**/sandbox/api/state*", lambda route: route.abort())
    call_task(dana, "Maria Gonzalez").get_by_role("button", name="Claim").click()
    expect(call_task(dana, "Maria Gonzalez")).to_contain_text(f"Claimed by @{DANA}")
    call_task(sam, "Maria Gonzalez").get_by_role("button", name="Claim").click()
    sam.unroute("**/sandbox/api/state*")
    sam.evaluate("Sandbox.load()")
    expect(sam.get_by_test_id("ephemeral").last).to_contain_text("claimed by", ignore_case=True)
    sam.screenshot(path=str(screenshots / "sandbox-already-claimed.png"))

    # Dana calls and books her for tomorrow at 3.
    call_task(dana, "Maria Gonzalez").get_by_role("button", name="Log outcome").click()
    modal = dana.get_by_test_id("modal")
    modal.get_by_label("Booked").check()
    local = (sandbox.clock.now() + timedelta(days=1)).astimezone(chiropractic(sandbox).timezone)
    modal.locator("input[type=datetime-local]").fill(local.strftime("%Y-%m-%dT15:00"))
    modal.get_by_label("Notes (optional)").fill("New-patient exam; she sits all day at work. Bring insurance card.")
    dana.screenshot(path=str(screenshots / "sandbox-log-outcome.png"))
    modal.get_by_role("button", name="Save").click()
    expect(modal).to_have_count(0)
    expect(card(dana, "Maria Gonzalez")).to_contain_text("Booked for", timeout=20000)

    # James answers the clinic's email about insurance.
    dana.get_by_role("button", name="Skip to next ▸").click()
    inbox = dana.get_by_test_id("inbox").get_by_test_id("mail")
    dana.get_by_role("tab", name="Email").click()
    expect(inbox.filter(has_text="james.carter@example.com").first).to_be_visible(timeout=20000)
    inbox.filter(has_text="james.carter@example.com").first.click()
    viewer = dana.locator("#email-view")
    viewer.get_by_label(re.compile("Reply as")).fill("Great, thanks. Do you have anything Thursday before 9am?")
    dana.screenshot(path=str(screenshots / "sandbox-email.png"))
    viewer.get_by_role("button", name="Send reply").click()
    expect(inbox.first).to_contain_text("→ clinic")

    # Priya would rather not get texts: STOP ends them at once.
    _pick_phone(dana, "Priya Shah")
    dana.locator("#sms-text").fill("STOP")
    dana.get_by_role("button", name="Send text").click()
    expect(phone.locator(".bubble.carrier")).to_contain_text("unsubscribed")
    expect(card(dana, "Priya Shah")).to_contain_text("Opted out", timeout=20000)
    card(dana, "Priya Shah").locator(".thread-link").click()
    card(dana, "Priya Shah").scroll_into_view_if_needed()
    expect(dana.locator("#toast")).to_be_hidden(timeout=8000)
    dana.screenshot(path=str(screenshots / "sandbox-stop.png"))

    # The owner's App Home: today's numbers and the calls waiting.
    alex = open_page(browser, sandbox, "Alex Rivera")
    alex.get_by_role("button", name="followup Home").click()
    expect(alex.get_by_test_id("home").locator(".blocks")).to_be_visible()
    alex.screenshot(path=str(screenshots / "sandbox-home.png"))

    # Monday 08:00: the week's digest comes to the channel, its chart in the thread.
    sandbox.skip(next_monday_8(sandbox) - sandbox.clock.now())
    post_weekly_digest(sandbox)
    digest = digest_message(dana)
    expect(digest).to_contain_text("Leads in", timeout=20000)
    digest.locator(".thread-link").click()
    chart = dana.get_by_test_id("thread").get_by_test_id("file").locator("img")
    expect(chart).to_be_visible()
    dana.wait_for_function("img => img.complete && img.naturalWidth > 200", arg=chart.element_handle())
    digest.evaluate("el => el.scrollIntoView({block: 'start'})")
    dana.screenshot(path=str(screenshots / "sandbox-digest.png"))
    assert not dana.problems and not sam.problems and not alex.problems  # type: ignore[attr-defined]  # open_page hangs the console problems on the page
