"""The sandbox page in headless Chromium, used as a clinic's team and a lead would use it."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from bot.sandbox.runner import Sandbox
from tests.fakes import WEB_FORM_CONSENT
from tests.sandbox.conftest import chiropractic

pytestmark = pytest.mark.usefixtures("browser")

DANA, SAM = "Dana Whitfield", "Sam Okafor"
VIEWPORT = {"width": 1440, "height": 900}


def open_page(browser, sandbox: Sandbox, who: str):  # noqa: ANN001, ANN201 - a Playwright Browser in, a Page out
    """A fresh tab on the sandbox page, as one team member."""
    from playwright.sync_api import expect

    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.goto(sandbox.page_url)
    page.get_by_test_id("who-am-i").select_option(label=who)
    expect(page.locator("#who-role")).not_to_be_empty()
    page.problems = problems  # type: ignore[attr-defined]  # the page carries its console problems for the test to check
    return page


def card(page, name: str):  # noqa: ANN001, ANN201 - a Playwright Page in, a Locator out
    """The lead's card in the channel."""
    return (
        page.get_by_test_id("channel")
        .locator("article.msg")
        .filter(has=page.locator(".bk-header", has_text=re.compile(rf"^\W*{re.escape(name)}$")))
    )


def wait_until_posted(sandbox: Sandbox, name: str, timeout: float = 20.0) -> None:
    """Wait until every notice queued for the lead has reached Slack: its card will not be drawn again."""
    from sqlalchemy import func, select

    from bot.store.models import Lead, OutboxEvent

    deadline = time.monotonic() + timeout
    while True:
        with sandbox.services.session_factory() as session:
            queued = session.scalar(
                select(func.count(OutboxEvent.id))
                .join(Lead, Lead.id == OutboxEvent.lead_id)
                .where(Lead.name == name, OutboxEvent.delivered_at.is_(None))
            )
        if not queued:
            return
        assert time.monotonic() < deadline, f"{queued} notice(s) for {name} still queued after {timeout} s"
        time.sleep(0.1)


def call_task(page, name: str):  # noqa: ANN001, ANN201 - a Playwright Page in, a Locator out
    """The newest call task for the lead in the channel."""
    return (
        page.get_by_test_id("channel")
        .locator("article.msg")
        .filter(has=page.locator(".bk-header", has_text=f"Call {name}"))
        .last
    )


def skip_until(page, condition, *, tries: int = 8) -> None:  # noqa: ANN001 - a Playwright Page and a callable
    """Press 'Skip to next' until the condition holds on the page (each press jumps to the next due touch)."""
    for _ in range(tries):
        if condition():
            return
        page.get_by_role("button", name="Skip to next ▸").click()
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline and not condition():
            page.wait_for_timeout(100)
    assert condition(), "the page never showed what was expected after skipping ahead"


def outgoing_texts(page) -> list[str]:  # noqa: ANN001 - a Playwright Page
    return page.get_by_test_id("phone").get_by_test_id("sms-out").locator(".bubble-text").all_inner_texts()


