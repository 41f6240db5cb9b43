"""Block Kit builders: what each message shows, which buttons apply, escaping, and Slack's limits."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from slack_sdk.models.blocks import Block

from bot.slack.blocks import (
    MODAL_CALLBACKS,
    ActionId,
    bot_text,
    call_task_blocks,
    call_task_pointer_blocks,
    call_task_text,
    clip,
    escape,
    lead_card_blocks,
    lead_card_text,
    thread_entry_blocks,
    thread_entry_text,
)
from bot.slack.cards import (
    Automation,
    CallOutcomeEntry,
    CallTaskView,
    DecisionEntry,
    FailureEntry,
    InboundEntry,
    LeadCard,
    NeedsPersonEntry,
    OutboundEntry,
    SequenceProgress,
    ThreadReplyStatus,
    mention,
)

HOSTILE = "<!channel> <!here> <@U0EVIL> <http://evil.example|bank.com> & co"

CARD = LeadCard(
    lead_id=7,
    name="Dana Lee",
    phone="+13125550142",
    phone_display="+1 312-555-0142",
    email="dana@example.com",
    source="website",
    first_message="Lower back pain, any openings?",
    stage="new",
    owner=None,
    automation=Automation.RUNNING,
    can_reply=True,
    progress=SequenceProgress(
        sequence="Standard follow-up",
        state="active",
        reason="",
        done=1,
        total=7,
        next_step="Thank-you email",
        next_channel="email",
        next_at="Wed, Nov 25 at 9:15 AM CST",
    ),
)
TASK = CallTaskView(
    task_id=42,
    lead_id=7,
    lead_name="Dana Lee",
    phone="+13125550142",
    phone_display="+1 312-555-0142",
    email="dana@example.com",
    source="website",
    stage="engaged",
    first_message="Lower back pain, any openings?",
    reason="asked a question",
    status="open",
    call_script="Hi Dana, this is Sam from Lakeside.",
    voicemail_script="Hi Dana, call us back at 312-555-0111.",
    automation=Automation.PAUSED,
    due_at="Wednesday, Nov 25 at 9:00 AM",
    last_reply="Do you take Blue Cross?",
    mention="<!subteam^S0ONCALL>",
)
ENTRIES = [
    OutboundEntry(
        message_id=1,
        channel="sms",
        text="Hi Dana! Reply STOP to opt out.",
        status="queued",
        step="First text",
        at="Wed, Nov 25 at 9:00 AM CST",
    ),
    OutboundEntry(
        message_id=2,
        channel="email",
        text="Thanks for reaching out",
        status="bounce",
        subject="Your next step",
        step="Thank-you email",
        error_code="550",
    ),
    OutboundEntry(message_id=3, channel="sms", text="See you then", status="delivered", author="U0ALICE"),
    InboundEntry(
        channel="sms",
        text="Can I come tomorrow at 3?",
        classification="asks_time",
        requested_time="Thursday, Nov 26 at 3:00 PM",
        why="read as: asks_time (rule: phrase 'can i come' with a time) <b>",
    ),
    DecisionEntry(text="replied; a person takes over", actor="the lead", mention="<@U0ALICE>"),
    FailureEntry(channel="sms", error="invalid number (code 21211)", step="First text"),
    NeedsPersonEntry(text="It is not known whether the first text reached the lead", mention="<!subteam^S0ONCALL>"),
    CallOutcomeEntry(task_id=42, outcome="left_voicemail", logged_by="U0BOB", notes="left the script"),
    ThreadReplyStatus(channel="sms", author="U0ALICE", status="delivered"),
    ThreadReplyStatus(channel="email", author="U0ALICE", status="failed", error_code="550", error="mailbox full"),
]


def assert_valid(blocks: list[dict]) -> None:
    """What Slack would accept: known block types, every documented limit, at most 50 blocks."""
    assert 0 < len(blocks) <= 50
    parsed = Block.parse_all(blocks)
    assert all(block is not None for block in parsed)
    for block in parsed:
        block.validate_json()


def buttons(blocks: list[dict]) -> dict[str, str]:
    return {e["action_id"]: e["value"] for b in blocks if b["type"] == "actions" for e in b["elements"]}


def text_of(blocks: list[dict]) -> str:
    return json.dumps(blocks, ensure_ascii=False)


# --- text ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, escaped",
    [
        ("<!channel>", "&lt;!channel&gt;"),
        ("<@U123>", "&lt;@U123&gt;"),
        ("<http://x|link>", "&lt;http://x|link&gt;"),
        ("Tom & Jerry", "Tom &amp; Jerry"),
        ("&lt; already", "&amp;lt; already"),
        ("*bold* _it_ `code` \"quotes\" 'x'", "*bold* _it_ `code` \"quotes\" 'x'"),
        ("", ""),
    ],
)
def test_escape_replaces_only_ampersand_and_angle_brackets(raw, escaped):
    assert escape(raw) == escaped


@pytest.mark.parametrize(
    "text, limit", [("a" * 5000, 3000), ("&amp;" * 1000, 3000), ("ab&lt;cd" * 30, 150), ("x" * 74 + "&gt;", 75)]
)
def test_clipped_text_fits_ends_in_an_ellipsis_and_never_cuts_an_entity(text, limit):
    clipped = clip(text, limit)
    assert len(clipped) <= limit and clipped.endswith("…")
    body = clipped[:-1]
    assert body.count("&") == body.count(";")


def test_mentions_are_formatted_for_users_and_user_groups():
    assert mention("U0ALICE") == "<@U0ALICE>"
    assert mention("S0ONCALL") == "<!subteam^S0ONCALL>"
    assert mention("<!subteam^S0ONCALL>") == "<!subteam^S0ONCALL>"
    assert mention(None) is None and mention("  ") is None


def test_action_ids_and_modal_callbacks_are_unique_names_listeners_can_import():
    assert len({a.value for a in ActionId}) == len(ActionId)
    assert {
        "lead_claim",
        "lead_reply",
        "lead_pause",
        "lead_resume",
        "lead_booked",
        "lead_not_interested",
        "task_claim",
        "task_log_outcome",
        "task_snooze",
    } <= {a.value for a in ActionId}
    assert MODAL_CALLBACKS == ("log_outcome_modal", "reply_modal", "book_modal", "reschedule_modal")


# --- the lead card ------------------------------------------------------------------------------


def test_the_card_shows_who_what_they_asked_where_they_stand_and_the_buttons():
    blocks = lead_card_blocks(CARD)
    assert_valid(blocks)
    shown = text_of(blocks)
    for part in (
        "Dana Lee",
        "<tel:+13125550142|+1 312-555-0142>",
        "dana@example.com",
        "website",
        "Lower back pain",
        "New",
        "unclaimed",
        "Standard follow-up · touch 1 of 7",
        "next: *Thank-you email* (Email) Wed, Nov 25 at 9:15 AM CST",
    ):
        assert part in shown
    assert buttons(blocks) == {
        "lead_claim": "7",
        "lead_reply": "7",
        "lead_pause": "7",
        "lead_booked": "7",
        "lead_not_interested": "7",
    }


@pytest.mark.parametrize(
    "change, present, absent",
    [
        ({"owner": "U0ALICE"}, {"lead_reply"}, {"lead_claim"}),
        ({"automation": Automation.PAUSED}, {"lead_resume"}, {"lead_pause"}),
        ({"automation": Automation.OFF}, set(), {"lead_pause", "lead_resume"}),
        ({"stage": "booked"}, {"lead_not_interested"}, {"lead_booked"}),
        ({"stage": "lost", "automation": Automation.OFF}, {"lead_booked"}, {"lead_not_interested", "lead_pause"}),
        ({"can_reply": False}, {"lead_claim"}, {"lead_reply"}),
    ],
)
def test_the_card_offers_only_the_buttons_that_apply(change, present, absent):
    blocks = lead_card_blocks(replace(CARD, **change))
    assert_valid(blocks)
    assert present <= set(buttons(blocks)) and not absent & set(buttons(blocks))


VISIT = {
    "appointment_id": 31,
    "appointment_when": "Monday, Nov 30 at 10:00 AM",
    "stage": "booked",
    "automation": Automation.OFF,
}


@pytest.mark.parametrize(
    "change, shown, present, absent",
    [
        (
            {"appointment_status": "booked", "appointment_at": "Monday, Nov 30 at 10:00 AM"},
            "Booked for Monday",
            {"appointment_reschedule", "appointment_cancel"},
            {"appointment_attended", "appointment_no_show", "lead_booked"},
        ),
        (
            {"appointment_status": "confirmed", "appointment_started": True},
            "Confirmed for Monday",
            {"appointment_attended", "appointment_no_show", "appointment_reschedule"},
            {"lead_booked"},
        ),
        (
            {"appointment_status": "cancelled", "stage": "engaged"},
            "Cancelled Monday",
            {"lead_booked", "lead_back_to_follow_up"},
            {"appointment_cancel", "appointment_reschedule"},
        ),
        (
            {"appointment_status": "no_show", "stage": "engaged"},
            "No-show Monday",
            {"lead_booked"},
            {"appointment_attended", "lead_back_to_follow_up"},
        ),
        ({"appointment_status": "attended"}, "Attended Monday", set(), {"appointment_attended", "appointment_cancel"}),
    ],
)
def test_the_card_shows_the_appointment_and_the_buttons_its_state_allows(change, shown, present, absent):
    blocks = lead_card_blocks(replace(CARD, **{**VISIT, **change}))
    assert_valid(blocks)
    assert shown in text_of(blocks)
    offered = buttons(blocks)
    assert present <= set(offered) and not absent & set(offered)
    for action in ("appointment_reschedule", "appointment_cancel", "appointment_attended", "appointment_no_show"):
        if action in offered:
            assert offered[action] == "31"  # the appointment's id, not the lead's


def test_an_owned_card_names_the_owner():
    assert "<@U0ALICE>" in text_of(lead_card_blocks(replace(CARD, owner="U0ALICE")))


@pytest.mark.parametrize(
    "state, words",
    [("paused", "Automation paused"), ("stopped", "Follow-up stopped"), ("completed", "Standard follow-up finished")],
)
def test_the_card_says_when_the_sequence_is_not_running(state, words):
    progress = replace(CARD.progress, state=state, reason="replied; a person takes over")
    assert words in text_of(lead_card_blocks(replace(CARD, progress=progress)))


def test_the_card_is_compact_a_header_one_section_one_context_and_the_buttons():
    blocks = lead_card_blocks(CARD)
    assert [b["type"] for b in blocks] == ["header", "section", "context", "actions"]
    long = lead_card_blocks(replace(CARD, first_message="My lower back hurts. " * 100))
    assert len(long[1]["text"]["text"]) < 400  # what they asked is cut; the whole of it is in the thread


def test_who_paused_is_a_real_mention_on_the_card_and_lead_text_in_a_reason_is_not():
    paused = replace(CARD.progress, state="paused", reason="paused by <@U0ALICE>")
    shown = text_of(lead_card_blocks(replace(CARD, progress=paused)))
    assert "paused by <@U0ALICE>" in shown and "&lt;@U0ALICE&gt;" not in shown
    assert (
        bot_text("<!channel> <@U0EVIL> asked by <@U0ALICE>") == "&lt;!channel&gt; &lt;@U0EVIL&gt; asked by <@U0ALICE>"
    )
    assert bot_text("said <@U0EVIL> here") == "said &lt;@U0EVIL&gt; here"


def test_a_wait_past_the_playbook_time_says_why():
    progress = replace(
        CARD.progress,
        next_step="First text",
        next_channel="sms",
        next_at="Wed, Nov 25 at 8:00 AM EST their time (7:00 AM CST here)",
        next_wait="quiet hours",
    )
    shown = text_of(lead_card_blocks(replace(CARD, progress=progress)))
    assert "next: *First text* (SMS) Wed, Nov 25 at 8:00 AM EST their time (7:00 AM CST here) — quiet hours" in shown


def test_no_internal_id_shows_on_a_card_or_in_the_thread():
    shown = text_of(lead_card_blocks(CARD)) + "".join(text_of(thread_entry_blocks(e)) for e in ENTRIES)
    for internal in ("instant_sms", "same_day_email", "day1_call", "(default)"):
        assert internal not in shown


def test_lead_supplied_text_on_the_card_pings_no_one_and_links_nowhere():
    card = replace(CARD, name=HOSTILE, first_message=HOSTILE, source=HOSTILE, email=HOSTILE)
    blocks = lead_card_blocks(card)
    assert_valid(blocks)
    for shown in (text_of(blocks), lead_card_text(card)):
        assert "<!channel>" not in shown and "<!here>" not in shown and "<@U0EVIL>" not in shown
        assert "<http://evil" not in shown and "&lt;!channel&gt;" in shown


def test_huge_lead_text_is_cut_to_slacks_limits():
    card = replace(CARD, name="N" * 500, first_message="word " * 4000, source="s" * 3000)
    blocks = lead_card_blocks(card)
    assert_valid(blocks)
    assert len(blocks[0]["text"]["text"]) <= 150 and blocks[0]["text"]["text"].endswith("…")
    assert all(len(b["text"]["text"]) <= 3000 for b in blocks if b["type"] == "section" and "text" in b)


# --- thread entries -----------------------------------------------------------------------------


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: type(e).__name__)
def test_every_thread_entry_is_valid_block_kit_with_a_notification_text(entry):
    assert_valid(thread_entry_blocks(entry))
    assert thread_entry_text(entry).strip()


def test_a_sent_touch_shows_its_channel_text_and_delivery_status():
    shown = text_of(thread_entry_blocks(ENTRIES[0]))
    assert "SMS sent" in shown and "First text" in shown and "Reply STOP" in shown and "queued" in shown
    email = text_of(thread_entry_blocks(ENTRIES[1]))
    assert "Your next step" in email and "bounce" in email and "550" in email


def test_an_email_in_the_thread_is_its_subject_and_first_line_with_the_rest_a_click_away():
    body = "Hi Dana,\n\nThanks for reaching out about your lower back.\n" + "More detail. " * 300
    entry = replace(ENTRIES[1], text=body, status="delivered")
    blocks = thread_entry_blocks(entry)
    assert_valid(blocks)
    shown = text_of(blocks)
    assert "Your next step" in shown and "Hi Dana," in shown and "More detail" not in shown
    [opener] = [b["accessory"] for b in blocks if "accessory" in b]
    assert (opener["action_id"], opener["value"], opener["text"]["text"]) == ("email_open", "2", "Show full email")
    reply = InboundEntry(
        channel="email",
        text="Yes please.\nThursday works.",
        classification="plain",
        subject="Re: Your next step",
        message_id=9,
    )
    assert buttons_or_accessories(thread_entry_blocks(reply)) == {"email_open": "9"}


def buttons_or_accessories(blocks: list[dict]) -> dict[str, str]:
    found = buttons(blocks)
    found.update({b["accessory"]["action_id"]: b["accessory"]["value"] for b in blocks if "accessory" in b})
    return found


def test_a_team_reply_names_who_sent_it():
    assert "SMS from <@U0ALICE>" in text_of(thread_entry_blocks(ENTRIES[2]))


def test_a_reply_shows_how_it_was_understood_and_the_time_asked_for():
    shown = text_of(thread_entry_blocks(ENTRIES[3]))
    assert "asked for a time" in shown and "Thursday, Nov 26 at 3:00 PM" in shown


def test_a_reply_says_why_it_was_read_so_in_a_context_line_of_its_own():
    blocks = thread_entry_blocks(ENTRIES[3])
    assert_valid(blocks)
    [why] = [Block.parse(b) for b in blocks if b["type"] == "context" and ":mag:" in json.dumps(b)]
    assert why.elements[0].text == ":mag: read as: asks_time (rule: phrase 'can i come' with a time) &lt;b&gt;"


def test_a_decision_keeps_the_deciders_mention_but_escapes_everything_else():
    entry = DecisionEntry(text="paused by <@U0ALICE> after <!channel>", actor="<@U0ALICE>")
    shown = text_of(thread_entry_blocks(entry))
    assert "paused by <@U0ALICE>" in shown and "&lt;!channel&gt;" in shown


def test_a_decision_by_someone_not_named_in_it_says_who():
    shown = text_of(thread_entry_blocks(DecisionEntry(text="booked", actor="<@U0BOB>")))
    assert "booked · by <@U0BOB>" in shown


def test_alerts_mention_who_must_act():
    assert "<@U0ALICE>" in text_of(thread_entry_blocks(ENTRIES[4]))
    assert "<!subteam^S0ONCALL>" in thread_entry_text(ENTRIES[6])


def test_a_call_outcome_says_what_happened_and_who_logged_it():
    shown = text_of(thread_entry_blocks(ENTRIES[7]))
    assert "Left voicemail" in shown and "logged by <@U0BOB>" in shown


def test_a_call_outcome_says_what_follows_in_the_same_entry():
    entry = replace(ENTRIES[7], consequence="left voicemail; sequence continues")
    [block] = thread_entry_blocks(entry)
    assert "Left voicemail* — logged by <@U0BOB> · left voicemail; sequence continues" in block["text"]["text"]


@pytest.mark.parametrize(
    "entry",
    [
        OutboundEntry(message_id=1, channel="sms", text=HOSTILE, status="sent", subject=HOSTILE),
        InboundEntry(channel="email", text=HOSTILE, classification="question", subject=HOSTILE),
        FailureEntry(channel="sms", error=HOSTILE),
        NeedsPersonEntry(text=HOSTILE),
        CallOutcomeEntry(task_id=1, outcome="no_answer", logged_by="U0BOB", notes=HOSTILE),
        ThreadReplyStatus(channel="sms", author=HOSTILE, status=HOSTILE),
        ThreadReplyStatus(channel=HOSTILE, author="U0ALICE", status="failed", error_code=HOSTILE, error=HOSTILE),
    ],
    ids=lambda e: type(e).__name__,
)
def test_lead_supplied_text_in_thread_entries_is_escaped(entry):
    for shown in (text_of(thread_entry_blocks(entry)), thread_entry_text(entry)):
        assert "<!channel>" not in shown and "<@U0EVIL>" not in shown and "<http://evil" not in shown


@pytest.mark.parametrize(
    ("entry", "text", "shown"),
    [
        (
            ThreadReplyStatus(channel="sms", author="U0ALICE", status="queued"),
            "<@U0ALICE>'s text to the lead · queued",
            ":outbox_tray: <@U0ALICE>'s text to the lead · :hourglass_flowing_sand: queued",
        ),
        (
            ThreadReplyStatus(channel="sms", author="U0ALICE", status="delivered"),
            "<@U0ALICE>'s text to the lead · delivered",
            ":outbox_tray: <@U0ALICE>'s text to the lead · :white_check_mark: delivered",
        ),
        (
            ThreadReplyStatus(
                channel="sms", author="U0ALICE", status="failed", error_code="21610", error="unsubscribed"
            ),
            "<@U0ALICE>'s text to the lead failed: unsubscribed (error 21610)",
            ":x: <@U0ALICE>'s text to the lead failed: unsubscribed (error 21610)",
        ),
        (
            ThreadReplyStatus(channel="email", author="U0ALICE", status="bounce"),
            "<@U0ALICE>'s email to the lead failed: bounce",
            ":x: <@U0ALICE>'s email to the lead failed: bounce",
        ),
        (
            ThreadReplyStatus(channel="sms", author="U0ALICE", status="unknown", error="the process stopped"),
            "<@U0ALICE>'s text to the lead · outcome unknown: the process stopped",
            ":grey_question: <@U0ALICE>'s text to the lead · outcome unknown: the process stopped",
        ),
    ],
    ids=["queued", "delivered", "failed", "bounced", "unknown"],
)
def test_a_replys_status_line_says_how_it_fared_and_never_repeats_the_words(entry, text, shown):
    blocks = thread_entry_blocks(entry)
    assert_valid(blocks)
    [line] = blocks
    assert line["type"] == "context"
    assert (thread_entry_text(entry), line["elements"][0]["text"]) == (text, shown)


# --- call tasks ---------------------------------------------------------------------------------


def test_an_open_call_task_has_why_context_scripts_tap_to_call_and_every_button():
    blocks = call_task_blocks(TASK)
    assert_valid(blocks)
    shown = text_of(blocks)
    for part in (
        "Call Dana Lee",
        "asked a question",
        "<tel:+13125550142|+1 312-555-0142>",
        "Lower back pain",
        "Do you take Blue Cross?",
        "Hi Dana, this is Sam",
        "call us back at 312-555-0111",
        "<!subteam^S0ONCALL>",
    ):
        assert part in shown
    assert buttons(blocks) == {
        a: "42"
        for a in ("task_claim", "task_log_outcome", "task_resume", "task_booked", "task_not_interested", "task_snooze")
    }
    assert "<!subteam^S0ONCALL>" in call_task_text(TASK)


def test_a_claimed_call_task_shows_who_has_it_and_no_claim_button():
    blocks = call_task_blocks(replace(TASK, status="claimed", claimed_by="U0ALICE", mention=None))
    assert_valid(blocks)
    assert "Claimed by <@U0ALICE>" in text_of(blocks)
    assert "task_claim" not in buttons(blocks) and "task_log_outcome" in buttons(blocks)


@pytest.mark.parametrize(
    "change, words",
    [
        (
            {"status": "done", "outcome": "left_voicemail", "logged_by": "U0BOB", "notes": "no pickup"},
            ["Done: Left voicemail", "logged by <@U0BOB>", "no pickup"],
        ),
        (
            {
                "status": "done",
                "outcome": "call_back",
                "logged_by": "U0BOB",
                "callback_at": "Friday, Nov 27 at 2:00 PM",
            },
            ["Done: Call back", "Friday, Nov 27 at 2:00 PM"],
        ),
        ({"status": "cancelled", "notes": "cancelled: booked"}, ["Cancelled", "cancelled: booked"]),
    ],
)
def test_a_finished_call_task_shows_what_happened_and_no_buttons(change, words):
    blocks = call_task_blocks(replace(TASK, mention=None, **change))
    assert_valid(blocks)
    assert not buttons(blocks)
    assert all(w in text_of(blocks) for w in words)


@pytest.mark.parametrize(
    "change, words",
    [
        ({}, "open — claim it in the channel"),
        ({"status": "claimed", "claimed_by": "U0ALICE"}, "claimed by <@U0ALICE>"),
        ({"status": "done", "outcome": "no_answer"}, "done: No answer"),
    ],
)
def test_the_thread_points_at_the_call_task_in_one_line(change, words):
    blocks = call_task_pointer_blocks(replace(TASK, **change))
    assert_valid(blocks)
    assert [b["type"] for b in blocks] == ["context"] and not buttons(blocks)
    assert words in text_of(blocks) and "asked a question" in text_of(blocks)
    assert "Hi Dana, this is Sam" not in text_of(blocks)  # the scripts are on the task in the channel


def test_pause_shows_on_a_task_while_automation_runs():
    assert "task_pause" in buttons(call_task_blocks(replace(TASK, automation=Automation.RUNNING)))


def test_hostile_text_in_a_call_task_is_escaped_and_long_scripts_fit():
    task = replace(
        TASK,
        lead_name=HOSTILE,
        first_message=HOSTILE,
        last_reply=HOSTILE,
        reason=HOSTILE,
        call_script=HOSTILE * 100,
        voicemail_script="v" * 9000,
        email=HOSTILE,
    )
    blocks = call_task_blocks(task)
    assert_valid(blocks)
    for shown in (text_of(blocks), call_task_text(task)):
        assert "<!channel>" not in shown and "<@U0EVIL>" not in shown and "<http://evil" not in shown
