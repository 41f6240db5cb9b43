"""A lead's own fields as every reader outside Slack gets them: the export, the outbound webhooks, `leads list|show`.

One list, so a field added to the lead reaches the CRM, the spreadsheet and the operator alike.
Times are ISO 8601 (UTC); the stage is its word. Staff-only things (notes, the Slack card) are not
fields of the lead and are not here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.store.models import Lead


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def lead_fields(lead: Lead) -> dict[str, Any]:
    """The lead's contact, source, stage, owner, custom fields, consent and opt-out state, and timestamps."""
    return {
        "id": lead.id,
        "name": lead.name,
        "phone": lead.phone,
        "email": lead.email,
        "source": lead.source,
        "stage": str(lead.stage),
        "owner": lead.owner,
        "timezone": lead.timezone,
        "first_message": lead.first_message,
        "custom_fields": dict(lead.custom_fields or {}),
        "sms_consent": lead.sms_consent,
        "sms_consent_method": lead.sms_consent_method,
        "sms_consent_at": _iso(lead.sms_consent_at),
        "email_consent": lead.email_consent,
        "sms_opted_out_at": _iso(lead.sms_opted_out_at),
        "email_opted_out_at": _iso(lead.email_opted_out_at),
        "sms_unreachable_reason": lead.sms_unreachable_reason,
        "created_at": _iso(lead.created_at),
        "updated_at": _iso(lead.updated_at),
    }
