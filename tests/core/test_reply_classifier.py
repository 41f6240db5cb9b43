"""A lead's reply is understood by editable rules: consent first, machines next, then the strongest intent."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from textwrap import dedent
from zoneinfo import ZoneInfo

import pytest

from bot.core.config_errors import ConfigError
from bot.core.reply_classifier import (
    PRIORITY,
    SHIPPED_REPLY_RULES,
    VISIT_CLASSES,
    ReplyClass,
    Understanding,
    classify_reply,
    load_reply_rules,
    normalise,
)

CHICAGO = "America/Chicago"
#: Wednesday 2026-11-25, 10:00 in Chicago.
NOW = datetime(2026, 11, 25, 10, 0, tzinfo=ZoneInfo(CHICAGO))
RULES = load_reply_rules()

OPT_OUT, OPT_IN, HELP = ReplyClass.OPT_OUT, ReplyClass.OPT_IN, ReplyClass.HELP
NOT_INTERESTED, BOOKED, ASKS_TIME = ReplyClass.NOT_INTERESTED, ReplyClass.BOOKED, ReplyClass.ASKS_TIME
QUESTION, AUTO_REPLY, PLAIN = ReplyClass.QUESTION, ReplyClass.AUTO_REPLY, ReplyClass.PLAIN
LATER, ASKS_CALL = ReplyClass.LATER, ReplyClass.ASKS_CALL


def classify(text: str, channel: str = "sms", **email: object) -> Understanding:
    return classify_reply(text, rules=RULES, channel=channel, now=NOW, lead_timezone=CHICAGO, **email)


MESSAGES = [
    # carrier keywords: the whole message, any case, punctuation and emoji ignored
    ("STOP", "sms", OPT_OUT),
    ("stop!!!", "sms", OPT_OUT),
    ("Stop 🛑", "sms", OPT_OUT),
    ("   stop   ", "sms", OPT_OUT),
    ("Stopall", "sms", OPT_OUT),
    ("UNSUBSCRIBE", "sms", OPT_OUT),
    ("cancel", "sms", OPT_OUT),
    ("End.", "sms", OPT_OUT),
    ("Quit", "sms", OPT_OUT),
    ("revoke", "sms", OPT_OUT),
    ("Opt-out", "sms", OPT_OUT),
    ("OPT OUT", "sms", OPT_OUT),
    ("START", "sms", OPT_IN),
    ("unstop", "sms", OPT_IN),
    ("yes", "sms", OPT_IN),
    ("YES!", "sms", OPT_IN),
    ("HELP", "sms", HELP),
    ("info", "sms", HELP),
    # revocation in plain words, however it is said
    ("please stop texting me", "sms", OPT_OUT),
    ("STOP TEXTING ME!!!", "sms", OPT_OUT),
    ("take me off your list", "sms", OPT_OUT),
    ("unsubscribe me", "sms", OPT_OUT),
    ("unsubcribe", "sms", OPT_OUT),
    ("don't text me again", "sms", OPT_OUT),
    ("Don’t text me again", "sms", OPT_OUT),
    ("please don't contact me", "sms", OPT_OUT),
    ("Please remove me from your list", "email", OPT_OUT),
    ("how do I unsubscribe from these emails", "email", OPT_OUT),
    ("I'm not interested anymore. Stop.", "sms", OPT_OUT),
    ("won't stop, STOP TEXTING ME", "sms", OPT_OUT),
    ("wrong number", "sms", OPT_OUT),
    ("STOP", "email", OPT_OUT),
    # "stop" and "cancel" in sentences about something else
    ("can't stop the pain", "sms", PLAIN),
    ("my back pain won't stop", "sms", PLAIN),
    ("I need to cancel my other appointment", "sms", PLAIN),
    ("My husband will stop in after 5", "sms", PLAIN),
    ("the pain doesn't stop, can you help?", "sms", QUESTION),
    # mixed intents: consent first, then whatever a person must answer; a destructive reading never wins a tie
    ("No thanks, please stop texting", "sms", OPT_OUT),
    ("Not interested, does this cost money?", "sms", QUESTION),
    ("not interested in botox but could I book a cleaning?", "sms", QUESTION),
    ("Not interested in the membership, but I'd like to book a consult", "sms", ASKS_TIME),
    ("no thanks but my wife might want to come in", "sms", PLAIN),
    ("Not interested, maybe next Friday", "sms", PLAIN),
    ("2 but call me friday", "sms", ASKS_TIME),
    ("I booked for Tuesday, do you take Delta Dental?", "sms", BOOKED),
    ("Can I come tomorrow at 3? Do you take insurance?", "sms", ASKS_TIME),
    ("Yes, do you have anything Friday?", "sms", ASKS_TIME),
    # yes is a carrier keyword by text only
    ("yes", "email", PLAIN),
    ("Yes please", "sms", PLAIN),
    ("help", "email", PLAIN),
    # a polite no
    ("no thanks", "sms", NOT_INTERESTED),
    ("No.", "sms", NOT_INTERESTED),
    ("No thanks 🙏", "sms", NOT_INTERESTED),
    ("NOT INTERESTED", "sms", NOT_INTERESTED),
    ("not intrested", "sms", NOT_INTERESTED),
    ("nah", "sms", NOT_INTERESTED),
    ("already found someone", "sms", NOT_INTERESTED),
    ("we went with another dentist", "email", NOT_INTERESTED),
    ("I have an appt with another chiropractor already", "sms", NOT_INTERESTED),
    ("not right now", "sms", NOT_INTERESTED),
    ("no longer need it", "sms", NOT_INTERESTED),
    ("I already have a dentist, thanks though", "email", NOT_INTERESTED),
    ("I'm good, thanks", "sms", NOT_INTERESTED),
    # the day-5 text's choice: "Reply 1 to book a visit, or 2 if later is better"
    ("1", "sms", ASKS_TIME),
    ("1.", "sms", ASKS_TIME),
    ("#1", "sms", ASKS_TIME),
    ("1️⃣", "sms", ASKS_TIME),
    ("1 please", "sms", ASKS_TIME),
    ("1 pls!", "sms", ASKS_TIME),
    ("Option 1", "sms", ASKS_TIME),
    ("1 thanks", "sms", ASKS_TIME),
    ("Yes 1", "sms", ASKS_TIME),
    ("1 - book me", "sms", ASKS_TIME),
    ("2", "sms", LATER),
    ("2 thanks", "sms", LATER),
    ("2, thank you!", "sms", LATER),
    ("option 2", "sms", LATER),
    ("Option #2 please", "sms", LATER),
    ("2 for now", "sms", LATER),
    ("2️⃣", "sms", LATER),
    ("Later is better", "sms", LATER),
    ("maybe later", "sms", LATER),
    ("2", "email", LATER),
    # ...and numbers that are not the choice
    ("2 no thanks", "sms", NOT_INTERESTED),
    ("2. Stop texting me", "sms", OPT_OUT),
    ("1pm", "sms", ASKS_TIME),
    ("I have 1 question, do you take Aetna?", "sms", QUESTION),
    ("2 weeks ago", "sms", PLAIN),
    ("12", "sms", PLAIN),
    ("1 or 2", "sms", PLAIN),
    # booked
    ("I booked for Tuesday", "sms", BOOKED),
    ("I BOOKED FOR TUESDAY", "sms", BOOKED),
    ("just scheduled online", "sms", BOOKED),
    ("booked it through your website", "email", BOOKED),
    ("made an appointment", "sms", BOOKED),
    ("I made an apointment for friday", "sms", BOOKED),
    ("see you Thursday for my appointment!", "sms", BOOKED),
    ("Thanks! I just booked online for next Tuesday 10am", "sms", BOOKED),
    ("I haven't booked yet", "sms", PLAIN),
    ("are you fully booked this week?", "sms", ASKS_TIME),  # "this week": a person offers what is open
    # asks for a time or an opening
    ("can I come tomorrow at 3?", "sms", ASKS_TIME),
    ("any openings Friday morning?", "sms", ASKS_TIME),
    ("do you have anything Saturday", "sms", ASKS_TIME),
    ("is 4:30 ok?", "sms", ASKS_TIME),
    ("Friday works", "sms", ASKS_TIME),
    ("Thursday at 2", "sms", ASKS_TIME),
    ("call me at 5", "sms", ASKS_TIME),
    ("Can u do 3-4pm friday", "sms", ASKS_TIME),
    ("Can you fit me in tmrw morning?", "sms", ASKS_TIME),
    ("hey is there anything available this afternoon", "sms", ASKS_TIME),
    ("I'm free Saturday morning", "sms", ASKS_TIME),
    ("Could I get in this week?", "sms", ASKS_TIME),
    ("see you Thursday!", "sms", ASKS_TIME),  # no appointment wording: the team confirms
    # questions a person should answer
    ("do you take my insurance?", "sms", QUESTION),
    ("how much is a first visit?", "sms", QUESTION),
    ("is parking available?", "email", QUESTION),
    ("Do you do massages?", "sms", QUESTION),
    ("whats the price", "sms", QUESTION),
    ("I'm interested! What are your hours?", "sms", QUESTION),
    ("I have 3 kids, can I bring them?", "sms", QUESTION),
    ("back pain for 2 weeks, can you help?", "sms", QUESTION),
    ("I looked at your website, how much is an adjustment?", "email", QUESTION),
    # anything else a person wrote
    ("ok?", "sms", PLAIN),
    ("ok thanks", "sms", PLAIN),
    ("sounds good 👍", "sms", PLAIN),
    ("👍", "sms", PLAIN),
    ("I'll think about it", "sms", PLAIN),
    ("Ok, I'll call you tomorrow", "sms", PLAIN),
    ("Sounds good, see you then", "sms", PLAIN),
    ("", "sms", PLAIN),
    # asks to be called or booked: a call at once
    ("call me", "sms", ASKS_CALL),
    ("please call", "sms", ASKS_CALL),
    ("yes, call me", "sms", ASKS_CALL),
    ("Book me in!", "sms", ASKS_CALL),
    ("I'd like an appointment for my daughter", "sms", ASKS_CALL),
    ("llámame por favor", "sms", ASKS_CALL),
    ("don't call me, I'm at work", "sms", PLAIN),
    # machines: on SMS only a phone's or carrier's whole fixed text
    (
        "I'm driving with Do Not Disturb While Driving turned on. I'll see your message when I get where I'm going.",
        "sms",
        AUTO_REPLY,
    ),
    ("I’m driving with notifications silenced. I’ll see your message when I get where I’m going.", "sms", AUTO_REPLY),
    ("I'm driving right now. I'll get back to you later.", "sms", AUTO_REPLY),
    ("Free Msg: Unable to send message - Message Blocking is active.", "sms", AUTO_REPLY),
    ("Sent from my car — I'll get back to you", "sms", PLAIN),
    ("im driving, call me at 5", "sms", ASKS_TIME),
    ("I'm driving right now, can you call me back?", "sms", ASKS_CALL),
    ("driving now, is there anything thursday?", "sms", ASKS_TIME),
    ("I'm out of the office today, do you have anything tomorrow?", "sms", ASKS_TIME),
    ("I am out of the office until Monday", "sms", PLAIN),
    ("I am out of the office until Monday with limited access to email.", "email", AUTO_REPLY),
    ("Thank you for contacting us. This mailbox is not monitored.", "email", AUTO_REPLY),
    ("I'm on vacation until Dec 1st", "email", AUTO_REPLY),
]


@pytest.mark.parametrize(("text", "channel", "expected"), MESSAGES)
def test_a_reply_is_understood_as_its_class(text, channel, expected):
    understanding = classify(text, channel)
    assert understanding.reply_class == expected, understanding.rule


def test_the_table_covers_every_class():
    # The visit classes apply only with a visit ahead: tests/usecases/test_visit_replies.py has their table.
    assert {expected for _, _, expected in MESSAGES} == set(ReplyClass) - VISIT_CLASSES


@pytest.mark.parametrize(
    ("headers", "subject", "body", "expected"),
    [
        ({"Auto-Submitted": "auto-replied"}, "Re: your visit", "Thanks for your email.", AUTO_REPLY),
        ({"Auto-Submitted": "auto-generated"}, None, "Hello", AUTO_REPLY),
        ({"Auto-Submitted": "no"}, "Re: your visit", "Thanks for your email.", PLAIN),
        ({"X-Autoreply": "yes"}, None, "Hello", AUTO_REPLY),
        ({"X-Autorespond": "1"}, None, "Hello", AUTO_REPLY),
        ({"Precedence": "bulk"}, None, "Hello", AUTO_REPLY),
        ({"precedence": "auto_reply"}, None, "Hello", AUTO_REPLY),
        ({"Precedence": "junk"}, None, "Hello", AUTO_REPLY),
        ({"Precedence": "list"}, None, "Hello", PLAIN),
        ({"X-Auto-Response-Suppress": "All"}, None, "Hello", AUTO_REPLY),
        ({"Content-Type": "multipart/report; report-type=delivery-status"}, None, "", AUTO_REPLY),
        ({}, "Out of Office: Re: your visit", "I will be back Monday.", AUTO_REPLY),
        ({}, "Automatic reply: your free consult", "Hello", AUTO_REPLY),
        ({}, "Auto: Re: your free consult", "Hello", AUTO_REPLY),
        ({}, "Undeliverable: your free consult", "", AUTO_REPLY),
        ({}, "Delivery Status Notification (Failure)", "", AUTO_REPLY),
        ({}, "Re: auto insurance question", "Do you bill my auto insurance?", QUESTION),
        ({}, "Unsubscribe", "", OPT_OUT),
        # consent outranks machines: a revocation is kept even in an auto-reply
        ({"Auto-Submitted": "auto-replied"}, None, "Please unsubscribe me", OPT_OUT),
    ],
)
def test_email_headers_and_subjects_mark_automatic_replies(headers, subject, body, expected):
    assert classify(body, "email", headers=headers, subject=subject).reply_class == expected


def test_the_rule_that_matched_is_named_for_the_team():
    assert [classify(text).rule for text in ("STOP", "Not interested, sorry", "ok thanks")] == [
        "keyword STOP",
        "phrase 'not interested'",
        "no rule matched",
    ]
    assert classify("Hi", "email", headers={"X-Autoreply": "yes"}).rule == "header x-autoreply: yes"
    assert classify("Friday works").rule == "phrase 'works' with a time"


def test_a_request_for_a_time_carries_the_time_in_the_leads_zone_and_the_words():
    understanding = classify("Can I come tomorrow at 3? Do you take insurance?")
    assert (understanding.reply_class, understanding.requested_time, understanding.requested_time_text) == (
        ASKS_TIME,
        datetime(2026, 11, 26, 15, 0, tzinfo=ZoneInfo(CHICAGO)),
        "tomorrow at 3",
    )


def test_a_request_for_an_opening_on_a_day_says_no_time_was_named():
    understanding = classify("any openings Friday?")
    assert (understanding.requested_time, understanding.requested_time_text) == (
        datetime(2026, 11, 27, 9, 0, tzinfo=ZoneInfo(CHICAGO)),
        "Friday (no time named; 9:00 assumed)",
    )


def test_a_request_for_an_opening_without_a_time_carries_none():
    understanding = classify("do you have any openings this week?")
    assert (understanding.reply_class, understanding.requested_time) == (ASKS_TIME, None)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I booked for Tuesday at 3", BOOKED),
        ("No thanks, I found someone", NOT_INTERESTED),
        ("tomorrow at 3am I woke up in pain", PLAIN),
    ],
)
def test_only_a_request_for_a_time_carries_one(text, expected):
    understanding = classify(text)
    assert (understanding.reply_class, understanding.requested_time, understanding.requested_time_text) == (
        expected,
        None,
        None,
    )


def test_a_time_is_read_in_the_leads_own_zone():
    understanding = classify_reply(
        "tomorrow at 3?", rules=RULES, channel="sms", now=NOW, lead_timezone="America/New_York"
    )
    assert understanding.requested_time == datetime(2026, 11, 26, 15, 0, tzinfo=ZoneInfo("America/New_York"))


@pytest.mark.parametrize(
    ("written", "read"),
    [
        ("  Don’t   TEXT me 🙏 ", "dont text me"),
        ("“Stop”", '"stop"'),
        ("ＳＴＯＰ", "stop"),
        ("👍🏽 ok", "ok"),
        ("sounds good\u200d", "sounds good"),
    ],
)
def test_replies_are_read_without_case_curly_quotes_apostrophes_emoji_or_extra_spaces(written, read):
    assert normalise(written) == read


def test_a_long_email_is_still_read_to_its_last_question():
    # How fast it is read is a benchmark's business, not a test's (a shared machine's clock says little).
    body = "Thanks for reaching out about my back. " * 150 + "Do you take Aetna?"
    assert classify(body, "email").reply_class == QUESTION


def test_an_unknown_channel_is_refused():
    with pytest.raises(ValueError, match="channel"):
        classify("STOP", "fax")


# --- the rules file ----------------------------------------------------------------------------


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rules.yml"
    path.write_text(dedent(text).lstrip())
    return path


def problems(path: Path) -> list[tuple[int | None, str, str]]:
    with pytest.raises(ConfigError) as caught:
        load_reply_rules(path)
    return [(p.line, p.message, p.fix) for p in caught.value.problems]


def test_the_shipped_rules_load_and_cover_every_class_but_plain():
    assert load_reply_rules(None).path == SHIPPED_REPLY_RULES
    assert {section.reply_class for section in RULES.sections} == set(PRIORITY)
    assert ReplyClass.PLAIN not in PRIORITY


def test_the_order_of_sections_in_the_file_does_not_change_priority(tmp_path):
    rules = load_reply_rules(
        write(
            tmp_path,
            """
        not_interested:
          phrases: [no thanks]
        opt_out:
          phrases: [stop texting]
    """,
        )
    )
    understanding = classify_reply(
        "no thanks, stop texting", rules=rules, channel="sms", now=NOW, lead_timezone=CHICAGO
    )
    assert understanding.reply_class == OPT_OUT


def test_an_unknown_class_is_named_with_its_line_and_a_suggestion(tmp_path):
    path = write(
        tmp_path,
        """
        opt_out:
          keywords: [stop]
        not_intrested:
          phrases: [no thanks]
    """,
    )
    assert problems(path) == [(3, "unknown reply class 'not_intrested'", "did you mean 'not_interested'?")]


def test_a_bad_regex_is_named_with_its_line(tmp_path):
    path = write(
        tmp_path,
        """
        question:
          patterns:
            - '\\?'
            - '(how|what'
    """,
    )
    [(line, message, fix)] = problems(path)
    assert (line, "'(how|what' is not a valid regular expression" in message, "escape" in fix) == (4, True, True)
    assert message.startswith("question patterns:")


def test_an_unknown_key_is_named_with_its_line_and_a_suggestion(tmp_path):
    path = write(
        tmp_path,
        """
        booked:
          phrase: [i booked]
          except: [not booked]
    """,
    )
    assert problems(path) == [
        (2, "booked: unknown key 'phrase'", "did you mean 'phrases'?"),
        (3, "booked: unknown key 'except'", "did you mean 'unless'?"),
    ]


def test_every_problem_in_the_file_is_listed_at_once(tmp_path):
    path = write(
        tmp_path,
        """
        opt_in:
          keywords:
            - start
            - yes
          channels: [sms, fax]
        help:
          keywords: [start]
        plain:
          phrases: [ok]
        question:
          min_words: lots
          patterns: ['Do You']
        auto_reply:
          headers:
            precedence: '(bulk'
    """,
    )
    lines = [line for line, _, _ in problems(path)]
    messages = " | ".join(message for _, message, _ in problems(path))
    assert lines == sorted(lines) and len(lines) == 7
    for expected in (
        "reads an unquoted yes",
        "unknown channel 'fax'",
        "keyword 'start' is in both",
        "plain takes no rules",
        "min_words: expected a whole number",
        "can never match",
        "header precedence",
    ):
        assert expected in messages


def test_a_rules_file_that_is_not_yaml_names_the_line(tmp_path):
    path = write(
        tmp_path,
        """
        opt_out:
          keywords: [stop
        booked: x
    """,
    )
    [(line, message, _)] = problems(path)
    assert line is not None and "not valid YAML" in message


def test_a_missing_rules_file_is_named(tmp_path):
    [(line, message, _)] = problems(tmp_path / "nowhere.yml")
    assert (line, message) == (None, "file not found")


def test_unless_takes_words_out_without_hiding_a_real_opt_out(tmp_path):
    rules = load_reply_rules(
        write(
            tmp_path,
            """
        opt_out:
          phrases: [stop]
          unless: [wont stop]
    """,
        )
    )

    def read(text: str) -> ReplyClass:
        return classify_reply(text, rules=rules, channel="sms", now=NOW, lead_timezone=CHICAGO).reply_class

    assert (read("the pain won't stop"), read("it won't stop, so STOP")) == (PLAIN, OPT_OUT)


def test_a_word_one_typo_from_a_rule_word_is_read_as_it_unless_it_is_a_real_word(tmp_path):
    text = """
        opt_out:
          phrases: [no more messages]
    """
    plain_rules = load_reply_rules(write(tmp_path, text))
    with_real_words = load_reply_rules(write(tmp_path, text + "real_words: [massages]\n"))

    def read(rules, text: str) -> ReplyClass:
        return classify_reply(text, rules=rules, channel="sms", now=NOW, lead_timezone=CHICAGO).reply_class

    assert [
        read(plain_rules, "no more mesages"),
        read(plain_rules, "no more massages"),
        read(with_real_words, "no more massages"),
    ] == [OPT_OUT, OPT_OUT, PLAIN]


def test_a_section_can_be_limited_to_one_channel(tmp_path):
    rules = load_reply_rules(
        write(
            tmp_path,
            """
        opt_in:
          channels: [sms]
          keywords: ['yes']
    """,
        )
    )
    read = {
        channel: classify_reply("Yes", rules=rules, channel=channel, now=NOW, lead_timezone=CHICAGO).reply_class
        for channel in ("sms", "email")
    }
    assert read == {"sms": OPT_IN, "email": PLAIN}


def test_texts_phrases_and_patterns_can_count_on_one_channel_only(tmp_path):
    rules = load_reply_rules(
        write(
            tmp_path,
            """
        auto_reply:
          sms_texts: ["I'm driving right now."]
          email_phrases: [out of the office]
    """,
        )
    )

    def read(text: str, channel: str) -> ReplyClass:
        return classify_reply(text, rules=rules, channel=channel, now=NOW, lead_timezone=CHICAGO).reply_class

    assert [
        read("Im driving right now", "sms"),
        read("I'm driving right now, call me", "sms"),
        read("out of the office", "sms"),
        read("out of the office", "email"),
    ] == [AUTO_REPLY, PLAIN, PLAIN, AUTO_REPLY]


def test_unsure_if_turns_a_destructive_reading_into_a_reply_a_person_reads(tmp_path):
    rules = load_reply_rules(
        write(
            tmp_path,
            """
        not_interested:
          phrases: [no thanks]
          unsure_if:
            names_a_time: true
            phrases: [but]
    """,
        )
    )

    def read(text: str) -> Understanding:
        return classify_reply(text, rules=rules, channel="sms", now=NOW, lead_timezone=CHICAGO)

    assert [read(text).reply_class for text in ("no thanks", "no thanks but my son", "no thanks, friday")] == [
        NOT_INTERESTED,
        PLAIN,
        PLAIN,
    ]
    assert read("no thanks but my son").rule == (
        "not_interested by phrase 'no thanks', but 'but': unsure, so a person reads it"
    )


def test_unsure_if_and_channel_words_are_refused_where_they_mean_nothing(tmp_path):
    path = write(
        tmp_path,
        """
        question:
          phrases: [how much]
          unsure_if: [maybe]
          channel_words:
            sms: [texts]
        not_interested:
          unsure_if:
            names_a_time: maybe
    """,
    )
    messages = [message for _, message, _ in problems(path)]
    assert messages == [
        "question: unsure_if applies only to auto_reply, later and not_interested",
        "question: channel_words applies only to opt_out",
        "not_interested unsure_if names_a_time: expected true or false, not 'maybe'",
    ]


@pytest.mark.parametrize(
    ("text", "channel", "ended"),
    [
        ("STOP", "sms", ("sms",)),
        ("unsubscribe", "email", ("email",)),
        ("stop contacting me", "sms", ("sms", "email")),
        ("do not text or email me", "email", ("sms", "email")),
        ("No more texts please, email is fine", "email", ("sms",)),
        ("Please stop emailing me, texts are ok", "email", ("email",)),
        ("wrong number", "sms", ("sms",)),
        ("no me manden mensajes de texto", "sms", ("sms",)),
        ("Please remove me from your list", "email", ("sms", "email")),
    ],
)
def test_an_opt_out_ends_the_channels_it_names_or_every_channel_when_it_names_none(text, channel, ended):
    understanding = classify(text, channel)
    assert (understanding.reply_class, understanding.opt_out_channels) == (OPT_OUT, ended)


@pytest.mark.parametrize("text", ["can I come 3pm or tuesday?", "call me sometime next week", "after work works"])
def test_a_request_with_an_unclear_time_carries_the_words_and_candidates_but_no_time(text):
    understanding = classify(text)
    assert understanding.reply_class in (ASKS_TIME, ASKS_CALL)
    assert understanding.requested_time is None and understanding.unclear_time is not None
    assert understanding.requested_time_text == understanding.unclear_time.words


def test_a_visit_reading_keeps_what_else_the_reply_asked_and_says_so_where_people_read_why():
    from bot.core.reply_classifier import also_of, explain_reading, understood

    reading = classify_reply(
        "yes! do I need to bring my card?",
        rules=load_reply_rules(),
        channel="sms",
        now=datetime(2026, 11, 25, 15, 0, tzinfo=UTC),
        lead_timezone="America/Chicago",
        appointment_ahead=True,
    )
    assert reading.reply_class == ReplyClass.CONFIRM_VISIT
    assert reading.also is not None and reading.also.reply_class == ReplyClass.QUESTION
    details = understood(reading)
    assert also_of(details) == ReplyClass.QUESTION
    assert explain_reading("confirm_visit", details) == (
        "read as: confirm_visit (rule: phrase 'yes'); also question (rule: pattern '\\?')"
    )
    assert also_of({"also": {"reply_class": "no such class"}}) is None and also_of(None) is None
