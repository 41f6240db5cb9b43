"""Where a lead stands, as the card says it: touches that apply, counted so the count never goes back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot import SHIPPED_SEQUENCES, SHIPPED_TEMPLATES
from bot.core.business import load_business
from bot.core.playbook import load_sequence
from bot.core.states import EnrollmentState, TouchStatus
from bot.slack.cards import sequence_progress
from bot.store.models import Enrollment, Touch

CHICAGO = ZoneInfo("America/Chicago")
#: Tuesday 2 March 2027, 11:30 PM in Chicago: a lead who writes in at night.
NIGHT = datetime(2027, 3, 3, 5, 30, tzinfo=UTC)
PLAYBOOK = load_sequence("default", sequences_dir=SHIPPED_SEQUENCES, templates_dir=SHIPPED_TEMPLATES)
BUSINESS = load_business(SHIPPED_SEQUENCES / "business.yml")


def touches(statuses: dict[str, str], *, start: datetime = NIGHT) -> list[Touch]:
    made = []
    for position, step in enumerate(PLAYBOOK.steps):
        planned = start + (step.after or timedelta(0))
        made.append(
            Touch(
                id=position + 1,
                enrollment_id=1,
                lead_id=1,
                step_id=step.id,
                position=position,
                channel=str(step.channel),
                planned_at=planned,
                due_at=planned,
                status=statuses.get(step.id, TouchStatus.SCHEDULED),
            )
        )
    return made


def enrollment(state: str = EnrollmentState.ACTIVE) -> Enrollment:
    return Enrollment(id=1, lead_id=1, sequence_name="default", state=state, state_reason="", enrolled_at=NIGHT)


def progress(rows: list[Touch], *, wont_run: frozenset[str] = frozenset(), state: str = EnrollmentState.ACTIVE):
    return sequence_progress(
        enrollment(state),
        rows,
        CHICAGO,
        wont_run=wont_run,
        playbook=PLAYBOOK,
        business=BUSINESS,
        lead_zones=("America/Chicago",),
    )


def test_the_card_names_the_playbook_and_the_next_step_by_their_labels():
    shown = progress(touches({}))
    assert (shown.sequence, shown.next_step, shown.next_channel) == ("Standard follow-up", "First text", "sms")


def test_only_the_touches_that_apply_to_this_lead_are_counted():
    # A lead without email: the emails will not run, and day 7 goes by text.
    no_email = frozenset({"same_day_email", "day3_helpful_email", "day7_nurture_email"})
    rows = touches({"instant_sms": TouchStatus.SENT})
    assert (progress(rows, wont_run=no_email).done, progress(rows, wont_run=no_email).total) == (1, 5)


@pytest.mark.parametrize(
    "later",
    [
        {"instant_sms": TouchStatus.SENT, "same_day_email": TouchStatus.FAILED},
        {"instant_sms": TouchStatus.SENT, "same_day_email": TouchStatus.SENT, "day1_checkin_sms": TouchStatus.SKIPPED},
        {
            "instant_sms": TouchStatus.SENT,
            "same_day_email": TouchStatus.SENT,
            "day1_checkin_sms": TouchStatus.CANCELLED,
            "day1_call": TouchStatus.CANCELLED,
        },
    ],
)
def test_the_touch_count_never_goes_back(later):
    before = progress(touches({"instant_sms": TouchStatus.SENT, "same_day_email": TouchStatus.SENDING}))
    after = progress(touches(later))
    assert after.done >= before.done and after.done <= after.total


def test_a_night_leads_first_text_waits_for_quiet_hours_and_says_so():
    # Planned at 11:30 PM; it may go at 8:00 AM. The card says why, and the time is labelled.
    rows = touches({})
    rows[0].due_at = datetime(2027, 3, 3, 14, 0, tzinfo=UTC)
    shown = progress(rows, wont_run=frozenset({"same_day_email"}))  # no email for this lead
    assert shown.next_step == "First text"
    assert shown.next_wait == "quiet hours and outside business hours (Mon-Sat 08:00-20:00)"
    assert shown.next_at == "Wed, Mar 3 at 8:00 AM CST"
