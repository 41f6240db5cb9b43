"""Decisions the adapters still have to carry out, queued in the same transaction as the decision.

Each kind of notice has one frozen dataclass for what it carries (`PAYLOADS`). A notice is checked
against it when it is queued (a misspelt or missing field fails in the deciding transaction, not later in
the poster), and the poster reads it back as that dataclass (`payload_of`), never as a dict of guesses.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from enum import StrEnum
from typing import Any, cast

from sqlalchemy import Integer, String, Table, bindparam, func, insert, select
from sqlalchemy.orm import Session

from bot.store.bulk import ManyRows
from bot.store.models import Lead, OutboxEvent


class Notice(StrEnum):
    LEAD_CREATED = "lead_created"  #: post the lead's card
    LEAD_CHANGED = "lead_changed"  #: refresh the lead's card
    TOUCH_SENT = "touch_sent"  #: a touch went out; mirror it into the thread
    TOUCH_FAILED = "touch_failed"  #: a touch failed for good; show it in the thread
    MESSAGE_RECEIVED = "message_received"  #: the lead wrote; mirror it with how it was understood
    MESSAGE_STATUS = "message_status"  #: a delivery status changed
    DECISION = "decision"  #: the system decided something (paused, stopped, booked, nurture)
    CALL_TASK = "call_task"  #: a call to hand the team, with scripts and buttons
    CALL_TASK_CHANGED = "call_task_changed"  #: a call task was claimed, done or cancelled
    MEDIA_RECEIVED = "media_received"  #: the lead sent a photo: fetch it and put it in the thread
    NEEDS_PERSON = "needs_person"  #: something only a person can settle (an unknown send outcome)
    LEAD_ERASED = "lead_erased"  #: the lead's data was erased: edit its card, thread and call tasks to say so


@dataclass(frozen=True)
class LeadCreated:
    """Post the lead's card."""


@dataclass(frozen=True)
class LeadChanged:
    """Refresh the lead's card."""


@dataclass(frozen=True)
class TouchSent:
    """A touch went out: mirror it into the thread."""

    touch_id: int


@dataclass(frozen=True)
class TouchFailed:
    """A touch failed for good (or is being sent another way): show it in the thread."""

    touch_id: int
    error: str


@dataclass(frozen=True)
class MessageReceived:
    """The lead wrote (or called): mirror it with how it was understood."""

    message_id: int
    channel: str
    reply_class: str
    #: The time the lead asked for (ISO 8601), when one was read.
    requested_time: str | None = None


@dataclass(frozen=True)
class MessageStatus:
    """A delivery status of one of our messages changed."""

    message_id: int
    status: str
    touch_id: int | None = None
    #: The provider's own code (Twilio's ErrorCode) or event name (SendGrid's), when it gave one.
    error_code: str | None = None
    event: str | None = None


@dataclass(frozen=True)
class DecisionNote:
    """The system or a person decided something (paused, stopped, booked, nurture): a line in the thread."""

    text: str
    #: Who decided, as people read it ("Sam (Slack)", "followup").
    actor: str | None = None
    alert_team: bool = False
    alert_admins: bool = False
    touch_id: int | None = None
    call_task_id: int | None = None
    #: The sequence the note is about, by its file name (the poster says its label).
    sequence: str | None = None


@dataclass(frozen=True)
class CallTaskOpened:
    """A call to hand the team, with scripts and buttons."""

    call_task_id: int
    reason: str | None = None


@dataclass(frozen=True)
class CallTaskChanged:
    """A call task was claimed, done, snoozed or cancelled: refresh its message."""

    call_task_id: int
    #: What the logged outcome did to the lead, when it did something.
    consequence: str | None = None


@dataclass(frozen=True)
class MediaReceived:
    """The lead sent a photo: fetch item `index` of the message's media and share it in the thread."""

    message_id: int
    index: int


@dataclass(frozen=True)
class NeedsPerson:
    """Something only a person can settle (an unknown send outcome, an unverified email)."""

    text: str
    touch_id: int | None = None
    message_id: int | None = None


@dataclass(frozen=True)
class LeadErased:
    """The lead's data was erased: edit its card, thread copies and call tasks to say so.

    `posts` and `edited` are the poster's own progress (every message to edit, and how many are done),
    kept on the event so that a restart resumes where it stopped.
    """

    channel: str | None = None
    card_ts: str | None = None
    copies: tuple[dict[str, str], ...] = ()
    posts: tuple[tuple[str, str], ...] | None = None
    edited: int = 0


NoticePayload = (
    LeadCreated
    | LeadChanged
    | TouchSent
    | TouchFailed
    | MessageReceived
    | MessageStatus
    | DecisionNote
    | CallTaskOpened
    | CallTaskChanged
    | MediaReceived
    | NeedsPerson
    | LeadErased
)

