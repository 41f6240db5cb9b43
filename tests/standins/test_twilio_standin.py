"""The Twilio stand-in speaks Twilio's Messages API to the real twilio-python client."""

from __future__ import annotations

import pytest
from twilio.base.exceptions import TwilioRestException
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from bot.standins.server import Reply, StandinServer
from bot.standins.twilio_api import TwilioApiStandin

ACCOUNT_SID = "AC" + "0" * 32
AUTH_TOKEN = "test-auth-token"


class WebhookReceiver(StandinServer):
    """Plays the bot's webhook endpoint: records what Twilio posts and answers 200."""

    routes = frozenset({"webhook"})

    def route(self, method, path):
        return ("webhook", {}) if method == "POST" else None

    def handle(self, route, params, request):
        return Reply(200, b"<Response/>", {"Content-Type": "text/xml"})

    def fault_reply(self, route, fault):
        return Reply(fault.status or 200)


@pytest.fixture
def twilio():
    with TwilioApiStandin(ACCOUNT_SID, AUTH_TOKEN) as standin:
        yield standin


@pytest.fixture
def receiver():
    with WebhookReceiver() as server:
        yield server


def client_for(standin: TwilioApiStandin, token: str = AUTH_TOKEN) -> Client:
    client = Client(ACCOUNT_SID, token)
    client.api.base_url = standin.url
    return client


def test_a_created_message_has_twilios_shape(twilio):
    message = client_for(twilio).messages.create(to="+15551230001", from_="+15005550006", body="Hello")

    assert message.sid.startswith("SM") and len(message.sid) == 34
    assert message.status == "queued"
    assert (message.to, message.from_, message.body) == ("+15551230001", "+15005550006", "Hello")
    assert message.num_segments == "1" and message.account_sid == ACCOUNT_SID
    assert message.date_created.tzinfo is not None  # parsed from RFC 2822
    assert message.error_code is None
    assert message.uri == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{message.sid}.json"
    assert twilio.messages[0]["sid"] == message.sid


def test_long_and_unicode_bodies_report_their_segments(twilio):
    client = client_for(twilio)

    long = client.messages.create(to="+15551230001", from_="+15005550006", body="a" * 161)
    emoji = client.messages.create(to="+15551230001", from_="+15005550006", body="😀" * 36)

    assert (long.num_segments, emoji.num_segments) == ("2", "2")


def test_a_messaging_service_send_is_accepted_without_a_sender_yet(twilio):
    message = client_for(twilio).messages.create(to="+15551230001", messaging_service_sid="MG" + "1" * 32, body="Hi")

    assert message.status == "accepted" and message.from_ is None
    assert message.messaging_service_sid == "MG" + "1" * 32


def test_a_wrong_token_is_refused_with_20003(twilio):
    with pytest.raises(TwilioRestException) as raised:
        client_for(twilio, token="wrong").messages.create(to="+15551230001", from_="+15005550006", body="x")

    assert (raised.value.status, raised.value.code) == (401, 20003)
    assert twilio.messages == []


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"to": "+15551230001", "from_": "+15005550006"}, 21602),
        ({"to": "+15551230001", "body": "x"}, 21603),
        ({"to": "555-0100", "from_": "+15005550006", "body": "x"}, 21211),
        ({"to": "+15551230001", "from_": "+15005550006", "body": "x" * 1601}, 21617),
    ],
)
def test_invalid_sends_are_refused_with_twilios_error_codes(twilio, fields, code):
    with pytest.raises(TwilioRestException) as raised:
        client_for(twilio).messages.create(**fields)

    assert (raised.value.status, raised.value.code) == (400, code)


@pytest.mark.parametrize("code", [21211, 21610, 21614])
def test_a_number_behaviour_refuses_sends_synchronously(twilio, code):
    twilio.set_number_behaviour("+15551230002", error_code=code)

    with pytest.raises(TwilioRestException) as raised:
        client_for(twilio).messages.create(to="+15551230002", from_="+15005550006", body="x")

    assert (raised.value.status, raised.value.code) == (400, code)
    assert twilio.requests[-1].response["more_info"] == f"https://www.twilio.com/docs/errors/{code}"


def test_a_message_can_be_fetched_by_sid(twilio):
    client = client_for(twilio)
    sent = client.messages.create(to="+15551230001", from_="+15005550006", body="Hello")

    fetched = client.messages(sent.sid).fetch()

    assert (fetched.sid, fetched.status, fetched.body) == (sent.sid, "queued", "Hello")
    with pytest.raises(TwilioRestException) as raised:
        client.messages("SM" + "f" * 32).fetch()
    assert (raised.value.status, raised.value.code) == (404, 20404)


def test_a_status_callback_is_signed_so_request_validator_accepts_it(twilio, receiver):
    callback = receiver.url + "/twilio/status?touch=7"
    sent = client_for(twilio).messages.create(
        to="+15551230001", from_="+15005550006", body="Hello", status_callback=callback
    )

    assert twilio.deliver_status(sent.sid) == 200

    [posted] = receiver.requests
    assert posted.data["MessageSid"] == sent.sid and posted.data["MessageStatus"] == "delivered"
    assert posted.data["AccountSid"] == ACCOUNT_SID and "ErrorCode" not in posted.data
    validator = RequestValidator(AUTH_TOKEN)
    assert validator.validate(callback, posted.data, posted.headers["X-Twilio-Signature"])
    assert not RequestValidator("other").validate(callback, posted.data, posted.headers["X-Twilio-Signature"])
    assert twilio.message(sent.sid)["status"] == "delivered"


def test_a_number_with_a_delivery_error_ends_undelivered_with_its_error_code(twilio, receiver):
    twilio.set_number_behaviour("+15551230003", error_code=30006)
    sent = client_for(twilio).messages.create(to="+15551230003", from_="+15005550006", body="Hello")

    twilio.deliver_status(sent.sid, callback_url=receiver.url + "/status")

    posted = receiver.requests[-1].data
    assert (posted["MessageStatus"], posted["ErrorCode"]) == ("undelivered", "30006")
    assert client_for(twilio).messages(sent.sid).fetch().error_code == 30006


def test_an_inbound_sms_is_signed_over_every_field(twilio, receiver):
    url = receiver.url + "/twilio/sms"

    twilio.inbound_sms(url, "+15551230001", "STOP", to="+15005550006", OptOutType="STOP")

    posted = receiver.requests[-1]
    assert posted.data["Body"] == "STOP" and posted.data["OptOutType"] == "STOP"
    assert RequestValidator(AUTH_TOKEN).validate(url, posted.data, posted.headers["X-Twilio-Signature"])
