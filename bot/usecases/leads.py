"""Lead intake and lookup: validated contact points, no duplicate leads, an enrollment for each new one."""

from __future__ import annotations

import functools
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import CTE, ColumnElement, Select, Table, and_, bindparam, func, insert, or_, select, union_all
from sqlalchemy.orm import Session

from bot.core.business import Business
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
from bot.core.planning import plan_touches
from bot.core.playbook import Sequence
from bot.store import audit, outbox, webhook_events
from bot.store.audit import Actor
from bot.store.consent import (
    ConsentGiven,
    ConsentMethod,
    InvalidConsent,
    evidence_text,
    grant_sms,
    read_yes_no,
    sms_grant_entry,
    sms_granted_fields,
)
from bot.store.lead_locks import taking_lead
from bot.store.models import (
    AuditEntry,
    Base,
    ConsentEntry,
    Enrollment,
    EnrollmentState,
    Lead,
    OutboxEvent,
    Stage,
    Touch,
)
from bot.store.outbox import Notice
from bot.usecases.enrollment import NURTURE_SEQUENCE, end, open_enrollments, timezones_of, touch_values
from bot.usecases.enrollment import enroll as start_sequence

if TYPE_CHECKING:
    from bot.usecases.services import Services

#: Stages in which a lead who writes in again is the same ongoing conversation, not a new inquiry.
ONGOING_STAGES = (Stage.NEW, Stage.CONTACTED, Stage.ENGAGED, Stage.BOOKED)
#: The most leads a name search returns: a way to pick one lead, never a way to list them all.
MAX_NAME_MATCHES = 10
KNOWN_FIELDS = ("name", "phone", "email", "source", "message", "sequence", "timezone", "consent", "consent_text")


def business_named(services: Services, slug: str | None) -> Business:
    """The business a use case was told to act for, by its slug (None: the deployment's single business).

    A slug this deployment does not serve raises UnknownBusiness: it is never read as the default business.
    """
    return services.business if slug is None else services.business_of(slug)


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
    def parse(
        cls,
        fields: Mapping[str, Any],
        *,
        default_region: str = "US",
        default_source: str = "manual",
        consent_method: ConsentMethod = ConsentMethod.WEB_FORM,
        consent_evidence: str = "",
        sms_countries: frozenset[str] | None = None,
    ) -> LeadInput:
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


# Built once: every intake asks, and building the statement cost more than running it. The business is
# in each arm of the OR, so each arm is one index's lookup ((business, phone) and (business, lower(email))).
_IN_BUSINESS = Lead.business == bindparam("business")
_BY_PHONE = and_(_IN_BUSINESS, Lead.phone == bindparam("phone"))
_BY_EMAIL = and_(_IN_BUSINESS, func.lower(Lead.email) == bindparam("email"))
_NEWEST_BY = {
    (True, True): _newest_lead_where(_BY_PHONE, _BY_EMAIL),
    (True, False): _newest_lead_where(_BY_PHONE),
    (False, True): _newest_lead_where(_BY_EMAIL),
}


# Intake's own question ("is this lead known?") needs only the id: no ORM object is built for it.
_NEWEST_ID_BY = {
    key: select(Lead.id).where(or_(*conditions)).order_by(Lead.id.desc()).limit(1)
    for key, conditions in {
        (True, True): (_BY_PHONE, _BY_EMAIL),
        (True, False): (_BY_PHONE,),
        (False, True): (_BY_EMAIL,),
    }.items()
}


def find_existing(session: Session, phone: str | None, email: str | None, *, business: str) -> Lead | None:
    """Find the lead of `business` (its slug) these contact points belong to, newest first.

    Only that business's leads: the same phone or email may be a lead of another business too, and
    that lead is none of this one's.
    """
    if not phone and not email:
        return None
    statement = _NEWEST_BY[(bool(phone), bool(email))]
    return session.scalars(statement, _contact_parameters(phone, email, business)).first()


def _existing_id(session: Session, phone: str | None, email: str | None, *, business: str) -> int | None:
    """`find_existing`'s lead, by id only."""
    if not phone and not email:
        return None
    statement = _NEWEST_ID_BY[(bool(phone), bool(email))]
    return session.connection().execute(statement, _contact_parameters(phone, email, business)).scalar()


