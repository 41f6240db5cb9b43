"""No lead forgotten (issue 11): signed Twilio and SendGrid requests in; the Slack, Twilio and SendGrid stand-ins out.

Each test drives the real web app's webhooks; what the bot queued for Slack is posted through the
real poster and WebClient into the Slack stand-in, and read back from there as the team sees it.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
from slack_sdk import WebClient
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from bot.slack.limits import SlackLimits
from bot.slack.poster import SlackPoster
from bot.standins.slack_api import SlackApiStandin
from bot.store.models import CallTask, Enrollment, Lead, Message, Touch
from bot.usecases.call_tasks import remind_unclaimed
from tests.webhooks.conftest import AUTH_TOKEN, BOOKING_TOKEN, CLINIC_NUMBER, LEAD_TOKEN, post_inbound_parse

BOT_TOKEN = "xoxb-forgotten"
LEADS = "C0LEADS"
ONCALL = "U0ONCALL"
ADMIN = "U0ADMIN"
DANA_PHONE = "+13125550142"
CHICAGO = "America/Chicago"


class FakeTime:
    """Monotonic seconds that pass only when slept: Slack's rate limits cost the tests no real time."""

    def __init__(self) -> None:
        self.now = 1000.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class Team:
    """The leads channel in the Slack stand-in, filled by the real poster from the bot's outbox."""

    def __init__(self, bot, slack: SlackApiStandin):
        fake = FakeTime()
        client = WebClient(token=BOT_TOKEN, base_url=slack.url + "/api/", timeout=2)
        self.poster = SlackPoster(
            bot.services, client, LEADS, ONCALL, admins=(ADMIN,), limits=SlackLimits(clock=fake.clock, sleep=fake.sleep)
        )
        self.slack = slack
        self.services = bot.services

    def catch_up(self) -> None:
        while self.poster.drain_once(500):
            pass

    def thread(self, lead_id: int) -> list[str]:
        """The lead's thread as text (each message's text and blocks), after posting what is queued."""
        self.catch_up()
        with self.services.session_factory() as session:
            lead = session.get(Lead, lead_id)
            assert lead is not None and lead.slack_ts, "the lead has no card in Slack"
            card_ts = lead.slack_ts
        return [m["text"] + "\n" + json.dumps(m.get("blocks") or []) for m in self.slack.thread(LEADS, card_ts)[1:]]

    def channel_posts(self) -> list[str]:
        self.catch_up()
        return [
            m["text"] + "\n" + json.dumps(m.get("blocks") or [])
            for m in self.slack.messages(LEADS)
            if "thread_ts" not in m
        ]


@pytest.fixture
def team(running_bot):
    with SlackApiStandin(BOT_TOKEN) as slack:
        yield Team(running_bot, slack)


def new_lead(bot, **fields) -> int:
    body = {
        "name": "Dana Lee",
        "phone": DANA_PHONE,
        "email": "dana@example.com",
        "consent": True,
        "consent_text": "I agree to get texts from Lakeside Chiropractic about my inquiry.",
        **fields,
    }
    answer = bot.http.post(
        "/webhooks/leads",
        json={k: v for k, v in body.items() if v is not None},
        headers={"Authorization": f"Bearer {LEAD_TOKEN}"},
    )
    assert answer.status_code in (200, 201), answer.text
    return answer.json()["lead_id"]


def text_in(bot, twilio, body: str, sender: str = DANA_PHONE, **extra) -> int:
    return twilio.inbound_sms(f"{bot.url}/webhooks/twilio/sms", sender, body, to=CLINIC_NUMBER, **extra)


def missed_call(bot, sender: str = DANA_PHONE, sid: str = "CA" + "7" * 32) -> str:
    url = f"{bot.url}/webhooks/twilio/voice"
    params = {"CallSid": sid, "From": sender, "To": CLINIC_NUMBER, "CallStatus": "ringing"}
    signature = RequestValidator(AUTH_TOKEN).compute_signature(url, params)
    answer = bot.http.post("/webhooks/twilio/voice", data=params, headers={"X-Twilio-Signature": signature})
    assert answer.status_code == 200
    return answer.text


