"""When each step of a playbook goes out for one lead: pure arithmetic over windows and delays."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.core.business import Business
from bot.core.playbook import Channel, Sequence, Step
from bot.core.send_times import NoSendTime, next_send_time

#: Channels that reach the lead's phone keep to the lead's local daytime (TCPA), not only the business window.
PHONE_CHANNELS = frozenset({Channel.SMS, Channel.CALL_TASK})


class AppointmentRequired(ValueError):
    """This sequence counts back from an appointment; give the appointment time."""


@dataclass(frozen=True)
class PlannedTouch:
    step: Step
    position: int
    #: When the playbook means it to go out.
    planned_at: datetime
    #: When it may go out: the first open slot at or after planned_at, never before the touch before it.
    due_at: datetime
    #: Why it will not go out at all, when it won't (e.g. the reminder would land after the appointment).
    skip_reason: str | None = None


def earliest_send_time(
    earliest: datetime, channel: Channel, business: Business, lead_timezones: tuple[str, ...]
) -> datetime:
    """Return the first moment a touch on this channel may reach the lead."""
    if channel == Channel.STAGE:
        return earliest  # an internal stage move reaches nobody, so no window applies
    return next_send_time(
        earliest,
        business=business,
        respect_lead_daytime=channel in PHONE_CHANNELS,
        lead_timezones=lead_timezones,
    )


def plan_touches(
    sequence: Sequence,
    *,
    enrolled_at: datetime,
    business: Business,
    lead_timezones: tuple[str, ...],
    appointment_at: datetime | None = None,
) -> list[PlannedTouch]:
    """Lay out every step of a sequence for one lead, in order."""
    if sequence.relative_to_appointment and appointment_at is None:
        raise AppointmentRequired(f"sequence {sequence.name!r} needs an appointment time")
    planned: list[PlannedTouch] = []
    previous_due = enrolled_at
    for position, step in enumerate(sequence.steps):
        if step.before is not None:
            assert appointment_at is not None
            planned_at = appointment_at - step.before
        else:
            planned_at = enrolled_at + (step.after or timedelta(0))
        skip: str | None = None
        try:
            due_at = earliest_send_time(max(planned_at, previous_due), step.channel, business, lead_timezones)
        except NoSendTime as error:
            due_at, skip = max(planned_at, previous_due), f"no time to send: {error}"
        if step.before is not None and appointment_at is not None and skip is None:
            if planned_at < enrolled_at:
                skip = "booked too close to the appointment for this reminder"
            elif due_at >= appointment_at:
                skip = "no send window before the appointment"
        planned.append(PlannedTouch(step, position, planned_at, due_at, skip))
        if skip is None:
            previous_due = due_at
    return planned
