"""What followup stores: leads, their enrollments, touches, messages, appointments, call tasks, audit.

Each row belongs to one business (issue #16: one deployment serves many clinics). `Lead.business` (the
business's slug) is the source of truth for whose lead it is. Enrollments, touches, messages, call
tasks, consent entries, audit entries and booking-link clicks belong to their lead's business: each has
a lead, never changes lead, and is only ever read through it, so a column of its own could only
disagree with the lead's. Appointments, Slack notices (outbox), outbound webhooks and processed
deliveries carry their own `business`: the outbox and the webhooks are drained per business (a notice or
an event may have no lead), a calendar's booking id and a webhook's delivery id are unique per business
and are looked up before any lead is known.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy import (
    JSON,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from bot.core.clock import utc
from bot.core.states import ActorType, AppointmentStatus, CallTaskStatus, EnrollmentState, Stage, TouchStatus  # noqa: F401 - ActorType re-exported: lead_actions and audit import it from here

#: How long a business's slug may be (`Business.slug`, the file stem of its business file).
BUSINESS_SLUG_LENGTH = 100


class UTCDateTime(TypeDecorator):
    """Aware UTC datetimes in and out, whatever the database keeps."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; pass an aware UTC datetime")
        value = utc(value)
        # SQLite keeps text; one fixed naive-UTC form keeps string order equal to time order.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else utc(value)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON}

    if TYPE_CHECKING:
        # Every model here maps one Table (none a join or a subquery), so the Core statements built on
        # `Model.__table__` (bulk inserts and updates) may use it as one; SQLAlchemy types it as any FromClause.
        __table__: ClassVar[Table]


def _reachable_by_sms(lead: Any) -> bool:
    return bool(lead.phone) and lead.sms_opted_out_at is None and not lead.sms_unreachable_reason