def test_a_lead_goes_from_web_form_to_booked_to_stop(browser, sandbox: Sandbox, debug_screenshots: Path) -> None:
    from playwright.sync_api import expect

    dana = open_page(browser, sandbox, DANA)

    # A lead fills in the clinic's website form.
    dana.get_by_role("tab", name="New lead").click()
    form = dana.get_by_test_id("lead-form")
    form.get_by_label("Name").fill("Maria Gonzalez")
    form.get_by_label("Mobile phone").fill("(312) 555-0177")
    form.get_by_label("Email").fill("maria@example.com")
    form.get_by_label("How can we help?").fill("Lower back pain since Friday <!channel> & more")
    form.get_by_role("button", name="Send", exact=True).click()

    # The first text on her phone, and her card in #leads (how fast is bench/'s business, not a test's).
    phone = dana.get_by_test_id("phone")
    expect(phone.get_by_test_id("sms-out").first).to_contain_text("Reply STOP to opt out", timeout=10000)
    expect(card(dana, "Maria Gonzalez")).to_be_visible(timeout=10000)
    # What she wrote is shown as text: no @channel ping.
    expect(card(dana, "Maria Gonzalez")).to_contain_text("<!channel> & more")
    assert card(dana, "Maria Gonzalez").locator(".broadcast").count() == 0
    dana.screenshot(path=str(debug_screenshots / "sandbox-new-lead.png"))

    # The clock: fast speeds can be chosen, then time skips to each touch until the call task.
    expect(dana.get_by_test_id("next-due")).to_contain_text("Thank-you email (email) for Maria Gonzalez")
    dana.get_by_role("button", name="1 hour / s").click()
    expect(dana.get_by_role("button", name="1 hour / s")).to_have_attribute("aria-pressed", "true")
    dana.get_by_role("button", name="Real time").click()
    expect(dana.get_by_role("button", name="Real time")).to_have_attribute("aria-pressed", "true")
    skip_until(dana, lambda: call_task(dana, "Maria Gonzalez").count() > 0)
    dana.get_by_role("tab", name="Email").click()
    expect(dana.get_by_test_id("inbox").get_by_test_id("mail").first).to_contain_text("To maria@example.com")
    assert len(outgoing_texts(dana)) >= 2  # the day-1 check-in went out before the call
    # She taps the booking link in the check-in text: the bot records the tap.
    dana.get_by_role("tab", name="Phones").click()
    phone.locator(".bubble-text a[href*='/b/']").first.click()
    expect(dana.locator("#toast")).to_contain_text("Link tapped")
    assert _booking_link_taps(sandbox) == 1

    # Sam's Slack still shows the task open when Dana claims it; his click comes a moment too late.
    sam = open_page(browser, sandbox, SAM)
    expect(call_task(sam, "Maria Gonzalez").get_by_role("button", name="Claim")).to_be_visible()
    sam.route("**/sandbox/api/state*", lambda route: route.abort())  # his screen has not refreshed yet
    call_task(dana, "Maria Gonzalez").get_by_role("button", name="Claim").click()
    expect(call_task(dana, "Maria Gonzalez")).to_contain_text(f"Claimed by @{DANA}")
    call_task(sam, "Maria Gonzalez").get_by_role("button", name="Claim").click()
    sam.unroute("**/sandbox/api/state*")
    sam.evaluate("Sandbox.load()")
    expect(sam.get_by_test_id("ephemeral").last).to_contain_text("claimed by", ignore_case=True)
    expect(sam.get_by_test_id("ephemeral").last).to_contain_text("Only visible to you")
    expect(call_task(sam, "Maria Gonzalez")).to_contain_text(f"Claimed by @{DANA}")
    sam.screenshot(path=str(debug_screenshots / "sandbox-already-claimed.png"))
    # The "already claimed" answer went to Sam only.
    dana.evaluate("Sandbox.load()")
    expect(dana.get_by_test_id("ephemeral")).to_have_count(0)

    # Dana calls, leaves a voicemail, and logs it.
    call_task(dana, "Maria Gonzalez").get_by_role("button", name="Log outcome").click()
    modal = dana.get_by_test_id("modal")
    expect(modal).to_be_visible()
    modal.get_by_label("Left voicemail").check()
    modal.get_by_label("Notes (optional)").fill("Left the voicemail script")
    dana.screenshot(path=str(debug_screenshots / "sandbox-log-outcome.png"))
    modal.get_by_role("button", name="Save").click()
    expect(modal).to_have_count(0)
    expect(call_task(dana, "Maria Gonzalez")).to_contain_text("Done: Left voicemail")

    # She texts back asking for a time: the team gets a new call with what she asked for.
    dana.get_by_role("tab", name="Phones").click()
    dana.locator("#sms-text").fill("can I come tomorrow at 3?")
    dana.get_by_role("button", name="Send text").click()
    expect(phone.get_by_test_id("sms-in").last).to_contain_text("can I come tomorrow at 3?")
    escalation = call_task(dana, "Maria Gonzalez")
    expect(escalation).to_contain_text("They asked for")
    expect(escalation).to_contain_text("Open")
    dana.screenshot(path=str(debug_screenshots / "sandbox-escalation.png"))

    # Dana books her for that time from the card.
    card(dana, "Maria Gonzalez").get_by_role("button", name="Booked").click()
    modal = dana.get_by_test_id("modal")
    expect(modal).to_be_visible()
    modal.locator("input[type=datetime-local]").fill(_tomorrow_at_three(sandbox))
    modal.get_by_role("button", name="Book").click()
    expect(modal).to_have_count(0)
    expect(card(dana, "Maria Gonzalez")).to_contain_text("Booked for")

    # The day-before reminder reaches her phone.
    texts_before = len(outgoing_texts(dana))
    skip_until(dana, lambda: any("reminder" in text.lower() for text in outgoing_texts(dana)[texts_before:]))

    # She texts STOP: the carrier confirms, and nothing more is sent to her phone.
    dana.locator("#sms-text").fill("STOP")
    dana.get_by_role("button", name="Send text").click()
    expect(phone.locator(".bubble.carrier")).to_contain_text("unsubscribed")
    expect(dana.get_by_test_id("next-due")).to_have_text("Nothing scheduled")
    expect(dana.get_by_role("button", name="Skip to next ▸")).to_be_disabled()
    sent = len(outgoing_texts(dana))
    for _ in range(3):  # three days later, still nothing
        dana.get_by_role("button", name="+1 day").click()
        dana.wait_for_timeout(400)
    assert len(outgoing_texts(dana)) == sent
    assert phone.locator(".bubble-note").count() == 0  # not even a send Twilio had to refuse
    dana.screenshot(path=str(debug_screenshots / "sandbox-stop.png"))
    assert not dana.problems and not sam.problems  # type: ignore[attr-defined]  # open_page hangs the console problems on the page


