"""Two clinics of one agency in one deployment, each with its own Slack channel, on-call, admins and number.

Built from a deployment's services (the test business.yml) so the Slack side can be tested before the
folder of business files is read at start: `two_clinics(services)` gives the same services serving both.
"""

from __future__ import annotations

from dataclasses import replace

from bot.core.business import Business, SlackPlace
from bot.core.businesses import Businesses
from bot.core.ports import SmsFrom
from bot.usecases.services import Services

#: Lakeside Chiropractic's and Bright Smile Dental's leads channels, and a channel that is no clinic's.
CHIRO_CHANNEL = "C0CHIRO"
DENTAL_CHANNEL = "C0DENTAL"
LOUNGE = "C0LOUNGE"
CHIRO_ADMIN = "U0CHIROADMIN"
DENTAL_ADMIN = "U0DENTALADMIN"
CHIRO_ONCALL = "U0CHIROONCALL"
DENTAL_ONCALL = "U0DENTALONCALL"


def clinics_of(base: Business) -> tuple[Business, Business]:
    """The chiropractic clinic and the dental clinic, each `base` with its own name, slug, Slack place and number."""
    chiro = replace(
        base,
        slug="chiro",
        name="Lakeside Chiropractic",
        slack=SlackPlace(channel=CHIRO_CHANNEL, on_call=CHIRO_ONCALL, admins=(CHIRO_ADMIN,)),
        sms=SmsFrom(number="+13125550111"),
    )
    dental = replace(
        base,
        slug="dental",
        name="Bright Smile Dental",
        phone="+13125550222",
        slack=SlackPlace(channel=DENTAL_CHANNEL, on_call=DENTAL_ONCALL, admins=(DENTAL_ADMIN,)),
        sms=SmsFrom(number="+13125550222"),
    )
    return chiro, dental


def two_clinics(services: Services) -> Services:
    """The same services, serving the two clinics (the first of them as `business`, as a folder would)."""
    chiro, dental = clinics_of(services.business)
    return replace(services, business=chiro, every_business=Businesses([chiro, dental]))