class Lead(Base):
    """Someone who asked one business about a visit.

    The same phone or email may be a lead of two businesses at once, each lead with its own stage,
    consent and opt-outs: lookups by contact are always within one business. A lead's phone and email
    are not unique keys even there (intake dedupes by looking, the lead lock keeping changes apart);
    its link tokens are unique in the whole database, since a link names no business.
    """

    __tablename__ = "leads"
    # Intake, inbound messages and `/followup` find a lead by phone, or by email whatever its case,
    # within its business: without these indexes every new lead would scan the whole table.
    __table_args__ = (
        Index("ix_leads_business_phone", "business", "phone"),
        Index("ix_leads_business_email_lower", "business", func.lower(text("email"))),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    #: The business whose lead this is (its slug): set when the lead is taken in, never changed.
    business: Mapped[str] = mapped_column(String(BUSINESS_SLUG_LENGTH))
    name: Mapped[str] = mapped_column(String(200), default="")
    phone: Mapped[str | None] = mapped_column(String(20))
    email: Mapped[str | None] = mapped_column(String(320))
    source: Mapped[str] = mapped_column(String(50), default="manual")
    first_message: Mapped[str] = mapped_column(Text, default="")
    custom_fields: Mapped[dict[str, Any]] = mapped_column(default=dict)
    timezone: Mapped[str] = mapped_column(String(64))
    stage: Mapped[str] = mapped_column(String(20), default=Stage.NEW, index=True)
    owner: Mapped[str | None] = mapped_column(String(50))
    #: Consent on record for automated texts (bot.store.consent): only then do sequences text the lead.
    sms_consent: Mapped[bool] = mapped_column(default=False)
    #: How and when that consent was given or revoked (a bot.store.consent.ConsentMethod).
    sms_consent_method: Mapped[str | None] = mapped_column(String(30))
    sms_consent_at: Mapped[datetime | None]
    #: When the lead last texted or called first: the answer to their own message may go by text.
    sms_lead_started_at: Mapped[datetime | None]
    email_consent: Mapped[bool] = mapped_column(default=True)
    sms_opted_out_at: Mapped[datetime | None]
    email_opted_out_at: Mapped[datetime | None]
    #: Why SMS cannot reach this number at all (invalid, landline): remaining SMS go elsewhere.
    sms_unreachable_reason: Mapped[str | None] = mapped_column(String(200))
    #: Unguessable key for the lead's tracked booking link.
    link_token: Mapped[str] = mapped_column(String(40), unique=True)
    #: Unguessable key for the lead's unsubscribe link: a different one, so whoever sees the booking link
    #: (a link scanner, a forwarded message) cannot unsubscribe the lead with it.
    unsubscribe_token: Mapped[str] = mapped_column(String(40), unique=True, index=True)
    #: The lead's card in Slack, kept so edits and threads survive restarts.
    slack_channel: Mapped[str | None] = mapped_column(String(30))
    slack_ts: Mapped[str | None] = mapped_column(String(30))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    enrollments: Mapped[list[Enrollment]] = relationship(back_populates="lead", order_by="Enrollment.id")

    @property
    def first_name(self) -> str:
        return self.name.split()[0] if self.name.strip() else "there"

    # Written over plain attributes only, so dispatch can apply them to the rows it reads.
    @property
    def sms_reachable(self) -> bool:
        """A text could reach the lead: a phone that takes texts and no opt-out, consent aside."""
        return _reachable_by_sms(self)

    @property
    def sms_allowed(self) -> bool:
        """Automated texts may go to the lead: reachable, with consent on record."""
        return _reachable_by_sms(self) and bool(self.sms_consent)

    @property
    def sms_answer_allowed(self) -> bool:
        """A text answering the lead (the instant reply to their text or call, a team reply) may go."""
        return _reachable_by_sms(self) and (bool(self.sms_consent) or self.sms_lead_started_at is not None)

    @property
    def email_allowed(self) -> bool:
        return bool(self.email) and self.email_consent and self.email_opted_out_at is None


class Enrollment(Base):
    """A lead in one playbook: of the lead's business."""

    __tablename__ = "enrollments"

    id: Mapped[int] = mapped_column(primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id"), index=True)
    sequence_name: Mapped[str] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(20), default=EnrollmentState.ACTIVE, index=True)
    state_reason: Mapped[str] = mapped_column(String(300), default="")
    enrolled_at: Mapped[datetime]
    paused_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    appointment_id: Mapped[int | None] = mapped_column(ForeignKey("appointments.id"))

    lead: Mapped[Lead] = relationship(back_populates="enrollments")
    touches: Mapped[list[Touch]] = relationship(back_populates="enrollment", order_by="Touch.due_at")


class Touch(Base):
    """One planned step of an enrollment: of the lead's business.

    `provider_id` (the provider's id for what was sent) stays unique in the whole database: Twilio and
    SendGrid never give two sends one id, and a status callback finds its touch by it alone.
    """

    __tablename__ = "touches"
    __table_args__ = (
        UniqueConstraint("enrollment_id", "step_id", name="uq_touch_step"),
        Index("ix_touches_due", "status", "due_at"),
        # A lead's touches in order: "blocked by an earlier touch" and "did every step run".
        Index("ix_touches_enrollment_position", "enrollment_id", "position"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    enrollment_id: Mapped[int] = mapped_column(ForeignKey("enrollments.id"))
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id"), index=True)
    step_id: Mapped[str] = mapped_column(String(100))
    position: Mapped[int] = mapped_column(Integer)
    channel: Mapped[str] = mapped_column(String(20))
    #: When the playbook meant it to go out, before send windows moved it.
    planned_at: Mapped[datetime]
    due_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(20), default=TouchStatus.SCHEDULED)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None]
    provider_id: Mapped[str | None] = mapped_column(String(100), unique=True)
    subject_option: Mapped[int | None]
    subject: Mapped[str | None] = mapped_column(Text)
    body_text: Mapped[str | None] = mapped_column(Text)
    body_html: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None]
    skip_reason: Mapped[str | None] = mapped_column(String(300))
    last_error: Mapped[str | None] = mapped_column(Text)
    #: A text rerouted because the number cannot take texts (bot.core.states.TouchReroute), else None.
    rerouted: Mapped[str | None] = mapped_column(String(10))
    #: The channel ("sms" or "email") whose provider settings this touch waits for, else None.
    waiting_for: Mapped[str | None] = mapped_column(String(10))

    enrollment: Mapped[Enrollment] = relationship(back_populates="touches")


