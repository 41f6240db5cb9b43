"""A local stand-in for SendGrid's v3 Mail Send API."""

from __future__ import annotations

import math
import re
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.standins.server import Fault, RecordedRequest, Reply, StandinServer

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_HELP = "http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html"
_INVALID_GRANT = "The provided authorization grant is invalid, expired, or revoked"


@dataclass(frozen=True)
class AcceptedEmail:
    """One send SendGrid accepted: the v3 JSON body and the X-Message-Id it answered."""

    message_id: str
    body: Mapping[str, Any]
    received_at: datetime

    @property
    def to(self) -> list[str]:
        return [to["email"] for p in self.body["personalizations"] for to in p.get("to", [])]

    @property
    def subject(self) -> str:
        return self.body.get("subject", "")

    @property
    def text(self) -> str | None:
        return self._content("text/plain")

    @property
    def html(self) -> str | None:
        return self._content("text/html")

    @property
    def reply_to(self) -> str | None:
        return (self.body.get("reply_to") or {}).get("email")

    @property
    def headers(self) -> Mapping[str, str]:
        return self.body.get("headers", {})

    @property
    def custom_args(self) -> Mapping[str, str]:
        return self.body.get("custom_args", {})

    def _content(self, media_type: str) -> str | None:
        return next((c["value"] for c in self.body.get("content", []) if c.get("type") == media_type), None)


def sendgrid_errors(status: int, *errors: tuple[str, str | None], headers: Mapping[str, str] | None = None) -> Reply:
    """Answer with SendGrid's error JSON: (message, field) pairs."""
    return Reply.json(
        status,
        {"errors": [{"message": message, "field": field, "help": None} for message, field in errors]},
        headers,
    )


class SendGridApiStandin(StandinServer):
    """SendGrid's `POST /v3/mail/send` for one API key.

    Point `sendgrid.SendGridAPIClient(api_key, host=standin.url)` at it. Route kind for
    `fail_next`: "mail.send". With `rate_limit_per_minute` set, sends past the limit in the
    current minute answer 429 as SendGrid does; None disables the limit and its headers.
    """

    routes = frozenset({"mail.send"})

    def __init__(self, api_key: str, *, rate_limit_per_minute: int | None = 600) -> None:
        super().__init__()
        self.api_key = api_key
        self.rate_limit_per_minute = rate_limit_per_minute
        self._store_lock = threading.Lock()
        self._emails: list[AcceptedEmail] = []
        self._window: tuple[int, int] = (0, 0)  # (minute, sends counted in it)

    @property
    def emails(self) -> list[AcceptedEmail]:
        """The sends accepted so far, oldest first."""
        with self._store_lock:
            return list(self._emails)

    def route(self, method: str, path: str) -> tuple[str, dict[str, str]] | None:
        if method == "POST" and path == "/v3/mail/send":
            return "mail.send", {}
        return None

    def not_found(self, method: str, path: str) -> Reply:
        return sendgrid_errors(404, ("resource not found", None))

    def fault_reply(self, route: str | None, fault: Fault) -> Reply:
        status = fault.status if fault.status is not None else 400
        headers: dict[str, str] = {}
        if status == 429:
            headers = self._rate_headers(remaining=0, reset=math.ceil(time.time() + (fault.retry_after or 1)))
        if fault.body is not None:
            return Reply.json(status, fault.body, headers)
        messages = {
            400: "Bad Request",
            401: _INVALID_GRANT,
            403: "access forbidden",
            413: "The JSON payload you have submitted is too large",
            429: "too many requests",
        }
        return sendgrid_errors(status, (messages.get(status, "internal error"), None), headers=headers)

    def handle(self, route: str, params: dict[str, str], request: RecordedRequest) -> Reply:
        authorization = request.headers.get("Authorization")
        if not authorization:
            return sendgrid_errors(401, ("authorization required", None))
        if authorization != f"Bearer {self.api_key}":
            return sendgrid_errors(401, (_INVALID_GRANT, None))
        if len(request.body) > 30 * 1024 * 1024:
            return sendgrid_errors(413, ("The JSON payload you have submitted is too large", None))
        if not isinstance(request.data, dict):
            return sendgrid_errors(400, ("Bad Request", None))
        errors = validate_mail(request.data)
        if errors:
            return sendgrid_errors(400, *errors)

        rate_headers: dict[str, str] = {}
        if self.rate_limit_per_minute is not None:
            minute = int(time.time() // 60)
            reset = (minute + 1) * 60
            with self._store_lock:
                window, used = self._window
                used = used if window == minute else 0
                if used >= self.rate_limit_per_minute:
                    return sendgrid_errors(
                        429, ("too many requests", None), headers=self._rate_headers(remaining=0, reset=reset)
                    )
                self._window = (minute, used + 1)
            rate_headers = self._rate_headers(remaining=self.rate_limit_per_minute - used - 1, reset=reset)

        email = AcceptedEmail(secrets.token_urlsafe(16), request.data, request.received_at)
        with self._store_lock:
            self._emails.append(email)
        return Reply(202, b"", {"X-Message-Id": email.message_id, **rate_headers})

    def _rate_headers(self, *, remaining: int, reset: int) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.rate_limit_per_minute or 600),
            "X-RateLimit-Remaining": str(max(remaining, 0)),
            "X-RateLimit-Reset": str(reset),
        }


