"""A local stand-in for Twilio's Programmable Messaging REST API (2010-04-01)."""

from __future__ import annotations

import base64
import hmac
import re
import threading
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

from twilio.request_validator import RequestValidator

from bot.core import sms_segments
from bot.standins.server import Fault, RecordedRequest, Reply, StandinServer

_MESSAGES = re.compile(r"^/2010-04-01/Accounts/(?P<account_sid>[^/]+)/Messages\.json$")
_MESSAGE = re.compile(r"^/2010-04-01/Accounts/(?P<account_sid>[^/]+)/Messages/(?P<message_sid>[^/]+)\.json$")
#: A media item of an inbound MMS, as Twilio's MediaUrl{N} names it (no extension: the media itself).
_MEDIA = re.compile(
    r"^/2010-04-01/Accounts/(?P<account_sid>[^/]+)/Messages/(?P<message_sid>MM[0-9a-f]{32})/Media/(?P<media_sid>ME[0-9a-f]{32})$"
)
#: Where the media URL redirects, as Twilio's redirects to its media CDN: no credentials there.
_MEDIA_CONTENT = re.compile(r"^/media-content/(?P<token>[0-9a-f]{32})$")
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")

#: Errors Twilio answers synchronously with HTTP 400 when a message is created.
SYNCHRONOUS_ERRORS: Mapping[int, str] = {
    21211: "Invalid 'To' Phone Number: {to}",
    21408: "Permission to send an SMS has not been enabled for the region indicated by the 'To' number: {to}",
    21610: "Attempt to send to unsubscribed recipient",
    21612: "The 'To' phone number: {to}, is not currently reachable using the 'From' phone number via SMS.",
    21614: "'To' number is not a valid mobile number",
    21635: "The 'To' number {to} is a landline and cannot receive SMS",
}

#: Errors that surface later, in the status callback of an accepted message.
DELIVERY_ERRORS: Mapping[int, str] = {
    30003: "Unreachable destination handset",
    30004: "Message blocked",
    30005: "Unknown destination handset",
    30006: "Landline or unreachable carrier",
    30007: "Message filtered",
    30008: "Unknown error",
}

_STATUS_ERRORS: Mapping[int, tuple[int, str]] = {
    400: (20001, "Bad request"),
    401: (20003, "Authenticate"),
    403: (20403, "Forbidden"),
    404: (20404, "The requested resource was not found"),
    429: (20429, "Too Many Requests"),
    500: (20500, "Internal Server Error"),
    503: (20503, "Service Unavailable"),
}


def count_segments(body: str) -> int:
    """Count the segments Twilio reports for a body (a media-only message counts one)."""
    return max(sms_segments.count_segments(body).segments, 1)


def twilio_error(status: int, code: int, message: str) -> Reply:
    """Answer with Twilio's legacy error JSON."""
    return Reply.json(
        status,
        {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}", "status": status},
    )


