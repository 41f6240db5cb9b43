"""SendGridEmailSender through sendgrid-python against the SendGrid stand-in."""

from __future__ import annotations

import pytest

from bot.channels.sendgrid_email import SendGridEmailSender
from bot.core.ports import (
    NOT_SENT,
    OUTCOME_UNKNOWN,
    EmailFrom,
    OutgoingEmail,
    PermanentSendError,
    SendReceipt,
    TransientSendError,
)
from bot.standins.sendgrid_api import SendGridApiStandin
from tests.support.ports import free_port

API_KEY = "SG.test-key"


@pytest.fixture
def sendgrid():
    with SendGridApiStandin(API_KEY) as standin:
        yield standin


@pytest.fixture
def sender(sendgrid):
    return sender_for(sendgrid.url)


def sender_for(url: str, api_key: str = API_KEY) -> SendGridEmailSender:
    return SendGridEmailSender(
        api_key, "frontdesk@clinic.example", "Lee Dental", "replies@clinic.example", api_url=url, timeout=0.5
    )


def email(**fields) -> OutgoingEmail:
    defaults = dict(
        to="ann@example.org",
        subject="Your consultation",
        text="Hi Ann",
        html="<p>Hi Ann</p>",
        reference="touch-9",
        headers={
            "List-Unsubscribe": "<https://clinic.example/u/9>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
        custom_args={"touch_id": "9"},
    )
    return OutgoingEmail(**{**defaults, **fields})


def test_a_send_carries_both_parts_reply_to_headers_and_custom_args(sendgrid, sender):
    receipt = sender.send_email(email())

    [sent] = sendgrid.emails
    assert receipt == SendReceipt(provider_id=sent.message_id)
    assert sent.body["from"] == {"email": "frontdesk@clinic.example", "name": "Lee Dental"}
    assert (sent.to, sent.subject, sent.text, sent.html) == (
        ["ann@example.org"],
        "Your consultation",
        "Hi Ann",
        "<p>Hi Ann</p>",
    )
    assert sent.reply_to == "replies@clinic.example"
    assert sent.headers == {
        "List-Unsubscribe": "<https://clinic.example/u/9>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
    assert sent.custom_args == {"touch_id": "9"}
    assert sendgrid.requests[-1].headers["Authorization"] == f"Bearer {API_KEY}"


def test_an_email_goes_out_from_its_own_businesss_address_and_reply_to(sendgrid, sender):
    sender.send_email(email(sender=EmailFrom("hello@dental.example", "Bright Dental", "inbox@dental.example")))
    sender.send_email(email(sender=EmailFrom("hello@chiro.example")))

    dental, chiro = sendgrid.emails
    assert dental.body["from"] == {"email": "hello@dental.example", "name": "Bright Dental"}
    assert dental.reply_to == "inbox@dental.example"
    assert chiro.body["from"] == {"email": "hello@chiro.example"}
    assert chiro.reply_to is None  # not the deployment's reply-to: that one is another business's inbox


def test_a_text_only_email_sends_one_part(sendgrid, sender):
    sender.send_email(email(html=""))

    assert sendgrid.emails[0].body["content"] == [{"type": "text/plain", "value": "Hi Ann"}]


def test_a_rate_limit_is_transient_until_the_reset_time(sendgrid, sender):
    sendgrid.fail_next("mail.send", status=429, retry_after=20)

    with pytest.raises(TransientSendError) as raised:
        sender.send_email(email())

    assert raised.value.code == "429"
    assert 19 <= raised.value.retry_after <= 21


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_transient(sendgrid, sender, status):
    sendgrid.fail_next("mail.send", status=status)

    with pytest.raises(TransientSendError) as raised:
        sender.send_email(email())

    assert raised.value.code == str(status)


@pytest.mark.parametrize("status", [400, 403, 413])
def test_refusals_are_permanent(sendgrid, sender, status):
    sendgrid.fail_next("mail.send", status=status)

    with pytest.raises(PermanentSendError) as raised:
        sender.send_email(email())

    assert raised.value.code == str(status)


def test_a_wrong_key_is_permanent_and_says_why(sendgrid):
    with pytest.raises(PermanentSendError) as raised:
        sender_for(sendgrid.url, api_key="SG.wrong").send_email(email())

    assert raised.value.code == "401"
    assert "authorization grant is invalid" in raised.value.reason


def test_an_invalid_address_is_permanent(sendgrid, sender):
    with pytest.raises(PermanentSendError) as raised:
        sender.send_email(email(to="ann-at-example.org"))

    assert raised.value.code == "400" and "valid address" in raised.value.reason


def test_the_sender_never_retries_by_itself(sendgrid, sender):
    sendgrid.fail_next("mail.send", status=503)

    with pytest.raises(TransientSendError):
        sender.send_email(email())

    assert len(sendgrid.requests) == 1


@pytest.mark.parametrize(
    "fault", [{"delay": 1.0}, {"drop": True}], ids=["slower-than-the-timeout", "connection-dropped"]
)
def test_answers_lost_after_sending_are_transient_with_an_unknown_outcome(sendgrid, sender, fault):
    sendgrid.fail_next("mail.send", **fault)

    with pytest.raises(TransientSendError) as raised:
        sender.send_email(email())

    assert raised.value.code == OUTCOME_UNKNOWN


def test_a_202_without_a_message_id_is_an_unknown_outcome(sendgrid, sender):
    sendgrid.fail_next("mail.send", status=202, body={})

    with pytest.raises(TransientSendError) as raised:
        sender.send_email(email())

    assert raised.value.code == OUTCOME_UNKNOWN


def test_an_unreachable_sendgrid_is_transient_and_nothing_was_sent():
    url = f"http://127.0.0.1:{free_port()}"  # a port nobody listens on

    with pytest.raises(TransientSendError) as raised:
        sender_for(url).send_email(email())

    assert raised.value.code == NOT_SENT
