"""A folder of business files (FOLLOWUP_BUSINESSES): each `<slug>.yml` read whole, with its file and line."""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent

import pytest

from bot.core.business import (
    SINGLE_BUSINESS_SLUG,
    load_business,
    load_business_folder,
    load_folder_business,
    written_secrets,
)
from bot.core.config_errors import ConfigError, Problem
from bot.core.ports import SmsFrom

BASE = dedent(
    """\
    name: Lakeside Chiropractic
    timezone: America/Chicago
    phone: "+13125550142"
    address: 1200 N Lake Shore Dr, Chicago, IL 60610
    booking_link: https://example.com/book
    sequence: default
    """
)
GROUPS = dedent(
    """\
    slack:
      channel: "#lakeside-leads"
      on_call: S0ONCALL
      admins: [U0ADMIN1, U0ADMIN2]
    sms:
      from_number: "+13125550100"
    email:
      from_address: hello@lakeside.example
      from_name: Lakeside Front Desk
      reply_to: desk@lakeside.example
      inbound_address: replies@in.lakeside.example
    webhooks:
      lead_token: ${LAKESIDE_LEAD_TOKEN}
      booking_token: ${LAKESIDE_BOOKING_TOKEN}
    """
)
ENVIRON = {"LAKESIDE_LEAD_TOKEN": "lead-secret", "LAKESIDE_BOOKING_TOKEN": "booking-secret"}


