"""Working in-memory stand-ins for the sending ports, for core tests that need no HTTP."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

from bot.core.ports import OutgoingEmail, OutgoingSms, SendError, SendReceipt

_ids = itertools.count(1)


@dataclass
class FakeSmsSender:
    sent: list[OutgoingSms] = field(default_factory=list)
    #: Errors to raise on the next sends, first in first out.
    failures: list[SendError] = field(default_factory=list)
    #: Called during a send, before it returns (to race a STOP against it).
    during_send: Callable[[OutgoingSms], None] | None = None

    def send_sms(self, message: OutgoingSms) -> SendReceipt:
        if self.during_send:
            self.during_send(message)
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append(message)
        return SendReceipt(provider_id=f"SM{next(_ids):032x}", status="queued")

    def to(self, number: str) -> list[str]:
        return [m.body for m in self.sent if m.to == number]


@dataclass
class FakeEmailSender:
    sent: list[OutgoingEmail] = field(default_factory=list)
    failures: list[SendError] = field(default_factory=list)

    def send_email(self, message: OutgoingEmail) -> SendReceipt:
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append(message)
        return SendReceipt(provider_id=f"msg{next(_ids):020d}", status="queued")


#: What a web form that asks for consent posts beside the lead: the ticked box and its wording.
WEB_FORM_CONSENT = {
    "consent": True,
    "consent_text": "I agree to receive texts from Lakeside Chiropractic about my "
    "inquiry. Msg & data rates may apply. Reply STOP to opt out.",
}


def consented():  # noqa: ANN201 - a bot.store.consent.ConsentGiven, imported late like the rest of the core
    """Consent on record as the web form gives it, for leads built as `LeadInput(...)`."""
    from bot.store.consent import ConsentGiven, ConsentMethod

    return ConsentGiven(ConsentMethod.WEB_FORM, WEB_FORM_CONSENT["consent_text"])
