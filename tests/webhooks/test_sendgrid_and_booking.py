"""Inbound email, SendGrid's signed event webhook, bookings, and the tracked links."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from bot.store.models import (
    BookingLinkClick,
    CallTask,
    Enrollment,
    Lead,
    Message,
    OutboxEvent,
    ProcessedDelivery,
    Touch,
)
from bot.usecases.delivery import DELIVERY_RETENTION, first_delivery, prune_processed_deliveries
from bot.usecases.dispatch import SEND_LEASE_SECONDS, Dispatcher, DispatchReport
from bot.usecases.lead_actions import escalate_unfinished_bookings
from handlers.sendgrid_webhooks import MAX_EVENTS_BODY, MAX_EVENTS_PER_POST
from tests.fakes import WEB_FORM_CONSENT
from tests.webhooks.conftest import (
    BOOKING_TOKEN,
    INBOUND_TOKEN,
    LEAD_TOKEN,
    SENDGRID_EVENT_KEY,
    post_inbound_parse,
    sendgrid_event_headers,
)

DANA = {"name": "Dana Lee", "phone": "+13125550142", "email": "dana@example.com", **WEB_FORM_CONSENT}


def new_lead(bot, **fields) -> int:
    return bot.http.post(
        "/webhooks/leads", json={**DANA, **fields}, headers={"Authorization": f"Bearer {LEAD_TOKEN}"}
    ).json()["lead_id"]


def inbound_email(
    bot,
    *,
    sender="Dana Lee <dana@example.com>",
    subject="Re: Thanks for reaching out",
    text="Yes please, what times do you have?",
    headers="",
    query=None,
    auth=None,
    spf="pass",
    dkim="{@example.com : pass}",
):
    fields = {
        "from": sender,
        "to": "reply@inbound.lakeside.example",
        "subject": subject,
        "text": text,
        "headers": headers or "Message-ID: <abc123@mail.example.com>\nFrom: " + sender + "\n",
        "envelope": json.dumps({"to": ["reply@inbound.lakeside.example"], "from": sender.split("<")[-1].rstrip(">")}),
        "charsets": json.dumps({"text": "UTF-8"}),
        "spam_score": "0.1",
        "SPF": spf,
        "dkim": dkim,
    }
    return post_inbound_parse(bot.http, fields, query=query, auth=auth)


def test_an_email_reply_is_matched_by_sender_with_quoted_text_stripped(running_bot):
    lead_id = new_lead(running_bot)
    text = (
        "Yes please, do you have anything Friday?\n\nThanks,\nDana\n\n"
        "On Tue, Nov 24, 2026 at 9:00 AM Lakeside Chiropractic <hello@lakeside.example> wrote:\n"
        "> Hi Dana, thanks for reaching out.\n> Book here: https://example.com/book\n"
    )
    assert inbound_email(running_bot, text=text).status_code == 200
    with running_bot.services.session_factory() as session:
        message = session.scalars(select(Message).where(Message.direction == "in")).one()
        assert message.lead_id == lead_id and message.channel == "email"
        assert "Friday" in message.body and "thanks for reaching out" not in message.body


def test_the_same_inbound_email_twice_is_stored_once(running_bot):
    new_lead(running_bot)
    inbound_email(running_bot)
    inbound_email(running_bot)
    with running_bot.services.session_factory() as session:
        assert len(session.scalars(select(Message).where(Message.direction == "in")).all()) == 1


def test_an_out_of_office_reply_never_pauses_the_sequence(running_bot):
    new_lead(running_bot)
    inbound_email(
        running_bot,
        subject="Automatic reply: Thanks for reaching out",
        text="I am out of the office until Monday.",
        headers="Message-ID: <ooo@mail.example.com>\nAuto-Submitted: auto-replied\n",
    )
    with running_bot.services.session_factory() as session:
        assert session.scalars(select(Message).where(Message.direction == "in")).one().classification == "auto_reply"
        assert session.scalars(select(Enrollment)).one().state == "active"


def test_inbound_parse_takes_its_token_in_the_query_or_as_the_basic_auth_password(running_bot):
    assert inbound_email(running_bot, query="").status_code == 403
    assert inbound_email(running_bot, query="?token=wrong").status_code == 403
    assert inbound_email(running_bot, query="", auth=("parse", "wrong")).status_code == 403
    assert inbound_email(running_bot, query="", auth=("parse", INBOUND_TOKEN)).status_code == 200
    assert inbound_email(running_bot, query=f"?token={INBOUND_TOKEN}").status_code == 200


def test_a_refused_inbound_email_changes_nothing(running_bot):
    new_lead(running_bot, email="dana@example.com")
    answer = inbound_email(running_bot, query="?token=guess", text="STOP")
    assert answer.status_code == 403 and "token" in answer.json()["error"]
    with running_bot.services.session_factory() as session:
        assert session.scalars(select(Message).where(Message.direction == "in")).all() == []
        assert session.scalars(select(Lead)).one().email_opted_out_at is None


@pytest.mark.parametrize(
    "spf, dkim",
    [("fail", "none"), ("softfail", "{@example.com : fail}"), ("none", "{@attacker.example : pass}"), ("", "")],
)
def test_an_email_that_proves_no_sender_is_shown_to_the_team_and_changes_nothing(running_bot, sendgrid, spf, dkim):
    lead_id = new_lead(running_bot)
    running_bot.dispatch()
    emails_before = len(sendgrid.emails)
    answer = inbound_email(running_bot, text="STOP. Unsubscribe me, and do you take insurance?", spf=spf, dkim=dkim)
    assert answer.status_code == 200 and answer.json()["verified"] is False
    with running_bot.services.session_factory() as session:
        lead = session.get(Lead, lead_id)
        assert lead.email_opted_out_at is None and lead.email_allowed
        assert session.scalars(select(Message).where(Message.direction == "in")).all() == []
        assert session.scalars(select(Enrollment)).one().state == "active"
        [notice] = session.scalars(select(OutboxEvent).where(OutboxEvent.kind == "needs_person")).all()
        assert notice.lead_id == lead_id and "could not be verified" in notice.payload["text"]
        assert "insurance" in notice.payload["text"]
    running_bot.dispatch()
    assert len(sendgrid.emails) == emails_before


def test_an_unverified_email_from_a_stranger_makes_no_lead_and_no_email(running_bot, sendgrid):
    answer = inbound_email(
        running_bot,
        sender="Mallory <victim@example.org>",
        spf="fail",
        dkim="none",
        text="Hi, please send me your prices",
    )
    assert answer.status_code == 200 and answer.json()["applied"] is False
    running_bot.dispatch()
    with running_bot.services.session_factory() as session:
        assert session.scalars(select(Lead)).all() == []
    assert sendgrid.emails == []


def test_a_dkim_signature_of_the_senders_own_domain_is_enough(running_bot):
    new_lead(running_bot)
    assert inbound_email(
        running_bot, spf="softfail", dkim="{@mail.example.com : fail, @example.com : pass}"
    ).json() == {"ok": True}
    with running_bot.services.session_factory() as session:
        assert session.scalars(select(Message).where(Message.direction == "in")).one().channel == "email"


def test_inbound_parse_without_its_token_configured_is_closed(running_bot):
    closed = running_bot.with_settings(sendgrid_inbound_token=None)
    for query in ("", "?token=", "?token=None"):
        path = "/webhooks/sendgrid/inbound" + query
        answer = closed.post(path, files={"from": (None, "Stranger <stranger@example.net>"), "text": (None, "hi")})
        assert answer.status_code == 503 and "SENDGRID_INBOUND_TOKEN" in answer.json()["error"]
    with running_bot.services.session_factory() as session:
        assert session.scalars(select(Lead)).all() == []


def test_the_event_webhook_without_its_key_configured_is_closed(running_bot, clock):
    lead_id = new_lead(running_bot)
    closed = running_bot.with_settings(sendgrid_webhook_public_key=None)
    forged = [
        {
            "email": "dana@example.com",
            "timestamp": int(clock.now().timestamp()),
            "event": "unsubscribe",
            "sg_event_id": f"ev-{n}",
            "lead_id": str(n),
        }
        for n in range(1, 5)
    ]
    answer = closed.post("/webhooks/sendgrid/events", json=forged)
    assert answer.status_code == 503 and "SENDGRID_WEBHOOK_PUBLIC_KEY" in answer.json()["error"]
    with running_bot.services.session_factory() as session:
        assert session.get(Lead, lead_id).email_allowed


def post_events(bot, events, key=SENDGRID_EVENT_KEY, *, tamper=False):
    body = json.dumps(events)
    headers = sendgrid_event_headers(body, "1764080000", key)
    if tamper:
        body = body.replace("delivered", "bounce")
    return bot.http.post("/webhooks/sendgrid/events", content=body, headers=headers)


def sent_email(bot, clock) -> Message:
    clock.advance(timedelta(minutes=30))
    bot.dispatch()
    with bot.services.session_factory() as session:
        return session.scalars(select(Message).where(Message.channel == "email")).one()


def test_signed_email_events_update_the_message_once(running_bot, clock):
    new_lead(running_bot)
    email = sent_email(running_bot, clock)
    event = {
        "email": "dana@example.com",
        "timestamp": int(clock.now().timestamp()),
        "event": "delivered",
        "sg_event_id": "ev-1",
        "sg_message_id": f"{email.provider_id}.filter0001.1.0",
        "touch_id": str(email.touch_id),
    }
    assert post_events(running_bot, [event, event]).json() == {"applied": 1, "ignored_stale": 0}
    with running_bot.services.session_factory() as session:
        assert session.get(Message, email.id).status == "delivered"


def test_a_bounce_stops_email_to_that_lead(running_bot, clock, sendgrid):
    new_lead(running_bot)
    email = sent_email(running_bot, clock)
    bounce = {
        "email": "dana@example.com",
        "timestamp": int(clock.now().timestamp()),
        "event": "bounce",
        "type": "bounce",
        "sg_event_id": "ev-2",
        "sg_message_id": f"{email.provider_id}.filter0001.1.0",
    }
    assert post_events(running_bot, [bounce]).status_code == 200
    with running_bot.services.session_factory() as session:
        assert not session.get(Lead, email.lead_id).email_allowed
    sent_before = len(sendgrid.emails)
    clock.advance(timedelta(days=4))
    running_bot.dispatch()
    assert len(sendgrid.emails) == sent_before


def test_a_forged_or_unsigned_event_post_is_refused(running_bot, clock):
    new_lead(running_bot)
    email = sent_email(running_bot, clock)
    event = {
        "email": "dana@example.com",
        "timestamp": 1,
        "event": "delivered",
        "sg_event_id": "ev-3",
        "sg_message_id": email.provider_id,
    }
    assert post_events(running_bot, [event], tamper=True).status_code == 403
    assert running_bot.http.post("/webhooks/sendgrid/events", json=[event]).status_code == 403
    with running_bot.services.session_factory() as session:
        assert session.get(Lead, email.lead_id).email_allowed


def test_stale_or_impossibly_dated_events_are_ignored_and_counted(running_bot, clock):
    new_lead(running_bot)
    email = sent_email(running_bot, clock)
    now = int(clock.now().timestamp())

    def unsubscribe(event_id: str, timestamp) -> dict:
        return {
            "email": "dana@example.com",
            "timestamp": timestamp,
            "event": "unsubscribe",
            "sg_event_id": event_id,
            "sg_message_id": f"{email.provider_id}.filter0001.1.0",
        }

    stale = [
        unsubscribe("old", now - 4 * 86400),
        unsubscribe("future", now + 2 * 86400),
        unsubscribe("unstamped", None),
        unsubscribe("text", str(now)),
        unsubscribe("huge", 10**20),
    ]
    assert post_events(running_bot, stale).json() == {"applied": 0, "ignored_stale": 5}
    with running_bot.services.session_factory() as session:
        assert session.get(Lead, email.lead_id).email_allowed
    assert post_events(running_bot, [unsubscribe("recent", now - 3600)]).json() == {"applied": 1, "ignored_stale": 0}
    with running_bot.services.session_factory() as session:
        assert not session.get(Lead, email.lead_id).email_allowed


def test_a_post_of_more_events_than_sendgrid_batches_is_refused_whole(running_bot, clock):
    lead_id = new_lead(running_bot)
    events = [
        {
            "email": "dana@example.com",
            "timestamp": int(clock.now().timestamp()),
            "event": "unsubscribe",
            "sg_event_id": f"ev-{n}",
            "lead_id": str(lead_id),
        }
        for n in range(MAX_EVENTS_PER_POST + 1)
    ]
    answer = post_events(running_bot, events)
    assert answer.status_code == 413 and str(MAX_EVENTS_PER_POST) in answer.json()["error"]
    with running_bot.services.session_factory() as session:
        assert session.get(Lead, lead_id).email_allowed


def test_a_signed_event_post_larger_than_2_mb_is_refused_whole_before_it_is_parsed(running_bot, clock):
    lead_id = new_lead(running_bot)
    padding = "x" * 30_000  # a hundred events, well under the count cap, over the byte cap
    events = [
        {
            "email": "dana@example.com",
            "timestamp": int(clock.now().timestamp()),
            "event": "unsubscribe",
            "sg_event_id": f"big-{n}",
            "lead_id": str(lead_id),
            "padding": padding,
        }
        for n in range(100)
    ]
    answer = post_events(running_bot, events)
    assert answer.status_code == 413 and f"{MAX_EVENTS_BODY} bytes" in answer.json()["error"]
    with running_bot.services.session_factory() as session:
        assert session.get(Lead, lead_id).email_allowed


def test_delivery_ids_are_forgotten_after_their_retention_but_a_replay_of_an_old_event_still_changes_nothing(
    running_bot, clock
):
    new_lead(running_bot)
    email = sent_email(running_bot, clock)
    event = {
        "email": "dana@example.com",
        "timestamp": int(clock.now().timestamp()),
        "event": "bounce",
        "type": "bounce",
        "sg_event_id": "ev-kept",
        "sg_message_id": f"{email.provider_id}.filter0001.1.0",
    }
    assert post_events(running_bot, [event]).json()["applied"] == 1
    services = running_bot.services
    with services.session_factory.begin() as session:
        session.get(Lead, email.lead_id).email_consent = True  # the team fixed the address
        first_delivery(session, "visit-started", "1", clock.now())
    clock.advance(DELIVERY_RETENTION["sendgrid-event"] - timedelta(hours=1))
    assert prune_processed_deliveries(services) == 0
    assert post_events(running_bot, [event]).json() == {"applied": 0, "ignored_stale": 1}
    clock.advance(timedelta(hours=2))
    assert prune_processed_deliveries(services) == 1
    with services.session_factory() as session:
        # A visit's "started" marker is a fact, not a delivery: it stays.
        assert session.scalars(select(ProcessedDelivery.provider)).all() == ["visit-started"]
    assert post_events(running_bot, [event]).json() == {"applied": 0, "ignored_stale": 1}
    with services.session_factory() as session:
        assert session.get(Lead, email.lead_id).email_allowed


def test_malformed_event_bodies_get_a_400(running_bot):
    for body in ("[{oops", json.dumps({"event": "x"})):
        answer = running_bot.http.post(
            "/webhooks/sendgrid/events", content=body, headers=sendgrid_event_headers(body, "1764080000")
        )
        assert answer.status_code == 400 and answer.json()["error"]


BOOK = {"Authorization": f"Bearer {BOOKING_TOKEN}"}


def test_a_booking_stops_sales_follow_up_and_starts_reminders(running_bot):
    lead_id = new_lead(running_bot)
    answer = running_bot.http.post(
        "/webhooks/booking",
        json={"phone": "(312) 555-0142", "start": "2026-11-30T10:00:00-06:00", "notes": "first visit"},
        headers=BOOK,
    )
    assert answer.status_code == 201 and answer.json()["lead_id"] == lead_id
    with running_bot.services.session_factory() as session:
        states = {e.sequence_name: e.state for e in session.scalars(select(Enrollment))}
        assert states == {
            "default": "stopped",
            "appointment_reminders": "active",
            "appointment_confirmation": "completed",
        }


@pytest.mark.parametrize(
    ("payload", "status"),
    [
        ({"lead_id": 999, "start": "2026-11-30T10:00:00-06:00"}, 404),
        ({"phone": "+13125550142", "start": "2026-11-30T10:00:00"}, 422),
        ({"phone": "+13125550142", "start": "next tuesday"}, 422),
        ({"phone": "+13125550142"}, 422),
        ({"start": "2026-11-30T10:00:00-06:00"}, 422),
        ({"phone": "+13125550142", "start": "2020-01-01T10:00:00-06:00"}, 422),
    ],
)
def test_bad_bookings_get_a_clear_reason_and_change_nothing(running_bot, payload, status):
    new_lead(running_bot)
    answer = running_bot.http.post("/webhooks/booking", json=payload, headers=BOOK)
    assert answer.status_code == status and answer.json()["error"]
    with running_bot.services.session_factory() as session:
        assert {e.state for e in session.scalars(select(Enrollment))} == {"active"}


def test_a_booking_needs_its_token(running_bot):
    assert running_bot.http.post("/webhooks/booking", json={"lead_id": 1}).status_code == 401


#: What a person's phone sends when they tap the link.
BROWSER = {
    "User-Agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1"
}


def tokens(bot, lead_id: int) -> tuple[str, str]:
    with bot.services.session_factory() as session:
        lead = session.get(Lead, lead_id)
        return lead.link_token, lead.unsubscribe_token


def clicks(bot) -> int:
    with bot.services.session_factory() as session:
        return len(session.scalars(select(BookingLinkClick)).all())


def test_the_tracked_booking_link_records_a_persons_click_and_redirects(running_bot, clock):
    lead_id = new_lead(running_bot)
    booking, _ = tokens(running_bot, lead_id)
    clock.advance(timedelta(minutes=5))
    answer = running_bot.http.get(f"/b/{booking}", headers=BROWSER, follow_redirects=False)
    assert answer.status_code == 302 and answer.headers["location"] == "https://example.com/book"
    assert running_bot.http.get("/b/unknown-token", follow_redirects=False).status_code == 302
    clock.advance(timedelta(hours=3))
    with running_bot.services.session_factory.begin() as session:
        assert len(session.scalars(select(BookingLinkClick)).all()) == 1
        escalate_unfinished_bookings(session, running_bot.services, now=clock.now(), delay=timedelta(hours=2))
    with running_bot.services.session_factory() as session:
        assert "booking link" in session.scalars(select(CallTask)).one().reason


@pytest.mark.parametrize(
    "agent",
    [
        "",
        "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
        "facebookexternalhit/1.1",
        "Mozilla/5.0 (compatible; Microsoft Office/16.0; Windows NT 10.0)",
        "Proofpoint URL Defense",
        "curl/8.5.0",
        "python-requests/2.32",
    ],
)
def test_a_link_scanners_fetch_is_redirected_but_not_counted_as_a_click(running_bot, clock, agent):
    lead_id = new_lead(running_bot)
    booking, _ = tokens(running_bot, lead_id)
    clock.advance(timedelta(minutes=5))
    answer = running_bot.http.get(f"/b/{booking}", headers={"User-Agent": agent}, follow_redirects=False)
    assert answer.status_code == 302
    assert clicks(running_bot) == 0


def test_a_head_or_a_fetch_the_moment_a_message_went_out_is_not_a_click(running_bot, clock):
    lead_id = new_lead(running_bot)  # the instant text goes out now
    booking, _ = tokens(running_bot, lead_id)
    assert running_bot.http.get(f"/b/{booking}", headers=BROWSER, follow_redirects=False).status_code == 302
    clock.advance(timedelta(minutes=5))
    assert running_bot.http.head(f"/b/{booking}", headers=BROWSER).status_code == 302
    assert clicks(running_bot) == 0
    assert running_bot.http.get(f"/b/{booking}", headers=BROWSER, follow_redirects=False).status_code == 302
    assert clicks(running_bot) == 1


def test_the_unsubscribe_link_stops_email_only_by_its_pages_post(running_bot):
    lead_id = new_lead(running_bot)
    booking, unsubscribe = tokens(running_bot, lead_id)
    assert booking != unsubscribe
    assert "Unsubscribe" in running_bot.http.get(f"/u/{unsubscribe}").text
    assert running_bot.http.head(f"/u/{unsubscribe}").status_code == 200
    for method in ("PUT", "DELETE", "PATCH"):
        assert running_bot.http.request(method, f"/u/{unsubscribe}").status_code == 405
    assert running_bot.http.post(f"/u/{booking}").status_code == 404  # the booking link's token unsubscribes nobody
    with running_bot.services.session_factory() as session:
        assert session.get(Lead, lead_id).email_opted_out_at is None
    assert running_bot.http.post(f"/u/{unsubscribe}").status_code == 200
    assert running_bot.http.post("/u/unknown").status_code == 404
    with running_bot.services.session_factory() as session:
        assert session.get(Lead, lead_id).email_opted_out_at is not None


def test_a_mail_clients_one_click_unsubscribe_post_works(running_bot, sendgrid, clock):
    """RFC 8058: the mail client POSTs List-Unsubscribe=One-Click to the List-Unsubscribe URL."""
    lead_id = new_lead(running_bot)
    email = sent_email(running_bot, clock)
    [accepted] = [e for e in sendgrid.emails if e.message_id == email.provider_id]
    _, unsubscribe = tokens(running_bot, lead_id)
    url = accepted.headers["List-Unsubscribe"].strip("<>")
    assert url.endswith(f"/u/{unsubscribe}")
    assert accepted.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    answer = running_bot.http.post(
        url, content=b"List-Unsubscribe=One-Click", headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert answer.status_code == 200
    with running_bot.services.session_factory() as session:
        assert session.get(Lead, lead_id).email_opted_out_at is not None


def test_an_event_for_an_email_whose_send_was_left_unknown_settles_it_as_sent_once(running_bot, clock, sendgrid):
    lead_id = new_lead(running_bot, phone=None)
    clock.advance(timedelta(minutes=16))  # no phone: the instant text is skipped and the email is due
    claim = Dispatcher(running_bot.services)._claim_batch  # noqa: SLF001 - a process about to die
    [item] = claim(DispatchReport()) or claim(DispatchReport())
    receipt = running_bot.services.email.send_email(item.outgoing)  # SendGrid took it; the process died here
    clock.advance(timedelta(seconds=SEND_LEASE_SECONDS + 1))
    running_bot.dispatch()
    with running_bot.services.session_factory() as session:
        assert session.get(Touch, item.touch_id).status == "unknown"

    processed = {
        "email": "dana@example.com",
        "timestamp": int(clock.now().timestamp()),
        "event": "processed",
        "sg_event_id": "ev-p",
        "sg_message_id": f"{receipt.provider_id}.filter0001.1.0",
        "touch_id": str(item.touch_id),
        "lead_id": str(lead_id),
    }
    delivered = {**processed, "event": "delivered", "sg_event_id": "ev-d"}
    assert post_events(running_bot, [processed, delivered]).json() == {"applied": 2, "ignored_stale": 0}

    with running_bot.services.session_factory() as session:
        touch = session.get(Touch, item.touch_id)
        assert (touch.status, touch.provider_id) == ("sent", receipt.provider_id)
        [message] = session.scalars(select(Message).where(Message.touch_id == touch.id)).all()
        assert (message.status, message.provider_id, message.subject) == (
            "delivered",
            receipt.provider_id,
            touch.subject,
        )
        notes = session.scalars(
            select(OutboxEvent.payload).where(OutboxEvent.lead_id == lead_id, OutboxEvent.kind == "decision")
        ).all()
        assert any("Settled: SendGrid reports" in (note or {}).get("text", "") for note in notes)
    running_bot.dispatch()
    assert len(sendgrid.requests_for("mail.send")) == 1  # settled, never sent again
