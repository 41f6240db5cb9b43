"""Two clinics in one sandbox, as an agency runs them: each lead stays in its own clinic's channel,
number, inbox and calendar, and a STOP or a `/followup` in one clinic never reaches the other."""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta

import pytest
from sqlalchemy import select

from bot.core.clock import utc
from bot.sandbox.runner import CHIROPRACTIC, DENTAL, Sandbox
from bot.store.models import Appointment, Lead, Message
from tests.fakes import WEB_FORM_CONSENT
from tests.sandbox.conftest import chiropractic, dental
from tests.sandbox.test_sandbox_page import card, open_page, skip_until, wait_until_posted

pytestmark = pytest.mark.usefixtures("browser")

ALEX = "Alex Rivera"  # the agency's owner: in both clinics' channels
MEI = "Mei Chen"  # Summit Dental's front desk


def show_channel(page, sandbox: Sandbox, clinic_slug: str) -> None:  # noqa: ANN001 - a Playwright Page
    """Click a clinic's channel in the sidebar, as in Slack."""
    from playwright.sync_api import expect

    business = sandbox.services.business_of(clinic_slug)
    page.get_by_test_id("channels").locator(f"[data-channel='{business.slack.channel}']").click()
    expect(page.get_by_test_id("channel-title")).to_have_text(f"# {clinic_slug}-leads")


def conversation(page, number: str):  # noqa: ANN001, ANN201 - a Playwright Page in, a Locator out
    """The phone's conversation with one clinic's number (a phone keeps a thread per sender)."""
    return page.get_by_test_id("conversations").locator(f"[data-clinic-number='{number}']")


def pick_phone(page, number: str) -> None:  # noqa: ANN001 - a Playwright Page
    page.get_by_role("tab", name="Phones").click()
    pick = page.get_by_test_id("phone-pick")
    label = next(text for text in pick.locator("option").all_inner_texts() if number in text)
    pick.select_option(label=label)


def texts_sent(sandbox: Sandbox, to: str) -> list[tuple[str, str]]:
    """What Twilio accepted for this phone: (the number it came from, the body)."""
    return [(m["from"], m["body"]) for m in sandbox.twilio.messages if m["to"] == to]


def test_a_dental_lead_shows_only_in_the_dental_channel_is_texted_from_its_number_and_its_reply_lands_in_its_thread(
    browser, sandbox: Sandbox
) -> None:
    from playwright.sync_api import expect

    alex = open_page(browser, sandbox, ALEX)
    channels = alex.get_by_test_id("channels")
    expect(channels).to_contain_text("# lakeside-chiro-leads")
    expect(channels).to_contain_text("# summit-dental-leads")

    # A patient fills in the dental practice's website form.
    alex.get_by_role("tab", name="New lead").click()
    form = alex.get_by_test_id("lead-form")
    form.get_by_label("Clinic").select_option(label="Summit Family Dental")
    expect(form).to_contain_text("/webhooks/leads/summit-dental")
    form.get_by_label("Name").fill("Nora Whitaker")
    form.get_by_label("Mobile phone").fill("(720) 555-0131")
    form.get_by_label("How can we help?").fill("A molar aches when I drink anything cold.")
    form.get_by_role("button", name="Send", exact=True).click()
    expect(alex.locator("#lead-result")).to_contain_text("to Summit Family Dental")

    # Her phone shows the dental practice's number texting her, in that practice's own words.
    phone = alex.get_by_test_id("phone")
    dental_number = dental(sandbox).sms.number or ""
    expect(phone.get_by_test_id("sms-out").first).to_contain_text("Summit Family Dental")
    expect(alex.get_by_test_id("phone-number")).to_contain_text(f"texting Summit Family Dental ({dental_number})")
    expect(conversation(alex, dental_number)).to_have_count(1)
    expect(conversation(alex, chiropractic(sandbox).sms.number or "")).to_have_count(0)
    assert {sender for sender, _ in texts_sent(sandbox, "+17205550131")} == {dental_number}

    # Her card is in the dental channel, and nowhere in the chiropractic one.
    show_channel(alex, sandbox, DENTAL)
    expect(card(alex, "Nora Whitaker")).to_be_visible()
    wait_until_posted(sandbox, "Nora Whitaker")
    show_channel(alex, sandbox, CHIROPRACTIC)
    expect(alex.get_by_test_id("channel")).not_to_contain_text("Nora Whitaker")
    assert "Nora Whitaker" not in str(sandbox.slack.messages(chiropractic(sandbox).slack.channel))

    # She texts back: the text goes to the dental number, and lands in her thread in the dental channel.
    alex.locator("#sms-text").fill("Could I come in Thursday morning?")
    alex.get_by_role("button", name="Send text").click()
    expect(phone.get_by_test_id("sms-in").last).to_contain_text("Thursday morning")
    show_channel(alex, sandbox, DENTAL)
    card(alex, "Nora Whitaker").locator(".thread-link").click()
    expect(alex.get_by_test_id("thread")).to_contain_text("Could I come in Thursday morning?")
    with sandbox.services.session_factory() as session:
        lead = session.scalars(select(Lead).where(Lead.name == "Nora Whitaker")).one()
        replies = session.scalars(select(Message).where(Message.lead_id == lead.id, Message.direction == "in")).all()
    assert lead.business == DENTAL and [m.body for m in replies] == ["Could I come in Thursday morning?"]
    assert not alex.problems  # type: ignore[attr-defined]  # open_page hangs the console problems on the page


