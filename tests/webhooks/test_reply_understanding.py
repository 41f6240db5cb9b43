"""Replies understood by the principle (issue 11 classes 1, 2, 3, 12; issue 10's opt-outs), end to end.

A signed Twilio or SendGrid request goes in through the real web app; what the team sees is read
back from the Slack stand-in (posted by the real poster), what the lead gets from the Twilio and
SendGrid stand-ins.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from bot.store.audit import Actor
from bot.store.models import Lead, Message
from bot.usecases.conversations import DirectMessageRefused, send_direct
from tests.webhooks.test_no_lead_forgotten import (  # noqa: F401  (team is a fixture)
    DANA_PHONE,
    ONCALL,
    inbound_email,
    new_lead,
    sales_state,
    tasks,
    team,
    text_in,
)

IOS_DRIVING = "I’m driving with notifications silenced. I’ll see your message when I get where I’m going."


def stored_reply(bot, lead_id: int) -> Message:
    with bot.services.session_factory() as session:
        return session.scalars(
            select(Message).where(Message.lead_id == lead_id, Message.direction == "in").order_by(Message.id.desc())
        ).first()


def lead_row(bot, lead_id: int) -> Lead:
    with bot.services.session_factory() as session:
        lead = session.get(Lead, lead_id)
        session.expunge(lead)
        return lead


def sent_after(bot, twilio, sendgrid, *, days: int) -> tuple[int, int]:
    """Run the follow-up for some days; count the texts and emails that went out meanwhile."""
    texts, emails = len(twilio.messages), len(sendgrid.emails)
    for _ in range(days * 24):
        bot.services.clock.advance(timedelta(hours=1))
        bot.dispatch()
    return len(twilio.messages) - texts, len(sendgrid.emails) - emails


def alerted_on_call(team, words: str) -> bool:
    return any(f"<@{ONCALL}>" in post and words in post for post in team.channel_posts())


# --- class 1: a person who mentions driving is a person ----------------------------------------------


def test_a_text_that_mentions_driving_and_asks_for_a_call_opens_a_call_task_for_the_on_call(running_bot, twilio, team):
    lead_id = new_lead(running_bot)
    text_in(running_bot, twilio, "im driving rn, can someone call me back after 5?")
    [task] = tasks(running_bot, lead_id)
    assert task.status == "open" and task.requested_time is not None
    assert sales_state(running_bot, lead_id) == "paused"
    assert stored_reply(running_bot, lead_id).classification == "asks_time"
    assert alerted_on_call(team, task.reason)


def test_the_phones_own_driving_text_is_an_auto_reply_and_the_follow_up_goes_on(running_bot, twilio, sendgrid, team):
    lead_id = new_lead(running_bot)
    text_in(running_bot, twilio, IOS_DRIVING)
    assert stored_reply(running_bot, lead_id).classification == "auto_reply"
    assert tasks(running_bot, lead_id) == [] and sales_state(running_bot, lead_id) == "active"
    texts, _ = sent_after(running_bot, twilio, sendgrid, days=2)
    assert texts >= 1  # the check-in texts keep going: nobody wrote that message


# --- class 2: a no about one thing with a question about another -------------------------------------


def test_not_interested_in_one_thing_with_a_question_about_another_reaches_a_person_and_loses_nothing(
    running_bot, twilio, team
):
    lead_id = new_lead(running_bot)
    text_in(running_bot, twilio, "Not interested in the membership, but does the first visit cost money?")
    assert lead_row(running_bot, lead_id).stage == "engaged"
    assert [t.reason for t in tasks(running_bot, lead_id)] == ["asked a question"]
    assert sales_state(running_bot, lead_id) == "paused"
    assert alerted_on_call(team, "asked a question")


def test_a_no_with_more_to_it_is_read_by_a_person_instead_of_closing_the_lead(running_bot, twilio, team):
    lead_id = new_lead(running_bot)
    text_in(running_bot, twilio, "no thanks but my husband might want to come in")
    assert lead_row(running_bot, lead_id).stage == "engaged"
    assert sales_state(running_bot, lead_id) == "paused"
    assert "unsure, so a person reads it" in stored_reply(running_bot, lead_id).details["rule"]
    assert any("my husband might want to come in" in entry for entry in team.thread(lead_id))


# --- class 3: asked to be called or booked --------------------------------------------------------


@pytest.mark.parametrize("words", ["yes, call me", "Please call", "book me in!", "I'd like an appointment for my son"])
def test_a_request_to_be_called_or_booked_opens_a_call_task_now_for_the_on_call(running_bot, twilio, team, words):
    lead_id = new_lead(running_bot)
    text_in(running_bot, twilio, words)
    [task] = tasks(running_bot, lead_id)
    assert (task.reason, task.status) == ("asked to be called or booked", "open")
    assert task.due_at == running_bot.services.clock.now()  # Wednesday 9:00 in Chicago: a call may be made
    assert sales_state(running_bot, lead_id) == "paused"
    assert alerted_on_call(team, "asked to be called or booked")


def test_an_email_asking_for_a_call_opens_a_call_task(running_bot, team):
    lead_id = new_lead(running_bot)
    assert inbound_email(running_bot, "Hi, could you call me when you have a moment? Thanks, Dana") == 200
    assert [t.reason for t in tasks(running_bot, lead_id)] == ["asked to be called or booked"]


# --- issue 10: opt-outs that mean it ----------------------------------------------------------------


@pytest.mark.parametrize("words", ["stop contacting me", "do not text or email me", "Please leave me alone"])
def test_an_opt_out_that_names_no_channel_ends_every_channel_and_every_team_send(running_bot, twilio, sendgrid, words):
    lead_id = new_lead(running_bot)
    text_in(running_bot, twilio, words)
    lead = lead_row(running_bot, lead_id)
    assert (lead.stage, lead.sms_opted_out_at is not None, lead.email_opted_out_at is not None) == (
        "opted_out",
        True,
        True,
    )
    assert sent_after(running_bot, twilio, sendgrid, days=10) == (0, 0)
    for channel in ("sms", "email"):
        with pytest.raises(DirectMessageRefused):
            send_direct(
                running_bot.services,
                lead_id,
                channel=channel,
                body="Just checking in",
                author=Actor.slack_user("U0FRONT"),
            )


def test_an_opt_out_by_email_that_names_texts_ends_texts_only(running_bot, twilio, sendgrid):
    lead_id = new_lead(running_bot)
    assert inbound_email(running_bot, "No more texts please, email is fine.\n\nSent from my iPhone") == 200
    lead = lead_row(running_bot, lead_id)
    assert (lead.sms_opted_out_at is not None, lead.email_opted_out_at is None) == (True, True)
    assert stored_reply(running_bot, lead_id).details["opt_out_channels"] == ["sms"]
    texts = len(twilio.messages)
    send_direct(
        running_bot.services, lead_id, channel="email", body="Here are our hours", author=Actor.slack_user("U0FRONT")
    )
    assert len(twilio.messages) == texts and "Here are our hours" in sendgrid.emails[-1].text


def test_an_opt_out_by_email_that_names_emails_leaves_texts_alone(running_bot):
    lead_id = new_lead(running_bot)
    assert inbound_email(running_bot, "Please stop emailing me, texts are ok") == 200
    lead = lead_row(running_bot, lead_id)
    assert (lead.sms_opted_out_at is None, lead.email_opted_out_at is not None) == (True, True)


@pytest.mark.parametrize(
    "words",
    [
        "STOP\n\nSent from my iPhone",
        "Stop.\nMaria",
        "ALTO",
        "Parar por favor",
        "ARRÊT",
        "Remove me",
        "no more texts!!",
        "STOP STOP STOP",
    ],
)
def test_carrier_words_in_any_language_and_stop_with_a_signature_opt_out_of_texts(running_bot, twilio, sendgrid, words):
    lead_id = new_lead(running_bot)
    text_in(running_bot, twilio, words)
    lead = lead_row(running_bot, lead_id)
    assert lead.sms_opted_out_at is not None and lead.stage == "opted_out"
    assert sent_after(running_bot, twilio, sendgrid, days=3)[0] == 0


@pytest.mark.parametrize(
    "words", ["can't stop the pain", "I'll stop by after work", "the swelling won't stop, what should I do"]
)
def test_stop_inside_an_ordinary_sentence_opts_nobody_out_and_reaches_a_person(running_bot, twilio, team, words):
    lead_id = new_lead(running_bot)
    text_in(running_bot, twilio, words)
    lead = lead_row(running_bot, lead_id)
    assert (lead.sms_opted_out_at, lead.stage) == (None, "engaged")
    assert sales_state(running_bot, lead_id) == "paused"
    assert any(words.split(",")[0] in entry for entry in team.thread(lead_id))


# --- class 12: alternatives and vague times ----------------------------------------------------------


def test_a_text_offering_two_times_gives_the_call_task_their_words_and_both_candidates_not_one_time(
    running_bot, twilio, team
):
    lead_id = new_lead(running_bot)
    text_in(running_bot, twilio, "can I come in 3pm or tuesday?")
    [task] = tasks(running_bot, lead_id)
    assert task.requested_time is None
    assert task.reason == (
        'asked for a time or to book: they wrote "3pm or tuesday" (offers alternatives); could be '
        "Wed, Nov 25 at 3:00 PM CST or Tue, Dec 1 (no time named); ask which time"
    )
    assert any('"3pm or tuesday"' in post for post in team.channel_posts())


def test_a_vague_time_gives_the_call_task_the_leads_words(running_bot, twilio):
    lead_id = new_lead(running_bot)
    text_in(running_bot, twilio, "call me sometime next week")
    [task] = tasks(running_bot, lead_id)
    assert task.requested_time is None
    assert '"sometime next week" (names no exact time)' in task.reason


# --- why the bot decided -----------------------------------------------------------------------------


def test_the_thread_and_leads_show_say_why_each_reply_was_read_as_it_was(
    running_bot, twilio, team, monkeypatch, capsys, database_url, business_file
):
    from bot.cli import main

    lead_id = new_lead(running_bot)
    text_in(running_bot, twilio, "Not interested, does this cost money?")
    text_in(running_bot, twilio, "ok stop contacting me")
    thread = team.thread(lead_id)
    assert any("read as: question (rule: pattern '\\\\?')" in entry for entry in thread)
    assert any("read as: opt_out (rule: phrase 'stop contacting'); ends texts and emails" in entry for entry in thread)
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("FOLLOWUP_BUSINESS", str(business_file))
    assert main(["leads", "show", str(lead_id)]) == 0
    shown = capsys.readouterr().out
    assert "why: read as: question (rule: pattern '\\?')" in shown
    assert "why: read as: opt_out (rule: phrase 'stop contacting'); ends texts and emails" in shown
