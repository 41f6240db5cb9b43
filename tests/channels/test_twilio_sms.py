"""TwilioSmsSender through twilio-python against the Twilio stand-in."""

from __future__ import annotations

import base64
import select
import socket
import threading

import pytest

from bot.channels.twilio_sms import NO_SENDER, TwilioSmsSender, failure_kind
from bot.core.ports import (
    NOT_SENT,
    OUTCOME_UNKNOWN,
    FailureKind,
    OutgoingSms,
    PermanentSendError,
    SendReceipt,
    SmsFrom,
    TransientSendError,
)
from bot.standins.twilio_api import TwilioApiStandin
from tests.support.ports import free_port

ACCOUNT_SID = "AC" + "1" * 32
AUTH_TOKEN = "auth-token"
FROM = "+15005550006"
LEAD = "+15551230001"


@pytest.fixture
def twilio():
    with TwilioApiStandin(ACCOUNT_SID, AUTH_TOKEN) as standin:
        yield standin


@pytest.fixture
def sender(twilio):
    return TwilioSmsSender(ACCOUNT_SID, AUTH_TOKEN, from_number=FROM, api_url=twilio.url, timeout=0.5)


def sms(to: str = LEAD, **fields) -> OutgoingSms:
    return OutgoingSms(to=to, body="Hi Ann, it's Dr. Lee's office.", reference="touch-1", **fields)


def test_a_send_posts_twilios_form_fields_with_basic_auth(twilio, sender):
    receipt = sender.send_sms(sms(status_callback="https://bot.example/twilio/status"))

    [request] = twilio.requests
    assert request.path == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    assert request.data == {
        "To": LEAD,
        "From": FROM,
        "Body": "Hi Ann, it's Dr. Lee's office.",
        "StatusCallback": "https://bot.example/twilio/status",
    }
    credentials = base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
    assert request.headers["Authorization"] == "Basic " + credentials
    assert receipt == SendReceipt(provider_id=twilio.messages[0]["sid"], status="queued")


def test_a_messaging_service_sends_without_from(twilio):
    sender = TwilioSmsSender(ACCOUNT_SID, AUTH_TOKEN, messaging_service_sid="MG" + "2" * 32, api_url=twilio.url)

    receipt = sender.send_sms(sms())

    assert twilio.requests[-1].data == {"To": LEAD, "MessagingServiceSid": "MG" + "2" * 32, "Body": sms().body}
    assert receipt.status == "accepted"


def test_a_text_without_any_sender_is_refused_before_twilio_is_asked(twilio):
    sender = TwilioSmsSender(ACCOUNT_SID, AUTH_TOKEN, api_url=twilio.url)

    with pytest.raises(PermanentSendError) as refused:
        sender.send_sms(sms())

    assert refused.value.code == NO_SENDER and refused.value.kind is FailureKind.OTHER
    assert "no Twilio number or messaging service" in refused.value.reason
    assert twilio.requests == []


def test_a_text_goes_out_from_its_own_businesss_number_not_the_default(twilio, sender):
    sender.send_sms(sms(sender=SmsFrom(number="+15005550009")))
    sender.send_sms(sms(sender=SmsFrom(messaging_service_sid="MG" + "3" * 32)))
    sender.send_sms(sms())

    first, second, third = (request.data for request in twilio.requests)
    assert first["From"] == "+15005550009" and "MessagingServiceSid" not in first
    assert second["MessagingServiceSid"] == "MG" + "3" * 32 and "From" not in second
    assert third["From"] == FROM


def test_a_business_with_an_empty_sender_is_refused_even_when_a_default_exists(twilio, sender):
    with pytest.raises(PermanentSendError) as refused:
        sender.send_sms(sms(sender=SmsFrom()))

    assert refused.value.code == NO_SENDER
    assert twilio.requests == []


def test_the_process_environment_does_not_redirect_sends(twilio, monkeypatch):
    monkeypatch.setenv("TWILIO_EDGE", "sydney")
    monkeypatch.setenv("TWILIO_REGION", "au1")
    sender = TwilioSmsSender(ACCOUNT_SID, AUTH_TOKEN, from_number=FROM, api_url=twilio.url, timeout=0.5)

    assert sender.send_sms(sms()).provider_id.startswith("SM")