class Message(Base):
    """A message to or from a lead: of the lead's business.

    The provider's id is unique per lead, not in the whole database: one email sent to two businesses'
    inbound addresses carries one Message-ID, and is a message to each of them.
    """

    __tablename__ = "messages"
    __table_args__ = (UniqueConstraint("lead_id", "channel", "provider_id", name="uq_message_provider"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id"), index=True)
    direction: Mapped[str] = mapped_column(String(3))  # "in" or "out"
    channel: Mapped[str] = mapped_column(String(20))
    touch_id: Mapped[int | None] = mapped_column(ForeignKey("touches.id"))
    provider_id: Mapped[str | None] = mapped_column(String(100))
    subject: Mapped[str | None] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text, default="")
    #: How an inbound message was understood (reply class), for stats and the team.
    classification: Mapped[str | None] = mapped_column(String(30))
    status: Mapped[str] = mapped_column(String(20), default="received")
    error_code: Mapped[str | None] = mapped_column(String(20))
    author: Mapped[str | None] = mapped_column(String(50))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime]
    #: The message's mirror in the lead's Slack thread, edited when its delivery status changes.
    slack_ts: Mapped[str | None] = mapped_column(String(30))


class Appointment(Base):
    """A visit booked for a lead, of the lead's business (kept here too: a booking is found by its calendar
    id before its lead is known)."""

    __tablename__ = "appointments"
    # A calendar's own booking id is the idempotency key: a redelivered booking is the same one. Per
    # business: the generic booking webhook's ids are each clinic's own numbering.
    __table_args__ = (UniqueConstraint("business", "source", "external_id", name="uq_appointment_external"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    #: The lead's business (its slug).
    business: Mapped[str] = mapped_column(String(BUSINESS_SLUG_LENGTH), index=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id"), index=True)
    start_at: Mapped[datetime]
    notes: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(20), default=AppointmentStatus.BOOKED)
    booked_by: Mapped[str] = mapped_column(String(60), default="system")
    created_at: Mapped[datetime]
    #: Where it was booked: team (Slack), booking (the generic webhook), calendly, cal.com.
    source: Mapped[str] = mapped_column(String(30), default="team", server_default="team")
    #: The calendar's id for it (Calendly's invitee URI, Cal.com's booking uid, the webhook's external_id).
    external_id: Mapped[str | None] = mapped_column(String(200))
    status_changed_at: Mapped[datetime | None]
    #: The appointment that took this one's place when it was rescheduled.
    replaced_by_id: Mapped[int | None] = mapped_column(ForeignKey("appointments.id"))


class CallTask(Base):
    """A call for the team to make to a lead: of the lead's business."""

    __tablename__ = "call_tasks"

    id: Mapped[int] = mapped_column(primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id"), index=True)
    touch_id: Mapped[int | None] = mapped_column(ForeignKey("touches.id"))
    reason: Mapped[str] = mapped_column(String(300))
    due_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(20), default=CallTaskStatus.OPEN, index=True)
    call_script: Mapped[str] = mapped_column(Text, default="")
    voicemail_script: Mapped[str] = mapped_column(Text, default="")
    requested_time: Mapped[datetime | None]
    claimed_by: Mapped[str | None] = mapped_column(String(50))
    claimed_at: Mapped[datetime | None]
    outcome: Mapped[str | None] = mapped_column(String(30))
    notes: Mapped[str] = mapped_column(Text, default="")
    callback_at: Mapped[datetime | None]
    reminded_at: Mapped[datetime | None]
    #: When the admins were nudged because the first nudge went unanswered too.
    admins_nudged_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    #: The task's message in the lead's thread and its copy in the channel, kept for chat.update.
    slack_channel: Mapped[str | None] = mapped_column(String(30))
    slack_thread_ts: Mapped[str | None] = mapped_column(String(30))
    slack_channel_ts: Mapped[str | None] = mapped_column(String(30))


class ConsentEntry(Base):
    """One grant or revocation of consent to be contacted (bot.store.consent), kept as evidence.

    Of the lead's business: consent given to one clinic is no consent to another.
    """

    __tablename__ = "consent_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id"), index=True)
    channel: Mapped[str] = mapped_column(String(10))
    granted: Mapped[bool]
    method: Mapped[str] = mapped_column(String(30))
    #: The wording the lead agreed to, or the note or message that shows it.
    evidence: Mapped[str] = mapped_column(Text, default="")
    #: Who recorded it: the lead, a team member (<@U…>), an operator, followup.
    actor: Mapped[str] = mapped_column(String(60))
    at: Mapped[datetime]


