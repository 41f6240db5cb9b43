"""Lead intake and lookup: validated contact points, no duplicate leads, an enrollment for each new one."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable, Mapping

from sqlalchemy import ColumnElement, Select, bindparam, func, insert, or_, select
from sqlalchemy.orm import Session

from bot.store import audit, outbox
from bot.store.audit import Actor
from bot.core.business import Business
from bot.store.consent import (ConsentGiven, ConsentMethod, InvalidConsent, evidence_text, grant_sms, read_yes_no,
                               sms_grant_entry, sms_granted_fields)
from bot.core.contacts import (
    InvalidEmail,
    InvalidPhone,
    InvalidTimezone,
    normalize_email,
    normalize_phone,
    normalize_timezone,
    served_country_problem,
    timezones_for_phone,
)
from bot.usecases.enrollment import NURTURE_SEQUENCE, end, open_enrollments, timezones_of, touch_values
from bot.usecases.enrollment import enroll as start_sequence
from bot.store.lead_locks import taking_lead
from bot.core.planning import plan_touches
from bot.store.models import ConsentEntry, Enrollment, EnrollmentState, Lead, Stage, Touch
from bot.store.outbox import Notice
from bot.core.playbook import Sequence

if TYPE_CHECKING:
    from bot.usecases.services import Services

#: Stages in which a lead who writes in again is the same ongoing conversation, not a new inquiry.
ONGOING_STAGES = (Stage.NEW, Stage.CONTACTED, Stage.ENGAGED, Stage.BOOKED)
#: The most leads a name search returns: a way to pick one lead, never a way to list them all.
MAX_NAME_MATCHES = 10
KNOWN_FIELDS = ("name", "phone", "email", "source", "message", "sequence", "timezone", "consent", "consent_text")


class InvalidLead(ValueError):
    """A lead needs a valid phone or email; each reason names the field."""

    def __init__(self, reasons: list[str]):
        self.reasons = reasons
        super().__init__("; ".join(reasons))


@dataclass(frozen=True)
class LeadInput:
    """A lead as validated at the edge: phone in E.164, email normalised."""

    name: str = ""
    phone: str | None = None
    email: str | None = None
    source: str = "manual"
    message: str = ""
    sequence: str | None = None
    timezone: str | None = None
    custom_fields: Mapping[str, Any] = field(default_factory=dict)
    #: Consent to automated texts given at intake (the form's checkbox, an import's column), if any.
    sms_consent: ConsentGiven | None = None

    @classmethod
    def parse(cls, fields: Mapping[str, Any], *, default_region: str = "US", default_source: str = "manual",
              consent_method: ConsentMethod = ConsentMethod.WEB_FORM, consent_evidence: str = "",
              sms_countries: frozenset[str] | None = None) -> LeadInput:
        """Validate raw fields (a form, JSON, a CSV row); raise InvalidLead listing every problem.

        `consent` (yes/no, a checkbox's value) and `consent_text` (the words the lead agreed to)
        put consent to texts on record by `consent_method`; the wording is required unless
        `consent_evidence` already says how consent was given (an import's flag).

        With `sms_countries` (Services.sms_countries: the web form and `/followup new` pass it), a
        phone number from any other country is refused: the lead would be texted at once.
        """
        reasons: list[str] = []
        consent: ConsentGiven | None = None
        try:
            if read_yes_no(fields.get("consent", False), "consent"):
                wording = evidence_text(fields.get("consent_text"), "consent_text", required=not consent_evidence)
                consent = ConsentGiven(consent_method, wording or consent_evidence)
            elif fields.get("consent_text") not in (None, ""):
                evidence_text(fields.get("consent_text"), "consent_text", required=False)
        except InvalidConsent as error:
            reasons.append(str(error))

        def text(key: str, limit: int) -> str:
            value = fields.get(key)
            if value is None:
                return ""
            if not isinstance(value, (str, int, float)) or isinstance(value, bool):
                reasons.append(f"{key}: must be text")
                return ""
            value = str(value).strip()
            if len(value) > limit:
                reasons.append(f"{key}: longer than {limit} characters")
                return value[:limit]
            return value

        name, raw_phone, raw_email = text("name", 200), text("phone", 40), text("email", 320)
        source, message = text("source", 50) or default_source, text("message", 5000)
        sequence, timezone = text("sequence", 200) or None, text("timezone", 64) or None
        phone = email = None
        if raw_phone:
            try:
                phone = normalize_phone(raw_phone, default_region)
            except InvalidPhone as error:
                reasons.append(f"phone: {error}")
            if phone and sms_countries is not None and (problem := served_country_problem(phone, sms_countries)):
                reasons.append(f"phone: {problem}")
        if raw_email:
            try:
                email = normalize_email(raw_email)
            except InvalidEmail as error:
                reasons.append(f"email: {error}")
        if not raw_phone and not raw_email:
            reasons.append("phone or email: give at least one way to reach the lead")
        if timezone:
            try:
                timezone = normalize_timezone(timezone, phone_zones=timezones_for_phone(phone) if phone else ())
            except InvalidTimezone as error:
                reasons.append(f"timezone: {error}")
        custom = {k: v for k, v in fields.items() if k not in KNOWN_FIELDS and isinstance(k, str)}
        if reasons:
            raise InvalidLead(reasons)
        return cls(name, phone, email, source, message, sequence, timezone, custom, consent)


@dataclass(frozen=True)
class IntakeResult:
    lead_id: int
    created: bool
    #: Whether this intake started a sequence (a returning lead starts again; an ongoing one does not).
    enrolled: bool


def _newest_lead_where(*conditions: ColumnElement[bool]) -> Select[tuple[Lead]]:
    return select(Lead).where(or_(*conditions)).order_by(Lead.id.desc()).limit(1)


# Built once: every intake asks, and building the statement cost more than running it.
_BY_PHONE = Lead.phone == bindparam("phone")
_BY_EMAIL = func.lower(Lead.email) == bindparam("email")
_NEWEST_BY = {
    (True, True): _newest_lead_where(_BY_PHONE, _BY_EMAIL),
    (True, False): _newest_lead_where(_BY_PHONE),
    (False, True): _newest_lead_where(_BY_EMAIL),
}


# Intake's own question ("is this lead known?") needs only the id: no ORM object is built for it.
_NEWEST_ID_BY = {
    key: select(Lead.id).where(or_(*conditions)).order_by(Lead.id.desc()).limit(1)
    for key, conditions in {(True, True): (_BY_PHONE, _BY_EMAIL), (True, False): (_BY_PHONE,),
                            (False, True): (_BY_EMAIL,)}.items()
}


def find_existing(session: Session, phone: str | None, email: str | None) -> Lead | None:
    """Find the lead these contact points belong to, newest first."""
    if not phone and not email:
        return None
    statement = _NEWEST_BY[(bool(phone), bool(email))]
    return session.scalars(statement, {"phone": phone, "email": email.lower() if email else None}).first()


def _existing_id(session: Session, phone: str | None, email: str | None) -> int | None:
    """`find_existing`'s lead, by id only."""
    if not phone and not email:
        return None
    statement = _NEWEST_ID_BY[(bool(phone), bool(email))]
    return session.connection().execute(statement, {"phone": phone, "email": email.lower() if email else None}
                                        ).scalar()


def add_lead(
    session: Session,
    data: LeadInput,
    *,
    business: Business,
    sequence: Sequence,
    now: datetime,
    actor: Actor,
    enroll: bool = True,
    only_new: bool = False,
    known_lead_id: int | None = None,
) -> IntakeResult:
    """Take a lead in: a new one is stored and enrolled; an ongoing one is returned as it is.

    A known lead is changed here only by a caller holding its lock (`take_in_lead`): with
    `only_new`, a known lead is returned untouched; `known_lead_id` is the one whose lock is held.
    """
    if only_new and not known_lead_id:
        known_id = _existing_id(session, data.phone, data.email)
        if known_id is not None:
            return IntakeResult(known_id, created=False, enrolled=False)
        lead_id = _store_new_lead(session, data, business=business, sequence=sequence, now=now, actor=actor,
                                  enroll=enroll)
        return IntakeResult(lead_id, created=True, enrolled=enroll)
    existing = session.get(Lead, known_lead_id) if known_lead_id else find_existing(session, data.phone, data.email)
    if existing is not None and data.sms_consent is not None and data.phone and existing.phone == data.phone:
        # Agreeing again (the form ticked a second time) is consent on record from now on.
        grant_sms(session, existing, data.sms_consent, actor=actor, now=now)
    if existing is not None:
        still_open = open_enrollments(session, existing.id)
        if existing.stage in ONGOING_STAGES or any(e.sequence_name != NURTURE_SEQUENCE for e in still_open):
            return IntakeResult(existing.id, created=False, enrolled=False)
        # A lead who went quiet (nurture) or was lost and asks again is the same person with a new inquiry.
        existing.first_message = data.message or existing.first_message
        existing.name = existing.name or data.name
        existing.phone = existing.phone or data.phone
        existing.email = existing.email or data.email
        for nurturing in still_open:
            end(session, nurturing, now=now, reason="inquired again", actor=actor)
        if existing.stage != Stage.OPTED_OUT:
            existing.stage = Stage.NEW
        existing.updated_at = now
        start_sequence(session, existing, sequence, business=business, now=now, actor=actor)
        audit.record(session, lead_id=existing.id, actor=actor, action="inquired_again", at=now, source=data.source)
        outbox.publish(session, Notice.LEAD_CHANGED, lead_id=existing.id, at=now)
        return IntakeResult(existing.id, created=False, enrolled=True)

    lead_id = _store_new_lead(session, data, business=business, sequence=sequence, now=now, actor=actor,
                              enroll=enroll)
    return IntakeResult(lead_id, created=True, enrolled=enroll)


# A new lead's rows are written with Core statements built once: the ORM's unit of work (flush
# ordering, identity map, a RETURNING per object) was most of intake's CPU on PostgreSQL.
_INSERT_LEAD = insert(Lead).returning(Lead.id)
_INSERT_ENROLLMENT = insert(Enrollment).returning(Enrollment.id)
#: Run with a list of rows: one executemany (a C loop on SQLite, one pipeline on PostgreSQL).
_INSERT_TOUCHES = insert(Touch)
_INSERT_CONSENT = insert(ConsentEntry)


def _store_new_lead(session: Session, data: LeadInput, *, business: Business, sequence: Sequence, now: datetime,
                    actor: Actor, enroll: bool) -> int:
    """Store a new lead, in the caller's transaction, as the ORM path did: the lead with any consent to
    texts, its consent log entry, its audit entries and card notice, and (with `enroll`) its sequence
    with every touch laid out. Return the new lead's id."""
    timezone = data.timezone or _timezone_from_phone(data.phone, business)
    consent = data.sms_consent if data.phone else None
    plan = plan_touches(sequence, enrolled_at=now, business=business,
                        lead_timezones=timezones_of(timezone, data.phone, business)) if enroll else []
    connection = session.connection()
    no_consent = {"sms_consent": False, "sms_consent_method": None, "sms_consent_at": None}
    lead_id: int = connection.execute(_INSERT_LEAD, dict(
        name=data.name, phone=data.phone, email=data.email, source=data.source, first_message=data.message,
        custom_fields=dict(data.custom_fields), timezone=timezone, stage=Stage.NEW,
        link_token=secrets.token_urlsafe(16), unsubscribe_token=secrets.token_urlsafe(16),
        created_at=now, updated_at=now, **(sms_granted_fields(consent, now) if consent else no_consent),
    )).scalar_one()
    if consent is not None:
        connection.execute(_INSERT_CONSENT, sms_grant_entry(lead_id, consent, actor=actor, now=now))
    entries = [audit.Entry(lead_id, actor, "lead_created", now, {"source": data.source})]
    if enroll:
        enrollment_id = connection.execute(_INSERT_ENROLLMENT, dict(
            lead_id=lead_id, sequence_name=sequence.name, state=EnrollmentState.ACTIVE, state_reason="",
            enrolled_at=now)).scalar_one()
        if plan:
            connection.execute(_INSERT_TOUCHES, [touch_values(enrollment_id, lead_id, planned) for planned in plan])
        entries.append(audit.Entry(lead_id, actor, "enrolled", now, {"sequence": sequence.name}))
    audit.record_many(session, entries)
    outbox.publish_many(session, [outbox.Pending(Notice.LEAD_CREATED, lead_id=lead_id, at=now)])
    return lead_id


def take_in_lead(
    services: Services,
    data: LeadInput,
    *,
    actor: Actor,
    sequence: Sequence | None = None,
    enroll: bool = True,
    also: Callable[[Session, Lead, IntakeResult], None] | None = None,
) -> IntakeResult:
    """Take a lead in from outside (a form, a text, a call, Slack): a new lead is stored at once; a
    known one is changed only under its lock (`bot.store.lead_locks.taking_lead`), like every change to a lead.

    `also` runs in the same transaction, with the lead, for what the caller notes with the intake.
    """
    playbook = sequence or services.playbooks.get()
    now = services.clock.now()
    with services.session_factory.begin() as session:
        result = add_lead(session, data, business=services.business, sequence=playbook, now=now, actor=actor,
                          enroll=enroll, only_new=True)
        if result.created:
            if also is not None:
                also(session, _stored(session, result.lead_id), result)
            return result
    with taking_lead(services, result.lead_id) as (session, lead):
        if lead is None:  # erased meanwhile: take it in as new
            return take_in_lead(services, data, actor=actor, sequence=sequence, enroll=enroll, also=also)
        result = add_lead(session, data, business=services.business, sequence=playbook, now=now, actor=actor,
                          enroll=enroll, known_lead_id=lead.id)
        if also is not None:
            also(session, lead, result)
        return result


def _stored(session: Session, lead_id: int) -> Lead:
    lead = session.get(Lead, lead_id)
    assert lead is not None
    return lead


def _timezone_from_phone(phone: str | None, business: Business) -> str:
    """One zone for the lead: the phone's when it names exactly one, else '' (all of them apply)."""
    zones = timezones_for_phone(phone) if phone else ()
    if len(zones) == 1:
        return zones[0]
    return "" if zones else business.timezone.key


def find_lead(session: Session, reference: str, *, default_region: str = "US") -> list[Lead]:
    """Find leads a person named by id, phone (any common format), email or name."""
    reference = reference.strip().lstrip("#")
    if not reference:
        return []
    if reference.isdigit() and len(reference) < 7:
        lead = session.get(Lead, int(reference))
        return [lead] if lead else []
    if "@" in reference:
        return list(session.scalars(select(Lead).where(func.lower(Lead.email) == reference.lower())))
    try:
        phone = normalize_phone(reference, default_region)
    except InvalidPhone:
        phone = None
    if phone:
        return list(session.scalars(select(Lead).where(Lead.phone == phone)))
    # What a person typed is matched as text: % and _ are letters here, not LIKE's wildcards.
    literal = reference.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    matching = func.lower(Lead.name).like(f"%{literal}%", escape="\\")
    return list(session.scalars(select(Lead).where(matching).order_by(Lead.id).limit(MAX_NAME_MATCHES)))
