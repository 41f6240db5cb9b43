"""Two clinics in one deployment, with their own numbers, inboxes, secrets, time zones, hours and wording."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from textwrap import dedent

from bot import SHIPPED_TEMPLATES
from bot.core.business import load_business_folder
from bot.core.businesses import Businesses
from bot.core.templating import TemplateRenderer
from bot.usecases.services import Services


@dataclass(frozen=True)
class Clinic:
    """One clinic of the folder, as its file says it (what tests post to and expect back)."""

    slug: str
    name: str
    timezone: str
    number: str
    from_address: str
    inbound_address: str
    lead_token: str
    booking_token: str
    calendly_key: str
    calcom_secret: str


#: Chicago, open Mon-Sat 08:00-20:00, shared wording.
LAKESIDE = Clinic(
    slug="lakeside",
    name="Lakeside Chiropractic",
    timezone="America/Chicago",
    number="+13125550100",
    from_address="hello@lakeside.example",
    inbound_address="reply@inbound.lakeside.example",
    lead_token="lakeside-lead-token",
    booking_token="lakeside-booking-token",
    calendly_key="lakeside-calendly-key",
    calcom_secret="lakeside-calcom-secret",
)
#: Los Angeles, open Mon-Fri 09:00-17:00, closed the Friday after Thanksgiving, its own first text.
HARBOR = Clinic(
    slug="harbor",
    name="Harbor Dental",
    timezone="America/Los_Angeles",
    number="+14155550100",
    from_address="hello@harbor.example",
    inbound_address="reply@inbound.harbor.example",
    lead_token="harbor-lead-token",
    booking_token="harbor-booking-token",
    calendly_key="harbor-calendly-key",
    calcom_secret="harbor-calcom-secret",
)
#: How Harbor's own first text begins (its templates/default/instant_sms.sms.j2 overrides the shared one).
HARBOR_FIRST_TEXT = "Harbor Dental here, thanks for your note"


def _file(clinic: Clinic, *, phone: str, address: str, window: str, closed: str) -> str:
    return dedent(f"""\
        name: {clinic.name}
        timezone: {clinic.timezone}
        phone: "{phone}"
        address: {address}
        booking_link: https://{clinic.slug}.example/book
        sequence: default
        send_window: {window}
        closed:
          dates: [{closed}]
          holidays: US
        sms:
          from_number: "{clinic.number}"
        email:
          from_address: {clinic.from_address}
          from_name: {clinic.name}
          reply_to: {clinic.inbound_address}
          inbound_address: {clinic.inbound_address}
        webhooks:
          lead_token: ${{{clinic.slug.upper()}_LEAD_TOKEN}}
          booking_token: ${{{clinic.slug.upper()}_BOOKING_TOKEN}}
          calendly_signing_key: ${{{clinic.slug.upper()}_CALENDLY_KEY}}
          calcom_secret: ${{{clinic.slug.upper()}_CALCOM_SECRET}}
        """)


def _secrets(clinic: Clinic) -> dict[str, str]:
    """The environment the clinic's file reads its secrets from."""
    prefix = clinic.slug.upper()
    return {
        f"{prefix}_LEAD_TOKEN": clinic.lead_token,
        f"{prefix}_BOOKING_TOKEN": clinic.booking_token,
        f"{prefix}_CALENDLY_KEY": clinic.calendly_key,
        f"{prefix}_CALCOM_SECRET": clinic.calcom_secret,
    }


def two_clinics(services: Services, folder: Path) -> Services:
    """The services of one deployment serving Lakeside and Harbor, Harbor with its own first text.

    Written into `folder` as a folder of business files (`FOLLOWUP_BUSINESSES`, their secrets from the
    environment) and a templates folder of Harbor's own, read as a folder is read, and given to the
    services as the composition root gives a deployment its businesses.
    """
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "lakeside.yml").write_text(
        _file(
            LAKESIDE,
            phone="+13125550111",
            address="1200 Lakeshore Dr, Chicago, IL 60610",
            window="Mon-Sat 08:00-20:00",
            closed="2026-12-24",
        )
    )
    (folder / "harbor.yml").write_text(
        _file(
            HARBOR,
            phone="+14155550111",
            address="1 Embarcadero Center, San Francisco, CA 94111",
            window="Mon-Fri 09:00-17:00",
            closed="2026-11-27",
        )
    )
    harbor_templates = folder / "harbor" / "templates"
    shutil.copytree(SHIPPED_TEMPLATES, harbor_templates)
    (harbor_templates / "default" / "instant_sms.sms.j2").write_text(
        f"{HARBOR_FIRST_TEXT}, {{{{ lead.first_name }}}}! Reply here with any questions.\n"
    )
    lakeside, harbor = sorted(
        load_business_folder(folder, {**_secrets(LAKESIDE), **_secrets(HARBOR)}), key=lambda b: b.slug != "lakeside"
    )
    return replace(
        services,
        business=lakeside,
        every_business=Businesses([lakeside, harbor]),
        renderers_by_business={"harbor": TemplateRenderer(harbor_templates)},
    )
