"""Issue 11 class 11 end to end: a lead the bot closes on a signed Twilio or SendGrid reply is found again.

The reply comes in through the real webhook; `/followup list` and App Home are read through the real
Slack route (signed requests, the Bolt listeners), the Reopen button is clicked there too.
"""

from __future__ import annotations

import json

from tests.handlers.conftest import ALICE
from tests.handlers.test_appointment_matrix import (  # noqa: F401  (clinic and its fixtures)
    a_lead,
    clinic,
    sendgrid,
    services,
    twilio,
)
from tests.webhooks.test_no_lead_forgotten import inbound_email, text_in


def home(clinic) -> str:
    clinic.team.event(
        {"type": "app_home_opened", "user": ALICE, "channel": "D0HOME", "tab": "home", "event_ts": "1764083000.000100"}
    )
    return json.dumps(clinic.team.slack.home_views[ALICE])


def test_a_lead_closed_by_a_texted_no_is_listed_lost_on_app_home_with_its_words_and_reopens(clinic):
    lead_id = a_lead(clinic)
    assert text_in(clinic, clinic.twilio, "No thanks, found another clinic") == 200

    clinic.team.command("list lost")
    assert "Dana Lee" in clinic.team.last_answer()
    shown = home(clinic)
    assert "Closed by the bot this week* (1)" in shown and "found another clinic" in shown

    clinic.team.click("lead_reopen", lead_id, message_ts="1764083000.000200")
    clinic.team.command("list lost")
    assert "Dana Lee" not in clinic.team.last_answer()
    assert "Closed by the bot this week* (0)" in json.dumps(clinic.team.slack.home_views[ALICE])


def test_a_lead_moved_to_nurture_by_an_email_is_listed_in_nurture_and_on_app_home(clinic):
    a_lead(clinic)
    assert inbound_email(clinic, "Later is better") == 200
    clinic.team.command("list nurture")
    assert "Dana Lee" in clinic.team.last_answer()
    assert "Later is better" in home(clinic)
