"""Send SMS through Twilio's Messages API, mapping its failures onto the send ports' errors."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit

from twilio.base.exceptions import TwilioException, TwilioRestException

from bot.channels.twilio_errors import TwilioAnswerLost, TwilioUnreachable
from bot.core.ports import (
    NOT_SENT,
    OUTCOME_UNKNOWN,
    FailureKind,
    FetchedMedia,
    MediaFetchError,
    OutgoingSms,
    PermanentSendError,
    SendReceipt,
    SmsFrom,
    TransientSendError,
)

if TYPE_CHECKING:
    from twilio.rest import Client

    from bot.channels.twilio_http import KeptAliveTwilioHttpClient

TWILIO_API_URL = "https://api.twilio.com"
#: PermanentSendError.code of a text whose business has no sender: nothing was asked of Twilio.
NO_SENDER = "no_sender"
#: The largest media item fetched from Twilio (its own limit for an MMS is 5 MB).
MAX_MEDIA_BYTES = 5 * 1024 * 1024

#: Twilio error codes answered with a 4xx that still mean "later": too many requests, and a
#: sender's queue overflowing. Every other 4xx (21211 invalid To, 21610 unsubscribed, 21614 not
#: mobile, 21612, 21408, 21635, 3000x, auth and validation errors) will never go out as sent.
TRANSIENT_ERROR_CODES = frozenset({20429, 21611, 30001})
#: What Twilio's error codes (on a refused send, or in a delivery report) mean for the lead. 21610:
#: the recipient replied STOP to this sender; the others: the number cannot take texts (invalid,
#: not mobile, a landline, unknown handset, not reachable by SMS). 30003 (handset switched off),
#: 30007 (carrier filtering) and 21408 (our account's permissions) say nothing lasting about the lead.
FAILURE_KINDS = {
    "21610": FailureKind.OPTED_OUT,
    **dict.fromkeys(("21211", "21614", "21635", "21612", "30005", "30006"), FailureKind.UNREACHABLE),
}
#: Refusals that are the clinic's Twilio settings, not the lead's number: what a person must change.
ACCOUNT_FIXES = {
    "21408": "the clinic's Twilio account may not text this number's country: turn the country on under "
    "Messaging > Settings > Geo permissions in the Twilio Console, then send again",
}


def failure_kind(code: str | int | None) -> FailureKind:
    """What a Twilio error code means for the lead (FailureKind.OTHER for any code not known to mean more)."""
    return FAILURE_KINDS.get(str(code), FailureKind.OTHER) if code is not None else FailureKind.OTHER


@dataclass(frozen=True)
class SentSms:
    """A message as Twilio lists it."""

    sid: str
    body: str
    status: str


class TwilioSmsSender:
    """An SmsSender that creates messages with twilio-python; it never retries by itself."""

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        *,
        from_number: str | None = None,
        messaging_service_sid: str | None = None,
        api_url: str = TWILIO_API_URL,
        timeout: float = 10.0,
        connections: int = 10,
    ):
        # Without either, every text must name its business's sender (OutgoingSms.sender); one that does not is refused.
        self._account_sid, self._auth_token = account_sid, auth_token
        self._api = urlsplit(api_url)
        self._from_number = from_number
        self._messaging_service_sid = messaging_service_sid
        self._api_url, self._timeout, self._connections = api_url, timeout, connections
        # twilio-python's client, its Messages resources and requests (which it imports) are some 12 MiB
        # resident: they are loaded with the first text, not by a bot that has sent none.
        self._made: tuple[Client, KeptAliveTwilioHttpClient] | None = None
        self._making = threading.Lock()

    @property
    def _client(self) -> Client:
        return self._parts()[0]

    @property
    def _http(self) -> KeptAliveTwilioHttpClient:
        return self._parts()[1]

    def _parts(self) -> tuple[Client, KeptAliveTwilioHttpClient]:
        if self._made is None:
            with self._making:
                if self._made is None:
                    self._made = _build_client(
                        self._account_sid, self._auth_token, self._api_url, self._timeout, self._connections
                    )
        return self._made

    def send_sms(self, message: OutgoingSms) -> SendReceipt:
        """Ask Twilio to send one SMS from its business's sender and return its message sid and first status."""
        sender = message.sender or SmsFrom(self._from_number, self._messaging_service_sid)
        if not sender.number and not sender.messaging_service_sid:
            raise PermanentSendError(
                f"SMS {message.reference} has no sender: its business has no Twilio number or "
                "messaging service (sms.from_number or sms.messaging_service_sid)",
                code=NO_SENDER,
            )
        try:
            created = self._client.api.v2010.account.messages.create(
                to=message.to,
                body=message.body,
                from_=sender.number,
                messaging_service_sid=sender.messaging_service_sid,
                status_callback=message.status_callback,
            )
        except TwilioRestException as error:
            raise self._rest_error(error, message) from error
        except TwilioUnreachable as error:  # refused, unresolvable, no handshake, the proxy said no
            raise TransientSendError(f"Twilio unreachable: {error}", code=NOT_SENT) from error
        except TwilioAnswerLost as error:  # read timeouts, dropped connections, broken bodies
            raise TransientSendError(f"Twilio answer lost: {error}", code=OUTCOME_UNKNOWN) from error
        except json.JSONDecodeError as error:
            raise TransientSendError(f"Twilio answered unreadable JSON: {error}", code=OUTCOME_UNKNOWN) from error
        return SendReceipt(provider_id=created.sid, status=created.status or "queued")

    def messages_to(self, to: str, *, limit: int = 100) -> list[SentSms]:
        """The messages Twilio holds for one number, newest first (to settle a send a crash left open).

        Raises TransientSendError when Twilio cannot be asked now.
        """
        try:
            found = self._client.api.v2010.account.messages.list(to=to, limit=limit, page_size=limit)
        except (TwilioException, OSError, json.JSONDecodeError) as error:
            raise TransientSendError(f"could not list Twilio messages: {error}", code=NOT_SENT) from error
        return [SentSms(sid=m.sid, body=m.body or "", status=m.status or "queued") for m in found]

    def fetch_media(self, url: str) -> FetchedMedia:
        """Fetch a lead's MMS media from its MediaUrl, with the account's credentials, following the CDN redirect.

        The credentials go only to the configured Twilio API host: a MediaUrl naming any other
        host is refused, and the redirect's target is fetched without them.
        """
        parts = urlsplit(url)
        if (parts.scheme, parts.netloc) != (self._api.scheme, self._api.netloc) or not parts.path.startswith(
            f"/2010-04-01/Accounts/{self._account_sid}/Messages/"
        ):
            raise MediaFetchError(f"not a media URL of this Twilio account: {url}", transient=False)
        try:
            answer = self._http.raw_get(url, auth=(self._account_sid, self._auth_token))
            if answer.status in (301, 302, 303, 307, 308) and answer.headers.get("Location"):
                answer = self._http.raw_get(urljoin(url, answer.headers["Location"]))
        except OSError as error:  # TwilioUnreachable, TwilioAnswerLost
            raise MediaFetchError(f"Twilio media unreachable: {error}", transient=True) from error
        if answer.status == 429 or answer.status >= 500:
            raise MediaFetchError(f"Twilio media: HTTP {answer.status}", transient=True)
        if answer.status != 200:
            raise MediaFetchError(f"Twilio media: HTTP {answer.status}", transient=False)
        if len(answer.data) > MAX_MEDIA_BYTES:
            raise MediaFetchError(f"media larger than {MAX_MEDIA_BYTES} bytes", transient=False)
        kind = answer.headers.get("Content-Type", "application/octet-stream").split(";")[0].strip()
        return FetchedMedia(content=answer.data, content_type=kind)

    def _rest_error(self, error: TwilioRestException, message: OutgoingSms) -> Exception:
        code = error.code if error.code is not None else error.status
        reason = f"Twilio refused SMS {message.reference}: HTTP {error.status}, {error.msg}"
        if str(code) in ACCOUNT_FIXES:
            reason = f"{reason}. To fix: {ACCOUNT_FIXES[str(code)]}"
        if error.status == 429 or error.status >= 500 or code in TRANSIENT_ERROR_CODES:
            return TransientSendError(reason, code=str(code), retry_after=retry_after_seconds(self._http.last_headers))
        return PermanentSendError(reason, code=str(code), kind=failure_kind(code))


def _build_client(
    account_sid: str, auth_token: str, api_url: str, timeout: float, connections: int
) -> tuple[Client, KeptAliveTwilioHttpClient]:
    """twilio-python's client for one account, on keep-alive connections to `api_url` and nowhere else."""
    from twilio.rest import Client

    from bot.channels.twilio_http import KeptAliveTwilioHttpClient

    http = KeptAliveTwilioHttpClient(api_url, timeout=timeout, connections=connections)
    client = Client(account_sid, auth_token, http_client=http)
    # Settings arrive through the constructor, not the process environment: without this,
    # TWILIO_EDGE / TWILIO_REGION would rewrite api_url's host (ClientBase.get_hostname).
    client.edge = None
    client.region = None
    # Every API version of the Api domain (v2010 included) builds URLs from this attribute.
    client.api.base_url = api_url.rstrip("/")
    return client, http


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """Read Retry-After (seconds or an HTTP date) as seconds from now, or None."""
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        return max(parsedate_to_datetime(value).timestamp() - time.time(), 0.0)
    except (TypeError, ValueError):
        return None