def inbound_email(bot, text: str, *, message_id: str = "<m1@mail.example.com>") -> int:
    sender = "Dana Lee <dana@example.com>"
    fields = {
        "from": sender,
        "to": "reply@inbound.lakeside.example",
        "subject": "Re: Thanks for reaching out",
        "text": text,
        "headers": f"Message-ID: {message_id}\nFrom: {sender}\n",
        "envelope": json.dumps({"to": ["reply@inbound.lakeside.example"], "from": "dana@example.com"}),
        "charsets": json.dumps({"text": "UTF-8"}),
        "spam_score": "0.1",
        "SPF": "pass",
        "dkim": "{@example.com : pass}",
    }
    return post_inbound_parse(bot.http, fields).status_code


def tasks(bot, lead_id: int) -> list[CallTask]:
    with bot.services.session_factory() as session:
        return list(session.scalars(select(CallTask).where(CallTask.lead_id == lead_id).order_by(CallTask.id)))


def sales_state(bot, lead_id: int) -> str:
    with bot.services.session_factory() as session:
        return session.scalars(
            select(Enrollment.state).where(Enrollment.lead_id == lead_id).order_by(Enrollment.id)
        ).first()


def chicago(moment: datetime) -> datetime:
    from zoneinfo import ZoneInfo

    return moment.astimezone(ZoneInfo(CHICAGO))


# --- 4. a known lead who calls or writes again -----------------------------------------------------


def test_a_missed_call_from_a_lead_in_conversation_opens_a_call_them_back_task_and_says_so(running_bot, twilio, team):
    lead_id = new_lead(running_bot)
    texts_before = len(twilio.messages)
    said = missed_call(running_bot)
    assert "call you back shortly" in said and "text you" not in said
    [task] = tasks(running_bot, lead_id)
    assert task.reason == "they called back: call them" and task.status == "open"
    assert task.due_at == running_bot.services.clock.now()
    assert sales_state(running_bot, lead_id) == "paused"
    assert len(twilio.messages) == texts_before  # nothing promised, nothing sent
    thread = team.thread(lead_id)
    assert any("Called and could not get through" in entry for entry in thread)
    assert any("they called back: call them" in entry for entry in thread)
    assert any(f"<@{ONCALL}>" in post and "they called back" in post for post in team.channel_posts())


def test_twilio_asking_twice_about_one_missed_call_opens_one_task_and_says_the_same(running_bot, twilio, team):
    lead_id = new_lead(running_bot)
    first, again = missed_call(running_bot), missed_call(running_bot)
    assert first == again
    assert len(tasks(running_bot, lead_id)) == 1


def test_a_known_lead_calling_at_night_hears_when_the_team_will_call_and_the_task_is_due_then(running_bot, team, clock):
    lead_id = new_lead(running_bot)
    clock.advance(timedelta(hours=13))  # Wednesday 22:00 in Chicago; Thursday is Thanksgiving
    said = missed_call(running_bot)
    [task] = tasks(running_bot, lead_id)
    assert chicago(task.due_at) == datetime(2026, 11, 27, 8, 0, tzinfo=chicago(task.due_at).tzinfo)
    assert "when we open, Friday, Nov 27 at 8:00 AM" in said
    assert any("Due:" in post and "Nov 27" in post for post in team.channel_posts())


def test_a_missed_call_from_a_new_number_is_answered_with_the_text_that_then_goes_out(running_bot, twilio):
    said = missed_call(running_bot, sender="+16175550123")
    assert "text you right away" in said
    assert [m["to"] for m in twilio.messages] == ["+16175550123"]


def test_the_form_sent_again_by_an_ongoing_lead_lands_in_its_thread_and_is_read_like_a_reply(running_bot, team):
    lead_id = new_lead(running_bot)
    again = running_bot.http.post(
        "/webhooks/leads",
        json={"name": "Dana Lee", "phone": DANA_PHONE, "message": "Do you take Blue Cross insurance?"},
        headers={"Authorization": f"Bearer {LEAD_TOKEN}"},
    )
    assert again.status_code == 200 and again.json()["lead_id"] == lead_id
    with running_bot.services.session_factory() as session:
        [message] = session.scalars(select(Message).where(Message.direction == "in")).all()
    assert (message.channel, message.body, message.classification) == (
        "form",
        "Do you take Blue Cross insurance?",
        "question",
    )
    assert sales_state(running_bot, lead_id) == "paused"
    assert [t.reason for t in tasks(running_bot, lead_id)] == ["asked a question"]
    assert any("Blue Cross" in entry for entry in team.thread(lead_id))


