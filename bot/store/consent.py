"""SMS consent on record (TCPA): how and when each lead agreed to texts, and the log of every change.

Two kinds of permission to text are kept apart:

- consent on record (`Lead.sms_consent`, with its method and time): the web form's checkbox and
  its wording, a team member's note of verbal consent, an import's consent column or flag, or the
  lead's own START. Only this lets automated sequences text the lead.
- the lead texted or called first (`Lead.sms_lead_started_at`): the answer to their own message
  may go by text (the instant reply, a team member's reply), nothing automated after it.

Every grant and revocation is a row of `consent_log`: lead, channel, granted or revoked, method,
the wording or evidence, by whom, when.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.store.audit import Actor
from bot.store.models import ConsentEntry, Lead

#: The longest consent wording or note kept (a checkbox label, a note of what the lead said).
MAX_EVIDENCE = 2000


class ConsentMethod(StrEnum):
    WEB_FORM = "web_form"  #: the lead ticked the web form's consent checkbox; evidence: its wording
    VERBAL = "verbal"  #: the lead said yes to a team member; evidence: the team member's note
    IMPORT = "import"  #: an imported list said so (a consent column or the --consent flag); evidence: how
    KEYWORD = "keyword"  #: the lead texted START (or UNSTOP, YES) to opt back in
    LEAD_TEXTED = "lead_texted"  #: the lead texted first: the answer to that message may be a text
    LEAD_CALLED = "lead_called"  #: the lead called first: the text-back answers that call
    OPT_OUT = "opt_out"  #: revoked: the lead opted out (STOP, or the carrier says so)
    TEAM = "team"  #: revoked by a team member who heard the lead withdraw it
    ERASED = "erased"  #: revoked: the lead's data was erased on request
    NONE_BEFORE_0005 = "none_before_0005"  #: the lead came in before consent was recorded: none on record


#: Methods that are consent on record for automated texts.
FULL_CONSENT = frozenset({ConsentMethod.WEB_FORM, ConsentMethod.VERBAL, ConsentMethod.IMPORT, ConsentMethod.KEYWORD})

#: Checkbox values a web form or a CSV cell uses for "yes" and for "no".
_YES = frozenset({"true", "yes", "y", "on", "1", "x", "checked", "agreed", "granted"})
_NO = frozenset({"false", "no", "n", "off", "0", "", "unchecked", "none"})


class InvalidConsent(ValueError):
    """A consent field is not what it should be; the message names the field."""


@dataclass(frozen=True)
class ConsentGiven:
    """Consent on record as given at intake: how, and the wording or evidence."""

    method: ConsentMethod
    evidence: str


def read_yes_no(value: Any, field: str) -> bool:
    """Read a checkbox or a yes/no cell; raise InvalidConsent naming the field for anything else."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _YES | _NO:
        return value.strip().lower() in _YES
    shown = repr(value) if isinstance(value, (str, int, float)) else f"a {type(value).__name__}"
    raise InvalidConsent(f"{field}: {shown} is not yes or no (true/false, on/off, yes/no, 1/0)")


def evidence_text(value: Any, field: str, *, required: bool) -> str:
    """Read a consent wording or note: text, within MAX_EVIDENCE characters."""
    if value is None or value == "":
        if required:
            raise InvalidConsent(f"{field}: give the words the lead agreed to (the text next to the checkbox)")
        return ""
    if not isinstance(value, str):
        raise InvalidConsent(f"{field}: must be text")
    value = " ".join(value.split())
    if len(value) > MAX_EVIDENCE:
        raise InvalidConsent(f"{field}: longer than {MAX_EVIDENCE} characters")
    if required and not value:
        raise InvalidConsent(f"{field}: give the words the lead agreed to (the text next to the checkbox)")
    return value


def _log(
    session: Session,
    lead: Lead,
    *,
    granted: bool,
    method: ConsentMethod,
    evidence: str,
    actor: Actor,
    now: datetime,
    channel: str = "sms",
) -> None:
    session.add(
        ConsentEntry(
            **_entry(lead.id, granted=granted, method=method, evidence=evidence, actor=actor, now=now, channel=channel)
        )
    )


