"""The appointment from Slack, through the real route: book on a closed day, reschedule, cancel, attended, no-show."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from bot.core.states import Stage
from bot.slack.blocks import ActionId
from bot.store.audit import SYSTEM
from bot.store.models import Appointment, AuditEntry, CallTask, Enrollment, Lead, OutboxEvent
from bot.usecases.appointments import book
from tests.handlers.conftest import ALICE, any_database, lead_row, new_lead

#: Monday Nov 30 2026, 10:00 in Chicago.
VISIT = datetime(2026, 11, 30, 16, 0, tzinfo=UTC)


def moment(at: datetime) -> dict[str, Any]:
    return {"type": "datetimepicker", "selected_date_time": int(at.timestamp())}


def booked_lead(services, start_at: datetime = VISIT) -> tuple[int, int]:
    lead_id = new_lead(services)
    with services.session_factory.begin() as session:
        lead = session.get(Lead, lead_id)
        appointment = book(session, services, lead, start_at=start_at, now=services.clock.now(), actor=SYSTEM)
        return lead_id, appointment.appointment.id


def visits(services, lead_id: int) -> list[tuple[str, datetime]]:
    with services.session_factory() as session:
        return [
            (a.status, a.start_at)
            for a in session.scalars(select(Appointment).where(Appointment.lead_id == lead_id).order_by(Appointment.id))
        ]


def sequences(services, lead_id: int) -> dict[str, str]:
    with services.session_factory() as session:
        return {
            e.sequence_name: e.state
            for e in session.scalars(select(Enrollment).where(Enrollment.lead_id == lead_id).order_by(Enrollment.id))
        }


def thread_notes(services, lead_id: int) -> list[str]:
    with services.session_factory() as session:
        return [
            e.payload.get("text", "")
            for e in session.scalars(
                select(OutboxEvent).where(OutboxEvent.lead_id == lead_id, OutboxEvent.kind == "decision")
            )
        ]


@any_database
def test_booking_on_a_closed_day_warns_first_and_books_on_the_second_submit(workspace, services):
    lead_id = new_lead(services)
    workspace.click(ActionId.LEAD_BOOKED, lead_id)
    christmas_eve = datetime(2026, 12, 24, 16, 0, tzinfo=UTC)

    warned = workspace.submit(workspace.opened_view(), {"when": moment(christmas_eve)})
    body = warned.json()
    assert body["response_action"] == "update"
    assert "Thu Dec 24 is a closed day (closed date). Submit again to book it anyway." in str(body["view"])
    assert visits(services, lead_id) == []

    workspace.submit(body["view"], {"when": moment(christmas_eve)})
    assert visits(services, lead_id) == [("booked", christmas_eve)]


@any_database
def test_booking_from_the_card_leaves_one_note_in_the_thread_saying_when_and_by_whom(workspace, services):
    lead_id = new_lead(services)
    before = thread_notes(services, lead_id)
    workspace.click(ActionId.LEAD_BOOKED, lead_id)

    workspace.submit(workspace.opened_view(), {"when": moment(VISIT)})

    assert visits(services, lead_id) == [("booked", VISIT)]
    [note] = thread_notes(services, lead_id)[len(before) :]
    assert "Appointment booked for Monday, Nov 30 at 10:00 AM" in note and f"<@{ALICE}>" in note


@any_database
def test_reschedule_from_the_card_reads_the_time_in_the_business_zone(workspace, services):
    lead_id, appointment_id = booked_lead(services)
    workspace.click(ActionId.APPOINTMENT_RESCHEDULE, appointment_id)
    view = workspace.opened_view()
    time_input = next(b for b in view["blocks"] if b.get("block_id") == "visit_time")
    assert time_input["element"]["timezone"] == "America/Chicago"
    assert time_input["element"]["initial_time"] == "10:00"

    workspace.submit(
        view,
        {
            "visit_date": {"type": "datepicker", "selected_date": "2026-12-01"},
            "visit_time": {"type": "timepicker", "selected_time": "15:30"},
        },
    )

    new_start = datetime(2026, 12, 1, 21, 30, tzinfo=UTC)  # 3:30 PM in Chicago
    assert visits(services, lead_id) == [("rescheduled", VISIT), ("booked", new_start)]
    assert any("Appointment moved to Tuesday, Dec 1 at 3:30 PM" in n for n in thread_notes(services, lead_id))
    assert workspace.ephemerals_to(ALICE)[-1].startswith(":arrows_counterclockwise: Moved to")


@any_database
def test_a_reschedule_without_a_future_date_and_time_goes_back_to_the_fields(workspace, services):
    lead_id, appointment_id = booked_lead(services)
    workspace.click(ActionId.APPOINTMENT_RESCHEDULE, appointment_id)
    view = workspace.opened_view()
    missing = workspace.submit(
        view,
        {
            "visit_date": {"type": "datepicker", "selected_date": None},
            "visit_time": {"type": "timepicker", "selected_time": None},
        },
    )
    assert missing.json()["errors"] == {"visit_date": "Pick the new date.", "visit_time": "Pick the new time."}
    past = workspace.submit(
        view,
        {
            "visit_date": {"type": "datepicker", "selected_date": "2026-11-20"},
            "visit_time": {"type": "timepicker", "selected_time": "10:00"},
        },
    )
    assert past.json()["errors"] == {"visit_date": "That time has passed; pick a future date and time."}
    assert visits(services, lead_id) == [("booked", VISIT)]


@any_database
def test_cancel_stops_reminders_and_back_to_follow_up_starts_nurture_not_the_sales_texts(workspace, services):
    lead_id, appointment_id = booked_lead(services)
    workspace.click(ActionId.APPOINTMENT_CANCEL, appointment_id)
    assert visits(services, lead_id) == [("cancelled", VISIT)]
    states = sequences(services, lead_id)
    assert states["appointment_reminders"] == "stopped" and states["default"] == "stopped"
    assert lead_row(services, lead_id).stage == Stage.ENGAGED
    assert "nurture" not in states  # not silently back into follow-up

    workspace.click(ActionId.LEAD_BACK_TO_FOLLOW_UP, lead_id)
    assert sequences(services, lead_id)["nurture"] == "active"
    assert lead_row(services, lead_id).stage == Stage.NURTURE
    with services.session_factory() as session:
        actions = [a.action for a in session.scalars(select(AuditEntry).where(AuditEntry.lead_id == lead_id))]
    assert "appointment_cancelled" in actions


@any_database
def test_attended_and_no_show_wait_for_the_start_time(workspace, services, clock):
    lead_id, appointment_id = booked_lead(services)
    workspace.click(ActionId.APPOINTMENT_NO_SHOW, appointment_id)
    assert "has not started yet" in workspace.ephemerals_to(ALICE)[-1]
    assert visits(services, lead_id) == [("booked", VISIT)]

    clock.advance(VISIT - clock.now() + timedelta(minutes=20))
    workspace.click(ActionId.APPOINTMENT_NO_SHOW, appointment_id)
    assert visits(services, lead_id) == [("no_show", VISIT)]
    assert sequences(services, lead_id)["no_show"] == "active"
    with services.session_factory() as session:
        assert [t.reason for t in session.scalars(select(CallTask).where(CallTask.lead_id == lead_id))] == [
            "missed the visit"
        ]


@any_database
def test_attended_from_the_card_ends_reminders_and_needs_no_after_visit_unless_turned_on(workspace, services, clock):
    lead_id, appointment_id = booked_lead(services)
    clock.advance(VISIT - clock.now() + timedelta(minutes=5))
    workspace.click(ActionId.APPOINTMENT_ATTENDED, appointment_id)
    assert visits(services, lead_id) == [("attended", VISIT)]
    assert "after_visit" not in sequences(services, lead_id)


@any_database
def test_slash_commands_reschedule_cancel_noshow_and_attended(workspace, services, clock):
    lead_id, _ = booked_lead(services)
    workspace.command(f"reschedule {lead_id} 2026-12-01 11:00")
    assert "Moved the visit of" in workspace.last_answer()
    moved = datetime(2026, 12, 1, 17, 0, tzinfo=UTC)
    assert visits(services, lead_id)[-1] == ("booked", moved)

    workspace.command(f"noshow {lead_id}")
    assert "has not started yet" in workspace.last_answer()
    clock.advance(moved - clock.now() + timedelta(minutes=30))
    workspace.command(f"attended {lead_id}")
    assert "attended the visit" in workspace.last_answer()
    assert visits(services, lead_id)[-1] == ("attended", moved)

    workspace.command(f"book {lead_id} 2026-12-03 10:00")
    workspace.command(f"cancel {lead_id}")
    assert "Cancelled the visit" in workspace.last_answer()
    assert visits(services, lead_id)[-1][0] == "cancelled"
    workspace.command(f"cancel {lead_id}")
    assert "there is no upcoming appointment to cancel" in workspace.last_answer()


@any_database
def test_stats_and_app_home_show_show_rate_no_shows_cancellations_and_reschedules(workspace, services, clock):
    from bot.reports.stats import home_snapshot
    from bot.slack.home import home_view
    from bot.usecases.appointments import cancel as cancel_visit
    from bot.usecases.appointments import mark_attended, mark_no_show, reschedule

    visits_made = []
    for n in range(4):
        lead_id = new_lead(
            services, card_ts=f"1764082800.00020{n}", phone=f"+1312555030{n}", email=f"lead{n}@example.com"
        )
        with services.session_factory.begin() as session:
            lead = session.get(Lead, lead_id)
            visits_made.append(
                book(
                    session, services, lead, start_at=VISIT + timedelta(minutes=n), now=clock.now(), actor=SYSTEM
                ).appointment.id
            )
    with services.session_factory.begin() as session:
        cancel_visit(session, services, session.get(Appointment, visits_made[3]), now=clock.now(), actor=SYSTEM)
        reschedule(
            session,
            services,
            session.get(Appointment, visits_made[2]),
            start_at=VISIT + timedelta(days=5),
            now=clock.now(),
            actor=SYSTEM,
        )
    clock.advance(VISIT - clock.now() + timedelta(hours=1))
    with services.session_factory.begin() as session:
        mark_attended(session, services, session.get(Appointment, visits_made[0]), now=clock.now(), actor=SYSTEM)
        mark_no_show(session, services, session.get(Appointment, visits_made[1]), now=clock.now(), actor=SYSTEM)

    workspace.command("stats 7d")
    said = workspace.last_answer()
    for part in (
        "*Show rate*\\n50% (1 of 2)",
        "*No-show rate*\\n50% (1 of 2)",
        "*Cancellations*\\n1",
        "*Reschedules*\\n1",
    ):
        assert part in said
    with services.session_factory() as session:
        home = home_view(
            home_snapshot(
                session, user_id=ALICE, business_name="Lakeside", now=clock.now(), zone=services.business.timezone
            ),
            services.business.timezone,
        )
    assert "Show rate" in str(home) and "Reschedules" in str(home)


@any_database
def test_when_the_visit_time_comes_the_card_is_refreshed_once_to_offer_attended_and_no_show(services, clock):
    from bot.usecases.appointments import announce_started_visits

    lead_id, _ = booked_lead(services)
    with services.session_factory.begin() as session:
        assert announce_started_visits(session, services, now=clock.now()) == 0
    clock.advance(VISIT - clock.now() + timedelta(minutes=1))
    for expected in (1, 0):  # once, however often the scheduler looks
        with services.session_factory.begin() as session:
            assert announce_started_visits(session, services, now=clock.now()) == expected
    assert sum("has started: mark it Attended or No-show" in n for n in thread_notes(services, lead_id)) == 1


@any_database
def test_booked_on_a_closed_day_from_the_log_outcome_modal_is_kept_and_the_person_is_warned(workspace, services):
    from bot.store.audit import SYSTEM as system
    from bot.usecases.call_tasks import open_call_task

    lead_id = new_lead(services)
    with services.session_factory.begin() as session:
        task_id = open_call_task(
            session,
            services,
            session.get(Lead, lead_id),
            reason="asked a question",
            now=services.clock.now(),
            actor=system,
        ).id
    workspace.click(ActionId.TASK_LOG_OUTCOME, task_id)
    christmas_eve = datetime(2026, 12, 24, 16, 0, tzinfo=UTC)
    workspace.submit(
        workspace.opened_view(),
        {
            "outcome": {
                "type": "radio_buttons",
                "selected_option": {"text": {"type": "plain_text", "text": "Booked"}, "value": "booked"},
            },
            "when": moment(christmas_eve),
        },
    )
    assert visits(services, lead_id) == [("booked", christmas_eve)]
    assert "Thu Dec 24 is a closed day (closed date): booked anyway" in workspace.ephemerals_to(ALICE)[-1]
