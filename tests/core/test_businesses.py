"""The businesses one deployment serves: each inbound key finds exactly one business, or none at all."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from bot.core.business import SINGLE_BUSINESS_SLUG, Business, EmailPlace, SlackPlace, WebhookKeys, load_business
from bot.core.businesses import Businesses, UnknownBusiness, normalize_inbound_address
from bot.core.config_errors import ConfigError
from bot.core.ports import EmailFrom, SmsFrom

SHIPPED = Path(__file__).resolve().parents[2] / "sequences" / "business.yml"


@pytest.fixture(scope="module")
def shipped() -> Business:
    return load_business(SHIPPED)


def clinic(base: Business, slug: str, n: int) -> Business:
    return replace(
        base,
        slug=slug,
        name=f"Clinic {slug}",
        path=Path(f"/clinics/{slug}.yml"),
        slack=SlackPlace(channel=f"C0{n}LEADS", on_call=f"U0{n}ONCALL", admins=(f"U0{n}ADMIN",)),
        sms=SmsFrom(number=f"+1312555010{n}"),
        email=EmailPlace(from_address=f"hello@{slug}.example", inbound_address=f"leads@{slug}.in.example"),
        webhooks=WebhookKeys(lead_token=f"lead-token-{slug}", booking_token=f"booking-token-{slug}"),
    )


@pytest.fixture
def two(shipped: Business) -> Businesses:
    return Businesses([clinic(shipped, "lakeside-chiro", 1), clinic(shipped, "bright-dental", 2)])


def test_a_single_business_yml_is_the_one_business_under_the_single_slug(shipped):
    businesses = Businesses([shipped])
    assert shipped.slug == SINGLE_BUSINESS_SLUG
    assert businesses.only is shipped
    assert businesses.slugs == (SINGLE_BUSINESS_SLUG,)
    assert businesses.require(SINGLE_BUSINESS_SLUG) is shipped


def test_each_inbound_key_finds_its_own_business(two):
    dental = two.require("bright-dental")
    assert two.by_sms_number("+13125550102") is dental
    assert two.by_inbound_address("leads@bright-dental.in.example") is dental
    assert two.by_lead_token("lead-token-bright-dental") is dental
    assert two.by_booking_token("booking-token-bright-dental") is dental
    assert two.by_channel("C02LEADS") is dental
    assert two.by_slug("lakeside-chiro") is two.require("lakeside-chiro")
    assert two.only is None and len(two) == 2


def test_nothing_that_matches_no_business_is_given_to_a_default_one(two):
    assert two.by_sms_number("+13125559999") is None
    assert two.by_sms_number("") is None
    assert two.by_inbound_address("leads@elsewhere.example") is None
    assert two.by_lead_token("lead-token-somebody-else") is None
    assert two.by_lead_token("") is None
    assert two.by_booking_token("") is None
    assert two.by_channel("C09OTHER") is None
    assert two.by_slug("main") is None


def test_a_stored_row_whose_business_is_gone_is_an_unknown_business_naming_the_known_ones(two):
    with pytest.raises(UnknownBusiness) as caught:
        two.require("closed-clinic")
    assert "closed-clinic" in str(caught.value) and "bright-dental" in str(caught.value)


def test_inbound_addresses_match_as_mail_is_routed_case_and_plus_tag_aside(two):
    dental = two.require("bright-dental")
    assert two.by_inbound_address("Leads+web@Bright-Dental.IN.example") is dental
    assert two.by_inbound_address("Bright Dental <leads@bright-dental.in.example>") is dental
    assert normalize_inbound_address(" A+b@X.example ") == "a@x.example"


def test_a_channel_matches_by_id_or_by_hash_name(shipped):
    named = replace(clinic(shipped, "lakeside-chiro", 1), slack=SlackPlace(channel="#Lakeside-Leads"))
    businesses = Businesses([named])
    assert businesses.by_channel("lakeside-leads") is named
    assert businesses.by_channel("#lakeside-leads") is named


def test_two_businesses_that_would_claim_the_same_request_are_refused_naming_both_files(shipped):
    chiro = clinic(shipped, "lakeside-chiro", 1)
    dental = replace(clinic(shipped, "bright-dental", 2), sms=chiro.sms, slack=chiro.slack)
    with pytest.raises(ConfigError) as caught:
        Businesses([chiro, dental])
    text = str(caught.value)
    assert "SMS number '+13125550101' is also lakeside-chiro's (/clinics/lakeside-chiro.yml)" in text
    assert "Slack channel" in text
    assert all(problem.path == Path("/clinics/bright-dental.yml") for problem in caught.value.problems)


def test_a_slug_that_cannot_be_a_url_or_database_key_is_refused(shipped):
    with pytest.raises(ConfigError) as caught:
        Businesses([clinic(shipped, "Lakeside Chiro", 1)])
    assert "'Lakeside Chiro' is not a usable slug" in str(caught.value)


def test_the_same_slug_twice_is_refused(shipped):
    with pytest.raises(ConfigError, match="slug 'lakeside-chiro' is also"):
        Businesses([clinic(shipped, "lakeside-chiro", 1), clinic(shipped, "lakeside-chiro", 2)])


def test_a_business_s_email_sender_is_its_from_address_under_its_name(shipped):
    dental = clinic(shipped, "bright-dental", 2)
    assert dental.email_sender == EmailFrom(address="hello@bright-dental.example", name="Clinic bright-dental")
    assert replace(dental, email=EmailPlace()).email_sender is None
