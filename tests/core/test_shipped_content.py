"""The playbooks and templates followup ships load, render for a sample lead, and keep their promises."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from functools import cache

import pytest
from markupsafe import escape

from bot import SHIPPED_SEQUENCES, SHIPPED_TEMPLATES
from bot.core.playbook import Channel, Condition, Sequence, list_sequences, load_sequence
from bot.core.reply_classifier import ReplyClass, classify_reply, load_reply_rules
from bot.core.sms_segments import count_segments
from bot.core.templating import OPT_OUT_NOTICE, TemplateRenderer, sample_context

#: Every playbook in the folder is checked, including any added later.
SHIPPED = list_sequences(SHIPPED_SEQUENCES)
SALES = ["chiropractic", "default", "dental"]
#: A realistic, longish clinic name: texts must still fit.
BUSINESS = {
    "name": "Lakeside Family Chiropractic",
    "phone": "+13125550142",
    "address": "1200 N Lakeshore Dr, Suite 300\nChicago, IL 60610",
    "booking_link": "https://example.com/book",
    "timezone": "America/Chicago",
}


@cache
def load(name: str) -> Sequence:
    return load_sequence(name, sequences_dir=SHIPPED_SEQUENCES, templates_dir=SHIPPED_TEMPLATES)


def all_steps(names: list[str], channel: Channel | None = None):
    return [
        pytest.param(name, step.id, id=f"{name}:{step.id}")
        for name in names
        for step in load(name).steps
        if channel in (None, step.channel)
    ]


@pytest.fixture(scope="module")
def renderer() -> TemplateRenderer:
    return TemplateRenderer(SHIPPED_TEMPLATES)


@pytest.fixture
def context() -> dict:
    return sample_context(BUSINESS)


def test_every_shipped_playbook_is_listed_and_loads():
    assert {"appointment_reminders", "chiropractic", "default", "dental", "nurture"} <= set(SHIPPED)
    for name in SHIPPED:
        assert load(name).name == name


@pytest.mark.parametrize(("name", "step_id"), all_steps(SHIPPED))
def test_every_step_renders_for_the_sample_lead(renderer, context, name, step_id):
    step = load(name).step(step_id)
    if step.channel == Channel.SMS:
        assert renderer.render_sms(step.template, context, first_to_number=False)
    elif step.channel == Channel.EMAIL:
        for subject in step.subjects:
            email = renderer.render_email(step.template, subject, context)
            assert email.subject and email.text and email.html
    elif step.channel == Channel.CALL_TASK:
        task = renderer.render_call_task(step.template, context)
        assert task.script and task.voicemail
    else:
        assert step.stage


@pytest.mark.parametrize(
    ("name", "step_id"),
    all_steps([n for n in SHIPPED if not load(n).relative_to_appointment and n != "appointment_confirmation"]),
)
def test_sales_steps_render_for_a_lead_with_no_message_appointment_or_call(renderer, context, name, step_id):
    step = load(name).step(step_id)
    context = {
        **context,
        "appointment": None,
        "call": None,
        "lead": {**context["lead"], "message": "", "name": "there", "first_name": "there"},
    }
    if step.channel == Channel.SMS:
        renderer.render_sms(step.template, context, first_to_number=True)
    elif step.channel == Channel.EMAIL:
        renderer.render_email(step.template, step.subjects[0], context)
    elif step.channel == Channel.CALL_TASK:
        assert "didn't leave a message" in renderer.render_call_task(step.template, context).script


@pytest.mark.parametrize(("name", "step_id"), all_steps(SHIPPED, Channel.SMS))
def test_every_sms_fits_two_segments_even_as_the_first_text(renderer, context, name, step_id):
    step = load(name).step(step_id)
    text = renderer.render_sms(step.template, context, first_to_number=True)
    size = count_segments(text)
    assert size.encoding == "GSM-7", f"a character outside GSM-7 doubles the cost: {text!r}"
    assert size.segments <= 2, text
    assert text.endswith(OPT_OUT_NOTICE)


@pytest.mark.parametrize(("name", "step_id"), all_steps(SHIPPED, Channel.EMAIL))
def test_every_email_carries_the_unsubscribe_link_address_and_booking_link(renderer, context, name, step_id):
    step = load(name).step(step_id)
    email = renderer.render_email(step.template, step.subjects[0], context)
    assert context["links"]["unsubscribe"] in email.text
    assert str(escape(context["links"]["unsubscribe"])) in email.html
    for line in BUSINESS["address"].splitlines():
        assert line in email.text and str(escape(line)) in email.html
    if name != "appointment_reminders":
        assert context["links"]["booking"] in email.text and context["links"]["booking"] in email.html
    assert "{{" not in email.text + email.html + email.subject


@pytest.mark.parametrize(("name", "step_id"), all_steps(SALES, Channel.CALL_TASK))
def test_every_voicemail_script_fits_in_thirty_seconds(renderer, context, name, step_id):
    step = load(name).step(step_id)
    task = renderer.render_call_task(step.template, context)
    # People leave voicemails at about 150 words a minute; 75 words is thirty seconds.
    assert len(task.voicemail.split()) <= 75
    assert context["lead"]["message"] in task.script and context["links"]["booking"] in task.script


@pytest.mark.parametrize("name", SALES)
def test_sales_playbooks_make_seven_touches_in_order_then_move_to_nurture(name):
    steps = load(name).steps
    touches = [(s.after, s.channel) for s in steps if s.channel != Channel.STAGE]
    assert touches == [
        (timedelta(0), Channel.SMS),
        (timedelta(minutes=15), Channel.EMAIL),
        (timedelta(days=1), Channel.SMS),
        (timedelta(days=1, hours=2), Channel.CALL_TASK),
        (timedelta(days=3), Channel.EMAIL),
        (timedelta(days=5), Channel.SMS),
        # Day 7 is one touch: the email, or the text for a lead who cannot be emailed.
        (timedelta(days=7), Channel.EMAIL),
        (timedelta(days=7), Channel.SMS),
    ]
    day7_email, day7_sms, stage = steps[-3:]
    assert Condition.HAS_EMAIL in day7_email.conditions and Condition.NO_EMAIL in day7_sms.conditions
    assert Condition.NO_REPLY_YET in steps[3].conditions
    assert (stage.channel, stage.stage, stage.after) == (Channel.STAGE, "nurture", timedelta(days=7))
    assert Condition.NOT_BOOKED in stage.conditions
    assert all(len(s.subjects) >= 2 for s in steps if s.channel == Channel.EMAIL)


def test_sales_playbooks_each_have_their_own_wording(renderer, context):
    first_texts = {
        name: renderer.render_sms(load(name).steps[0].template, context, first_to_number=True) for name in SALES
    }
    assert len(set(first_texts.values())) == len(SALES)


def test_the_final_text_offers_a_simple_choice(renderer, context):
    for name in SALES:
        text = renderer.render_sms(load(name).step("day5_final_sms").template, context, first_to_number=False)
        assert "Reply 1" in text and "2" in text


#: What each choice the day-5 text offers must mean in bot/core/reply_rules.yml: its wording there, and
#: what the bot does with the answer.
DAY5_CHOICES = {
    "1": (re.compile(r"Reply 1 to book\b"), ReplyClass.ASKS_TIME),  # a person calls to find a time
    "2": (re.compile(r"\bor 2 if later is better\b"), ReplyClass.LATER),  # sales stop, nurture starts
}


@pytest.mark.parametrize("name", SALES)
@pytest.mark.parametrize("choice", sorted(DAY5_CHOICES))
def test_each_choice_the_final_text_offers_means_what_it_says_in_the_reply_rules(renderer, context, name, choice):
    text = renderer.render_sms(load(name).step("day5_final_sms").template, context, first_to_number=False)
    wording, reply_class = DAY5_CHOICES[choice]
    assert wording.search(text), f"{name}: the day-5 text no longer offers {wording.pattern!r}; update the rules"
    for reply in (choice, f"{choice} please", f"{choice} thanks", f"option {choice}"):
        understood = classify_reply(
            reply,
            rules=load_reply_rules(),
            channel="sms",
            now=datetime(2026, 11, 25, 16, 0, tzinfo=UTC),
            lead_timezone="America/Chicago",
        )
        assert understood.reply_class == reply_class, (reply, understood)


def test_nurture_is_a_slow_cadence_over_months():
    steps = load("nurture").steps
    assert [s.after for s in steps] == [timedelta(days=d) for d in (14, 30, 60, 90)]
    assert all(Condition.NOT_BOOKED in s.conditions for s in steps)


def test_appointment_reminders_count_back_from_the_appointment(renderer, context):
    sequence = load("appointment_reminders")
    assert sequence.relative_to_appointment
    assert [(s.before, s.channel) for s in sequence.steps] == [
        (timedelta(hours=24), Channel.SMS),
        (timedelta(hours=24), Channel.EMAIL),
        (timedelta(hours=2), Channel.SMS),
    ]
    assert sequence.steps[1].conditions == (Condition.HAS_EMAIL,)
    for step in sequence.steps:
        if step.channel == Channel.SMS:
            text = renderer.render_sms(step.template, context, first_to_number=False)
            assert context["appointment"]["start_local"] in text
