"""After a crash mid-send: does the provider hold the message we meant to send, and nothing else unrecorded?

Both abandoned touches (bot.usecases.dispatch) and abandoned one-off messages (bot.usecases.conversations) are
settled by this one question, asked of a texting provider that can list what it holds for a
number (Twilio can; SendGrid cannot).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.store.models import Lead, Message
from bot.usecases.services import Services


class SentSms(Protocol):
    sid: str
    body: str
    status: str


class SentSmsLookup(Protocol):
    def messages_to(self, to: str) -> list[SentSms]: ...


@dataclass(frozen=True)
class HeldForNumber:
    """What the provider holds for the lead's number that followup has no record of."""

    unrecorded: int
    #: The message we meant to send, when it is the only unrecorded one and its text matches.
    ours: SentSms | None


def ask_provider(session: Session, services: Services, lead: Lead, body: str) -> HeldForNumber | None:
    """Ask the texting provider what it holds for the lead's number; None when it cannot be asked.

    Raises TransientSendError when the provider does not answer now (ask again later).
    """
    lookup: SentSmsLookup | None = services.sms if hasattr(services.sms, "messages_to") else None  # type: ignore[assignment]  # narrowed by hasattr
    if lookup is None or not lead.phone:
        return None
    held = lookup.messages_to(lead.phone)
    known = set(session.scalars(select(Message.provider_id).where(
        Message.lead_id == lead.id, Message.direction == "out", Message.provider_id.is_not(None))))
    unrecorded = [sms for sms in held if sms.sid not in known]
    # Twilio may append to a body (a trial notice): ours starts with what we sent.
    ours = [sms for sms in unrecorded if body and sms.body.startswith(body)]
    return HeldForNumber(len(unrecorded), ours[0] if len(ours) == 1 and len(unrecorded) == 1 else None)