def _booking_link_taps(sandbox: Sandbox) -> int:
    from sqlalchemy import func, select

    from bot.store.models import BookingLinkClick

    with sandbox.services.session_factory() as session:
        return session.scalar(select(func.count()).select_from(BookingLinkClick)) or 0


def _tomorrow_at_three(sandbox: Sandbox) -> str:
    local = sandbox.clock.now().astimezone(chiropractic(sandbox).timezone)
    from datetime import timedelta

    return (local + timedelta(days=1)).strftime("%Y-%m-%dT15:00")


def test_slash_command_answers_only_the_person_who_typed_it(browser, sandbox: Sandbox, debug_screenshots: Path) -> None:
    from playwright.sync_api import expect

    sam = open_page(browser, sandbox, SAM)
    sam.locator("#command").fill("/followup help")
    sam.locator("#command").press("Enter")
    answer = sam.get_by_test_id("ephemeral").last
    expect(answer).to_contain_text("/followup")
    expect(answer).to_contain_text("Only visible to you")
    dana = open_page(browser, sandbox, DANA)
    expect(dana.get_by_test_id("channel")).to_be_visible()
    assert "understands" not in " ".join(dana.get_by_test_id("ephemeral").all_inner_texts())


def test_app_home_shows_what_the_app_published_for_me(browser, sandbox: Sandbox, debug_screenshots: Path) -> None:
    from playwright.sync_api import expect

    alex = open_page(browser, sandbox, "Alex Rivera")
    alex.get_by_role("button", name="followup Home").click()
    expect(alex.get_by_test_id("home").locator(".blocks")).to_be_visible()
    alex.screenshot(path=str(debug_screenshots / "sandbox-home.png"))


def test_an_email_reply_reaches_the_lead_thread(browser, sandbox: Sandbox, debug_screenshots: Path) -> None:
    from playwright.sync_api import expect

    sandbox.actions.submit_lead({"name": "Tom Becker", "email": "tom@example.com", "message": "Headaches"})
    dana = open_page(browser, sandbox, DANA)
    skip_until(
        dana, lambda: dana.get_by_test_id("inbox").get_by_test_id("mail").filter(has_text="tom@example.com").count() > 0
    )
    dana.get_by_role("tab", name="Email").click()
    dana.get_by_test_id("inbox").get_by_test_id("mail").filter(has_text="tom@example.com").first.click()
    viewer = dana.locator("#email-view")
    expect(viewer).to_contain_text("to tom@example.com")
    expect(viewer.locator("iframe.mail-html")).to_be_visible()
    expect(viewer.locator(".mail-text")).not_to_be_empty()
    viewer.get_by_label(re.compile("Reply as")).fill("Do you take Blue Cross?")
    dana.screenshot(path=str(debug_screenshots / "sandbox-email.png"))
    viewer.get_by_role("button", name="Send reply").click()
    expect(dana.get_by_test_id("inbox").get_by_test_id("mail").first).to_contain_text("→ clinic")
    card(dana, "Tom Becker").get_by_role("button", name=re.compile(r"repl")).click()
    expect(dana.get_by_test_id("thread")).to_contain_text("Do you take Blue Cross?")


def test_a_marked_thread_reply_reaches_the_phone_and_a_note_stays_in_slack(browser, sandbox: Sandbox) -> None:
    from playwright.sync_api import expect

    sandbox.actions.submit_lead(
        {"name": "Priya Shah", "phone": "+13125550188", "message": "After a car accident", **WEB_FORM_CONSENT}
    )
    dana = open_page(browser, sandbox, DANA)
    expect(card(dana, "Priya Shah")).to_be_visible()
    dana.get_by_test_id("phone-pick").select_option(label="Priya Shah · +13125550188")
    expect(dana.get_by_test_id("phone").get_by_test_id("sms-out")).to_have_count(1)
    card(dana, "Priya Shah").locator(".thread-link").click()
    box = dana.get_by_label("Reply in thread")
    expect(box).to_be_focused()
    box.fill("She sounded worried on the voicemail")
    box.press("Enter")
    assert "!reply" in (box.get_attribute("placeholder") or "")
    box.fill("!reply Hi Priya, this is Dana. Thursday at 10 works?")
    box.press("Enter")
    phone = dana.get_by_test_id("phone")
    expect(phone.get_by_test_id("sms-out").last).to_contain_text("Thursday at 10 works?")
    thread = dana.get_by_test_id("thread")
    expect(thread).to_contain_text("She sounded worried")
    assert "worried" not in " ".join(phone.get_by_test_id("sms-out").all_inner_texts())