@pytest.mark.parametrize(
    ("code", "kind"),
    [(21211, FailureKind.UNREACHABLE), (21610, FailureKind.OPTED_OUT), (21614, FailureKind.UNREACHABLE)],
)
def test_numbers_twilio_refuses_are_permanent_failures_read_for_what_they_mean_for_the_lead(twilio, sender, code, kind):
    twilio.set_number_behaviour(LEAD, error_code=code)

    with pytest.raises(PermanentSendError) as raised:
        sender.send_sms(sms())

    assert raised.value.code == str(code) and raised.value.kind == kind


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("30006", FailureKind.UNREACHABLE),
        ("30005", FailureKind.UNREACHABLE),
        ("21610", FailureKind.OPTED_OUT),
        ("30003", FailureKind.OTHER),
        ("30007", FailureKind.OTHER),
        (None, FailureKind.OTHER),
    ],
)
def test_a_delivery_reports_error_code_is_read_the_same_way(code, kind):
    """A switched-off handset (30003) or carrier filtering (30007) says nothing lasting about the number."""
    assert failure_kind(code) == kind


def test_a_region_our_account_may_not_text_says_nothing_of_the_lead_and_names_the_setting_to_fix(twilio, sender):
    """21408: the account's SMS Geo permissions leave out the number's country; a person must change them."""
    twilio.set_number_behaviour(LEAD, error_code=21408)

    with pytest.raises(PermanentSendError) as raised:
        sender.send_sms(sms())

    assert raised.value.code == "21408" and raised.value.kind == FailureKind.OTHER
    assert failure_kind("21408") == FailureKind.OTHER
    assert "Geo permissions" in raised.value.reason and "Twilio Console" in raised.value.reason


def test_a_wrong_token_is_a_permanent_failure(twilio):
    sender = TwilioSmsSender(ACCOUNT_SID, "wrong", from_number=FROM, api_url=twilio.url, timeout=0.5)

    with pytest.raises(PermanentSendError) as raised:
        sender.send_sms(sms())

    assert raised.value.code == "20003"


def test_a_rate_limit_is_transient_with_the_retry_after_twilio_sent(twilio, sender):
    twilio.fail_next("messages.create", status=429, retry_after=3)

    with pytest.raises(TransientSendError) as raised:
        sender.send_sms(sms())

    assert (raised.value.code, raised.value.retry_after) == ("20429", 3.0)


def test_a_rate_limit_without_retry_after_leaves_the_wait_to_the_core(twilio, sender):
    twilio.fail_next("messages.create", status=429)

    with pytest.raises(TransientSendError) as raised:
        sender.send_sms(sms())

    assert raised.value.retry_after is None


@pytest.mark.parametrize("status", [500, 503])
def test_server_errors_are_transient(twilio, sender, status):
    twilio.fail_next("messages.create", status=status)

    with pytest.raises(TransientSendError):
        sender.send_sms(sms())


def test_a_queue_overflow_is_transient(twilio, sender):
    twilio.fail_next(
        "messages.create",
        status=400,
        body={
            "code": 21611,
            "message": "This 'From' number has exceeded the maximum number of queued messages",
            "more_info": "https://www.twilio.com/docs/errors/21611",
            "status": 400,
        },
    )

    with pytest.raises(TransientSendError) as raised:
        sender.send_sms(sms())

    assert raised.value.code == "21611"


def test_the_sender_never_retries_by_itself(twilio, sender):
    twilio.fail_next("messages.create", status=500)

    with pytest.raises(TransientSendError):
        sender.send_sms(sms())

    assert len(twilio.requests) == 1