def test_an_empty_form_sent_again_still_reaches_a_person(running_bot, team):
    lead_id = new_lead(running_bot)
    new_lead(running_bot, message=None)
    assert sales_state(running_bot, lead_id) == "paused"
    assert any("sent the web form again" in entry for entry in team.thread(lead_id))


def test_an_email_from_an_ongoing_lead_lands_in_its_thread_and_is_read_like_a_reply(running_bot, team):
    lead_id = new_lead(running_bot)
    assert inbound_email(running_bot, "Do you take Blue Cross insurance?") == 200
    assert sales_state(running_bot, lead_id) == "paused"
    assert any("Blue Cross" in entry for entry in team.thread(lead_id))


# --- 5. scripts from the lead's own playbook --------------------------------------------------------


def test_a_dental_leads_escalation_call_uses_the_dental_script(running_bot, twilio):
    lead_id = new_lead(running_bot, sequence="dental")
    text_in(running_bot, twilio, "Do you take Blue Cross insurance?")
    [task] = tasks(running_bot, lead_id)
    assert "Consultation request via" in task.call_script


# --- 6. a number that cannot take texts -------------------------------------------------------------


def test_the_first_text_to_a_landline_goes_by_email_instead_once(running_bot, twilio, sendgrid):
    twilio.set_number_behaviour(DANA_PHONE, 21614)
    lead_id = new_lead(running_bot)
    with running_bot.services.session_factory() as session:
        touch = session.scalars(select(Touch).where(Touch.lead_id == lead_id, Touch.step_id == "instant_sms")).one()
        assert touch.status == "sent" and touch.skip_reason.startswith("sent by email")
        body = touch.body_text
    assert twilio.messages == []
    [email] = sendgrid.emails
    assert email.to == ["dana@example.com"] and "Dana" in body
    assert tasks(running_bot, lead_id) == []


def test_the_first_text_to_a_landline_without_email_becomes_one_call_task_now(running_bot, twilio, team):
    twilio.set_number_behaviour(DANA_PHONE, 21635)
    lead_id = new_lead(running_bot, email=None)
    [task] = tasks(running_bot, lead_id)
    assert task.reason.startswith("texts cannot reach this number") and task.due_at == running_bot.services.clock.now()
    assert any("cannot reach" in entry for entry in team.thread(lead_id))


def test_a_text_reported_undelivered_to_a_landline_is_sent_by_email_instead(running_bot, twilio, sendgrid):
    twilio.set_number_behaviour(DANA_PHONE, 30006)
    lead_id = new_lead(running_bot)
    [sms] = twilio.messages
    assert twilio.deliver_status(sms["sid"]) == 204
    assert twilio.deliver_status(sms["sid"]) == 204  # a repeated callback reroutes nothing twice
    instant = [e for e in sendgrid.emails if "Dana" in (e.text or "") and e.subject.startswith("A note from")]
    assert len(instant) == 1
    with running_bot.services.session_factory() as session:
        touch = session.scalars(select(Touch).where(Touch.lead_id == lead_id, Touch.step_id == "instant_sms")).one()
    assert touch.skip_reason.startswith("sent by email")


def test_a_region_our_twilio_account_may_not_text_is_a_setting_to_fix_not_an_unreachable_lead(
    running_bot, twilio, sendgrid, team
):
    """21408 says the clinic's Twilio account lacks the country's permission: the number itself may be fine."""
    twilio.set_number_behaviour(DANA_PHONE, 21408)
    lead_id = new_lead(running_bot)
    with running_bot.services.session_factory() as session:
        lead = session.get(Lead, lead_id)
        touch = session.scalars(select(Touch).where(Touch.lead_id == lead_id, Touch.step_id == "instant_sms")).one()
        assert lead is not None and lead.sms_unreachable_reason is None
        assert touch.status == "failed" and "21408" in (touch.last_error or "")
    assert twilio.messages == [] and not any("Dana" in (e.text or "") for e in sendgrid.emails)
    failures = [entry for entry in team.thread(lead_id) if "21408" in entry]
    assert failures and all("Geo permissions" in entry for entry in failures)
    assert not any("cannot reach" in entry for entry in team.thread(lead_id))