class TwilioApiStandin(StandinServer):
    """Twilio's Messages API for one account: create and fetch messages, post status callbacks.

    Point `twilio.rest.Client` at it with `client.api.base_url = standin.url`. Route kinds for
    `fail_next`: "messages.create", "messages.fetch", "messages.list".
    """

    routes = frozenset({"messages.create", "messages.fetch", "messages.list", "media.fetch", "media.content"})

    def __init__(self, account_sid: str, auth_token: str) -> None:
        super().__init__()
        self.account_sid = account_sid
        self.auth_token = auth_token
        self._store_lock = threading.Lock()
        self._messages: dict[str, dict[str, Any]] = {}
        self._status_callbacks: dict[str, str] = {}
        self._number_errors: dict[str, int] = {}
        #: (recipient, sender) pairs Twilio refuses with 21610: the recipient texted STOP to that sender.
        self._opted_out: set[tuple[str, str]] = set()
        #: Inbound MMS media by (message sid, media sid): a CDN token, the bytes and their type.
        self._media: dict[tuple[str, str], tuple[str, bytes, str]] = {}

    # -- configuration and assertions ------------------------------------------------------

    def set_number_behaviour(self, e164: str, error_code: int | None) -> None:
        """Make sends to `e164` fail as Twilio does for `error_code` (None: behave normally).

        21xxx codes refuse the send with HTTP 400; 30xxx codes accept it and the message ends
        `undelivered` with that ErrorCode when `deliver_status` is called.
        """
        if error_code is not None and error_code not in SYNCHRONOUS_ERRORS and error_code not in DELIVERY_ERRORS:
            raise ValueError(f"unsupported Twilio error code {error_code}")
        with self._store_lock:
            if error_code is None:
                self._number_errors.pop(e164, None)
            else:
                self._number_errors[e164] = error_code

    def set_opted_out(self, recipient: str, sender: str, opted_out: bool = True) -> None:
        """Refuse sends from `sender` (a number or messaging service) to `recipient` with 21610, or allow them again.

        Twilio keeps a STOP per sender, as carriers do: a recipient who texted STOP to one number still gets
        texts from another number of the same account.
        """
        with self._store_lock:
            if opted_out:
                self._opted_out.add((recipient, sender))
            else:
                self._opted_out.discard((recipient, sender))

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The messages accepted so far, as Twilio's JSON resources, oldest first."""
        with self._store_lock:
            return [dict(m) for m in self._messages.values()]

    def message(self, message_sid: str) -> dict[str, Any]:
        """One accepted message as Twilio's JSON resource."""
        with self._store_lock:
            return dict(self._messages[message_sid])

    def status_callback_for(self, message_sid: str) -> str | None:
        """The StatusCallback URL the message was sent with."""
        with self._store_lock:
            return self._status_callbacks.get(message_sid)

    # -- webhooks towards the bot ----------------------------------------------------------

    def deliver_status(
        self,
        message_sid: str,
        status: str | None = None,
        *,
        error_code: int | None = None,
        callback_url: str | None = None,
        timeout: float = 5.0,
    ) -> int:
        """Move a message to `status` and post the signed status callback; return the HTTP status.

        Without `status` the message becomes `undelivered` if its number was given a 30xxx
        behaviour, else `delivered`. The callback goes to `callback_url` or the message's
        StatusCallback. Answers like 4xx/5xx are returned, not raised.
        """
        with self._store_lock:
            resource = self._messages[message_sid]
            number_error = self._number_errors.get(resource["to"])
            if status is None:
                status = "undelivered" if number_error in DELIVERY_ERRORS else "delivered"
                if error_code is None and status == "undelivered":
                    error_code = number_error
            now = format_datetime(datetime.now(UTC))
            resource.update(status=status, date_updated=now)
            if status in ("sent", "delivered", "undelivered", "failed") and resource["date_sent"] is None:
                resource["date_sent"] = now
            if error_code is not None:
                resource.update(error_code=error_code, error_message=DELIVERY_ERRORS.get(error_code))
            url = callback_url or self._status_callbacks.get(message_sid)
            params = {
                "AccountSid": self.account_sid,
                "ApiVersion": "2010-04-01",
                "From": resource["from"] or "",
                "MessageSid": message_sid,
                "MessageStatus": status,
                "SmsSid": message_sid,
                "SmsStatus": status,
                "To": resource["to"],
            }
            if resource["messaging_service_sid"]:
                params["MessagingServiceSid"] = resource["messaging_service_sid"]
        if url is None:
            raise ValueError(f"message {message_sid} has no StatusCallback and no callback_url was given")
        if error_code is not None and status in ("failed", "undelivered"):
            params["ErrorCode"] = str(error_code)
        return self.post_signed(url, params, timeout=timeout)

    def inbound_sms(self, url: str, from_: str, body: str, *, to: str, timeout: float = 5.0, **extra: str) -> int:
        """Post a signed inbound-SMS webhook to `url` as Twilio does; return the HTTP status."""
        params = {
            "AccountSid": self.account_sid,
            "ApiVersion": "2010-04-01",
            "Body": body,
            "From": from_,
            "MessageSid": "SM" + uuid.uuid4().hex,
            "NumMedia": "0",
            "NumSegments": str(count_segments(body)),
            "SmsMessageSid": "",
            "SmsSid": "",
            "SmsStatus": "received",
            "To": to,
            **extra,
        }
        params["SmsMessageSid"] = params["SmsSid"] = params["MessageSid"]
        if params["NumMedia"] != "0":
            params["SmsSid"] = ""  # Twilio leaves the SMS-era field empty for an MMS
        return self.post_signed(url, params, timeout=timeout)

    def inbound_mms(
        self,
        url: str,
        from_: str,
        body: str,
        *,
        to: str,
        media: list[tuple[bytes, str]],
        timeout: float = 5.0,
        **extra: str,
    ) -> int:
        """Post a signed inbound-MMS webhook: each (bytes, content type) is served at its MediaUrl{N}."""
        message_sid = "MM" + uuid.uuid4().hex
        fields: dict[str, str] = {"MessageSid": message_sid, "NumMedia": str(len(media))}
        with self._store_lock:
            for index, (content, content_type) in enumerate(media):
                media_sid = "ME" + uuid.uuid4().hex
                self._media[(message_sid, media_sid)] = (uuid.uuid4().hex, content, content_type)
                fields[f"MediaUrl{index}"] = (
                    f"{self.url}/2010-04-01/Accounts/{self.account_sid}/Messages/{message_sid}/Media/{media_sid}"
                )
                fields[f"MediaContentType{index}"] = content_type
        return self.inbound_sms(url, from_, body, to=to, timeout=timeout, **{**fields, **extra})

    def post_signed(self, url: str, params: Mapping[str, str], *, timeout: float = 5.0) -> int:
        """Post form `params` to `url` with a valid X-Twilio-Signature; return the HTTP status."""
        signature = RequestValidator(self.auth_token).compute_signature(url, dict(params))
        request = urllib.request.Request(
            url,
            data=urllib.parse.urlencode(params).encode(),
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": signature,
                "User-Agent": "TwilioProxy/1.1",
                "I-Twilio-Idempotency-Token": str(uuid.uuid4()),
            },
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code

    # -- the API ---------------------------------------------------------------------------

    def route(self, method: str, path: str) -> tuple[str, dict[str, str]] | None:
        if method == "POST" and (match := _MESSAGES.match(path)):
            return "messages.create", match.groupdict()
        if method == "GET" and (match := _MESSAGE.match(path)):
            return "messages.fetch", match.groupdict()
        if method == "GET" and (match := _MESSAGES.match(path)):
            return "messages.list", match.groupdict()
        if method == "GET" and (match := _MEDIA.match(path)):
            return "media.fetch", match.groupdict()
        if method == "GET" and (match := _MEDIA_CONTENT.match(path)):
            return "media.content", match.groupdict()
        return None

    def not_found(self, method: str, path: str) -> Reply:
        return twilio_error(404, 20404, f"The requested resource {path} was not found")

    def fault_reply(self, route: str | None, fault: Fault) -> Reply:
        status = fault.status if fault.status is not None else 400
        headers = {}
        if fault.retry_after is not None:
            headers["Retry-After"] = _seconds_header(fault.retry_after)
        if fault.body is not None:
            return Reply.json(status, fault.body, headers)
        code, message = _STATUS_ERRORS.get(status, (status, "Error"))
        reply = twilio_error(status, code, message)
        reply.headers.update(headers)
        return reply

    def handle(self, route: str, params: dict[str, str], request: RecordedRequest) -> Reply:
        if route == "media.content":  # the CDN behind the redirect: the token in the path is the key
            with self._store_lock:
                found = next(
                    ((content, kind) for token, content, kind in self._media.values() if token == params["token"]), None
                )
            if found is None:
                return Reply(404, b"Not Found", {"Content-Type": "text/plain"})
            return Reply(200, found[0], {"Content-Type": found[1], "Content-Length": str(len(found[0]))})
        if not self._authenticated(request):
            return twilio_error(401, 20003, "Authenticate")
        if params["account_sid"] != self.account_sid:
            return self.not_found(request.method, request.path)
        if route == "messages.fetch":
            with self._store_lock:
                resource = self._messages.get(params["message_sid"])
                return Reply.json(200, dict(resource)) if resource else self.not_found(request.method, request.path)
        if route == "messages.list":
            return self._list_messages(request)
        if route == "media.fetch":
            with self._store_lock:
                stored = self._media.get((params["message_sid"], params["media_sid"]))
            if stored is None:
                return self.not_found(request.method, request.path)
            # As Twilio does: a redirect to the media's short-lived location on its CDN.
            return Reply(307, b"", {"Location": f"{self.url}/media-content/{stored[0]}", "Content-Length": "0"})
        return self._create_message(request.data if isinstance(request.data, dict) else {})

    def _authenticated(self, request: RecordedRequest) -> bool:
        scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(encoded).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        # Both compared, each in constant time, as a real API compares credentials.
        user_ok = hmac.compare_digest(user.encode(), self.account_sid.encode())
        return hmac.compare_digest(password.encode(), self.auth_token.encode()) and user_ok

    def _create_message(self, form: dict[str, Any]) -> Reply:
        to = _single(form.get("To"))
        sender = _single(form.get("From"))
        service = _single(form.get("MessagingServiceSid"))
        body = _single(form.get("Body")) or ""
        media = form.get("MediaUrl")
        if not to:
            return twilio_error(400, 21604, "A 'To' phone number is required.")
        if not sender and not service:
            return twilio_error(
                400, 21603, "A 'From' or 'MessagingServiceSid' parameter is required to send a message."
            )
        if not body and not media and not form.get("ContentSid"):
            return twilio_error(400, 21602, "Message body is required.")
        if len(body) > 1600:
            return twilio_error(400, 21617, "The concatenated message body exceeds the 1600 character limit.")
        if not _E164.match(to):
            return twilio_error(400, 21211, SYNCHRONOUS_ERRORS[21211].format(to=to))
        with self._store_lock:
            number_error = self._number_errors.get(to)
            if (to, sender) in self._opted_out or (to, service) in self._opted_out:
                number_error = 21610
        if number_error is not None and number_error in SYNCHRONOUS_ERRORS:
            return twilio_error(400, number_error, SYNCHRONOUS_ERRORS[number_error].format(to=to))

        sid = "SM" + uuid.uuid4().hex
        now = format_datetime(datetime.now(UTC))
        base = f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}"
        resource = {
            "account_sid": self.account_sid,
            "api_version": "2010-04-01",
            "body": body,
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            # Through a Messaging Service without From, Twilio picks the sender later.
            "from": sender or None,
            "messaging_service_sid": service or None,
            "num_media": str(len(media) if isinstance(media, list) else int(bool(media))),
            "num_segments": str(count_segments(body)),
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": "queued" if sender else "accepted",
            "subresource_uris": {"media": f"{base}/Media.json"},
            "to": to,
            "uri": f"{base}.json",
        }
        with self._store_lock:
            self._messages[sid] = resource
            callback = _single(form.get("StatusCallback"))
            if callback:
                self._status_callbacks[sid] = callback
            return Reply.json(201, dict(resource))

    def _list_messages(self, request: RecordedRequest) -> Reply:
        """One page of messages, newest first, filtered by To and From as Twilio does."""
        to, sender = request.query.get("To"), request.query.get("From")
        try:
            page_size = max(1, min(int(request.query.get("PageSize") or 50), 1000))
        except ValueError:
            return twilio_error(400, 20001, "Invalid PageSize")
        with self._store_lock:
            found = [
                dict(m)
                for m in reversed(self._messages.values())
                if (to is None or m["to"] == to) and (sender is None or m["from"] == sender)
            ]
        page = found[:page_size]
        uri = f"/2010-04-01/Accounts/{self.account_sid}/Messages.json?PageSize={page_size}&Page=0"
        return Reply.json(
            200,
            {
                "messages": page,
                "page": 0,
                "page_size": page_size,
                "start": 0,
                "end": max(len(page) - 1, 0),
                "uri": uri,
                "first_page_uri": uri,
                "previous_page_uri": None,
                # One page is all a stand-in holds for one number; no paging past it.
                "next_page_uri": None,
            },
        )


def _single(value: Any) -> str | None:
    """The last value of a form field that may repeat."""
    return value[-1] if isinstance(value, list) else value


def _seconds_header(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else str(seconds)