def _contact_parameters(phone: str | None, email: str | None, business: str) -> dict[str, str | None]:
    return {"phone": phone, "email": email.lower() if email else None, "business": business}


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
        known_id = _existing_id(session, data.phone, data.email, business=business.slug)
        if known_id is not None:
            return IntakeResult(known_id, created=False, enrolled=False)
        lead_id = _store_new_lead(
            session, data, business=business, sequence=sequence, now=now, actor=actor, enroll=enroll
        )
        return IntakeResult(lead_id, created=True, enrolled=enroll)
    existing = (
        session.get(Lead, known_lead_id)
        if known_lead_id
        else find_existing(session, data.phone, data.email, business=business.slug)
    )
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

    lead_id = _store_new_lead(session, data, business=business, sequence=sequence, now=now, actor=actor, enroll=enroll)
    return IntakeResult(lead_id, created=True, enrolled=enroll)


# A new lead's rows are written with Core statements built once: the ORM's unit of work (flush
# ordering, identity map, a RETURNING per object) was most of intake's CPU on PostgreSQL.
_INSERT_LEAD = insert(Lead).returning(Lead.id)
_INSERT_ENROLLMENT = insert(Enrollment).returning(Enrollment.id)
#: Run with a list of rows: one executemany (a C loop on SQLite, one pipeline on PostgreSQL).
_INSERT_TOUCHES = insert(Touch)
_INSERT_CONSENT = insert(ConsentEntry)


@dataclass(frozen=True)
class _NewLeadRows:
    """Every row a new lead's intake writes, ids aside: the ids come from the rows written first."""

    lead: dict[str, Any]
    consent: dict[str, Any] | None
    enrollment: dict[str, Any] | None
    touches: list[dict[str, Any]]
    entries: list[audit.Entry]
    notices: list[outbox.Pending]


def _new_lead_rows(
    data: LeadInput, *, business: Business, sequence: Sequence, now: datetime, actor: Actor, enroll: bool
) -> _NewLeadRows:
    """What `_store_new_lead` writes, worked out before anything is written (a plan that fails writes nothing)."""
    timezone = data.timezone or _timezone_from_phone(data.phone, business)
    consent = data.sms_consent if data.phone else None
    plan = (
        plan_touches(
            sequence, enrolled_at=now, business=business, lead_timezones=timezones_of(timezone, data.phone, business)
        )
        if enroll
        else []
    )
    no_consent = {"sms_consent": False, "sms_consent_method": None, "sms_consent_at": None}
    lead = dict(
        business=business.slug,
        name=data.name,
        phone=data.phone,
        email=data.email,
        source=data.source,
        first_message=data.message,
        custom_fields=dict(data.custom_fields),
        timezone=timezone,
        stage=Stage.NEW,
        email_consent=True,
        link_token=secrets.token_urlsafe(16),
        unsubscribe_token=secrets.token_urlsafe(16),
        created_at=now,
        updated_at=now,
        **(sms_granted_fields(consent, now) if consent else no_consent),
    )
    entries = [audit.Entry(0, actor, "lead_created", now, {"source": data.source})]
    if enroll:
        entries.append(audit.Entry(0, actor, "enrolled", now, {"sequence": sequence.name}))
    return _NewLeadRows(
        lead=lead,
        consent=sms_grant_entry(0, consent, actor=actor, now=now) if consent is not None else None,
        enrollment=dict(
            lead_id=0, sequence_name=sequence.name, state=EnrollmentState.ACTIVE, state_reason="", enrolled_at=now
        )
        if enroll
        else None,
        touches=[touch_values(0, 0, planned) for planned in plan],
        entries=entries,
        notices=[outbox.Pending(Notice.LEAD_CREATED, lead_id=0, at=now, business=business.slug)],
    )


