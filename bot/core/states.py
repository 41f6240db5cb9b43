"""The states a lead, an enrollment, a touch and a call task can be in."""

from enum import StrEnum


class Stage(StrEnum):
    NEW = "new"  #: came in; nothing has reached them yet
    CONTACTED = "contacted"  #: at least one touch went out
    ENGAGED = "engaged"  #: they answered; a person has the conversation
    BOOKED = "booked"  #: an appointment is on the calendar
    NURTURE = "nurture"  #: the sales sequence ended quietly; slow long-term cadence
    LOST = "lost"  #: not interested, wrong number, or stopped by the team
    OPTED_OUT = "opted_out"  #: revoked consent; nothing automated goes to them


class EnrollmentState(StrEnum):
    ACTIVE = "active"  #: touches go out as they fall due
    PAUSED = "paused"  #: touches held; a person is handling the lead
    STOPPED = "stopped"  #: ended early, with the reason
    COMPLETED = "completed"  #: every step ran


class TouchStatus(StrEnum):
    SCHEDULED = "scheduled"  #: waiting for its due time
    SENDING = "sending"  #: handed to the provider; the outcome is not yet recorded
    SENT = "sent"  #: the provider accepted it (or the call task / stage move was done)
    FAILED = "failed"  #: gave up after retries, or refused for good
    SKIPPED = "skipped"  #: not sent on purpose; see skip_reason
    CANCELLED = "cancelled"  #: its enrollment ended before it fell due
    UNKNOWN = "unknown"  #: the process died mid-send; a person must check, never resent blindly


class TouchReroute(StrEnum):
    """A text the number could not take, said another way instead (once)."""

    QUEUED = "queued"  #: back in the queue to go another way at its next turn
    EMAIL = "email"  #: its words went by email
    CALL = "call"  #: handed to the team as a call


class NoticeRetry(StrEnum):
    """Why a Slack notice waits for another try, beyond "Slack did not take it this time"."""

    RATE_LIMITED = "rate_limited"  #: Slack said 429: its Retry-After stands even once Slack answers again
    MAYBE_POSTED = "maybe_posted"  #: the answer was lost: look for the post before posting again


class CallTaskStatus(StrEnum):
    OPEN = "open"  #: nobody has it yet
    CLAIMED = "claimed"  #: a team member owns the call
    DONE = "done"  #: an outcome was logged
    CANCELLED = "cancelled"  #: no longer needed (lead booked, stopped, opted out)


class AppointmentStatus(StrEnum):
    BOOKED = "booked"  #: on the calendar; reminders run
    CONFIRMED = "confirmed"  #: the lead said they will come
    ATTENDED = "attended"  #: the lead came
    NO_SHOW = "no_show"  #: the lead did not come
    CANCELLED = "cancelled"  #: called off; reminders stopped, the team decides what next
    RESCHEDULED = "rescheduled"  #: moved: a newer appointment replaces this one


class ActorType(StrEnum):
    SYSTEM = "system"  #: followup itself
    SLACK_USER = "slack_user"  #: a team member, by Slack user id
    LEAD = "lead"  #: the lead, by what they sent or did
    CLI = "cli"  #: an operator at the command line


__all__ = ["ActorType", "AppointmentStatus", "CallTaskStatus", "EnrollmentState", "Stage", "TouchStatus"]
