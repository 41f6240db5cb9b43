"""The sandbox's calendar panel in headless Chromium: book, move, cancel and no-show through Calendly's webhooks."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bot.sandbox.runner import Sandbox
from bot.store.models import Appointment, CallTask
from tests.sandbox.test_sandbox_page import DANA, card, open_page

pytestmark = pytest.mark.usefixtures("browser")


def statuses(sandbox: Sandbox) -> list[str]:
    with sandbox.services.session_factory() as session:
        return [str(a.status) for a in session.scalars(select(Appointment).order_by(Appointment.id))]


def test_the_calendar_books_moves_cancels_and_marks_no_shows_through_calendlys_webhooks(browser, sandbox: Sandbox):
    from playwright.sync_api import expect

    assert sandbox.actions.submit_lead(
        {
            "name": "Rosa Diaz",
            "phone": "(312) 555-0188",
            "email": "rosa@example.com",
            "message": "Knee pain",
            "consent": "on",
            "consent_text": "I agree to texts from the clinic.",
        }
    ).ok
    page = open_page(browser, sandbox, DANA)
    page.get_by_role("tab", name="Calendar").click()
    calendar = page.get_by_test_id("calendar")
    expect(calendar).to_contain_text("America/Chicago")
    calendar.get_by_label("Who").select_option(label="Rosa Diaz (#1)")
    calendar.get_by_label("Date").fill("2027-03-03")
    calendar.get_by_label("Time").fill("10:00")
    calendar.get_by_role("button", name="Book").click()

    # Booked on the calendar: the bot took Calendly's webhook, the card says so, Rosa gets the confirmation.
    bookings = page.get_by_test_id("calendar-bookings")
    expect(bookings.get_by_test_id("booking")).to_have_count(1)
    expect(bookings.get_by_test_id("booking").first).to_contain_text("Wed, Mar 3, 10:00 AM")
    expect(bookings.get_by_test_id("booking-status").first).to_have_text("booked")
    # The poster keeps Slack's pace (about a message a second per channel): the card follows the thread's notes.
    expect(card(page, "Rosa Diaz")).to_contain_text("Booked for Wed, Mar 3 at 10:00 AM", timeout=30_000)
    page.get_by_role("tab", name="Phones").click()
    page.get_by_test_id("phone-pick").select_option(label="Rosa Diaz · +13125550188")
    expect(page.get_by_test_id("phone").get_by_test_id("sms-out").last).to_contain_text("you're booked")

    # Moved: Calendly's cancel (rescheduled) and new invitee; the old booking shows as moved.
    page.get_by_role("tab", name="Calendar").click()
    calendar.get_by_label("Date").fill("2027-03-04")
    calendar.get_by_label("Time").fill("14:30")
    bookings.get_by_role("button", name="Move to the date and time above").click()
    expect(bookings.get_by_test_id("booking")).to_have_count(2)
    expect(bookings.get_by_test_id("booking").first).to_contain_text("Thu, Mar 4, 2:30 PM")
    expect(bookings.get_by_test_id("booking-status")).to_have_text(["booked", "moved"])
    assert statuses(sandbox) == ["rescheduled", "booked"]

    # Cancelled on the calendar, then booked again and missed.
    bookings.get_by_role("button", name="Cancel").click()
    expect(bookings.get_by_test_id("booking-status")).to_have_text(["cancelled", "moved"])
    expect(card(page, "Rosa Diaz")).to_contain_text("Cancelled Thu, Mar 4 at 2:30 PM", timeout=30_000)
    expect(card(page, "Rosa Diaz").get_by_role("button", name="Rebook")).to_be_visible()
    calendar.get_by_label("Date").fill("2027-03-03")
    calendar.get_by_label("Time").fill("11:00")
    calendar.get_by_role("button", name="Book").click()
    expect(bookings.get_by_test_id("booking-status")).to_have_text(["booked", "cancelled", "moved"])
    page.get_by_role("button", name="+1 day").click()
    page.get_by_role("button", name="+1 day").click()
    bookings.get_by_role("button", name="No-show").click()
    expect(bookings.get_by_test_id("booking-status").first).to_have_text("no-show")
    assert statuses(sandbox) == ["rescheduled", "cancelled", "no_show"]
    with sandbox.services.session_factory() as session:
        assert "missed the visit" in [t.reason for t in session.scalars(select(CallTask))]
    assert page.problems == []  # type: ignore[attr-defined]  # open_page hangs the console problems on the page
