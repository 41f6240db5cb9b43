"""Dispatch's SQL: the claim, the batch's facts, the check before a send, and the recording statements.

Built once at import: building a statement each time cost more than running it, which showed most
when the fast lane claims and records one new lead at a time. Kept apart from the loop
(bot.usecases.dispatch), the decisions (bot.usecases.touch_policy) and the recorder
(bot.usecases.send_outcomes), so each of those reads as what it does, not how it is queried.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import cast

from sqlalchemy import Select, Table, Update, bindparam, exists, func, literal, select, union_all
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session, aliased, joinedload

from bot.core.playbook import LeadFacts
from bot.store.bulk import ManyRows
from bot.store.models import Appointment, Enrollment, EnrollmentState, Lead, Message, Touch, TouchStatus

touches, leads, enrollments = (cast(Table, model.__table__) for model in (Touch, Lead, Enrollment))
_earlier = aliased(Touch)
_DUE = (
    select(Touch.id)
    .join(Enrollment, Enrollment.id == Touch.enrollment_id)
    .where(
        Touch.status == TouchStatus.SCHEDULED,
        Touch.due_at <= bindparam("now"),
        (Touch.next_attempt_at.is_(None)) | (Touch.next_attempt_at <= bindparam("now")),
        Enrollment.state == EnrollmentState.ACTIVE,
        ~exists().where(  # an earlier touch of the same enrollment is still to go: this one waits
            _earlier.enrollment_id == Touch.enrollment_id,
            _earlier.position < Touch.position,
            _earlier.status.in_((TouchStatus.SCHEDULED, TouchStatus.SENDING)),
        ),
    )
    .order_by(Touch.due_at, Touch.id)
    .limit(bindparam("batch_size"))
    # Other processes' claims skip these rows instead of waiting for them (PostgreSQL).
    .with_for_update(skip_locked=True, of=Touch)
)


def _take(due: Select) -> Update:
    """Mark the due touches `sending` (taken) in the statement that finds them, and return their ids.

    Two claims, in this process or another, can never both take a touch: SQLite runs the
    statement under its one write lock; PostgreSQL's claims skip the rows another claim holds.
    Only the status is marked: the attempt is counted when a touch really goes to a provider
    (`touch_policy`), so a touch decided otherwise (skipped, rescheduled, a call) keeps its count.
    """
    return (
        touches.update()
        .where(touches.c.id.in_(due.scalar_subquery()))
        .values(status=TouchStatus.SENDING)
        .returning(touches.c.id)
    )


TAKE_DUE = _take(_DUE)
TAKE_DUE_FOR_LEADS = _take(_DUE.where(Touch.lead_id.in_(bindparam("only_lead_ids", expanding=True))))
TAKEN = (
    select(Touch)
    .where(Touch.id.in_(bindparam("ids", expanding=True)))
    .order_by(Touch.due_at, Touch.id)
    .execution_options(populate_existing=True)
    # One query for the batch's touches, enrollments and leads.
    .options(joinedload(Touch.enrollment, innerjoin=True).joinedload(Enrollment.lead, innerjoin=True))
)
#: A taken touch given back as it was: scheduled, its attempt count what it was before it was taken.
HAND_BACK = (
    touches.update()
    .where(
        touches.c.id == bindparam("claimed_id"),
        touches.c.status == TouchStatus.SENDING,
        touches.c.attempts == bindparam("claimed_attempt"),
    )
    .values(status=TouchStatus.SCHEDULED, attempts=bindparam("attempts_before"))
)

_REPLIED = (
    select(literal("replied"), Enrollment.id)
    .distinct()
    .join(Message, Message.lead_id == Enrollment.lead_id)
    .where(
        Enrollment.id.in_(bindparam("enrollment_ids", expanding=True)),
        Message.direction == "in",
        Message.created_at >= Enrollment.enrolled_at,
        (Message.classification.is_(None)) | (Message.classification != "auto_reply"),
    )
)
_BOOKED = (
    select(literal("booked"), Appointment.lead_id)
    .distinct()
    .where(
        Appointment.lead_id.in_(bindparam("lead_ids", expanding=True)), Appointment.status.in_(("booked", "confirmed"))
    )
)
#: Leads already sent a text that did not fail.
_TEXTED = (
    select(literal("texted"), Message.lead_id)
    .distinct()
    .where(
        Message.lead_id.in_(bindparam("lead_ids", expanding=True)),
        Message.direction == "out",
        Message.channel == "sms",
        Message.status != "failed",
    )
)
#: Leads already texted since they last texted or called first: their message has its answer.
_ANSWERED = (
    select(literal("answered"), Message.lead_id)
    .distinct()
    .join(Lead, Lead.id == Message.lead_id)
    .where(
        Message.lead_id.in_(bindparam("lead_ids", expanding=True)),
        Message.direction == "out",
        Message.channel == "sms",
        Message.status != "failed",
        Lead.sms_lead_started_at.is_not(None),
        Message.created_at >= Lead.sms_lead_started_at,
    )
)
#: The four in one round trip, each row tagged with the fact it stands for.
_FACTS = union_all(_REPLIED, _BOOKED, _TEXTED, _ANSWERED)

#: Ordered and limited rather than min(): PostgreSQL then reads `ix_touches_due` from its start and
#: stops at the first active one, instead of joining every scheduled touch (90 ms with 100,000).
NEXT_DUE = (
    select(Touch.due_at)
    .join(Enrollment, Enrollment.id == Touch.enrollment_id)
    .where(Touch.status == TouchStatus.SCHEDULED, Enrollment.state == EnrollmentState.ACTIVE)
    .order_by(Touch.due_at)
    .limit(1)
)

#: What `Lead.sms_allowed`, `Lead.sms_answer_allowed` and `Lead.email_allowed` read.
_REACHABILITY = (
    Lead.phone,
    Lead.email,
    Lead.sms_consent,
    Lead.email_consent,
    Lead.sms_opted_out_at,
    Lead.email_opted_out_at,
    Lead.sms_unreachable_reason,
    Lead.sms_lead_started_at,
)

#: Claimed touches as they stand now, and whether their leads may still be written to.
LEADS_CHECK = (
    select(touches.c.id, touches.c.status, touches.c.attempts, *(leads.c[column.key] for column in _REACHABILITY))
    .join(leads, leads.c.id == touches.c.lead_id)
    .where(touches.c.id.in_(bindparam("touch_ids", expanding=True)))
    # Locked in lead id order, as every group and the fast lane take them, so two never deadlock.
    .order_by(leads.c.id)
    # Held until the group's transaction ends: another process's STOP for these leads waits.
    .with_for_update(of=leads)
)

# --- what the recorder runs ------------------------------------------------------------------------

MARK_SENT = (
    touches.update()
    .where(touches.c.id == bindparam("sent_id"))
    .values(
        status=TouchStatus.SENT,
        provider_id=bindparam("sent_provider_id"),
        sent_at=bindparam("sent_at_"),
        last_error=None,
    )
)
#: Run with a list of rows: one executemany on SQLite, one statement on PostgreSQL (bot.store.bulk), no ORM.
RECORD_MESSAGES = ManyRows(
    cast(Table, Message.__table__),
    ["lead_id", "channel", "touch_id", "provider_id", "subject", "body", "status"],
    ["direction", "created_at", "details"],
)
_sent = (
    func.unnest(
        bindparam("sent_ids", type_=ARRAY(touches.c.id.type)),
        bindparam("sent_provider_ids", type_=ARRAY(touches.c.provider_id.type)),
    )
    .table_valued("id", "provider_id")
    .render_derived(name="sent")
)
#: MARK_SENT for many touches in one statement on PostgreSQL: their ids and provider ids as two arrays.
MARK_ALL_SENT = (
    touches.update()
    .where(touches.c.id == _sent.c.id)
    .values(status=TouchStatus.SENT, provider_id=_sent.c.provider_id, sent_at=bindparam("sent_at_"), last_error=None)
)
#: Leads still new whose first touch went: contacted now, in one statement that says which moved.
#: (`stage_after_touch` moves only a new lead; read and written in one statement, the stage moved
#: is the stage stored, whoever else writes leads meanwhile.)
CONTACT_NEW = (
    leads.update()
    .where(leads.c.id.in_(bindparam("lead_ids", expanding=True)), leads.c.stage == bindparam("from_stage"))
    .values(stage=bindparam("to_stage"), updated_at=bindparam("moved_at"))
    .returning(leads.c.id)
)
#: Open enrollments among these with no step left to run, completed in the statement that finds them.
COMPLETE_FINISHED = (
    enrollments.update()
    .where(
        enrollments.c.id.in_(bindparam("enrollment_ids", expanding=True)),
        enrollments.c.state.in_((EnrollmentState.ACTIVE, EnrollmentState.PAUSED)),
        ~exists().where(
            touches.c.enrollment_id == enrollments.c.id,
            touches.c.status.in_((TouchStatus.SCHEDULED, TouchStatus.SENDING)),
        ),
    )
    .values(state=EnrollmentState.COMPLETED, state_reason="every step ran", ended_at=bindparam("ended_at_"))
    .returning(enrollments.c.id, enrollments.c.lead_id, enrollments.c.sequence_name)
)


@dataclass
class BatchFacts:
    """What the playbook's `when` rules and the templates ask about a batch's leads, read in four queries."""

    replied_enrollments: set[int]
    booked_leads: set[int]
    #: Leads already sent a text that did not fail: their texts leave out the opt-out line.
    texted_leads: set[int]
    #: Held here so the appointments stay loaded while the batch renders.
    appointments: dict[int, Appointment]
    #: Leads whose own text or call has had its answer (or gets it in this batch).
    answered_leads: set[int] = field(default_factory=set)

    @classmethod
    def load(cls, session: Session, batch: Sequence[Touch]) -> BatchFacts:
        ids = {
            "enrollment_ids": list({touch.enrollment_id for touch in batch}),
            "lead_ids": list({touch.lead_id for touch in batch}),
        }
        found: dict[str, set[int]] = {"replied": set(), "booked": set(), "texted": set(), "answered": set()}
        # Plain columns: Core answers them without the ORM's overhead.
        for fact, fact_id in session.connection().execute(_FACTS, ids):
            found[fact].add(fact_id)
        replied, booked, texted = found["replied"], found["booked"], found["texted"]
        appointment_ids = [touch.enrollment.appointment_id for touch in batch if touch.enrollment.appointment_id]
        appointments = (
            {
                appointment.id: appointment
                for appointment in session.scalars(select(Appointment).where(Appointment.id.in_(appointment_ids)))
            }
            if appointment_ids
            else {}
        )
        return cls(replied, booked, texted, appointments, found["answered"])

    def about(self, lead: Lead, enrollment: Enrollment) -> LeadFacts:
        return LeadFacts(
            has_email=bool(lead.email),
            has_phone=bool(lead.phone),
            has_replied=enrollment.id in self.replied_enrollments,
            has_booked=lead.id in self.booked_leads,
            sms_allowed=lead.sms_allowed,
            email_allowed=lead.email_allowed,
        )