def write(folder: Path, slug: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{slug}.yml"
    path.write_text(text)
    return path


def problems_of(path: Path, environ: dict[str, str] | None = None) -> list[Problem]:
    with pytest.raises(ConfigError) as caught:
        load_folder_business(path, ENVIRON if environ is None else environ)
    return caught.value.problems


def test_a_business_file_carries_its_own_channel_sender_addresses_and_secrets(tmp_path):
    business = load_folder_business(write(tmp_path, "lakeside-chiro", BASE + GROUPS), ENVIRON)

    assert business.slug == "lakeside-chiro"
    assert business.name == "Lakeside Chiropractic"
    assert (business.slack.channel, business.slack.on_call) == ("#lakeside-leads", "S0ONCALL")
    assert business.slack.admins == ("U0ADMIN1", "U0ADMIN2")
    assert business.sms == SmsFrom(number="+13125550100")
    assert business.email.from_address == "hello@lakeside.example"
    assert business.email.inbound_address == "replies@in.lakeside.example"
    assert business.email_sender is not None and business.email_sender.name == "Lakeside Front Desk"
    assert business.email_sender.reply_to == "desk@lakeside.example"
    assert (business.webhooks.lead_token, business.webhooks.booking_token) == ("lead-secret", "booking-secret")
    assert business.webhooks.calcom_secret == ""


def test_a_messaging_service_may_send_instead_of_a_number(tmp_path):
    text = BASE + "sms:\n  messaging_service_sid: MG0123456789abcdef0123456789abcdef\n"
    business = load_folder_business(write(tmp_path, "lakeside", text), {})
    assert business.sms == SmsFrom(messaging_service_sid="MG0123456789abcdef0123456789abcdef")


def test_environment_references_may_stand_anywhere_in_a_value(tmp_path):
    text = (
        BASE.replace("https://example.com/book", "https://${BOOKING_HOST}/book") + 'slack:\n  channel: "${CHANNEL}"\n'
    )
    business = load_folder_business(
        write(tmp_path, "lakeside", text), {"BOOKING_HOST": "book.example", "CHANNEL": "C0LAKE"}
    )
    assert (business.booking_link, business.slack.channel) == ("https://book.example/book", "C0LAKE")


def test_an_unset_environment_reference_names_its_file_line_and_variable(tmp_path):
    path = write(tmp_path, "lakeside", BASE + GROUPS)
    problems = problems_of(path, {"LAKESIDE_LEAD_TOKEN": "lead-secret"})
    assert [(Path(p.path).name, p.line) for p in problems] == [("lakeside.yml", 20)]
    assert "LAKESIDE_BOOKING_TOKEN is not set" in problems[0].message
    assert "set LAKESIDE_BOOKING_TOKEN in the environment" in problems[0].fix


def test_an_empty_environment_value_is_refused(tmp_path):
    path = write(tmp_path, "lakeside", BASE + GROUPS)
    problems = problems_of(path, {**ENVIRON, "LAKESIDE_LEAD_TOKEN": " "})
    assert [(p.line, p.message) for p in problems] == [(19, "environment variable LAKESIDE_LEAD_TOKEN is empty")]


def test_an_unquoted_channel_name_read_as_a_comment_is_an_error_saying_so(tmp_path):
    path = write(tmp_path, "lakeside", BASE + "slack:\n  channel: #lakeside-leads\n")
    problems = problems_of(path)
    assert [(p.line, p.message) for p in problems] == [
        (8, "slack.channel is empty: YAML reads the unquoted #lakeside-leads as a comment")
    ]
    assert '"#lakeside-leads"' in problems[0].fix


@pytest.mark.parametrize(
    ("groups", "line", "message", "fix"),
    [
        ("slack:\n  chanel: C0LAKE\n", 8, "unknown key under slack: 'chanel'", "did you mean `channel`?"),
        ("sms:\n  number: '+13125550100'\n", 8, "unknown key under sms: 'number'", "did you mean `from_number`?"),
        ("email:\n  from: a@b.example\n", 8, "unknown key under email: 'from'", "did you mean `from_address`?"),
        ("webhooks:\n  lead_tokn: x\n", 8, "unknown key under webhooks: 'lead_tokn'", "did you mean `lead_token`?"),
        ("slak:\n  channel: C0LAKE\n", 7, "unknown key 'slak'", "did you mean `slack`?"),
        ("sms:\n  from_number: '555-0100'\n", 8, "sms.from_number", "from_number: "),
        ("sms:\n  messaging_service_sid: MG12\n", 8, "not a Twilio messaging service SID", "MG and 32 hex"),
        ("email:\n  inbound_address: replies\n", 8, "email.inbound_address 'replies' is not an email", "hello@"),
        ("slack: C0LAKE\n", 7, "slack must be a mapping", "channel:"),
        ("sms:\n", 7, "sms has nothing under it", "from_number:"),
        ("slack:\n  channel:\n", 8, "slack.channel has no value", "after `channel:`"),
        ("slack:\n  admins: [U0 ADMIN]\n", 8, "slack.admins", "admins: [U012ABC"),
        ("webhooks:\n  lead_token: ${lower-case}\n", 8, "is not an environment variable's name", "${"),
    ],
)
def test_each_mistake_in_a_grouped_key_is_reported_with_its_line_and_fix(tmp_path, groups, line, message, fix):
    problems = problems_of(write(tmp_path, "lakeside", BASE + groups))
    assert len(problems) == 1, problems
    assert (Path(problems[0].path).name, problems[0].line) == ("lakeside.yml", line)
    assert message in problems[0].message and fix in problems[0].fix


@pytest.mark.parametrize("stem", ["Lakeside", "lakeside_chiro", "-lakeside", "lakeside chiro"])
def test_a_file_whose_name_is_no_slug_is_refused_saying_how_to_name_it(tmp_path, stem):
    problems = problems_of(write(tmp_path, stem, BASE))
    assert [Path(p.path).name for p in problems] == [f"{stem}.yml"]
    assert "cannot be a business's slug" in problems[0].message and "lowercase letters" in problems[0].fix


def test_one_business_yml_is_told_where_its_groups_come_from(tmp_path):
    path = write(tmp_path, "business", BASE + "slack:\n  channel: C0LAKE\n")
    with pytest.raises(ConfigError) as caught:
        load_business(path)
    [problem] = caught.value.problems
    assert problem.line == 7 and "only in a folder of business files (FOLLOWUP_BUSINESSES)" in problem.message
    assert "SLACK_LEADS_CHANNEL" in problem.fix


def test_one_business_yml_reads_as_before_with_the_single_slug(tmp_path):
    business = load_business(write(tmp_path, "business", BASE))
    assert business.slug == SINGLE_BUSINESS_SLUG
    assert business.slack.channel == "" and business.sms == SmsFrom()


def test_a_folder_is_read_whole_and_every_files_problems_reported_at_once(tmp_path):
    write(tmp_path, "good", BASE + "slack:\n  channel: C0GOOD\n")
    write(tmp_path, "broken", BASE.replace("America/Chicago", "America/Chicgo") + "slack:\n  channel: #leads\n")
    write(tmp_path, "unset", BASE + "webhooks:\n  lead_token: ${UNSET_TOKEN}\n")
    (tmp_path / "stray.yaml").write_text(BASE)

    with pytest.raises(ConfigError) as caught:
        load_business_folder(tmp_path, {})
    found = sorted((Path(p.path).name, p.line) for p in caught.value.problems)

    assert found == [("broken.yml", 2), ("broken.yml", 8), ("stray.yaml", None), ("unset.yml", 8)]


def test_a_folder_of_two_businesses_gives_each_its_slug_from_its_file(tmp_path):
    write(tmp_path, "lakeside-chiro", BASE)
    write(tmp_path, "bright-dental", BASE.replace("Lakeside Chiropractic", "Bright Dental"))
    businesses = load_business_folder(tmp_path, {})
    assert [(b.slug, b.name) for b in businesses] == [
        ("bright-dental", "Bright Dental"),
        ("lakeside-chiro", "Lakeside Chiropractic"),
    ]


def test_an_empty_folder_is_an_error(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_business_folder(tmp_path, {})
    assert "has no <slug>.yml in it" in str(caught.value)


def test_a_folder_that_does_not_exist_is_named(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_business_folder(tmp_path / "clinics", {})
    assert f"{tmp_path / 'clinics'}: the folder of business files does not exist" in str(caught.value)


def test_a_secret_written_in_the_file_is_found_for_check_to_warn_about(tmp_path):
    path = write(tmp_path, "lakeside", BASE + "webhooks:\n  lead_token: plain\n  booking_token: ${BOOKING}\n")
    [warning] = written_secrets(path)
    assert warning.line == 8 and "webhooks.lead_token is written in the file" in warning.message
    assert "${LAKESIDE_LEAD_TOKEN}" in warning.fix