def _store_new_lead(
    session: Session,
    data: LeadInput,
    *,
    business: Business,
    sequence: Sequence,
    now: datetime,
    actor: Actor,
    enroll: bool,
) -> int:
    """Store a new lead, in the caller's transaction, as the ORM path did: the lead with any consent to
    texts, its consent log entry, its audit entries and card notice, and (with `enroll`) its sequence
    with every touch laid out. Return the new lead's id.

    On PostgreSQL all of it is one statement (one round trip); elsewhere a statement per table.
    """
    rows = _new_lead_rows(data, business=business, sequence=sequence, now=now, actor=actor, enroll=enroll)
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        statement = _new_lead_statement(
            consent=rows.consent is not None,
            enroll=rows.enrollment is not None,
            touches=len(rows.touches),
            entries=len(rows.entries),
            notices=len(rows.notices),
        )
        lead_id: int = connection.execute(statement, _new_lead_parameters(rows)).scalar_one()
        webhook_events.queue_many_for_audit(
            session, ((lead_id, entry.action, entry.at, entry.details) for entry in rows.entries)
        )
        return lead_id
    lead_id = connection.execute(_INSERT_LEAD, rows.lead).scalar_one()
    if rows.consent is not None:
        connection.execute(_INSERT_CONSENT, {**rows.consent, "lead_id": lead_id})
    if rows.enrollment is not None:
        enrollment_id = connection.execute(_INSERT_ENROLLMENT, {**rows.enrollment, "lead_id": lead_id}).scalar_one()
        if rows.touches:
            connection.execute(
                _INSERT_TOUCHES,
                [{**touch, "enrollment_id": enrollment_id, "lead_id": lead_id} for touch in rows.touches],
            )
    audit.record_many(session, [replace(entry, lead_id=lead_id) for entry in rows.entries])
    outbox.publish_many(session, [replace(notice, lead_id=lead_id) for notice in rows.notices])
    return lead_id


def _row_parameters(prefix: str, values: dict[str, Any], *, ids: tuple[str, ...]) -> dict[str, Any]:
    return {f"{prefix}{key}": value for key, value in values.items() if key not in ids}


def _new_lead_parameters(rows: _NewLeadRows) -> dict[str, Any]:
    """The values for `_new_lead_statement`, each named after its row and column."""
    parameters = _row_parameters("lead_", rows.lead, ids=())
    if rows.consent is not None:
        parameters |= _row_parameters("consent_", rows.consent, ids=("lead_id",))
    if rows.enrollment is not None:
        parameters |= _row_parameters("enrollment_", rows.enrollment, ids=("lead_id",))
    for index, touch in enumerate(rows.touches):
        parameters |= _row_parameters(f"touch{index}_", touch, ids=("lead_id", "enrollment_id"))
    for index, entry in enumerate(rows.entries):
        parameters |= _row_parameters(f"audit{index}_", audit.entry_values(entry), ids=("lead_id",))
    for index, notice in enumerate(rows.notices):
        parameters |= _row_parameters(f"notice{index}_", outbox.pending_values(notice), ids=("lead_id",))
    return parameters


_LEAD_COLUMNS = (
    "business",
    "name",
    "phone",
    "email",
    "source",
    "first_message",
    "custom_fields",
    "timezone",
    "stage",
    "email_consent",
    "link_token",
    "unsubscribe_token",
    "created_at",
    "updated_at",
    "sms_consent",
    "sms_consent_method",
    "sms_consent_at",
)


def _copied(table: Table, source: CTE, ids: dict[str, str], prefixes: list[str], columns: tuple[str, ...]) -> CTE:
    """INSERT INTO table: one row per prefix, its ids taken from `source` (column -> source column),
    every other column a bound value named prefix + column."""
    names = [*ids, *columns]
    rows = [
        select(
            *(source.c[ids[name]] for name in ids),
            *(bindparam(prefix + column, type_=table.c[column].type) for column in columns),
        )
        for prefix in prefixes
    ]
    return insert(table).from_select(names, rows[0] if len(rows) == 1 else union_all(*rows)).cte(f"new_{table.name}")