def test_two_calls_for_one_lead_due_in_the_same_minute_are_one_task(running_bot, twilio):
    twilio.set_number_behaviour(DANA_PHONE, 21635)
    lead_id = new_lead(running_bot, email=None)
    text_in(running_bot, twilio, "Do you take Blue Cross insurance?")
    [task] = tasks(running_bot, lead_id)
    assert "texts cannot reach" in task.reason and "asked a question" in task.reason


# --- 7. call tasks close when their reason ends -----------------------------------------------------


def test_a_booking_closes_the_open_call_task_with_a_line_saying_why(running_bot, twilio, team):
    lead_id = new_lead(running_bot)
    text_in(running_bot, twilio, "Do you take Blue Cross insurance?")
    start = (running_bot.services.clock.now() + timedelta(days=2)).isoformat()
    answer = running_bot.http.post(
        "/webhooks/booking",
        json={"lead_id": lead_id, "start": start},
        headers={"Authorization": f"Bearer {BOOKING_TOKEN}"},
    )
    assert answer.status_code == 201
    [task] = tasks(running_bot, lead_id)
    assert task.status == "cancelled"
    assert any("Call task closed (asked a question): booked" in entry for entry in team.thread(lead_id))


def test_stop_closes_the_open_call_task_with_a_line_saying_why(running_bot, twilio, team):
    lead_id = new_lead(running_bot)
    text_in(running_bot, twilio, "Do you take Blue Cross insurance?")
    text_in(running_bot, twilio, "STOP", OptOutType="STOP")
    [task] = tasks(running_bot, lead_id)
    assert task.status == "cancelled"
    assert any("Call task closed (asked a question): opted out" in entry for entry in team.thread(lead_id))


def test_the_move_to_nurture_closes_a_call_nobody_made(running_bot, team, clock):
    lead_id = new_lead(running_bot)
    for _ in range(8 * 24):
        clock.advance(timedelta(hours=1))
        running_bot.dispatch()
    with running_bot.services.session_factory() as session:
        assert session.get(Lead, lead_id).stage == "nurture"
    [task] = [t for t in tasks(running_bot, lead_id) if "scheduled follow-up call" in t.reason]
    assert task.status == "cancelled"
    assert any(f"Call task closed ({task.reason}): nurture" in entry for entry in team.thread(lead_id))


# --- 8. escalations at night ------------------------------------------------------------------------


def test_a_question_at_night_is_due_at_the_next_moment_a_call_may_be_made_and_nudges_wait_for_the_team(
    running_bot, twilio, team, clock
):
    lead_id = new_lead(running_bot)
    clock.advance(timedelta(hours=13))  # Wednesday 22:00 in Chicago; Thursday is Thanksgiving
    text_in(running_bot, twilio, "Do you take Blue Cross insurance?")
    [task] = tasks(running_bot, lead_id)
    assert chicago(task.due_at).isoformat() == "2026-11-27T08:00:00-06:00"
    assert any("Due:" in post and "Fri, Nov 27 at 8:00 AM" in post for post in team.channel_posts())

    def nudge() -> int:
        with running_bot.services.session_factory.begin() as session:
            return remind_unclaimed(
                session, now=clock.now(), after=timedelta(minutes=30), business=running_bot.services.business
            )

    for _ in range(20):  # all night, and through the holiday
        clock.advance(timedelta(hours=2))
        if clock.now() >= task.due_at:
            break
        assert nudge() == 0
    clock.advance(task.due_at - clock.now() + timedelta(minutes=31))
    assert nudge() == 1
    clock.advance(timedelta(minutes=31))
    assert nudge() == 1
    thread = team.thread(lead_id)
    [first] = [e for e in thread if "Nobody has claimed this call" in e]
    [second] = [e for e in thread if "Still nobody has claimed this call" in e]
    assert f"<@{ONCALL}>" in first and f"<@{ADMIN}>" in second


# --- 9. skipped touches are visible -----------------------------------------------------------------


def test_a_touch_skipped_for_want_of_an_email_address_leaves_one_line_in_the_thread(running_bot, team, clock):
    lead_id = new_lead(running_bot, email=None)
    clock.advance(timedelta(minutes=20))
    running_bot.dispatch()
    thread = team.thread(lead_id)
    skipped = [entry for entry in thread if "Skipped the thank-you email" in entry]
    assert len(skipped) == 1 and "email" in skipped[0] and "same_day_email" not in skipped[0]


