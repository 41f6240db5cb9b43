"""Rendering is strict, sandboxed and keeps the legal guarantees: opt-out notice, unsubscribe, address."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from bot.core.playbook import Channel, Step
from bot.core.templating import (
    OPT_OUT_NOTICE,
    TemplateProblem,
    TemplateRenderer,
    required_template_files,
    sample_context,
    spoken_phone,
)

FOOTER_TXT = "--\n{{ business.address }}\nUnsubscribe: {{ links.unsubscribe }}\n"
FOOTER_HTML = '<p>{{ business.address }} <a href="{{ links.unsubscribe }}">Unsubscribe</a></p>\n'


@pytest.fixture
def templates(tmp_path: Path) -> Path:
    (tmp_path / "_email_footer.txt.j2").write_text(FOOTER_TXT)
    (tmp_path / "_email_footer.html.j2").write_text(FOOTER_HTML)
    return tmp_path


def write(folder: Path, name: str, text: str) -> None:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture
def context() -> dict:
    return sample_context({"name": "Lakeside Chiropractic", "address": "1200 Lakeshore Dr, Chicago, IL 60610"})


def test_a_missing_variable_raises_template_problem_naming_the_variable_and_line(templates, context):
    write(templates, "t/hello.sms.j2", "Hi there,\n{{ lead.frist_name }}, see you.")
    with pytest.raises(TemplateProblem) as caught:
        TemplateRenderer(templates).render_sms("t/hello", context, first_to_number=False)
    assert caught.value.variable == "lead.frist_name"
    assert caught.value.line == 2
    assert "t/hello.sms.j2:2" in str(caught.value) and "lead.frist_name" in str(caught.value)


@pytest.mark.parametrize(
    ("source", "variable"),
    [
        ("{{ nickname }}", "nickname"),
        ("{{ lead.custom.insurer }}", "lead.custom.insurer"),
        ("{{ appointment.start_local }}", "appointment.start_local"),
        ("{% if lead.nope %}x{% endif %}", "lead.nope"),
    ],
)
def test_strict_undefined_never_renders_an_empty_string(templates, context, source, variable):
    write(templates, "t/x.sms.j2", source)
    context = {**context, "appointment": None}
    with pytest.raises(TemplateProblem) as caught:
        TemplateRenderer(templates).render_sms("t/x", context, first_to_number=False)
    assert caught.value.variable == variable


def test_a_problem_inside_an_included_footer_names_the_footer(templates, context):
    write(templates, "_email_footer.txt.j2", "{{ business.adress }}\n")
    write(templates, "t/mail.email.txt.j2", "Hello\n{% include '_email_footer.txt.j2' %}")
    write(templates, "t/mail.email.html.j2", "<p>Hello</p>{% include '_email_footer.html.j2' %}")
    with pytest.raises(TemplateProblem) as caught:
        TemplateRenderer(templates).render_email("t/mail", "Hi", context)
    assert caught.value.template == "_email_footer.txt.j2"
    assert caught.value.variable == "business.adress"


def test_html_part_escapes_a_hostile_lead_name_while_the_text_part_keeps_it(templates, context):
    write(templates, "t/mail.email.txt.j2", "Hi {{ lead.name }}\n{% include '_email_footer.txt.j2' %}")
    write(templates, "t/mail.email.html.j2", "<p>Hi {{ lead.name }}</p>{% include '_email_footer.html.j2' %}")
    context["lead"]["name"] = "<script>alert(1)</script>"
    email = TemplateRenderer(templates).render_email("t/mail", "Hello {{ lead.name }}", context)
    assert "<script>" not in email.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in email.html
    assert "Hi <script>alert(1)</script>" in email.text
    assert email.subject == "Hello <script>alert(1)</script>"


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ lead.__class__.__mro__[1].__subclasses__() }}",
        "{{ lead.custom.update({'x': 1}) }}",
        "{{ business.name.format.__globals__ }}",
    ],
)
def test_the_sandbox_blocks_reaching_python_internals(templates, context, source):
    write(templates, "t/evil.sms.j2", source)
    with pytest.raises(TemplateProblem) as caught:
        TemplateRenderer(templates).render_sms("t/evil", context, first_to_number=False)
    assert "t/evil.sms.j2" in str(caught.value)


@pytest.mark.parametrize(
    ("source", "first", "expected"),
    [
        ("Hi {{ lead.first_name }}!", True, f"Hi Jordan!\n{OPT_OUT_NOTICE}"),
        ("Hi {{ lead.first_name }}!", False, "Hi Jordan!"),
        (f"Hi {{{{ lead.first_name }}}}! {OPT_OUT_NOTICE}", True, f"Hi Jordan! {OPT_OUT_NOTICE}"),
        ("Hi! reply stop to opt out.", True, "Hi! reply stop to opt out."),
        ("Hi {{ lead.first_name }}!   \n\n", False, "Hi Jordan!"),
        ("{% if true %}\n  Hi {{ lead.first_name }}!  \n{% endif %}\n", False, "Hi Jordan!"),
    ],
)
def test_only_the_first_sms_to_a_number_gets_the_opt_out_notice_once(templates, context, source, first, expected):
    write(templates, "t/s.sms.j2", source)
    assert TemplateRenderer(templates).render_sms("t/s", context, first_to_number=first) == expected


def test_an_sms_that_renders_empty_is_refused(templates, context):
    write(templates, "t/empty.sms.j2", "{% if false %}Hi{% endif %}\n")
    with pytest.raises(TemplateProblem, match="empty"):
        TemplateRenderer(templates).render_sms("t/empty", context, first_to_number=True)


@pytest.mark.parametrize(
    ("text", "html", "missing"),
    [
        ("Hello", "<p>Hello</p>{% include '_email_footer.html.j2' %}", "unsubscribe link and the business postal"),
        ("Hello {{ links.unsubscribe }}", "<p>Hello</p>{% include '_email_footer.html.j2' %}", "postal address"),
        ("Hello\n{% include '_email_footer.txt.j2' %}", "<p>{{ links.unsubscribe }}</p>", "postal address"),
        ("Hello\n{% include '_email_footer.txt.j2' %}", "<p>{{ business.address }}</p>", "unsubscribe link"),
    ],
)
def test_an_email_without_the_footer_is_refused(templates, context, text, html, missing):
    write(templates, "t/bare.email.txt.j2", text)
    write(templates, "t/bare.email.html.j2", html)
    with pytest.raises(TemplateProblem, match=missing):
        TemplateRenderer(templates).render_email("t/bare", "Hi", context)


def test_an_email_is_refused_when_the_business_has_no_address(templates, context):
    write(templates, "t/mail.email.txt.j2", "Hi\n{% include '_email_footer.txt.j2' %}")
    write(templates, "t/mail.email.html.j2", "<p>Hi</p>{% include '_email_footer.html.j2' %}")
    context["business"]["address"] = "  "
    with pytest.raises(TemplateProblem, match="postal address"):
        TemplateRenderer(templates).render_email("t/mail", "Hi", context)


def test_a_multi_line_address_counts_when_each_line_is_in_the_footer(templates, context):
    write(templates, "t/mail.email.txt.j2", "Hi\n{% include '_email_footer.txt.j2' %}")
    write(
        templates,
        "t/mail.email.html.j2",
        "<p>Hi</p>{% for l in business.address.splitlines() %}{{ l }}<br>{% endfor %}"
        "<a href='{{ links.unsubscribe }}'>Unsubscribe</a>",
    )
    context["business"]["address"] = "O'Neill & Sons Building\n12 High St"
    email = TemplateRenderer(templates).render_email("t/mail", "Hi", context)
    assert "O&#39;Neill &amp; Sons Building<br>12 High St" in email.html


def test_a_subject_is_always_one_line_whatever_the_lead_typed(templates, context):
    write(templates, "t/mail.email.txt.j2", "Hi\n{% include '_email_footer.txt.j2' %}")
    write(templates, "t/mail.email.html.j2", "<p>Hi</p>{% include '_email_footer.html.j2' %}")
    context["lead"]["first_name"] = "Jo\r\nBcc: victim@example.com"
    email = TemplateRenderer(templates).render_email("t/mail", "Thanks, {{ lead.first_name }}", context)
    assert email.subject == "Thanks, Jo Bcc: victim@example.com"


def test_call_task_renders_script_and_voicemail(templates, context):
    write(templates, "t/call.call_script.j2", "Call {{ lead.name }}: {{ call.reason }}\n")
    write(templates, "t/call.voicemail.j2", "Hi {{ lead.first_name }}, call {{ business.phone | phone }}.\n")
    task = TemplateRenderer(templates).render_call_task("t/call", context)
    assert task.script == "Call Jordan Rivera: first follow-up call"
    assert task.voicemail == "Hi Jordan, call (512) 555-0100."


@pytest.mark.parametrize(
    ("source", "line"),
    [("Hi {{ lead.first_name }", 1), ("Hi\n{% if lead %}\nno end", 3), ("{{ lead.name | nosuchfilter }}", 1)],
)
def test_a_syntax_error_names_the_file_and_line(templates, source, line):
    write(templates, "t/broken.sms.j2", source)
    with pytest.raises(TemplateProblem) as caught:
        TemplateRenderer(templates).check_file("t/broken.sms.j2")
    assert caught.value.template == "t/broken.sms.j2"
    assert caught.value.line == line
    assert "syntax error" in caught.value.message


def test_a_missing_template_file_is_a_template_problem(templates, context):
    with pytest.raises(TemplateProblem, match="not found"):
        TemplateRenderer(templates).render_sms("t/nowhere", context, first_to_number=False)


def _step(channel: Channel, template: str | None) -> Step:
    return Step("s", channel, timedelta(0), None, template, (), (), None, 1)


@pytest.mark.parametrize(
    ("channel", "template", "files"),
    [
        (Channel.SMS, "default/instant_sms", ["default/instant_sms.sms.j2"]),
        (
            Channel.EMAIL,
            "default/confirmation",
            ["default/confirmation.email.txt.j2", "default/confirmation.email.html.j2"],
        ),
        (
            Channel.CALL_TASK,
            "default/first_call",
            ["default/first_call.call_script.j2", "default/first_call.voicemail.j2"],
        ),
        (Channel.STAGE, None, []),
        (Channel.STAGE, "default/whatever", []),
    ],
)
def test_each_channel_names_the_template_files_it_needs(channel, template, files):
    assert required_template_files(_step(channel, template)) == files


@pytest.mark.parametrize(
    ("number", "spoken"),
    [
        ("+15125550100", "(512) 555-0100"),
        ("+442079460958", "020 7946 0958"),
        ("ask at the desk", "ask at the desk"),
        ("", ""),
        (None, ""),
    ],
)
def test_phone_numbers_are_written_the_way_people_read_them(number, spoken):
    assert spoken_phone(number) == spoken


def test_the_sample_context_uses_the_business_and_fills_every_variable():
    context = sample_context({"name": "Bright Smile Dental", "phone": "+13125550199", "timezone": "America/Chicago"})
    assert context["business"]["name"] == "Bright Smile Dental"
    assert context["business"]["address"]  # a sample address, so emails render before one is set
    assert set(context) == {"lead", "business", "links", "appointment", "call"}
    assert set(context["lead"]) == {"name", "first_name", "phone", "email", "source", "message", "custom"}
    assert context["appointment"]["start_local"] and context["call"]["reason"]