@pytest.mark.parametrize(
    "fault",
    [{"delay": 1.0}, {"drop": True}, {"malformed": True}],
    ids=["slower-than-the-timeout", "connection-dropped", "unreadable-201"],
)
def test_answers_lost_after_sending_are_transient_with_an_unknown_outcome(twilio, sender, fault):
    twilio.fail_next("messages.create", **fault)

    with pytest.raises(TransientSendError) as raised:
        sender.send_sms(sms())

    assert raised.value.code == OUTCOME_UNKNOWN


def test_an_unreachable_twilio_is_transient_and_nothing_was_sent():
    url = f"http://127.0.0.1:{free_port()}"  # a port nobody listens on
    sender = TwilioSmsSender(ACCOUNT_SID, AUTH_TOKEN, from_number=FROM, api_url=url, timeout=0.5)

    with pytest.raises(TransientSendError) as raised:
        sender.send_sms(sms())

    assert raised.value.code == NOT_SENT


def test_concurrent_sends_each_get_their_own_receipt(twilio, sender):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        receipts = list(pool.map(lambda i: sender.send_sms(sms(to=f"+1555123{i:04d}")), range(40)))

    assert {r.provider_id for r in receipts} == {m["sid"] for m in twilio.messages}
    assert len(twilio.messages) == 40


def test_texts_sent_one_after_another_share_one_connection_counted_at_twilio(twilio, sender):
    for index in range(20):
        sender.send_sms(sms(to=f"+1555123{index:04d}"))

    assert len(twilio.messages) == 20
    assert len({request.client_port for request in twilio.requests}) == 1


def test_texts_from_several_threads_open_no_more_connections_than_threads_and_keep_them(twilio, sender):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: sender.send_sms(sms(to=f"+1555123{i:04d}")), range(200)))
    concurrent_ports = {request.client_port for request in twilio.requests}
    for index in range(20):
        sender.send_sms(sms(to=f"+1555124{index:04d}"))

    assert len(twilio.messages) == 220
    assert len(concurrent_ports) <= 8
    assert {request.client_port for request in twilio.requests[200:]} <= concurrent_ports  # kept, not reopened


def test_a_connection_twilio_closed_while_idle_is_replaced_and_the_next_text_goes_once(twilio, sender):
    twilio.fail_next("messages.create", hang_up=True)  # answers, then closes the kept connection
    sender.send_sms(sms(to="+15551230001"))
    idle = sender._http._idle[0].http.sock  # noqa: SLF001 - wait until the close has reached this side
    assert select.select([idle], [], [], 5)[0]

    receipt = sender.send_sms(sms(to="+15551230002"))

    first, second = twilio.requests
    assert receipt.provider_id == twilio.messages[1]["sid"]
    assert len(twilio.messages) == 2  # neither text repeated
    assert second.client_port != first.client_port


def test_a_proxy_named_in_the_environment_carries_the_sends(monkeypatch):
    proxy = socket.socket()
    proxy.bind(("127.0.0.1", 0))
    proxy.listen(1)
    seen: list[bytes] = []

    def answer_once() -> None:
        connection, _ = proxy.accept()
        with connection:
            seen.append(connection.recv(1024))
            connection.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")

    listening = threading.Thread(target=answer_once)
    listening.start()
    for name in ("https_proxy", "NO_PROXY", "no_proxy"):  # the lowercase names win over uppercase ones
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{proxy.getsockname()[1]}")
    sender = TwilioSmsSender(ACCOUNT_SID, AUTH_TOKEN, from_number=FROM, timeout=0.5)

    with pytest.raises(TransientSendError) as raised:
        sender.send_sms(sms())
    listening.join(timeout=5)
    proxy.close()

    assert seen and seen[0].startswith(b"CONNECT api.twilio.com:443 ")
    assert raised.value.code == NOT_SENT  # the proxy refused: nothing reached Twilio


def test_hosts_in_no_proxy_are_reached_directly(twilio, monkeypatch):
    for name in ("http_proxy", "no_proxy"):  # the lowercase names win over uppercase ones
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    sender = TwilioSmsSender(ACCOUNT_SID, AUTH_TOKEN, from_number=FROM, api_url=twilio.url, timeout=0.5)

    assert sender.send_sms(sms()).provider_id == twilio.messages[0]["sid"]
