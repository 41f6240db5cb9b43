"""The .env.example the README points to names every setting, and a copy of it loads as it stands."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from bot.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / ".env.example"


def test_every_setting_is_in_the_example():
    named = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", EXAMPLE.read_text(), re.MULTILINE))
    aliases = {field.alias for field in Settings.model_fields.values()}
    # Test and sandbox knobs are not for a clinic's .env.
    internal = {
        "FOLLOWUP_TIME_SCALE",
        "FOLLOWUP_CLOCK_START",
        "FOLLOWUP_SEND_LEASE_SECONDS",
        "TWILIO_API_URL",
        "SENDGRID_API_URL",
        "SLACK_API_URL",
    }
    assert aliases - internal - named == set()


def test_a_copy_of_the_example_loads_with_nothing_filled_in(tmp_path, monkeypatch):
    for field in Settings.model_fields.values():
        monkeypatch.delenv(str(field.alias), raising=False)
    shutil.copyfile(EXAMPLE, tmp_path / ".env")
    monkeypatch.chdir(tmp_path)

    settings = Settings()

    assert settings.port == 3000 and settings.public_base_url == "https://followup.example.com"
    assert settings.business_path.name == "business.yml" and settings.business_path.is_file()
    assert not settings.slack_bot_token and not settings.lead_webhook_token and not settings.slack_app_token