class AuditEntry(Base):
    """Who did what to a lead, when: of the lead's business."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    lead_id: Mapped[int | None] = mapped_column(ForeignKey("leads.id"), index=True)
    at: Mapped[datetime]
    actor_type: Mapped[str] = mapped_column(String(20))
    actor_id: Mapped[str] = mapped_column(String(60), default="")
    action: Mapped[str] = mapped_column(String(60))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


class OutboxEvent(Base):
    """A decision the adapters (Slack cards, threads, call tasks) still have to carry out.

    Of a business (its lead's, when it has a lead): its Slack channel is where the notice goes.
    """

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_pending", "delivered_at", "id"),
        # The Slack poster's looks at the queue: each business's, the card edits', the next retry (migration 0015).
        Index("ix_outbox_business_queue", "business", "delivered_at", "id"),
        Index("ix_outbox_kind_queue", "kind", "delivered_at", "id"),
        Index("ix_outbox_retry_queue", "delivered_at", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    business: Mapped[str] = mapped_column(String(BUSINESS_SLUG_LENGTH), index=True)
    lead_id: Mapped[int | None] = mapped_column(ForeignKey("leads.id"), index=True)
    kind: Mapped[str] = mapped_column(String(40))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime]
    delivered_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    #: Why it waits for another try, when that changes how it is tried (bot.core.states.NoticeRetry).
    retry_reason: Mapped[str | None] = mapped_column(String(20))


class ProcessedDelivery(Base):
    """A webhook or event already applied, so a redelivery changes nothing a second time.

    Per business: the same vendor event id sent for two businesses is two events (each business's
    calendar or account numbers its own).
    """

    __tablename__ = "processed_deliveries"
    __table_args__ = (UniqueConstraint("business", "provider", "delivery_id", name="uq_processed_delivery"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    business: Mapped[str] = mapped_column(String(BUSINESS_SLUG_LENGTH))
    provider: Mapped[str] = mapped_column(String(30))
    delivery_id: Mapped[str] = mapped_column(String(200))
    received_at: Mapped[datetime]


class BookingLinkClick(Base):
    """A lead opened their booking link: of the lead's business."""

    __tablename__ = "booking_link_clicks"

    id: Mapped[int] = mapped_column(primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id"), index=True)
    clicked_at: Mapped[datetime]
    escalated_at: Mapped[datetime | None]


class OutboundWebhook(Base):
    """One event for one of the clinic's receivers (CRM, Zapier, Make), delivered in order per lead.

    Of the lead's business, whose receivers it goes to.
    """

    __tablename__ = "outbound_webhooks"
    __table_args__ = (Index("ix_outbound_webhooks_pending", "delivered_at", "failed_at", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    business: Mapped[str] = mapped_column(String(BUSINESS_SLUG_LENGTH), index=True)
    lead_id: Mapped[int | None] = mapped_column(ForeignKey("leads.id"), index=True)
    receiver: Mapped[str] = mapped_column(String(500))
    event: Mapped[str] = mapped_column(String(40))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime]
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None]
    #: A process is posting it until then (several processes share the queue; none posts it twice).
    claimed_until: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
    #: Given up after the last retry; the team was told in the lead's thread.
    failed_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