@functools.cache
def _new_lead_statement(*, consent: bool, enroll: bool, touches: int, entries: int, notices: int) -> Select:
    """PostgreSQL: a new lead's rows in one statement, each table's INSERT a data-modifying CTE that takes
    the new ids from the INSERT before it (built once per shape: with or without consent, touches)."""
    leads, enrollments = Lead.__table__, Enrollment.__table__
    assert isinstance(leads, Table) and isinstance(enrollments, Table)
    new_lead = (
        insert(leads)
        .values({column: bindparam(f"lead_{column}", type_=leads.c[column].type) for column in _LEAD_COLUMNS})
        .returning(leads.c.id)
        .cte("new_lead")
    )
    by_lead = {"lead_id": "id"}
    parts = []
    if consent:
        parts.append(
            _copied(
                _table(ConsentEntry),
                new_lead,
                by_lead,
                ["consent_"],
                ("channel", "granted", "method", "evidence", "actor", "at"),
            )
        )
    if enroll:
        new_enrollment = (
            insert(enrollments)
            .from_select(
                ["lead_id", "sequence_name", "state", "state_reason", "enrolled_at"],
                select(
                    new_lead.c.id,
                    *(
                        bindparam(f"enrollment_{column}", type_=enrollments.c[column].type)
                        for column in ("sequence_name", "state", "state_reason", "enrolled_at")
                    ),
                ),
            )
            .returning(enrollments.c.id, enrollments.c.lead_id)
            .cte("new_enrollment")
        )
        parts.append(new_enrollment)
        if touches:
            parts.append(
                _copied(
                    _table(Touch),
                    new_enrollment,
                    {"enrollment_id": "id", "lead_id": "lead_id"},
                    [f"touch{index}_" for index in range(touches)],
                    ("step_id", "position", "channel", "planned_at", "due_at", "status", "skip_reason", "attempts"),
                )
            )
    parts.append(
        _copied(
            _table(AuditEntry),
            new_lead,
            by_lead,
            [f"audit{index}_" for index in range(entries)],
            ("at", "actor_type", "actor_id", "action", "details"),
        )
    )
    parts.append(
        _copied(
            _table(OutboxEvent),
            new_lead,
            by_lead,
            [f"notice{index}_" for index in range(notices)],
            ("business", "kind", "payload", "created_at", "attempts"),
        )
    )
    return select(new_lead.c.id).add_cte(*parts)


def _table(model: type[Base]) -> Table:
    table = model.__table__
    assert isinstance(table, Table)
    return table


def take_in_lead(
    services: Services,
    data: LeadInput,
    *,
    actor: Actor,
    sequence: Sequence | None = None,
    enroll: bool = True,
    also: Callable[[Session, Lead, IntakeResult], None] | None = None,
    business: str | None = None,
) -> IntakeResult:
    """Take a lead in from outside (a form, a text, a call, Slack): a new lead is stored at once; a
    known one is changed only under its lock (`bot.store.lead_locks.taking_lead`), like every change to a lead.

    The lead is `business`'s (its slug; None: the deployment's single business): a known lead is one
    of that business's leads, never another's with the same phone or email.
    `also` runs in the same transaction, with the lead, for what the caller notes with the intake.
    """
    owner = business_named(services, business)
    playbook = sequence or services.playbooks_of(owner.slug).get()  # the business's own default playbook
    now = services.clock.now()
    # A new lead's transaction holds no lead's lock, so waiting for the turn at writing cannot deadlock.
    with services.session_factory() as session, services.writing(session), session.begin():
        result = add_lead(
            session,
            data,
            business=owner,
            sequence=playbook,
            now=now,
            actor=actor,
            enroll=enroll,
            only_new=True,
        )
        if result.created:
            if also is not None:
                also(session, _stored(session, result.lead_id), result)
            return result
    with taking_lead(services, result.lead_id) as (session, lead):
        if lead is None:  # erased meanwhile: take it in as new
            return take_in_lead(
                services, data, actor=actor, sequence=sequence, enroll=enroll, also=also, business=business
            )
        result = add_lead(
            session,
            data,
            business=owner,
            sequence=playbook,
            now=now,
            actor=actor,
            enroll=enroll,
            known_lead_id=lead.id,
        )
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


def find_lead(
    session: Session, reference: str, *, default_region: str = "US", business: str | None = None
) -> list[Lead]:
    """Find leads a person named by id, phone (any common format), email or name.

    With `business` (a slug), only that business's leads (a Slack channel's); without, every business's
    (the operator's command line).
    """
    reference = reference.strip().lstrip("#")
    if not reference:
        return []
    within = (Lead.business == business,) if business is not None else ()
    # ASCII digits only: "²" passes isdigit() but not int(), and int() reads "١٢" as lead 12.
    if reference.isascii() and reference.isdigit() and len(reference) < 7:
        lead = session.get(Lead, int(reference))
        return [lead] if lead and (business is None or lead.business == business) else []
    if "@" in reference:
        return list(session.scalars(select(Lead).where(func.lower(Lead.email) == reference.lower(), *within)))
    try:
        phone = normalize_phone(reference, default_region)
    except InvalidPhone:
        phone = None
    if phone:
        return list(session.scalars(select(Lead).where(Lead.phone == phone, *within)))
    # What a person typed is matched as text: % and _ are letters here, not LIKE's wildcards.
    literal = reference.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    matching = func.lower(Lead.name).like(f"%{literal}%", escape="\\")
    return list(session.scalars(select(Lead).where(matching, *within).order_by(Lead.id).limit(MAX_NAME_MATCHES)))
