"""/followup through the real HTTP route: each subcommand, unknown words, and the admins-only refusals."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from slack_sdk import WebClient
from sqlalchemy import select

from bot.core.states import EnrollmentState, Stage
from bot.store.audit import SYSTEM
from bot.store.models import Appointment, Enrollment, Lead, OutboxEvent
from bot.store.outbox import Notice
from bot.usecases.lead_actions import book, pause_lead
from tests.handlers.conftest import ADMIN, ALICE, BOB, LEADS, any_database, lead_row, new_lead


def outbox_kinds(services, lead_id: int) -> list[str]:
    with services.session_factory() as session:
        return list(
            session.scalars(select(OutboxEvent.kind).where(OutboxEvent.lead_id == lead_id).order_by(OutboxEvent.id))
        )


def enrollment_states(services, lead_id: int) -> list[str]:
    with services.session_factory() as session:
        return list(session.scalars(select(Enrollment.state).where(Enrollment.lead_id == lead_id)))


# --- help and unknown words ---------------------------------------------------------------------


@any_database
def test_help_lists_every_subcommand(workspace):
    answer = workspace.command("help")

    assert answer.status_code == 200
    text = workspace.last_answer()
    for word in ("new", "list", "show", "pause", "resume", "stop", "book", "claim", "optout", "stats", "!reply"):
        assert word in text


@any_database
def test_the_bare_command_answers_with_help(workspace):
    workspace.command("")

    assert "/followup* understands" in workspace.last_answer()


@any_database
def test_unknown_words_get_a_short_usage_never_a_stack_trace(workspace):
    answer = workspace.command("delete everything now")

    assert answer.status_code == 200 and answer.text == ""
    text = workspace.last_answer()
    assert "I don't know `delete`" in text and "/followup list" in text
    assert "Traceback" not in text


@any_database
def test_the_command_is_acknowledged_before_its_work_is_done(workspace, services):
    services.wakeups.connect(dispatcher=lambda: time.sleep(1.0))  # an instant touch being sent

    started = time.monotonic()
    response = workspace.command("new (312) 555-0142 Dana Lee")

    assert response.status_code == 200
    assert ":new: Added" in workspace.last_answer()
    acked = response.elapsed.total_seconds()
    assert acked < 0.7, f"acknowledged after {acked:.2f}s, not before the work"
    assert time.monotonic() - started >= 1.0


# --- new ----------------------------------------------------------------------------------------


def test_new_adds_a_lead_and_starts_its_follow_up(workspace, services):
    sent_now: list[int] = []
    services.wakeups.connect(lead=sent_now.append)  # the fast lane: the instant text goes at once

    workspace.command("new (312) 555-0142 Dana Lee", user=ALICE)

    assert "Added *Dana Lee* (#1)" in workspace.last_answer()
    lead = lead_row(services, 1)
    assert (lead.phone, lead.name, lead.source) == ("+13125550142", "Dana Lee", "slack")
    assert enrollment_states(services, 1) == [EnrollmentState.ACTIVE]
    assert outbox_kinds(services, 1)[0] == Notice.LEAD_CREATED  # the poster posts the card
    assert sent_now == [1]


@any_database
def test_new_takes_an_email_instead_of_a_phone(workspace, services):
    workspace.command("new dana@example.com Dana")

    assert "Added *Dana*" in workspace.last_answer()
    assert "consent" not in workspace.last_answer()  # no phone: texts are not in question
    assert lead_row(services, 1).email == "dana@example.com"


@any_database
def test_new_says_texts_wait_for_consent_and_how_to_record_it(workspace, services):
    workspace.command("new (312) 555-0142 Dana Lee")

    answer = workspace.last_answer()
    assert "Automated texts wait: no SMS consent on record, so they get email and calls" in answer
    assert '`/followup consent 1 verbal "what they said"`' in answer
    workspace.command('consent 1 verbal "agreed to texts on the phone"')
    assert lead_row(services, 1).sms_consent


@any_database
def test_new_with_a_bad_number_names_the_field(workspace, services):
    workspace.command("new 555-0142 Dana")

    text = workspace.last_answer()
    assert "cannot be added" in text and "phone:" in text
    with services.session_factory() as session:
        assert session.scalar(select(Lead.id)) is None


@any_database
def test_new_for_a_lead_already_in_follow_up_changes_nothing(workspace, services):
    lead_id = new_lead(services)

    workspace.command("new +1 312 555 0142")

    assert f"already a lead (#{lead_id})" in workspace.last_answer()
    with services.session_factory() as session:
        assert len(session.scalars(select(Lead)).all()) == 1


# --- list and show ------------------------------------------------------------------------------


def test_list_filters_leads_by_where_they_stand(workspace, services, clock):
    fresh = new_lead(services, name="Fresh Lead", phone="+13125550101", email="fresh@example.com")
    mine = new_lead(services, name="Mine Lead", phone="+13125550102", email="mine@example.com")
    paused = new_lead(services, name="Paused Lead", phone="+13125550103", email="paused@example.com")
    booked = new_lead(services, name="Booked Lead", phone="+13125550104", email="booked@example.com")
    with services.session_factory.begin() as session:
        session.get(Lead, mine).owner = ALICE
        pause_lead(session, services, session.get(Lead, paused), now=clock.now(), actor=SYSTEM)
        book(
            session,
            services,
            session.get(Lead, booked),
            start_at=clock.now() + timedelta(days=2),
            now=clock.now(),
            actor=SYSTEM,
        )

    shown = {}
    for which in ("open", "mine", "paused", "booked", "nurture"):
        workspace.command(f"list {which}")
        shown[which] = workspace.last_answer()

    assert all(f"(#{lead})" in shown["open"] for lead in (fresh, mine, paused))
    assert f"(#{booked})" not in shown["open"]
    assert f"(#{mine})" in shown["mine"] and f"(#{fresh})" not in shown["mine"]
    assert f"(#{paused})" in shown["paused"] and "automation paused" in shown["paused"]
    assert f"(#{booked})" in shown["booked"] and ":calendar: visit" in shown["booked"]
    assert "none" in shown["nurture"]


@any_database
def test_list_with_an_unknown_filter_names_the_choices(workspace):
    workspace.command("list hot")

    assert "`mine|open|paused|booked|nurture|lost|opted-out|all`" in workspace.last_answer()


def test_show_finds_a_lead_by_phone_in_any_format_and_links_its_card(workspace, services, slack):
    lead_id = new_lead(services, card=False)
    card = WebClient(token=slack.bot_token, base_url=slack.url + "/api/").chat_postMessage(channel=LEADS, text="card")
    with services.session_factory.begin() as session:
        lead = session.get(Lead, lead_id)
        lead.slack_channel, lead.slack_ts = LEADS, card["ts"]

    workspace.command("show (312) 555-0142")

    text = workspace.last_answer()
    assert f"Dana Lee (#{lead_id})" in text and "Lower back pain" in text and "First text" in text
    assert "Open the card and its thread" in text and "/archives/C0LEADS/p" in text


@any_database
def test_show_an_ambiguous_name_lists_the_matching_leads(workspace, services):
    first = new_lead(services, name="Dana Lee", phone="+13125550101", email="a@example.com")
    second = new_lead(services, name="Dana Smith", phone="+13125550102", email="b@example.com")

    workspace.command("show dana")

    text = workspace.last_answer()
    assert "2 leads match `dana`" in text
    assert f"#{first} Dana Lee" in text and f"#{second} Dana Smith" in text


@any_database
def test_show_an_unknown_lead_says_so(workspace):
    workspace.command("show Nobody")

    assert "No lead matches `Nobody`" in workspace.last_answer()


@any_database
def test_lead_text_in_answers_pings_no_one(workspace, services):
    new_lead(services, name="<!channel> <@U0BOSS>")

    workspace.command("list")

    text = workspace.last_answer()
    assert "<!channel>" not in text and "<@U0BOSS>" not in text
    assert "&lt;!channel&gt;" in text


# --- changing a lead ----------------------------------------------------------------------------


@any_database
def test_pause_then_resume_a_lead(workspace, services):
    lead_id = new_lead(services)

    workspace.command(f"pause {lead_id}")
    assert "Paused the automated follow-up of *Dana Lee*" in workspace.last_answer()
    assert enrollment_states(services, lead_id) == [EnrollmentState.PAUSED]

    workspace.command("resume Dana Lee")
    assert "Resumed" in workspace.last_answer()
    assert enrollment_states(services, lead_id) == [EnrollmentState.ACTIVE]
    assert Notice.LEAD_CHANGED in outbox_kinds(services, lead_id)  # the poster updates the card


@any_database
def test_pausing_a_paused_lead_says_why_nothing_changed(workspace, services):
    lead_id = new_lead(services)
    workspace.command(f"pause {lead_id}")

    workspace.command(f"pause {lead_id}")

    assert "Nothing changed: automation is not running" in workspace.last_answer()


@any_database
def test_stop_is_refused_to_anyone_but_an_admin(workspace, services):
    lead_id = new_lead(services)

    workspace.command(f"stop {lead_id}", user=BOB)

    text = workspace.last_answer()
    assert "Only admins can stop a lead" in text and f"<@{ADMIN}>" in text
    assert lead_row(services, lead_id).stage == Stage.NEW
    assert enrollment_states(services, lead_id) == [EnrollmentState.ACTIVE]


@any_database
def test_an_admin_stops_a_lead(workspace, services):
    lead_id = new_lead(services)

    workspace.command(f"stop {lead_id}", user=ADMIN)

    assert "Stopped all follow-up" in workspace.last_answer()
    assert lead_row(services, lead_id).stage == Stage.LOST
    assert enrollment_states(services, lead_id) == [EnrollmentState.STOPPED]


@any_database
def test_optout_is_refused_to_anyone_but_an_admin(workspace, services):
    lead_id = new_lead(services)

    workspace.command(f"optout {lead_id}", user=ALICE)

    assert "Only admins can record an opt-out" in workspace.last_answer()
    assert lead_row(services, lead_id).sms_opted_out_at is None


def test_an_admin_records_an_opt_out_of_every_channel(workspace, services, clock):
    lead_id = new_lead(services)

    workspace.command("optout dana@example.com", user=ADMIN)

    assert "opted out of sms and email" in workspace.last_answer()
    lead = lead_row(services, lead_id)
    assert lead.sms_opted_out_at == clock.now() and lead.email_opted_out_at == clock.now()
    assert lead.stage == Stage.OPTED_OUT


def test_book_reads_when_in_the_business_time_zone(workspace, services):
    lead_id = new_lead(services)

    workspace.command(f"book {lead_id} tomorrow 3pm")

    assert "Booked *Dana Lee* for Thu, Nov 26 at 3:00 PM CST" in workspace.last_answer()
    with services.session_factory() as session:
        visit = session.scalars(select(Appointment).where(Appointment.lead_id == lead_id)).one()
    assert visit.start_at == datetime(2026, 11, 26, 21, 0, tzinfo=UTC)  # 3 pm in Chicago
    assert visit.booked_by == f"<@{ALICE}>"
    assert lead_row(services, lead_id).stage == Stage.BOOKED


@any_database
def test_book_by_name_with_a_date(workspace, services):
    lead_id = new_lead(services)

    workspace.command("book Dana Lee 2026-12-01 10:00")

    with services.session_factory() as session:
        visit = session.scalars(select(Appointment).where(Appointment.lead_id == lead_id)).one()
    assert visit.start_at == datetime(2026, 12, 1, 16, 0, tzinfo=UTC)


@any_database
def test_book_in_the_past_is_refused(workspace, services):
    lead_id = new_lead(services)

    workspace.command(f"book {lead_id} 2026-11-01 10:00")

    assert "the appointment time is in the past" in workspace.last_answer()
    assert lead_row(services, lead_id).stage == Stage.NEW


@any_database
def test_claim_makes_the_lead_yours_and_a_second_person_is_told_who_has_it(workspace, services):
    lead_id = new_lead(services)

    workspace.command(f"claim {lead_id}", user=ALICE)
    assert "is yours" in workspace.last_answer()

    workspace.command(f"claim {lead_id}", user=BOB)
    assert f"already claimed by <@{ALICE}>" in workspace.last_answer()
    assert lead_row(services, lead_id).owner == ALICE


@any_database
def test_claim_answers_in_its_own_words_when_the_lead_is_unknown(workspace):
    workspace.command("claim #999")

    assert "No lead matches `#999`" in workspace.last_answer()


# --- stats --------------------------------------------------------------------------------------


@any_database
def test_stats_answers_with_the_periods_numbers(workspace, services):
    new_lead(services)

    workspace.command("stats")
    week = workspace.last_answer()
    workspace.command("stats 30d")
    month = workspace.last_answer()

    assert "Last 7 days" in week and "*Leads in*\\n1" in week and "Speed to lead" in week
    assert "Last 30 days" in month


@any_database
def test_stats_for_an_unknown_period_names_the_choices(workspace):
    workspace.command("stats forever")

    assert "`7d` or `30d`" in workspace.last_answer()


@any_database
def test_commands_change_no_slack_message_themselves(workspace, services, slack):
    lead_id = new_lead(services)

    for text in (f"claim {lead_id}", f"pause {lead_id}", f"resume {lead_id}", f"book {lead_id} tomorrow 3pm"):
        workspace.command(text)

    assert slack.calls("chat.update") == [] and slack.calls("chat.postMessage") == []
    assert {Notice.LEAD_CHANGED, Notice.DECISION} <= set(outbox_kinds(services, lead_id))


# --- consent on record ----------------------------------------------------------------------------


def consent_log(services, lead_id: int) -> list[tuple[bool, str, str, str]]:
    from bot.store.models import ConsentEntry

    with services.session_factory() as session:
        return [
            (e.granted, e.method, e.evidence, e.actor)
            for e in session.scalars(
                select(ConsentEntry).where(ConsentEntry.lead_id == lead_id).order_by(ConsentEntry.id)
            )
        ]


@any_database
def test_a_team_member_records_verbal_consent_with_a_note_and_the_thread_is_told(workspace, services):
    lead_id = new_lead(services, consent=False)
    assert lead_row(services, lead_id).sms_consent is False

    workspace.command(f'consent {lead_id} verbal "said yes to texts about her visit, on the phone today"', user=ALICE)

    assert "SMS consent recorded (verbal)" in workspace.last_answer()
    lead = lead_row(services, lead_id)
    assert lead.sms_consent is True and lead.sms_consent_method == "verbal"
    assert consent_log(services, lead_id) == [
        (True, "verbal", "said yes to texts about her visit, on the phone today", f"<@{ALICE}>")
    ]
    assert Notice.DECISION in outbox_kinds(services, lead_id)


@any_database
def test_verbal_consent_needs_a_note_and_cannot_undo_a_stop(workspace, services, clock):
    lead_id = new_lead(services, consent=False)

    workspace.command(f"consent {lead_id} verbal", user=ALICE)
    assert "Add a note of what the lead said" in workspace.last_answer()
    assert consent_log(services, lead_id) == []

    with services.session_factory.begin() as session:
        session.get(Lead, lead_id).sms_opted_out_at = clock.now()
    workspace.command(f'consent {lead_id} verbal "agreed at the desk"', user=ALICE)
    assert "only the lead can opt back in, by texting START" in workspace.last_answer()
    assert lead_row(services, lead_id).sms_consent is False


@any_database
def test_a_team_member_records_that_the_lead_withdrew_consent(workspace, services):
    lead_id = new_lead(services)

    workspace.command(f'consent {lead_id} revoked "asked on the phone for no more texts"', user=BOB)

    assert "No SMS consent on record any more" in workspace.last_answer()
    assert lead_row(services, lead_id).sms_consent is False
    assert consent_log(services, lead_id)[-1] == (False, "team", "asked on the phone for no more texts", f"<@{BOB}>")


@pytest.mark.parametrize("reference", ["Dana\x00Lee", "\x00", "dana@example.com\x00", "Dana\x1bLee", "12\x7f"])
@pytest.mark.parametrize("verb", ["show", "pause", "claim"])
def test_a_control_character_in_a_lead_reference_is_refused_up_front(workspace, services, verb, reference):
    """NUL reached PostgreSQL as a DataError; no lead can be named with a control character, so say so."""
    new_lead(services)

    answer = workspace.command(f"{verb} {reference}")

    assert answer.status_code == 200 and workspace.errors == []
    text = workspace.last_answer()
    assert "control character" in text and "id, phone, email or name" in text
    assert enrollment_states(services, 1) == ["active"]


@pytest.mark.parametrize("reference", ["²", "#١٢"])
@any_database
def test_a_lead_reference_of_non_ascii_digits_is_read_as_a_name(workspace, services, reference):
    new_lead(services)

    workspace.command(f"show {reference}")

    assert f"No lead matches `{reference}`" in workspace.last_answer()
