"""Playbooks load as data, and a bad one is refused with every problem, its file, its line and a fix."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from textwrap import dedent

import pytest

from bot.core.config_errors import ConfigError
from bot.core.playbook import (
    STAGES,
    Channel,
    Condition,
    LeadFacts,
    Step,
    list_sequences,
    load_sequence,
    skip_reason,
)
from bot.store.models import Stage

HEADER = "name: seq\ndescription: test\nsteps:\n"


@pytest.fixture
def templates(tmp_path: Path) -> Path:
    folder = tmp_path / "templates"
    files = {
        "t/text.sms.j2": "Hi {{ lead.first_name }}",
        "t/mail.email.txt.j2": "Hi",
        "t/mail.email.html.j2": "<p>Hi</p>",
        "t/call.call_script.j2": "Call {{ lead.name }}",
        "t/call.voicemail.j2": "Hi, call us back",
    }
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return folder


@pytest.fixture
def sequences(tmp_path: Path) -> Path:
    folder = tmp_path / "sequences"
    folder.mkdir()
    return folder


def load(sequences: Path, templates: Path, text: str, name: str = "seq"):
    (sequences / f"{name}.yml").write_text(text)
    return load_sequence(name, sequences_dir=sequences, templates_dir=templates)


def problems_of(sequences: Path, templates: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(sequences, templates, text)
    return [str(problem) for problem in caught.value.problems]


GOOD = HEADER + dedent(
    """\
      - id: instant_sms
        after: 0s
        channel: sms
        template: t/text
      - id: same_day_email
        after: 15m
        channel: email
        template: t/mail
        subjects: ["Thanks, {{ lead.first_name }}", "Your next step", "We got it"]
        when: [has_email]
      - id: first_call
        after: 1d
        channel: call_task
        template: t/call
        when: [no_reply_yet, not_booked]
      - id: close_loop
        after: 7d
        channel: stage
        stage: nurture
    """
)


def test_a_valid_sequence_loads_as_typed_steps(sequences, templates):
    sequence = load(sequences, templates, GOOD)
    assert sequence.name == "seq" and sequence.description == "test"
    assert sequence.path == sequences / "seq.yml"
    assert [(s.id, s.channel, s.after) for s in sequence.steps] == [
        ("instant_sms", Channel.SMS, timedelta(0)),
        ("same_day_email", Channel.EMAIL, timedelta(minutes=15)),
        ("first_call", Channel.CALL_TASK, timedelta(days=1)),
        ("close_loop", Channel.STAGE, timedelta(days=7)),
    ]
    assert sequence.steps[2].conditions == (Condition.NO_REPLY_YET, Condition.NOT_BOOKED)
    assert sequence.steps[3].stage == "nurture" and sequence.steps[3].template is None
    assert [s.line for s in sequence.steps] == [4, 8, 14, 19]
    assert not sequence.relative_to_appointment
    assert sequence.step("first_call") is sequence.steps[2]


def test_steps_and_playbooks_carry_the_labels_people_read(sequences, templates):
    labelled = GOOD.replace("name: seq\n", "name: seq\nlabel: New-patient follow-up\n").replace(
        "- id: instant_sms\n", "- id: instant_sms\n  label: First text\n"
    )
    sequence = load(sequences, templates, labelled)
    assert sequence.label == "New-patient follow-up"
    assert sequence.steps[0].label == "First text"


@pytest.mark.parametrize(
    ("step_text", "label"),
    [
        ("{id: a, after: 0s, channel: sms, template: t/text}", "Same-day text"),
        ("{id: a, after: 15m, channel: email, template: t/mail, subjects: [Hi]}", "Same-day email"),
        ("{id: a, after: 1d2h, channel: call_task, template: t/call}", "Day-1 call"),
        ("{id: a, after: 3d, channel: email, template: t/mail, subjects: [Hi]}", "Day-3 email"),
        ("{id: a, after: 7d, channel: stage, stage: nurture}", "Move to nurture"),
        ("{id: a, before: 24h, channel: sms, template: t/text}", "Text 1d before the appointment"),
    ],
)
def test_a_step_without_a_label_gets_one_from_its_channel_and_day(sequences, templates, step_text, label):
    sequence = load(sequences, templates, HEADER + f"  - {step_text}\n")
    assert sequence.steps[0].label == label
    assert sequence.label == "Seq"  # a playbook without a label reads as its name in words


def test_every_shipped_step_and_playbook_has_its_own_label():
    from bot import SHIPPED_SEQUENCES, SHIPPED_TEMPLATES

    for name in list_sequences(SHIPPED_SEQUENCES):
        text = (SHIPPED_SEQUENCES / f"{name}.yml").read_text()
        sequence = load_sequence(name, sequences_dir=SHIPPED_SEQUENCES, templates_dir=SHIPPED_TEMPLATES)
        assert f"\nlabel: {sequence.label}\n" in text
        for step in sequence.steps:
            assert f"label: {step.label}\n" in text and step.label != step.id


def test_email_subjects_are_exposed_in_order_and_take_turns(sequences, templates):
    email = load(sequences, templates, GOOD).step("same_day_email")
    assert email.subjects == ("Thanks, {{ lead.first_name }}", "Your next step", "We got it")
    assert [email.subject_for(n) for n in range(4)] == [
        "Thanks, {{ lead.first_name }}",
        "Your next step",
        "We got it",
        "Thanks, {{ lead.first_name }}",
    ]


def test_before_steps_make_a_sequence_relative_to_the_appointment(sequences, templates):
    sequence = load(
        sequences,
        templates,
        HEADER
        + dedent(
            """\
          - id: day_before
            before: 24h
            channel: sms
            template: t/text
          - id: same_time
            before: 24h
            channel: email
            template: t/mail
            subjects: Reminder
          - id: two_hours
            before: 2h
            channel: sms
            template: t/text
        """
        ),
    )
    assert sequence.relative_to_appointment
    assert [s.before for s in sequence.steps] == [timedelta(hours=24), timedelta(hours=24), timedelta(hours=2)]
    assert all(s.after is None for s in sequence.steps)
    assert sequence.steps[1].subjects == ("Reminder",)


def step(body: str) -> str:
    """One step under the header, starting at line 4."""
    return HEADER + dedent(body)


@pytest.mark.parametrize(
    ("text", "line", "message", "fix"),
    [
        pytest.param(
            "name: seq\ndescripton: x\nsteps:\n  - {id: a, after: 0s, channel: stage, stage: lost}\n",
            2,
            "unknown sequence key 'descripton'",
            "did you mean `description`",
            id="unknown-top-key",
        ),
        pytest.param(
            step("  - id: a\n    after: 0s\n    channel: sms\n    tempalte: t/text\n"),
            7,
            "unknown step key 'tempalte'",
            "did you mean `template`",
            id="unknown-step-key",
        ),
        pytest.param(
            step("  - id: a\n    delay: 1d\n    channel: stage\n    stage: lost\n"),
            5,
            "unknown step key 'delay'",
            "did you mean `after`",
            id="delay-means-after",
        ),
        pytest.param(
            step("  - after: 0s\n    channel: stage\n    stage: lost\n"),
            4,
            "missing required key 'id'",
            "add `id:",
            id="missing-id",
        ),
        pytest.param(
            step("  - id: a\n    after: 0s\n    template: t/text\n"),
            4,
            "missing required key 'channel'",
            "sms, email, call_task, stage",
            id="missing-channel",
        ),
        pytest.param(
            step("  - id: a\n    after: 0s\n    channel: sms\n"),
            4,
            "missing required key 'template'",
            "template: folder/name",
            id="missing-template",
        ),
        pytest.param(
            step("  - id: a\n    after: 1 day\n    channel: stage\n    stage: lost\n"),
            5,
            "'1 day' is not a duration",
            "after: 1d",
            id="bad-duration",
        ),
        pytest.param(
            step("  - id: a\n    channel: stage\n    stage: lost\n"),
            4,
            "neither when (after:)",
            "after: 1d",
            id="neither-after-nor-before",
        ),
        pytest.param(
            step("  - id: a\n    after: 0s\n    before: 2h\n    channel: stage\n    stage: lost\n"),
            6,
            "both after: and before:",
            "keep one",
            id="both-after-and-before",
        ),
        pytest.param(
            step(
                "  - {id: a, after: 0s, channel: stage, stage: lost}\n"
                "  - {id: b, before: 2h, channel: stage, stage: lost}\n"
            ),
            5,
            "mixes after: and before:",
            "in separate files",
            id="mixed-after-and-before",
        ),
        pytest.param(
            step(
                "  - {id: a, after: 0s, channel: stage, stage: lost}\n"
                "  - {id: a, after: 1d, channel: stage, stage: lost}\n"
            ),
            5,
            "step id 'a' is used twice (first at line 4)",
            "a_2",
            id="duplicate-id",
        ),
        pytest.param(
            step("  - id: Instant SMS\n    after: 0s\n    channel: stage\n    stage: lost\n"),
            4,
            "'Instant SMS' must use only lowercase",
            "id: instant_sms",
            id="bad-id",
        ),
        pytest.param(
            step(
                "  - {id: a, after: 1d, channel: stage, stage: lost}\n"
                "  - {id: b, after: 2h, channel: stage, stage: lost}\n"
            ),
            5,
            "'b' (after 2h) comes before 'a' (after 1d)",
            "delays must not decrease",
            id="after-out-of-order",
        ),
        pytest.param(
            step(
                "  - {id: a, before: 2h, channel: stage, stage: lost}\n"
                "  - {id: b, before: 1d, channel: stage, stage: lost}\n"
            ),
            5,
            "'b' (before 1d) goes out earlier",
            "furthest from the appointment first",
            id="before-out-of-order",
        ),
        pytest.param(
            step("  - id: a\n    after: 0s\n    channel: emial\n    template: t/mail\n    subjects: [Hi]\n"),
            6,
            "unknown channel 'emial'",
            "did you mean `email`",
            id="unknown-channel",
        ),
        pytest.param(
            step("  - id: a\n    after: 0s\n    channel: sms\n    template: t/text\n    subjects: [Hi]\n"),
            8,
            "only email steps have subjects",
            "remove `subjects:`",
            id="subjects-on-sms",
        ),
        pytest.param(
            step("  - id: a\n    after: 0s\n    channel: sms\n    template: t/text\n    stage: lost\n"),
            8,
            "only stage steps move the lead",
            "channel: stage",
            id="stage-on-sms",
        ),
        pytest.param(
            step("  - id: a\n    after: 0s\n    channel: stage\n"),
            4,
            "stage step without a stage",
            "new, contacted, engaged",
            id="stage-step-without-stage",
        ),
        pytest.param(
            step("  - id: a\n    after: 0s\n    channel: stage\n    stage: nurturing\n"),
            7,
            "unknown stage 'nurturing'",
            "did you mean `nurture`",
            id="unknown-stage",
        ),
        pytest.param(
            step(
                "  - id: a\n    after: 0s\n    channel: sms\n    template: t/text\n    when:\n"
                "      - has_phone\n      - no_reply\n"
            ),
            10,
            "unknown condition 'no_reply'",
            "did you mean `no_reply_yet`",
            id="unknown-condition",
        ),
        pytest.param(
            step("  - id: a\n    after: 0s\n    channel: call_task\n    template: t/nocall\n"),
            7,
            "t/nocall.call_script.j2 not found",
            "fix `template: t/nocall`",
            id="missing-template-file",
        ),
        pytest.param(
            step("  - id: a\n    after: 0s\n    channel: sms\n    template: ../secrets\n"),
            7,
            "template '../secrets' is not a template name",
            "without file suffixes",
            id="template-escapes",
        ),
        pytest.param(
            step(
                "  - id: a\n    after: 0s\n    channel: email\n    template: t/mail\n"
                '    subjects:\n      - Fine\n      - "Hi {{ lead.first_name }"\n'
            ),
            10,
            "Jinja syntax error",
            "check the {{ }} in the subject",
            id="subject-syntax",
        ),
        pytest.param(
            step("  - id: a\n    after: 0s\n    channel: email\n    template: t/mail\n"),
            4,
            "is an email with no subject",
            "subjects:",
            id="email-without-subject",
        ),
        pytest.param(
            step("  - id: a\n    after: 0s\n    channel: email\n    template: t/mail\n    subjects: []\n"),
            8,
            "subjects must be a list of non-empty",
            "subjects: [",
            id="empty-subjects",
        ),
        pytest.param(
            step("  - id: a\n    after: 0s\n   channel: sms\n"), 6, "not valid YAML", "indentation", id="yaml-syntax"
        ),
        pytest.param(HEADER + "  []\n", 3, "steps must be a non-empty list", "add at least one step", id="empty-steps"),
        pytest.param("name: seq\ndescription: x\n", 1, "missing required key 'steps'", "add `steps:`", id="no-steps"),
        pytest.param(step("  - just text\n"), 4, "each step must be a mapping", "- id:", id="step-not-mapping"),
        pytest.param(
            step("  - id: a\n    label: [not, text]\n    after: 0s\n    channel: stage\n    stage: lost\n"),
            5,
            "label must be a line of text",
            'label: "Day-1 check-in text"',
            id="label-not-text",
        ),
        pytest.param(
            step("  - id: a\n    label: " + "x" * 61 + "\n    after: 0s\n    channel: stage\n    stage: lost\n"),
            5,
            "label is 61 characters",
            "shorten it",
            id="label-too-long",
        ),
        pytest.param(
            step("  - id: a\n    title: First text\n    after: 0s\n    channel: stage\n    stage: lost\n"),
            5,
            "unknown step key 'title'",
            "did you mean `label`?",
            id="title-for-label",
        ),
        pytest.param(
            "name: other\nsteps:\n  - {id: a, after: 0s, channel: stage, stage: lost}\n",
            1,
            "name 'other' differs from the file name 'seq.yml'",
            "name: seq",
            id="name-mismatch",
        ),
    ],
)
def test_each_mistake_is_reported_with_file_line_and_fix(sequences, templates, text, line, message, fix):
    problems = problems_of(sequences, templates, text)
    where = f"{sequences / 'seq.yml'}:{line}: "
    matching = [p for p in problems if p.startswith(where) and message in p]
    assert matching, f"no problem at {where} mentioning {message!r} in {problems}"
    assert fix in matching[0].split("(fix: ", 1)[1]


def test_a_jinja_error_in_a_template_file_names_that_file_and_line(sequences, templates):
    (templates / "t/text.sms.j2").write_text("Hi\n{% if lead.first_name %}\n{{ lead.first_name }\n")
    problems = problems_of(sequences, templates, GOOD)
    assert len(problems) == 1
    assert problems[0].startswith(f"{templates / 't/text.sms.j2'}:3: Jinja syntax error")
    assert "step 'instant_sms'" in problems[0] and "(fix: check the {{ }}" in problems[0]


def test_every_problem_in_a_file_is_reported_at_once(sequences, templates):
    problems = problems_of(
        sequences,
        templates,
        step(
            """\
          - id: a
            after: soon
            channel: sms
            template: t/text
          - id: b
            after: 0s
            channel: fax
          - id: c
            after: 1d
            channel: email
            template: t/mail
        """
        ),
    )
    assert len(problems) == 3, problems
    assert [p.split(": ", 1)[0].rsplit(":", 1)[1] for p in problems] == ["5", "10", "11"]


@pytest.mark.parametrize("text", ["", "- a list\n", "just words\n"])
def test_a_file_that_is_not_a_mapping_is_refused(sequences, templates, text):
    assert problems_of(sequences, templates, text)


def test_template_names_resolve_in_the_templates_folder_wherever_the_playbook_lives(tmp_path, sequences, templates):
    clinic = tmp_path / "clinic"
    clinic.mkdir()
    (clinic / "my_playbook.yml").write_text(GOOD.replace("name: seq", "name: my_playbook"))
    sequence = load_sequence(str(clinic / "my_playbook.yml"), sequences_dir=sequences, templates_dir=templates)
    assert sequence.name == "my_playbook" and sequence.path == clinic / "my_playbook.yml"


def test_an_unknown_sequence_name_lists_the_ones_there_are(sequences, templates):
    load(sequences, templates, GOOD)
    with pytest.raises(ConfigError, match=r"no sequence named 'dentl' \(fix: use one of: seq\)"):
        load_sequence("dentl", sequences_dir=sequences, templates_dir=templates)


def test_a_sequence_name_defaults_to_its_file_name(sequences, templates):
    sequence = load(sequences, templates, GOOD.replace("name: seq\n", ""), name="quiet")
    assert sequence.name == "quiet"


def test_list_sequences_skips_business_settings_and_files_without_steps(sequences):
    (sequences / "business.yml").write_text("name: Clinic\nsteps: not really\n")
    (sequences / "notes.yml").write_text("just: notes\n")
    (sequences / "default.yml").write_text(GOOD)
    (sequences / "broken.yml").write_text("name: broken\nsteps:\n  - id: [\n")
    (sequences / "other.yaml").write_text(GOOD)
    assert list_sequences(sequences) == ["broken", "default"]


def test_stage_names_match_the_stored_lead_stages():
    assert set(STAGES) == {stage.value for stage in Stage}


def _step(channel: Channel, *conditions: Condition) -> Step:
    return Step("s", channel, timedelta(0), None, "t/x", (), conditions, None, 1)


EVERYTHING = LeadFacts(
    has_email=True, has_phone=True, has_replied=False, has_booked=False, sms_allowed=True, email_allowed=True
)


def facts(**changes: bool) -> LeadFacts:
    return LeadFacts(**{**EVERYTHING.__dict__, **changes})


@pytest.mark.parametrize(
    ("step", "lead", "reason"),
    [
        (_step(Channel.SMS), EVERYTHING, None),
        (_step(Channel.SMS), facts(has_phone=False, sms_allowed=False), "lead has no phone number"),
        (_step(Channel.SMS), facts(sms_allowed=False), "lead opted out of SMS (or the number cannot take texts)"),
        (_step(Channel.EMAIL), facts(has_email=False, email_allowed=False), "lead has no email address"),
        (_step(Channel.EMAIL), facts(email_allowed=False), "lead opted out of email"),
        (_step(Channel.CALL_TASK), facts(has_phone=False), "lead has no phone number"),
        (_step(Channel.CALL_TASK), facts(sms_allowed=False), None),
        (_step(Channel.STAGE), facts(has_phone=False, has_email=False), None),
        (_step(Channel.EMAIL, Condition.HAS_EMAIL), EVERYTHING, None),
        (_step(Channel.STAGE, Condition.HAS_EMAIL), facts(has_email=False), "lead has no email address"),
        (_step(Channel.STAGE, Condition.HAS_PHONE), facts(has_phone=False), "lead has no phone number"),
        (_step(Channel.SMS, Condition.NO_REPLY_YET), facts(has_replied=True), "lead already replied"),
        (_step(Channel.SMS, Condition.NOT_BOOKED), facts(has_booked=True), "lead already booked"),
        (
            _step(Channel.SMS, Condition.NO_REPLY_YET, Condition.NOT_BOOKED),
            facts(has_booked=True),
            "lead already booked",
        ),
        (_step(Channel.SMS, Condition.NO_EMAIL), EVERYTHING, "lead gets this by email instead"),
        (_step(Channel.SMS, Condition.NO_EMAIL), facts(has_email=False), None),
        (_step(Channel.SMS, Condition.NO_EMAIL), facts(email_allowed=False), None),
        (_step(Channel.STAGE, Condition.NOT_BOOKED), facts(has_replied=True), None),
    ],
)
def test_skip_reason_says_why_a_step_does_not_apply(step, lead, reason):
    assert skip_reason(step, lead) == reason