def test_a_touch_skipped_because_the_lead_replied_leaves_one_line_in_the_thread(running_bot, twilio, team, clock):
    lead_id = new_lead(running_bot)
    text_in(running_bot, twilio, "ok thanks, I'll check my calendar")
    with running_bot.services.session_factory.begin() as session:  # the team resumes the sequence
        from bot.store.audit import SYSTEM
        from bot.usecases.lead_actions import resume_lead

        resume_lead(session, running_bot.services, session.get(Lead, lead_id), now=clock.now(), actor=SYSTEM)
    for _ in range(50):  # past Friday morning, the check-in's slot (Thursday is Thanksgiving)
        clock.advance(timedelta(hours=1))
        running_bot.dispatch()
    thread = team.thread(lead_id)
    assert len([e for e in thread if "Skipped the day-1 check-in text" in e]) == 1


# --- 14. photos -------------------------------------------------------------------------------------

#: The bytes of a small PNG (its signature and a header chunk): what a lead's phone sends as MMS.
PHOTO = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"


def test_a_photo_alone_reaches_the_thread_pauses_automation_and_tells_the_team(running_bot, twilio, team):
    lead_id = new_lead(running_bot)
    assert (
        twilio.inbound_mms(
            f"{running_bot.url}/webhooks/twilio/sms", DANA_PHONE, "", to=CLINIC_NUMBER, media=[(PHOTO, "image/png")]
        )
        == 200
    )
    with running_bot.services.session_factory() as session:
        [message] = session.scalars(select(Message).where(Message.direction == "in")).all()
    assert message.classification == "plain" and message.body == "(sent a photo)"
    assert sales_state(running_bot, lead_id) == "paused"
    thread = team.thread(lead_id)
    assert any(f"<@{ONCALL}>" in entry and "a person takes over" in entry for entry in thread)
    [shared] = team.slack.files.values()
    assert shared["content"] == PHOTO and shared["name"].endswith(".png")
    with running_bot.services.session_factory() as session:
        card_ts = session.get(Lead, lead_id).slack_ts
    assert (shared["channel"], shared["thread_ts"]) == (LEADS, card_ts)
    # Fetched as Twilio serves media: with the account's credentials, then from where it redirects.
    [fetch] = twilio.requests_for("media.fetch")
    assert fetch.headers.get("Authorization", "").startswith("Basic ") and fetch.status == 307
    [content] = twilio.requests_for("media.content")
    assert "Authorization" not in content.headers


def test_a_photo_with_words_keeps_the_words_and_shares_every_photo(running_bot, twilio, team):
    lead_id = new_lead(running_bot)
    twilio.inbound_mms(
        f"{running_bot.url}/webhooks/twilio/sms",
        DANA_PHONE,
        "here is my insurance card",
        to=CLINIC_NUMBER,
        media=[(PHOTO, "image/png"), (PHOTO + b"back", "image/jpeg")],
    )
    assert any("here is my insurance card" in entry for entry in team.thread(lead_id))
    assert sorted(f["name"].rsplit(".", 1)[-1] for f in team.slack.files.values()) == ["jpg", "png"]
    assert sales_state(running_bot, lead_id) == "paused"


def test_an_mms_whose_media_count_does_not_match_its_urls_is_refused(running_bot, twilio):
    new_lead(running_bot)
    assert text_in(running_bot, twilio, "", NumMedia="1") == 400
    with running_bot.services.session_factory() as session:
        assert session.scalars(select(Message).where(Message.direction == "in")).all() == []


# --- 13. the requested time, in both zones ----------------------------------------------------------


def test_a_requested_time_is_shown_once_labelled_with_ours_beside_it_on_the_card_and_in_the_script(
    running_bot, twilio, team
):
    los_angeles = "+14155550142"
    lead_id = new_lead(running_bot, phone=los_angeles, email=None)
    text_in(running_bot, twilio, "can I come tomorrow at 3pm?", sender=los_angeles)
    [task] = tasks(running_bot, lead_id)
    said = "Thu, Nov 26 at 3:00 PM PST their time (5:00 PM CST here)"
    assert f"They asked to be called: {said}." in task.call_script
    [card] = [post for post in team.channel_posts() if "Call " in post and "asked for" in post]
    # The card's "They asked for" line and its copy of the script say it the same way, and only so.
    assert card.count(said) == 2 and card.count("3:00 PM") == 2 and card.count("5:00 PM") == 2
