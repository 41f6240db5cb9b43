"""Send email through SendGrid's v3 Mail Send API, mapping its failures onto the send ports' errors."""

from __future__ import annotations

import http.client
import threading
import time
import urllib.error
from collections.abc import Mapping
from typing import TYPE_CHECKING

from python_http_client.exceptions import HTTPError

from bot.core.ports import NOT_SENT, OUTCOME_UNKNOWN, OutgoingEmail, PermanentSendError, SendReceipt, TransientSendError

if TYPE_CHECKING:
    from sendgrid import SendGridAPIClient
    from sendgrid.helpers.mail import Email, Mail

SENDGRID_API_URL = "https://api.sendgrid.com"

#: HTTP statuses under 500 worth retrying; every other 4xx (400, 401, 403, 413, ...) is final.
_TRANSIENT_STATUSES = frozenset({408, 429})


class SendGridEmailSender:
    """An EmailSender that posts to /v3/mail/send with sendgrid-python; it never retries by itself."""

    def __init__(
        self,
        api_key: str,
        from_email: str,
        from_name: str | None = None,
        reply_to: str | None = None,
        *,
        api_url: str = SENDGRID_API_URL,
        timeout: float = 10.0,
    ):
        self._from_email, self._from_name = from_email, from_name
        self._reply_to = reply_to
        self._api_key, self._host, self._timeout = api_key, api_url.rstrip("/"), timeout
        # sendgrid-python (and the cryptography it imports for its event webhook helper) is some 9 MiB
        # resident: it is loaded with the first email, not by a bot that sends none.
        self._made: SendGridAPIClient | None = None
        self._making = threading.Lock()

    def _client(self) -> SendGridAPIClient:
        if self._made is None:
            with self._making:
                if self._made is None:
                    from sendgrid import SendGridAPIClient

                    client = SendGridAPIClient(self._api_key, host=self._host)
                    # python_http_client copies this onto each request it builds; without it urllib waits forever.
                    client.client.timeout = self._timeout
                    self._made = client
        return self._made

    def send_email(self, message: OutgoingEmail) -> SendReceipt:
        """Ask SendGrid to send one email and return its X-Message-Id."""
        try:
            response = self._client().send(self._mail(message))
        except HTTPError as error:
            raise _http_error(error, message) from error
        except urllib.error.URLError as error:
            # urllib wraps failures while connecting and sending the request, not while reading.
            raise TransientSendError(f"SendGrid unreachable: {error.reason}", code=NOT_SENT) from error
        except (OSError, http.client.HTTPException) as error:  # read timeout, connection lost
            raise TransientSendError(f"SendGrid did not answer: {error!r}", code=OUTCOME_UNKNOWN) from error
        message_id = response.headers.get("X-Message-Id")
        if not message_id:
            raise TransientSendError(
                f"SendGrid answered HTTP {response.status_code} without X-Message-Id", code=OUTCOME_UNKNOWN
            )
        return SendReceipt(provider_id=message_id)

    def _mail(self, message: OutgoingEmail) -> Mail:
        from sendgrid.helpers.mail import CustomArg, From, Header, Mail, ReplyTo, To

        sender = message.sender
        mail = Mail(
            from_email=_address(From, sender.address, sender.name)
            if sender
            else _address(From, self._from_email, self._from_name),
            to_emails=_address(To, message.to),
            subject=message.subject,
            plain_text_content=message.text or None,
            html_content=message.html or None,
        )
        reply_to = sender.reply_to if sender else self._reply_to
        if reply_to:
            mail.reply_to = _address(ReplyTo, reply_to)
        for name, value in message.headers.items():
            mail.add_header(Header(name, value))
        for name, value in message.custom_args.items():
            mail.add_custom_arg(CustomArg(name, value))
        return mail


def _address(kind: type[Email], email: str, name: str | None = None) -> Email:
    """Build an address verbatim: Email("...") alone would parse "Name <addr>" out of the string."""
    address = kind()
    address.email = email
    address.name = name
    return address


def _http_error(error: HTTPError, message: OutgoingEmail) -> Exception:
    reason = f"SendGrid refused email {message.reference}: HTTP {error.status_code}, {_error_messages(error)}"
    status = error.status_code
    if status == 429:
        return TransientSendError(reason, code=str(status), retry_after=_seconds_until_reset(error.headers))
    if status >= 500 or status in _TRANSIENT_STATUSES:
        return TransientSendError(reason, code=str(status))
    return PermanentSendError(reason, code=str(status))


def _error_messages(error: HTTPError) -> str:
    try:
        return "; ".join(e.get("message", "") for e in error.to_dict.get("errors", []))
    except (ValueError, AttributeError, TypeError):
        return repr(error.body[:200]) if error.body else "no body"


def _seconds_until_reset(headers: Mapping[str, str] | None) -> float | None:
    """X-RateLimit-Reset is a Unix time; the wait is how far it lies ahead."""
    value = headers.get("X-RateLimit-Reset") if headers is not None else None
    try:
        return max(float(value) - time.time(), 0.0) if value is not None else None
    except ValueError:
        return None
