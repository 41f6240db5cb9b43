"""What people type in Slack reaches the lead as typed: never compiled or run as a template.

Each hostile string goes in through the real listener (signed HTTP to the Bolt app) and comes out
at the email or SMS sender character for character. A template that ran would turn `{{ 7*7 }}`
into 49, and `9**9**9**9` would never finish: the Workspace waits at most ten seconds for a
listener, so a hang fails the test instead of freezing it.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from bot.slack.blocks import ActionId
from bot.store.models import Lead
from tests.conftest import TEST_BUSINESS
from tests.handlers.conftest import CARD_TS, any_database, new_lead

HOSTILE = [
    "{{ 7*7 }}",
    "{% for x in range(3) %}again {% endfor %}",
    "{{ 9**9**9**9 }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{# hidden #} {% raw %}",
]


def radio(value: str) -> dict[str, Any]:
    return {"type": "radio_buttons", "selected_option": {"text": {"type": "plain_text", "text": value}, "value": value}}


def text(value: str | None) -> dict[str, Any]:
    return {"type": "plain_text_input", "value": value}


@any_database
@pytest.mark.parametrize("typed", HOSTILE)
def test_a_reply_modal_subject_and_body_go_out_verbatim(workspace, services, email, typed):
    lead_id = new_lead(services)
    workspace.click(ActionId.LEAD_REPLY, lead_id)

    answer = workspace.submit(
        workspace.opened_view(),
        {"channel": radio("email"), "subject": text(f"Re: {typed}"), "body": text(f"Note: {typed}")},
    )

    assert answer.status_code == 200
    [sent] = email.sent
    assert sent.subject == f"Re: {typed}"
    assert f"Note: {typed}" in sent.text
    assert "49" not in sent.subject and "again again" not in sent.text


@any_database
@pytest.mark.parametrize("typed", HOSTILE)
def test_a_reply_written_in_the_thread_goes_out_verbatim(workspace, services, email, typed):
    new_lead(services, phone=None)  # email only, so the reply goes through the email template

    workspace.thread_reply(f"!reply {typed}", thread_ts=CARD_TS)

    [sent] = email.sent
    assert f"{typed}" in sent.text
    assert sent.subject == "A note from Lakeside Chiropractic"


@pytest.fixture
def business_named_like_a_template(business_file):
    business_file.write_text(TEST_BUSINESS.replace("name: Lakeside Chiropractic", 'name: "Dr {{ 7*7 }}\'s"'))
    return business_file


@any_database
def test_a_business_name_that_looks_like_a_template_is_written_as_it_is(
    business_named_like_a_template, workspace, services, email
):
    assert services.business.name == "Dr {{ 7*7 }}'s"
    new_lead(services, phone=None)

    workspace.thread_reply("!reply See you soon", thread_ts=CARD_TS)

    assert [m.subject for m in email.sent] == ["A note from Dr {{ 7*7 }}'s"]


@any_database
def test_a_name_typed_in_followup_new_is_kept_and_shown_as_typed(workspace, services):
    workspace.command("new walkin@example.com {{7*7}} {%raw%}")
    workspace.command("show walkin@example.com")

    with services.session_factory() as session:
        assert session.scalars(select(Lead.name)).one() == "{{7*7}} {%raw%}"
    shown = workspace.last_answer()
    assert "{{7*7}}" in shown and "49" not in shown