def test_a_stop_to_the_chiropractic_number_leaves_the_dental_texts_to_the_same_phone_going(
    browser, sandbox: Sandbox
) -> None:
    from playwright.sync_api import expect

    # One person asked both clinics: a lead of each, on the same phone.
    number = "+13125550164"
    for clinic, asked in ((CHIROPRACTIC, "Lower back pain after moving house."), (DENTAL, "Due for a cleaning.")):
        answer = sandbox.actions.submit_lead(
            {"name": "Owen Price", "phone": number, "message": asked, **WEB_FORM_CONSENT}, clinic=clinic
        )
        assert answer.status == 201, answer
    chiro_number, dental_number = chiropractic(sandbox).sms.number or "", dental(sandbox).sms.number or ""
    alex = open_page(browser, sandbox, ALEX)
    pick_phone(alex, number)
    phone = alex.get_by_test_id("phone")
    expect(conversation(alex, chiro_number)).to_be_visible()
    expect(conversation(alex, dental_number)).to_be_visible()

    # STOP, in the conversation with the chiropractic clinic's number.
    conversation(alex, chiro_number).click()
    expect(alex.get_by_test_id("phone-number")).to_contain_text(f"texting Lakeside Chiropractic ({chiro_number})")
    alex.locator("#sms-text").fill("STOP")
    alex.get_by_role("button", name="Send text").click()
    expect(phone.locator(".bubble.carrier")).to_contain_text("unsubscribed")
    expect(conversation(alex, chiro_number)).to_contain_text("(STOP)")
    expect(conversation(alex, dental_number)).not_to_contain_text("(STOP)")

    # Days pass: the dental practice's check-in still reaches the phone; Lakeside sends nothing more.
    def dental_texts() -> list[str]:
        return [body for sender, body in texts_sent(sandbox, number) if sender == dental_number]

    skip_until(alex, lambda: len(dental_texts()) >= 2, tries=12)
    conversation(alex, dental_number).click()
    expect(phone.get_by_test_id("sms-out")).to_have_count(len(dental_texts()))
    assert [sender for sender, _ in texts_sent(sandbox, number)].count(chiro_number) == 1  # only its first text
    assert phone.locator(".bubble-note").count() == 0  # no send Twilio had to refuse, either
    with sandbox.services.session_factory() as session:
        leads = {lead.business: lead for lead in session.scalars(select(Lead).where(Lead.phone == number))}
    assert leads[CHIROPRACTIC].sms_opted_out_at is not None and leads[DENTAL].sms_opted_out_at is None
    assert not alex.problems  # type: ignore[attr-defined]  # open_page hangs the console problems on the page


def test_followup_in_the_chiropractic_channel_does_not_list_or_show_dental_leads(browser, sandbox: Sandbox) -> None:
    from playwright.sync_api import expect

    sandbox.actions.submit_lead({"name": "Carl Jensen", "phone": "+13125550165"}, clinic=CHIROPRACTIC)
    sandbox.actions.submit_lead({"name": "Dora Molnar", "phone": "+17205550165"}, clinic=DENTAL)
    alex = open_page(browser, sandbox, ALEX)  # in both channels: only the channel decides the clinic
    show_channel(alex, sandbox, CHIROPRACTIC)

    alex.locator("#command").fill("/followup list")
    alex.locator("#command").press("Enter")
    listed = alex.get_by_test_id("ephemeral").last
    expect(listed).to_contain_text("Carl Jensen")
    expect(listed).not_to_contain_text("Dora Molnar")
    alex.locator("#command").fill("/followup show Dora Molnar")
    alex.locator("#command").press("Enter")
    expect(alex.get_by_test_id("ephemeral").last).to_contain_text("No lead matches")

    # The same command in the dental channel answers for the dental practice.
    show_channel(alex, sandbox, DENTAL)
    alex.locator("#command").fill("/followup list")
    alex.locator("#command").press("Enter")
    listed = alex.get_by_test_id("ephemeral").last
    expect(listed).to_contain_text("Dora Molnar")
    expect(listed).not_to_contain_text("Carl Jensen")
    assert not alex.problems  # type: ignore[attr-defined]  # open_page hangs the console problems on the page