#: What each kind of notice carries.
PAYLOADS: dict[Notice, type[NoticePayload]] = {
    Notice.LEAD_CREATED: LeadCreated,
    Notice.LEAD_CHANGED: LeadChanged,
    Notice.TOUCH_SENT: TouchSent,
    Notice.TOUCH_FAILED: TouchFailed,
    Notice.MESSAGE_RECEIVED: MessageReceived,
    Notice.MESSAGE_STATUS: MessageStatus,
    Notice.DECISION: DecisionNote,
    Notice.CALL_TASK: CallTaskOpened,
    Notice.CALL_TASK_CHANGED: CallTaskChanged,
    Notice.MEDIA_RECEIVED: MediaReceived,
    Notice.NEEDS_PERSON: NeedsPerson,
    Notice.LEAD_ERASED: LeadErased,
}


def stored_payload(notice: Notice, payload: dict[str, Any]) -> dict[str, Any]:
    """The payload as it is stored: checked against its notice's dataclass (a wrong field raises TypeError)."""
    value = PAYLOADS[notice](**payload)
    return {key: item for key, item in asdict(value).items() if item is not None}


def payload_of(event: OutboxEvent) -> NoticePayload:
    """A queued event's payload as its notice's dataclass.

    Fields a newer or older release stored that this one does not know are left out, so an event queued
    before an upgrade is still carried out.
    """
    kind = PAYLOADS[Notice(event.kind)]
    known = {f.name for f in fields(kind)}
    stored = {key: value for key, value in (event.payload or {}).items() if key in known}
    for key in ("copies", "posts"):
        if isinstance(stored.get(key), list):
            stored[key] = tuple(tuple(item) if isinstance(item, list) else item for item in stored[key])
    return kind(**stored)


class NoticeWithoutBusiness(ValueError):
    """A notice must name its business or its lead (whose business it is)."""


def _business_of(lead_id: int | None, business: str | None) -> Any:
    """The notice's business: the one named, else its lead's, read by the INSERT itself (no round trip)."""
    if business is not None:
        return business
    if lead_id is None:
        raise NoticeWithoutBusiness(NoticeWithoutBusiness.__doc__)
    return select(Lead.business).where(Lead.id == lead_id).scalar_subquery()


def publish(
    session: Session,
    notice: Notice,
    *,
    lead_id: int | None,
    at: datetime,
    business: str | None = None,
    **payload: Any,
) -> None:
    """Queue a notice for the adapters inside the caller's transaction.

    It belongs to `business` (a slug), or when none is named to its lead's business.
    """
    session.add(
        OutboxEvent(
            business=_business_of(lead_id, business),
            lead_id=lead_id,
            kind=notice,
            payload=stored_payload(notice, payload),
            created_at=at,
        )
    )


@dataclass(frozen=True)
class Pending:
    """One notice not yet queued (for `publish_many`)."""

    notice: Notice
    lead_id: int | None
    at: datetime
    payload: dict[str, Any] = field(default_factory=dict)
    #: Its business (a slug); None: its lead's.
    business: str | None = None


#: Run with a list of rows: one executemany on SQLite, one statement on PostgreSQL (bot.store.bulk), no ORM.
#: A row naming no business takes its lead's, read by the statement itself.
_INSERT_MANY = insert(OutboxEvent.__table__).values(
    business=func.coalesce(
        bindparam("named_business", type_=String),
        select(Lead.business).where(Lead.id == bindparam("of_lead", type_=Integer)).scalar_subquery(),
    )
)
_PUBLISH_MANY = ManyRows(
    cast(Table, OutboxEvent.__table__),
    ["lead_id", "kind", "payload", "named_business", "of_lead"],
    ["created_at", "attempts"],
    row_only={"named_business": String(), "of_lead": Integer()},
    derived={
        "business": lambda rows: func.coalesce(
            rows.c.named_business, select(Lead.business).where(Lead.id == rows.c.of_lead).scalar_subquery()
        )
    },
    plain=_INSERT_MANY,
)


def publish_many(session: Session, notices: list[Pending]) -> None:
    """Queue many notices inside the caller's transaction, in one round trip, in the order given."""
    if not notices:
        return
    rows = []
    for pending in notices:
        if pending.business is None and pending.lead_id is None:
            raise NoticeWithoutBusiness(NoticeWithoutBusiness.__doc__)
        values = pending_values(pending)
        business = values.pop("business")
        rows.append({**values, "named_business": business, "of_lead": pending.lead_id})
    _PUBLISH_MANY.execute(session.connection(), rows)


def pending_values(pending: Pending) -> dict[str, Any]:
    """A notice's row, as values for a Core insert (its payload checked as `stored_payload` checks it).

    Its `business` is None when the notice leaves it to its lead (`publish_many` reads the lead's).
    """
    return dict(
        business=pending.business,
        lead_id=pending.lead_id,
        kind=pending.notice,
        payload=stored_payload(pending.notice, pending.payload),
        created_at=pending.at,
        attempts=0,
    )
