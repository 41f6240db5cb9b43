"""The sandbox page behaves as Slack does: modals keep what was chosen, updates leave selections alone,
the thread sits beside the channel, and links to a card stay inside the page."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from bot.sandbox.runner import Sandbox
from tests.sandbox.conftest import chiropractic
from tests.sandbox.test_sandbox_page import DANA, card, open_page, wait_until_posted

pytestmark = pytest.mark.usefixtures("browser")


def _local_input(sandbox: Sandbox, days: float, hour: int) -> str:
    """A datetime-local value in the clinic's zone, `days` from the sandbox's now, at `hour`."""
    local = (sandbox.clock.now() + timedelta(days=days)).astimezone(chiropractic(sandbox).timezone)
    return local.strftime(f"%Y-%m-%dT{hour:02d}:00")


def _call_task_for(page, name: str):  # noqa: ANN001, ANN201 - a Playwright Page in, a Locator out
    return (
        page.get_by_test_id("channel")
        .locator("article.msg")
        .filter(has=page.locator(".bk-header", has_text=f"Call {name}"))
        .last
    )


def test_a_modal_keeps_the_chosen_option_date_and_notes_after_a_failed_submit(browser, sandbox: Sandbox) -> None:
    from playwright.sync_api import expect

    sandbox.actions.submit_lead(
        {
            "name": "Grace Miller",
            "phone": "+13125550161",
            "email": "grace.miller@example.com",
            "message": "Stiff neck after a long drive. Do you see people on Saturdays?",
        }
    )
    sandbox.actions.text_from_lead("+13125550161", "Do you take Aetna?")
    dana = open_page(browser, sandbox, DANA)
    task = _call_task_for(dana, "Grace Miller")
    expect(task.get_by_role("button", name="Log outcome")).to_be_visible()

    task.get_by_role("button", name="Log outcome").click()
    modal = dana.get_by_test_id("modal")
    modal.get_by_label("Call back").check()
    yesterday = _local_input(sandbox, -1, 17)  # a time that has passed: the bot refuses it
    modal.locator("input[type=datetime-local]").fill(yesterday)
    modal.get_by_label("Notes (optional)").fill("Wants a call after work")
    modal.get_by_role("button", name="Save").click()

    expect(modal.locator(".bk-error")).to_contain_text("That time has passed")
    expect(modal.get_by_label("Call back")).to_be_checked()
    expect(modal.locator("input[type=datetime-local]")).to_have_value(yesterday)
    expect(modal.get_by_label("Notes (optional)")).to_have_value("Wants a call after work")

    # Fixing only the date is enough: the option and the notes are still there.
    tomorrow = _local_input(sandbox, 1, 17)
    modal.locator("input[type=datetime-local]").fill(tomorrow)
    modal.get_by_role("button", name="Save").click()
    expect(modal).to_have_count(0)
    # The call just logged (the call back it set is a new task, posted below it a moment later).
    logged = (
        dana.get_by_test_id("channel")
        .locator("article.msg")
        .filter(has=dana.locator(".bk-header", has_text="Call Grace Miller"))
        .filter(has_text="asked a question")
    )
    expect(logged).to_contain_text("Done: Call back")
    assert not dana.problems  # type: ignore[attr-defined]  # open_page hangs the console problems on the page


def test_a_live_update_keeps_a_text_selection_and_the_scroll_position(browser, sandbox: Sandbox) -> None:
    from playwright.sync_api import expect

    for n, (name, asked) in enumerate(
        [
            ("Oliver Hughes", "Lower back pain when I get up in the morning."),
            ("Sofia Alvarez", "Is there parking near the clinic?"),
            ("Ben Carter", "My shoulder clicks when I lift my arm."),
            ("Hannah Lee", "Can I bring my teenage son for a posture check?"),
        ]
    ):
        sandbox.actions.submit_lead({"name": name, "phone": f"+1312555017{n}", "message": asked})
    dana = open_page(browser, sandbox, DANA)
    dana.set_viewport_size({"width": 1280, "height": 560})  # the channel scrolls
    oliver = card(dana, "Oliver Hughes")
    expect(card(dana, "Hannah Lee")).to_be_visible(timeout=20000)  # Slack posts about one a second
    expect(card(dana, "Hannah Lee").locator(".thread-link")).to_contain_text("1 reply", timeout=20000)
    # Select the words Oliver wrote, and scroll the channel a little, as someone reading would.
    dana.evaluate("""() => {
        const quote = [...document.querySelectorAll('#messages blockquote')]
          .find((q) => q.textContent.includes('Lower back pain when I get up'));
        const range = document.createRange();
        range.selectNodeContents(quote);
        const selection = window.getSelection();
        selection.removeAllRanges();
        selection.addRange(range);
        const box = document.querySelector('#messages');
        box.scrollTop = 40;  // reading the older cards, away from the newest
        quote.closest('article').dataset.marker = 'same-node';
    }""")
    scrolled = dana.evaluate("document.querySelector('#messages').scrollTop")
    assert (
        scrolled == 40
        and dana.evaluate(
            "(() => { const b = document.querySelector('#messages'); return b.scrollHeight - b.clientHeight; })()"
        )
        > 200
    )

    # Another lead writes in: her thread grows and the page updates.
    sandbox.actions.text_from_lead("+13125550173", "Thursday afternoon works for us")
    expect(card(dana, "Hannah Lee").locator(".thread-link")).to_contain_text("2 replies", timeout=20000)
    dana.evaluate("Sandbox.load()")

    assert dana.evaluate("window.getSelection().toString()").strip().startswith("Lower back pain when I get up")
    assert oliver.get_attribute("data-marker") == "same-node"  # not redrawn: nothing about it changed
    assert dana.evaluate("document.querySelector('#messages').scrollTop") == scrolled


@pytest.mark.parametrize(
    "size", [{"width": 1280, "height": 800}, {"width": 1440, "height": 900}], ids=["1280x800", "1440x900"]
)
def test_the_thread_pane_sits_beside_the_channel_at_laptop_sizes(browser, sandbox: Sandbox, size) -> None:
    from playwright.sync_api import expect

    sandbox.actions.submit_lead(
        {"name": "Ruth Adams", "phone": "+13125550181", "message": "Hip pain after running. Any openings this week?"}
    )
    # Measured once the card is drawn for good: a refresh would replace the buttons being measured.
    wait_until_posted(sandbox, "Ruth Adams")
    dana = open_page(browser, sandbox, DANA)
    dana.set_viewport_size(size)
    ruth = card(dana, "Ruth Adams")
    ruth.locator(".thread-link").click()
    thread = dana.get_by_test_id("thread")
    expect(thread).to_be_visible()

    channel = dana.locator("#messages").bounding_box()
    pane = dana.locator("#thread").bounding_box()
    assert channel and pane
    assert channel["x"] + channel["width"] <= pane["x"] + 1, "the thread covers the channel"
    assert channel["width"] >= 360 and pane["width"] >= 300
    assert pane["x"] + pane["width"] <= size["width"]
    # The card's own buttons are still there to press beside the open thread: nothing lies on top of them.
    booked = ruth.get_by_role("button", name="Booked")
    booked.scroll_into_view_if_needed()
    box = booked.bounding_box()
    assert box
    on_top = dana.evaluate(
        "([x, y]) => document.elementFromPoint(x, y).closest('button')?.textContent",
        [box["x"] + box["width"] / 2, box["y"] + box["height"] / 2],
    )
    assert on_top == "Booked"


def test_open_the_card_links_to_the_card_inside_the_page(browser, sandbox: Sandbox) -> None:
    from playwright.sync_api import expect

    sandbox.actions.submit_lead(
        {"name": "Diane Foster", "phone": "+13125550191", "message": "Tension headaches most afternoons."}
    )
    dana = open_page(browser, sandbox, DANA)
    expect(card(dana, "Diane Foster")).to_be_visible()
    page_url = dana.url
    dana.locator("#command").fill("/followup show Diane Foster")
    dana.locator("#command").press("Enter")
    link = dana.get_by_test_id("ephemeral").last.get_by_role("link", name=re.compile("Open the card"))
    expect(link).to_be_visible()

    link.click()

    assert dana.url == page_url and len(dana.context.pages) == 1  # no tab to a workspace that does not exist
    expect(dana.get_by_test_id("thread")).to_contain_text("Tension headaches most afternoons")
    expect(card(dana, "Diane Foster")).to_be_in_viewport()