def validate_mail(body: Mapping[str, Any]) -> list[tuple[str, str | None]]:
    """Check a v3 mail body the way SendGrid rejects one; return (message, field) errors."""
    errors: list[tuple[str, str | None]] = []
    personalizations = body.get("personalizations")
    if not isinstance(personalizations, list) or not personalizations:
        errors.append(
            ("The personalizations field is required and must have at least one personalization.", "personalizations")
        )
        personalizations = []
    for i, personalization in enumerate(personalizations):
        recipients = personalization.get("to") if isinstance(personalization, dict) else None
        if not isinstance(recipients, list) or not recipients:
            errors.append(
                (
                    "The to array is required for all personalization objects, and must have at least one "
                    "email object with a valid email address.",
                    f"personalizations.{i}.to",
                )
            )
            continue
        for j, recipient in enumerate(recipients):
            if not _valid_address(recipient):
                errors.append(("Does not contain a valid address.", f"personalizations.{i}.to.{j}.email"))

    sender = body.get("from")
    if not isinstance(sender, dict) or not sender.get("email"):
        errors.append(
            (
                "The from object must be provided for every email send. It is an object that requires the email "
                "parameter, but may also contain a name parameter.",
                "from.email",
            )
        )
    elif not _valid_address(sender):
        errors.append(("The from email does not contain a valid address.", "from.email"))

    if "reply_to" in body and not _valid_address(body["reply_to"]):
        errors.append(("The reply_to email does not contain a valid address.", "reply_to.email"))

    has_template = bool(body.get("template_id"))
    every_personalization_has_subject = bool(personalizations) and all(
        isinstance(p, dict) and p.get("subject") for p in personalizations
    )
    if not has_template and not body.get("subject") and not every_personalization_has_subject:
        errors.append(
            (
                "The subject is required. You can get around this requirement if you use a template with a subject "
                "defined or if every personalization has a subject defined.",
                "subject",
            )
        )

    content = body.get("content")
    if not has_template and (not isinstance(content, list) or not content):
        errors.append(
            (
                "Unless a valid template_id is provided, the content parameter is required. There must be at least "
                "one defined content block.",
                "content",
            )
        )
    elif isinstance(content, list):
        types = [c.get("type") if isinstance(c, dict) else None for c in content]
        for k, block in enumerate(content):
            if (
                not isinstance(block, dict)
                or not block.get("type")
                or not isinstance(block.get("value"), str)
                or not block["value"]
            ):
                errors.append(
                    ("The content value must be a string at least one character in length.", f"content.{k}.value")
                )
        expected = [t for t in ("text/plain", "text/html") if t in types]
        if types[: len(expected)] != expected:
            errors.append(
                (
                    "The text/plain content type must be first, followed by text/html, followed by any other content.",
                    "content",
                )
            )

    for section in ("headers", "custom_args"):
        values = body.get(section, {})
        if not isinstance(values, dict):
            errors.append((f"Invalid type. Expected: object, given: {type(values).__name__}.", section))
            continue
        for name, value in values.items():
            if not isinstance(value, str):
                errors.append((f"Invalid type. Expected: string, given: {type(value).__name__}.", f"{section}.{name}"))
    return errors


def _valid_address(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("email"), str) and bool(_EMAIL.match(value["email"]))