def _entry(
    lead_id: int,
    *,
    granted: bool,
    method: ConsentMethod,
    evidence: str,
    actor: Actor,
    now: datetime,
    channel: str = "sms",
) -> dict[str, Any]:
    return dict(
        lead_id=lead_id,
        channel=channel,
        granted=granted,
        method=str(method),
        evidence=evidence[:MAX_EVIDENCE],
        actor=actor.describe()[:60],
        at=now,
    )


def grant_sms(session: Session, lead: Lead, given: ConsentGiven, *, actor: Actor, now: datetime) -> None:
    """Put consent to automated texts on record, and log it."""
    assert given.method in FULL_CONSENT
    for key, value in sms_granted_fields(given, now).items():
        setattr(lead, key, value)
    lead.updated_at = now
    _log(session, lead, granted=True, method=given.method, evidence=given.evidence, actor=actor, now=now)


def sms_granted_fields(given: ConsentGiven, now: datetime) -> dict[str, Any]:
    """The lead's columns once consent to texts is on record (`grant_sms`; a new lead's intake writes them
    with the lead's own row)."""
    assert given.method in FULL_CONSENT
    return {"sms_consent": True, "sms_consent_method": str(given.method), "sms_consent_at": now}


def sms_grant_entry(lead_id: int, given: ConsentGiven, *, actor: Actor, now: datetime) -> dict[str, Any]:
    """The consent log's row for `grant_sms`, as values for a Core insert (a new lead's intake)."""
    return _entry(lead_id, granted=True, method=given.method, evidence=given.evidence, actor=actor, now=now)


def lead_started(session: Session, lead: Lead, method: ConsentMethod, *, evidence: str, now: datetime) -> None:
    """Note that the lead texted or called first: the answer to that may go by text."""
    assert method in (ConsentMethod.LEAD_TEXTED, ConsentMethod.LEAD_CALLED)
    first_time = lead.sms_lead_started_at is None
    lead.sms_lead_started_at = now
    if first_time:
        _log(session, lead, granted=True, method=method, evidence=evidence, actor=Actor.lead(lead.id), now=now)


def revoke_sms(
    session: Session, lead: Lead, method: ConsentMethod, *, evidence: str, actor: Actor, now: datetime
) -> None:
    """Take consent to texts off the record (an opt-out, a team member's note, an erasure), and log it."""
    had_any = lead.sms_consent or lead.sms_lead_started_at is not None
    lead.sms_consent = False
    lead.sms_consent_method = str(method)
    lead.sms_consent_at = now
    lead.sms_lead_started_at = None
    if had_any or method != ConsentMethod.ERASED:
        _log(session, lead, granted=False, method=method, evidence=evidence, actor=actor, now=now)


def why_no_sms_consent(lead: Lead) -> str | None:
    """Say why automated texts do not go to this lead for want of consent, or None when they may."""
    if lead.sms_consent or not lead.phone:
        return None
    if lead.sms_consent_method == ConsentMethod.NONE_BEFORE_0005:
        return "no SMS consent on record (the lead came in before followup recorded consent)"
    if lead.sms_lead_started_at is not None:
        return "no SMS consent on record beyond answering the lead's own message"
    return "no SMS consent on record"


def consent_record(session: Session, lead: Lead) -> dict[str, Any]:
    """The lead's consent as `leads show` tells it: where it stands and every change."""
    entries = session.scalars(
        select(ConsentEntry).where(ConsentEntry.lead_id == lead.id).order_by(ConsentEntry.at, ConsentEntry.id)
    )
    return {
        "sms": lead.sms_consent,
        "sms_method": lead.sms_consent_method,
        "sms_at": lead.sms_consent_at.isoformat() if lead.sms_consent_at else None,
        "lead_started_at": lead.sms_lead_started_at.isoformat() if lead.sms_lead_started_at else None,
        "why_no_sms": why_no_sms_consent(lead),
        "log": [
            {
                "channel": e.channel,
                "granted": e.granted,
                "method": e.method,
                "evidence": e.evidence,
                "by": e.actor,
                "at": e.at.isoformat(),
            }
            for e in entries
        ],
    }
