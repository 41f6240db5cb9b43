"""A folder of business files (FOLLOWUP_BUSINESSES) of two clinics, each with its own channel, sender and content."""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent

import pytest

DENTAL_SERVICE = "MG" + "5" * 32


def business_text(name: str, phone: str, *, sequence: str = "default", groups: str = "") -> str:
    return (
        dedent(
            f"""\
            name: {name}
            timezone: America/Chicago
            phone: "{phone}"
            address: 1200 N Lake Shore Dr, Chicago, IL 60610
            booking_link: https://example.com/book
            sequence: {sequence}
            """
        )
        + groups
    )


LAKESIDE_GROUPS = dedent(
    """\
    slack:
      channel: C0LAKESIDE
      on_call: U0LAKEONCALL
    sms:
      from_number: "+13125550100"
    email:
      from_address: hello@lakeside.example
      inbound_address: replies@in.lakeside.example
    webhooks:
      lead_token: ${LAKESIDE_LEAD_TOKEN}
    """
)
DENTAL_GROUPS = dedent(
    f"""\
    slack:
      channel: "#bright-dental-leads"
    sms:
      messaging_service_sid: {DENTAL_SERVICE}
    email:
      from_address: smile@bright.example
      inbound_address: replies@in.bright.example
    webhooks:
      lead_token: ${{BRIGHT_LEAD_TOKEN}}
    """
)


def write_two_clinics(folder: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Two clinics: Lakeside words its first text its own way; Bright Dental follows a playbook of its own."""
    folder.mkdir(parents=True)
    (folder / "lakeside-chiro.yml").write_text(
        business_text("Lakeside Chiropractic", "+13125550142", groups=LAKESIDE_GROUPS)
    )
    own_wording = folder / "lakeside-chiro" / "templates" / "default"
    own_wording.mkdir(parents=True)
    (own_wording / "instant_sms.sms.j2").write_text("Lakeside here, {{ lead.first_name }}: we will call you today.\n")
    (folder / "bright-dental.yml").write_text(
        business_text("Bright Dental", "+13125550199", sequence="smile", groups=DENTAL_GROUPS)
    )
    own_playbooks = folder / "bright-dental" / "sequences"
    own_playbooks.mkdir(parents=True)
    (own_playbooks / "smile.yml").write_text(
        dedent(
            """\
            name: smile
            steps:
              - id: hello
                after: 0s
                channel: sms
                template: dental/instant_sms
            """
        )
    )
    monkeypatch.setenv("LAKESIDE_LEAD_TOKEN", "lakeside-lead-secret")
    monkeypatch.setenv("BRIGHT_LEAD_TOKEN", "bright-lead-secret")
    return folder
