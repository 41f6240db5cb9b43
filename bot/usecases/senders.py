"""Whom a business's texts and emails go out from, as the ports take it.

Each business names its own sender (`Business.sms`, `Business.email_sender`), and every message to a lead
carries its business's, so no clinic's lead is ever written to from another clinic's number or address.
A deployment of one business that names none (its senders built into the adapters, as before businesses
had their own) leaves it to the adapter: there is no other business whose sender it could be.
"""

from __future__ import annotations

from bot.core.business import Business
from bot.core.ports import EmailFrom, SmsFrom
from bot.usecases.services import Services


def sms_from(services: Services, business: Business) -> SmsFrom | None:
    """The business's texting sender; None (the adapter's own) only for the single business naming none."""
    if business.sms.number or business.sms.messaging_service_sid or services.businesses.only is None:
        return business.sms  # several businesses: one without a sender is refused by the adapter (no_sender)
    return None


def email_from(services: Services, business: Business) -> EmailFrom | None:
    """The business's email sender; None (the adapter's own) when it names no from-address."""
    return business.email_sender