def test_the_dental_practices_email_comes_from_its_address_and_the_reply_goes_to_its_inbound_address(
    browser, sandbox: Sandbox
) -> None:
    from playwright.sync_api import expect

    sandbox.actions.submit_lead(
        {"name": "Evan Brooks", "email": "evan.brooks@example.com", "message": "Cleaning for me and my kids."},
        clinic=DENTAL,
    )
    mei = open_page(browser, sandbox, MEI)
    expect(mei.get_by_test_id("channel-title")).to_have_text("# summit-dental-leads")  # her channel
    inbox = mei.get_by_test_id("inbox").get_by_test_id("mail")
    skip_until(mei, lambda: inbox.filter(has_text="evan.brooks@example.com").count() > 0)
    mei.get_by_role("tab", name="Email").click()
    sent = inbox.filter(has_text="evan.brooks@example.com").first
    expect(sent.get_by_test_id("mail-clinic")).to_have_text(
        f"from Summit Family Dental <{dental(sandbox).email.from_address}>"
    )
    sent.click()
    viewer = mei.locator("#email-view")
    expect(viewer).to_contain_text(f"reply-to {dental(sandbox).email.inbound_address}")
    viewer.get_by_label(re.compile("Reply as")).fill("Do you have Saturday appointments?")
    viewer.get_by_role("button", name="Send reply").click()

    reply = inbox.filter(has_text="→ clinic").first
    expect(reply.get_by_test_id("mail-clinic")).to_have_text(
        f"to Summit Family Dental <{dental(sandbox).email.inbound_address}>"
    )
    card(mei, "Evan Brooks").locator(".thread-link").click()
    expect(mei.get_by_test_id("thread")).to_contain_text("Do you have Saturday appointments?")
    assert not mei.problems  # type: ignore[attr-defined]  # open_page hangs the console problems on the page


def test_each_clinics_calendar_books_in_its_own_time_zone(browser, sandbox: Sandbox) -> None:
    from playwright.sync_api import expect

    answer = sandbox.actions.submit_lead(
        {"name": "Lucia Romero", "phone": "+17205550166", "email": "lucia@example.com", **WEB_FORM_CONSENT},
        clinic=DENTAL,
    )
    lead_id = answer.body["lead_id"]
    # Tomorrow at 10:00 in Denver, whatever earlier tests in this module did to the clock.
    day = (sandbox.clock.now().astimezone(dental(sandbox).timezone) + timedelta(days=1)).date()
    shown = f"{day:%a}, {day:%b} {day.day}"
    mei = open_page(browser, sandbox, MEI)
    mei.get_by_role("tab", name="Calendar").click()
    calendar = mei.get_by_test_id("calendar")
    expect(calendar.get_by_label("Clinic")).to_have_value(DENTAL)  # her channel's clinic
    expect(calendar).to_contain_text("America/Denver")
    calendar.get_by_label("Who").select_option(label=f"Lucia Romero (#{lead_id})")
    calendar.get_by_label("Date").fill(day.isoformat())
    calendar.get_by_label("Time").fill("10:00")
    calendar.get_by_role("button", name="Book").click()

    bookings = mei.get_by_test_id("calendar-bookings")
    expect(bookings.get_by_test_id("booking").first).to_contain_text(f"{shown}, 10:00 AM")
    expect(card(mei, "Lucia Romero")).to_contain_text(f"Booked for {shown} at 10:00 AM", timeout=30_000)
    with sandbox.services.session_factory() as session:
        [appointment] = session.scalars(select(Appointment).where(Appointment.lead_id == lead_id)).all()
    local = utc(appointment.start_at).astimezone(dental(sandbox).timezone)
    assert local.replace(tzinfo=None) == datetime.combine(day, time(10))

    # Lakeside's calendar lists only Lakeside's leads and bookings.
    calendar.get_by_label("Clinic").select_option(label="Lakeside Chiropractic")
    expect(calendar).to_contain_text("America/Chicago")
    assert "Lucia Romero" not in " ".join(calendar.get_by_label("Who").locator("option").all_inner_texts())
    expect(bookings.get_by_test_id("booking")).to_have_count(0)
    assert not mei.problems  # type: ignore[attr-defined]  # open_page hangs the console problems on the page
