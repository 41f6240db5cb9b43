"""Laying out a playbook for one lead: delays, send windows, order, and reminders before a visit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.core.business import load_business
from bot.core.planning import AppointmentRequired, plan_touches
from bot.core.playbook import load_sequence

UTC = UTC


@pytest.fixture
def business(business_file: Path):
    return load_business(business_file)


def sequence(name: str, shipped_sequences: Path, shipped_templates: Path):
    return load_sequence(name, sequences_dir=shipped_sequences, templates_dir=shipped_templates)


def test_touches_keep_the_playbook_order_even_when_windows_move_them(business, shipped_sequences, shipped_templates):
    default = sequence("default", shipped_sequences, shipped_templates)
    friday_night = datetime(2026, 12, 5, 1, 30, tzinfo=UTC)  # Fri 19:30 in Chicago
    plan = plan_touches(default, enrolled_at=friday_night, business=business, lead_timezones=("America/Chicago",))
    dues = [p.due_at for p in plan]
    assert dues == sorted(dues)
    assert plan[0].due_at == friday_night  # inside the window: at once
    assert plan[1].due_at == friday_night + timedelta(minutes=15)  # 19:45, still open
    assert all(p.due_at >= p.planned_at for p in plan)


def test_a_touch_planned_on_sunday_waits_for_monday_morning(business, shipped_sequences, shipped_templates):
    default = sequence("default", shipped_sequences, shipped_templates)
    saturday_evening = datetime(2026, 12, 6, 1, 59, tzinfo=UTC)  # Sat 19:59 in Chicago
    plan = plan_touches(default, enrolled_at=saturday_evening, business=business, lead_timezones=("America/Chicago",))
    assert plan[1].due_at == datetime(2026, 12, 7, 14, 0, tzinfo=UTC)  # Mon 08:00 in Chicago


def test_the_lead_daytime_applies_to_texts_and_calls_but_not_to_email(business, shipped_sequences, shipped_templates):
    default = sequence("default", shipped_sequences, shipped_templates)
    chicago_8am = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)  # 06:00 in Los Angeles
    plan = plan_touches(default, enrolled_at=chicago_8am, business=business, lead_timezones=("America/Los_Angeles",))
    assert plan[0].due_at == datetime(2026, 12, 1, 16, 0, tzinfo=UTC)  # 08:00 in Los Angeles
    assert plan[1].step.channel == "email" and plan[1].due_at == plan[0].due_at  # never before the text


def test_reminders_count_back_from_the_appointment(business, shipped_sequences, shipped_templates):
    reminders = sequence("appointment_reminders", shipped_sequences, shipped_templates)
    visit = datetime(2026, 12, 3, 16, 0, tzinfo=UTC)  # Thu 10:00 in Chicago
    plan = plan_touches(
        reminders,
        enrolled_at=datetime(2026, 12, 1, 15, 0, tzinfo=UTC),
        business=business,
        lead_timezones=("America/Chicago",),
        appointment_at=visit,
    )
    assert [p.planned_at for p in plan if p.step.before == timedelta(hours=24)][0] == visit - timedelta(hours=24)
    assert all(p.due_at < visit for p in plan if p.skip_reason is None)


def test_a_reminder_that_would_come_before_the_booking_is_skipped(business, shipped_sequences, shipped_templates):
    reminders = sequence("appointment_reminders", shipped_sequences, shipped_templates)
    visit = datetime(2026, 12, 3, 16, 0, tzinfo=UTC)
    plan = plan_touches(
        reminders,
        enrolled_at=visit - timedelta(hours=5),
        business=business,
        lead_timezones=("America/Chicago",),
        appointment_at=visit,
    )
    day_before = [p for p in plan if p.step.before == timedelta(hours=24)]
    assert day_before and all("too close" in p.skip_reason for p in day_before)
    assert any(p.skip_reason is None for p in plan)  # the 2-hour reminder still goes


def test_a_reminder_sequence_needs_an_appointment(business, shipped_sequences, shipped_templates):
    reminders = sequence("appointment_reminders", shipped_sequences, shipped_templates)
    with pytest.raises(AppointmentRequired):
        plan_touches(reminders, enrolled_at=datetime(2026, 12, 1, tzinfo=UTC), business=business, lead_timezones=())
