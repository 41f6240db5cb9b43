"""The small interfaces the core sends through; Twilio, SendGrid and Slack adapters implement them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class SendReceipt:
    """What a provider answered when it accepted a message."""

    provider_id: str
    status: str = "queued"


class FailureKind(StrEnum):
    """What a provider's refusal, or a failed delivery, means for the lead.

    The channel adapters read their vendor's codes into one of these; the core reads only the
    kind (the code is kept for people to look up).
    """

    #: The number told its carrier STOP (Twilio knows of an opt-out we never saw): like a STOP.
    OPTED_OUT = "opted_out"
    #: The number can never take texts (a landline, no such number): say it another way.
    UNREACHABLE = "unreachable"
    #: This message failed; nothing is concluded about the lead.
    OTHER = "other"


class SendError(Exception):
    """A provider refused or failed to take a message."""

    def __init__(self, reason: str, *, code: str | None = None, kind: FailureKind = FailureKind.OTHER):
        super().__init__(reason)
        self.reason = reason
        self.code = code
        self.kind = kind


class TransientSendError(SendError):
    """The provider may take the message later (rate limit, 5xx, network): retry with backoff."""

    def __init__(self, reason: str, *, code: str | None = None, retry_after: float | None = None):
        super().__init__(reason, code=code)
        self.retry_after = retry_after


class PermanentSendError(SendError):
    """The provider will never take this message (bad number, unsubscribed): do not retry."""


@dataclass(frozen=True)
class SmsFrom:
    """Whom a text goes out from: a business's number (E.164), or its Twilio messaging service (which picks one).

    Neither set: the business has no sender, and the adapter refuses the text rather than send it from
    another business's number.
    """

    number: str | None = None
    messaging_service_sid: str | None = None


@dataclass(frozen=True)
class EmailFrom:
    """Whom an email comes from: the business's address and name, and where replies go."""

    address: str
    name: str | None = None
    reply_to: str | None = None


@dataclass(frozen=True)
class OutgoingSms:
    to: str
    body: str
    #: The touch or message id, so status callbacks can be tied back.
    reference: str
    status_callback: str | None = None
    #: The lead's business's sender; None: the adapter's own (the one configured for the whole deployment).
    sender: SmsFrom | None = None


@dataclass(frozen=True)
class OutgoingEmail:
    to: str
    subject: str
    text: str
    html: str
    reference: str
    headers: Mapping[str, str] = field(default_factory=dict)
    custom_args: Mapping[str, str] = field(default_factory=dict)
    #: The lead's business's address; None: the adapter's own (the one configured for the whole deployment).
    sender: EmailFrom | None = None

    @classmethod
    def to_lead(
        cls,
        *,
        to: str,
        subject: str,
        text: str,
        html: str,
        reference: str,
        unsubscribe_url: str,
        custom_args: Mapping[str, str],
        sender: EmailFrom | None = None,
    ) -> OutgoingEmail:
        """An email to a lead: with one-click unsubscribe (RFC 8058), as mailbox providers require of senders."""
        return cls(
            to=to,
            subject=subject,
            text=text,
            html=html,
            reference=reference,
            headers={"List-Unsubscribe": f"<{unsubscribe_url}>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"},
            custom_args=custom_args,
            sender=sender,
        )


class SmsSender(Protocol):
    def send_sms(self, message: OutgoingSms) -> SendReceipt: ...


class SentSms(Protocol):
    """A text as the provider lists it."""

    @property
    def sid(self) -> str: ...
    @property
    def body(self) -> str: ...
    @property
    def status(self) -> str: ...


@runtime_checkable
class SentSmsLookup(Protocol):
    """A texting provider that can list what it holds for a number (Twilio can; SendGrid cannot list email)."""

    def messages_to(self, to: str) -> Sequence[SentSms]: ...


@dataclass(frozen=True)
class FetchedMedia:
    """A photo (or other media) a lead sent, as the provider holds it."""

    content: bytes
    content_type: str


class MediaFetchError(Exception):
    """The provider could not give the media; `transient` says whether trying later may work."""

    def __init__(self, reason: str, *, transient: bool):
        super().__init__(reason)
        self.reason = reason
        self.transient = transient


class MediaSource(Protocol):
    def fetch_media(self, url: str) -> FetchedMedia: ...


class EmailSender(Protocol):
    def send_email(self, message: OutgoingEmail) -> SendReceipt: ...


#: TransientSendError.code when the request never reached the provider: safe to retry.
NOT_SENT = "not_sent"
#: TransientSendError.code when the provider may have taken the message (a timeout after sending,
#: a lost connection, an unreadable answer): retrying could send it twice, so a person decides.
OUTCOME_UNKNOWN = "outcome_unknown"
