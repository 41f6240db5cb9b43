"""A folder of business files (FOLLOWUP_BUSINESSES): one deployment serves each business with its own settings."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from bot.app import build_services, load_businesses
from bot.core.config_errors import ConfigError
from bot.core.ports import OutgoingSms, PermanentSendError, SmsFrom
from bot.core.templating import TemplateRenderer, sample_context
from bot.reports.content_check import business_mapping
from bot.settings import Settings
from bot.standins.twilio_api import TwilioApiStandin
from tests.support.business_folder import DENTAL_SERVICE, business_text, write_two_clinics

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT_SID = "AC" + "4" * 32
AUTH_TOKEN = "twilio-auth-token"


@pytest.fixture
def clinics(tmp_path: Path, monkeypatch) -> Path:
    return write_two_clinics(tmp_path / "clinics", monkeypatch)


@pytest.fixture
def twilio():
    with TwilioApiStandin(ACCOUNT_SID, AUTH_TOKEN) as standin:
        yield standin


def folder_settings(folder: Path, **environment: str) -> Settings:
    return Settings(_env_file=None, FOLLOWUP_BUSINESSES=folder, **environment)


def test_each_business_of_the_folder_is_served_with_its_own_channel_sender_wording_and_playbooks(
    clinics, engine, twilio
):
    settings = folder_settings(
        clinics,
        DATABASE_URL=str(engine.url),
        TWILIO_ACCOUNT_SID=ACCOUNT_SID,
        TWILIO_AUTH_TOKEN=AUTH_TOKEN,
        TWILIO_API_URL=twilio.url,
        SLACK_BOT_TOKEN="xoxb-agency",
    )
    services = build_services(settings, engine=engine, migrate=False)

    assert services.businesses.slugs == ("bright-dental", "lakeside-chiro")
    lakeside, dental = services.business_of("lakeside-chiro"), services.business_of("bright-dental")
    assert services.businesses.by_channel("C0LAKESIDE") is lakeside
    assert services.businesses.by_channel("#bright-dental-leads") is dental
    assert services.businesses.by_sms_number("+13125550100") is lakeside
    assert services.businesses.by_messaging_service(DENTAL_SERVICE) is dental
    assert services.businesses.by_lead_token("lakeside-lead-secret") is lakeside
    assert services.businesses.by_lead_token("bright-lead-secret") is dental
    assert services.businesses.by_inbound_address("Replies+x@in.bright.example") is dental
    assert lakeside.slack.on_call == "U0LAKEONCALL" and dental.slack.on_call == ""

    # Wording: Lakeside's own file for its first text, the shared one for everything else and for Bright Dental.
    context = sample_context(business_mapping(lakeside))
    lakeside_text = services.renderer_of("lakeside-chiro").render_sms(
        "default/instant_sms", context, first_to_number=False
    )
    assert lakeside_text == "Lakeside here, Jordan: we will call you today."
    shared = TemplateRenderer(ROOT / "templates")
    assert services.renderer_of("bright-dental").render_sms(
        "default/instant_sms", context, first_to_number=False
    ) == shared.render_sms("default/instant_sms", context, first_to_number=False)
    assert services.renderer_of("lakeside-chiro").render_sms(
        "dental/instant_sms", context, first_to_number=False
    ) == shared.render_sms("dental/instant_sms", context, first_to_number=False)

    # Playbooks: Bright Dental's own `smile` is its default; Lakeside knows no such playbook.
    assert services.playbooks_of("bright-dental").get().name == "smile"
    assert "smile" in services.playbooks_of("bright-dental").names()
    assert services.playbooks_of("lakeside-chiro").get().name == "default"
    assert not services.playbooks_of("lakeside-chiro").has("smile")

    # Texts go out from the business's own sender through the real Twilio client; none from a deployment default.
    services.sms.send_sms(OutgoingSms(to="+15125550142", body="hi", reference="t-1", sender=lakeside.sms))
    services.sms.send_sms(OutgoingSms(to="+15125550142", body="hi", reference="t-2", sender=dental.sms))
    with pytest.raises(PermanentSendError):
        services.sms.send_sms(OutgoingSms(to="+15125550142", body="hi", reference="t-3"))
    lakeside_sent, dental_sent = (request.data for request in twilio.requests)
    assert lakeside_sent["From"] == "+13125550100" and "MessagingServiceSid" not in lakeside_sent
    assert dental_sent["MessagingServiceSid"] == DENTAL_SERVICE and "From" not in dental_sent


def test_with_slack_configured_a_business_without_its_own_channel_refuses_the_start_naming_its_file(clinics):
    lakeside = clinics / "lakeside-chiro.yml"
    lakeside.write_text(lakeside.read_text().replace("  channel: C0LAKESIDE\n", ""))
    settings = folder_settings(clinics, SLACK_BOT_TOKEN="xoxb-agency", SLACK_LEADS_CHANNEL="C0AGENCY")

    with pytest.raises(ConfigError) as refused:
        load_businesses(settings)

    [problem] = refused.value.problems
    assert Path(problem.path) == lakeside and "has no channel of its own" in problem.message
    assert "SLACK_LEADS_CHANNEL applies only to one business.yml (FOLLOWUP_BUSINESS) and is ignored" in problem.fix


def test_with_twilio_configured_a_business_without_its_own_sender_refuses_the_start_naming_its_file(clinics):
    dental = clinics / "bright-dental.yml"
    dental.write_text(dental.read_text().replace(f"sms:\n  messaging_service_sid: {DENTAL_SERVICE}\n", ""))
    settings = folder_settings(
        clinics, TWILIO_ACCOUNT_SID=ACCOUNT_SID, TWILIO_AUTH_TOKEN=AUTH_TOKEN, TWILIO_FROM_NUMBER="+13125550000"
    )

    with pytest.raises(ConfigError) as refused:
        load_businesses(settings)

    [problem] = refused.value.problems
    assert Path(problem.path) == dental and "has no SMS sender" in problem.message
    assert "TWILIO_FROM_NUMBER applies only to one business.yml" in problem.fix


def test_without_slack_or_twilio_a_business_needs_no_channel_or_sender(tmp_path):
    (tmp_path / "quiet.yml").write_text(business_text("Quiet Clinic", "+13125550142"))
    [business] = load_businesses(folder_settings(tmp_path))
    assert business.slug == "quiet" and business.slack.channel == "" and business.sms == SmsFrom()


def test_two_businesses_claiming_one_number_refuse_the_start_naming_both_files(clinics):
    dental = clinics / "bright-dental.yml"
    dental.write_text(
        dental.read_text().replace(f"messaging_service_sid: {DENTAL_SERVICE}", 'from_number: "+13125550100"')
    )
    with pytest.raises(ConfigError) as refused:
        load_businesses(folder_settings(clinics))
    assert "+13125550100" in str(refused.value) and "lakeside-chiro.yml" in str(refused.value)
    assert "bright-dental.yml" in str(refused.value)


def test_a_playbook_problem_of_any_business_refuses_the_start_with_its_file_and_line(clinics, engine):
    (clinics / "bright-dental" / "sequences" / "smile.yml").write_text("name: smile\nsteps:\n  - id: hello\n")
    with pytest.raises(ConfigError) as refused:
        build_services(folder_settings(clinics, DATABASE_URL=str(engine.url)), engine=engine, migrate=False)
    assert all(Path(p.path).name == "smile.yml" for p in refused.value.problems)
    assert {p.line for p in refused.value.problems} == {3}


def test_an_empty_folder_refuses_the_start(tmp_path):
    with pytest.raises(ConfigError) as refused:
        load_businesses(folder_settings(tmp_path))
    assert "has no <slug>.yml in it" in str(refused.value)


def test_a_business_file_and_a_folder_of_them_at_once_are_refused(clinics, business_file):
    with pytest.raises(ValidationError) as refused:
        Settings(_env_file=None, FOLLOWUP_BUSINESS=business_file, FOLLOWUP_BUSINESSES=clinics)
    assert "FOLLOWUP_BUSINESS and FOLLOWUP_BUSINESSES are both set" in str(refused.value)


def test_a_reference_to_an_unset_variable_refuses_the_start_with_file_and_line(clinics, monkeypatch):
    monkeypatch.delenv("BRIGHT_LEAD_TOKEN")
    with pytest.raises(ConfigError) as refused:
        load_businesses(folder_settings(clinics))
    [problem] = refused.value.problems
    assert (Path(problem.path).name, problem.line) == ("bright-dental.yml", 15)
    assert "BRIGHT_LEAD_TOKEN is not set" in problem.message