def test_block_kit_is_drawn_as_slack_draws_it(browser, sandbox: Sandbox) -> None:
    dana = open_page(browser, sandbox, DANA)
    drawn = dana.evaluate("""() => {
        const blocks = [
          {type: "header", text: {type: "plain_text", text: "Hello :wave:"}},
          {type: "section",
           text: {type: "mrkdwn",
                  text: "*bold* _it_ ~gone~ `code` <https://example.com|a link> <@U0SANDSAM> &lt;!channel&gt;"},
           accessory: {type: "overflow", action_id: "more", options: [
             {text: {type: "plain_text", text: "Snooze 1 h"}, value: "1h"},
             {text: {type: "plain_text", text: "Snooze 1 d"}, value: "1d"}]}},
          {type: "divider"},
          {type: "context", elements: [{type: "mrkdwn", text: "small print"},
                                       {type: "image", image_url: "https://x/y.png", alt_text: "logo"}]},
          {type: "actions", elements: [
            {type: "static_select", action_id: "pick", placeholder: {type: "plain_text", text: "Sequence"},
             options: [{text: {type: "plain_text", text: "Dental"}, value: "dental"}]},
            {type: "button", action_id: "go", text: {type: "plain_text", text: "Go"}, style: "primary", value: "1"}]},
          {type: "mystery"},
        ];
        const el = Blocks.render(blocks, {people: (id) => id === "U0SANDSAM" ? "Sam Okafor" : null, team: [],
                                          act: () => {}});
        return {
          header: el.querySelector(".bk-header").textContent,
          html: el.querySelector(".bk-section .bk-text").innerHTML,
          overflow: [...el.querySelectorAll(".bk-overflow option")].map((o) => o.textContent),
          divider: !!el.querySelector("hr.bk-divider"),
          context: el.querySelector(".bk-context").textContent,
          select: [...el.querySelectorAll(".bk-select option")].map((o) => o.textContent),
          primary: el.querySelector(".bk-button.primary").textContent,
          unknown: el.querySelector(".bk-unknown").textContent,
          images: el.querySelectorAll("img").length,
        };
    }""")
    assert drawn["header"] == "Hello 👋"
    assert "<b>bold</b>" in drawn["html"] and "<i>it</i>" in drawn["html"] and "<s>gone</s>" in drawn["html"]
    assert "<code>code</code>" in drawn["html"] and 'href="https://example.com"' in drawn["html"]
    assert "@Sam Okafor" in drawn["html"] and "&lt;!channel&gt;" in drawn["html"] and "broadcast" not in drawn["html"]
    assert drawn["overflow"] == ["⋯", "Snooze 1 h", "Snooze 1 d"]
    assert drawn["divider"] and "small print" in drawn["context"] and "[logo]" in drawn["context"]
    assert drawn["select"] == ["Sequence", "Dental"] and drawn["primary"] == "Go"
    assert "mystery" in drawn["unknown"] and drawn["images"] == 0  # nothing is loaded from elsewhere


def test_the_keyboard_opens_and_closes_a_modal(browser, sandbox: Sandbox) -> None:
    from playwright.sync_api import expect

    sandbox.actions.submit_lead({"name": "Aisha Bello", "phone": "+13125550199", **WEB_FORM_CONSENT})
    dana = open_page(browser, sandbox, DANA)
    booked = card(dana, "Aisha Bello").get_by_role("button", name="Booked")
    booked.focus()
    dana.keyboard.press("Enter")
    modal = dana.get_by_test_id("modal")
    expect(modal).to_be_visible()
    expect(modal.locator("input[type=datetime-local]")).to_be_focused()
    dana.keyboard.press("Escape")
    expect(modal).to_have_count(0)
    # As in Slack, a required input left empty keeps the modal open and says so.
    booked.click()
    modal.get_by_role("button", name="Book").click()
    expect(modal.locator(".bk-error")).to_have_text("Please complete this required field.")
    expect(modal.locator("input[type=datetime-local]")).to_be_focused()
    # A time in the past goes to the bot, which answers with a field error that the modal shows.
    modal.locator("input[type=datetime-local]").fill("2020-01-06T10:00")
    modal.get_by_role("button", name="Book").click()
    expect(modal.locator(".bk-error")).to_contain_text("That time has passed")
