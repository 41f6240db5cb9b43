"""The SendGrid stand-in speaks /v3/mail/send to the real sendgrid-python client."""

from __future__ import annotations

import time

import pytest
from python_http_client.exceptions import BadRequestsError, TooManyRequestsError, UnauthorizedError
from sendgrid import SendGridAPIClient
from sendgrid.helpers.mail import Mail

from bot.standins.sendgrid_api import SendGridApiStandin

API_KEY = "SG.test-key"


def mail(**overrides) -> dict:
    body = Mail(
        from_email="clinic@example.com",
        to_emails="lead@example.org",
        subject="Your visit",
        plain_text_content="Hello",
        html_content="<p>Hello</p>",
    ).get()
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


@pytest.fixture
def sendgrid():
    with SendGridApiStandin(API_KEY) as standin:
        yield standin


def test_an_accepted_send_answers_202_with_a_message_id_and_rate_limit_headers(sendgrid):
    response = SendGridAPIClient(API_KEY, host=sendgrid.url).send(mail())

    assert response.status_code == 202 and response.body == b""
    message_id = response.headers["X-Message-Id"]
    assert len(message_id) == 22
    assert int(response.headers["X-RateLimit-Remaining"]) == int(response.headers["X-RateLimit-Limit"]) - 1
    assert int(response.headers["X-RateLimit-Reset"]) > time.time()
    [email] = sendgrid.emails
    assert email.message_id == message_id
    assert (email.to, email.subject, email.text, email.html) == (
        ["lead@example.org"],
        "Your visit",
        "Hello",
        "<p>Hello</p>",
    )


def test_a_wrong_key_is_refused_with_sendgrids_error_body(sendgrid):
    with pytest.raises(UnauthorizedError) as raised:
        SendGridAPIClient("SG.wrong", host=sendgrid.url).send(mail())

    message = "The provided authorization grant is invalid, expired, or revoked"
    assert raised.value.to_dict == {"errors": [{"message": message, "field": None, "help": None}]}
    assert sendgrid.emails == []


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"personalizations": []}, "personalizations"),
        ({"personalizations": [{"to": [{"email": "not-an-address"}]}]}, "personalizations.0.to.0.email"),
        ({"from": None}, "from.email"),
        ({"subject": None}, "subject"),
        ({"content": None}, "content"),
        ({"content": [{"type": "text/html", "value": "<p>x</p>"}, {"type": "text/plain", "value": "x"}]}, "content"),
        ({"reply_to": {"email": "nope"}}, "reply_to.email"),
        ({"custom_args": {"touch_id": 7}}, "custom_args.touch_id"),
    ],
)
def test_invalid_bodies_are_refused_naming_the_field(sendgrid, overrides, field):
    with pytest.raises(BadRequestsError) as raised:
        SendGridAPIClient(API_KEY, host=sendgrid.url).send(mail(**overrides))

    assert field in [e["field"] for e in raised.value.to_dict["errors"]]


def test_sends_past_the_rate_limit_answer_429_until_the_next_minute():
    with SendGridApiStandin(API_KEY, rate_limit_per_minute=1) as sendgrid:
        client = SendGridAPIClient(API_KEY, host=sendgrid.url)
        if time.time() % 60 > 59:  # both sends must fall in one minute window
            time.sleep(60 - time.time() % 60)
        client.send(mail())

        with pytest.raises(TooManyRequestsError) as raised:
            client.send(mail())

    assert raised.value.headers["X-RateLimit-Remaining"] == "0"
    assert int(raised.value.headers["X-RateLimit-Reset"]) % 60 == 0
    assert len(sendgrid.emails) == 1


def test_an_injected_429_carries_its_reset_time(sendgrid):
    sendgrid.fail_next("mail.send", status=429, retry_after=30)

    with pytest.raises(TooManyRequestsError) as raised:
        SendGridAPIClient(API_KEY, host=sendgrid.url).send(mail())

    assert 29 <= int(raised.value.headers["X-RateLimit-Reset"]) - time.time() <= 31
