"""`followup export`: every lead (and, if asked, its conversation) to CSV or JSON, streamed in pages.

Leads are read a page at a time by id, so 100,000 leads export in the memory of one page. CSV gives
each custom field its own column (`custom.<name>`), found in a first pass over the same pages; with
`--messages` the conversation goes to a second CSV beside the first (`<name>.messages.csv`, one row
per message), while JSON nests it under each lead.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.store.lead_fields import lead_fields
from bot.store.models import Appointment, Lead, Message

#: A phone in E.164 or a signed number: starts like a formula but is only a number to a spreadsheet.
_PLAIN_NUMBER = re.compile(r"[+-]?[0-9][0-9 .]*")
#: Leads read per query: bounded memory, few round trips.
PAGE = 1000

LEAD_COLUMNS = (
    "id",
    "name",
    "phone",
    "email",
    "source",
    "stage",
    "owner",
    "timezone",
    "first_message",
    "sms_consent",
    "sms_consent_method",
    "sms_consent_at",
    "email_consent",
    "sms_opted_out_at",
    "email_opted_out_at",
    "sms_unreachable_reason",
    "appointment_start_at",
    "appointment_status",
    "created_at",
    "updated_at",
)
MESSAGE_COLUMNS = ("lead_id", "at", "direction", "channel", "status", "author", "subject", "body")


class ExportRefused(Exception):
    """The export cannot be written as asked; the message says why."""


@dataclass(frozen=True)
class ExportReport:
    leads: int
    messages: int
    files: tuple[Path, ...]


def export_leads(
    session_factory: sessionmaker[Session],
    path: Path,
    *,
    since: datetime | None = None,
    messages: bool = False,
    business: str | None = None,
) -> ExportReport:
    """Write every lead changed since `since` (all when None) to `path`, CSV or JSON by its suffix.

    `business` (a slug) writes only that business's leads; None every stored lead.
    """
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".json"):
        raise ExportRefused(f"{path}: the file name must end in .csv or .json, which says the format")
    if suffix == ".json":
        return _export_json(session_factory, path, since=since, messages=messages, business=business)
    return _export_csv(session_factory, path, since=since, messages=messages, business=business)


def messages_path(path: Path) -> Path:
    return path.with_name(f"{path.stem}.messages.csv")


def _pages(
    session_factory: sessionmaker[Session], since: datetime | None, business: str | None
) -> Iterator[tuple[Session, list[Lead]]]:
    last_id = 0
    while True:
        with session_factory() as session:
            query = select(Lead).where(Lead.id > last_id).order_by(Lead.id).limit(PAGE)
            if since is not None:
                query = query.where(Lead.updated_at >= since)
            if business is not None:
                query = query.where(Lead.business == business)
            leads = list(session.scalars(query))
            if not leads:
                return
            yield session, leads
            last_id = leads[-1].id


def _appointments(session: Session, lead_ids: list[int]) -> dict[int, Appointment]:
    """Each lead's latest appointment (the one that stands now)."""
    latest: dict[int, Appointment] = {}
    for appointment in session.scalars(
        select(Appointment).where(Appointment.lead_id.in_(lead_ids)).order_by(Appointment.id)
    ):
        latest[appointment.lead_id] = appointment
    return latest


def _conversations(session: Session, lead_ids: list[int]) -> dict[int, list[Message]]:
    found: dict[int, list[Message]] = {}
    for message in session.scalars(
        select(Message).where(Message.lead_id.in_(lead_ids)).order_by(Message.lead_id, Message.created_at, Message.id)
    ):
        found.setdefault(message.lead_id, []).append(message)
    return found


def _lead_row(lead: Lead, appointment: Appointment | None) -> dict[str, Any]:
    """The lead's fields (bot.store.lead_fields) and its appointment; custom fields stay nested (CSV spreads them)."""
    return {
        **lead_fields(lead),
        "appointment_start_at": _iso(appointment.start_at) if appointment else None,
        "appointment_status": appointment.status if appointment else None,
    }


def _message_row(message: Message) -> dict[str, Any]:
    return {
        "lead_id": message.lead_id,
        "at": _iso(message.created_at),
        "direction": message.direction,
        "channel": message.channel,
        "status": message.status,
        "author": message.author,
        "subject": message.subject,
        "body": message.body,
    }


def _export_json(
    session_factory: sessionmaker[Session], path: Path, *, since: datetime | None, messages: bool, business: str | None
) -> ExportReport:
    leads = sent = 0
    with _open(path) as out:
        out.write("[")
        for session, page in _pages(session_factory, since, business):
            ids = [lead.id for lead in page]
            appointments = _appointments(session, ids)
            conversations = _conversations(session, ids) if messages else {}
            for lead in page:
                row = _lead_row(lead, appointments.get(lead.id))
                if messages:
                    row["messages"] = [_message_row(message) for message in conversations.get(lead.id, [])]
                    sent += len(row["messages"])
                out.write(("\n" if leads == 0 else ",\n") + json.dumps(row, ensure_ascii=False))
                leads += 1
        out.write("\n]\n")
    return ExportReport(leads, sent, (path,))


def _export_csv(
    session_factory: sessionmaker[Session], path: Path, *, since: datetime | None, messages: bool, business: str | None
) -> ExportReport:
    custom_keys: dict[str, None] = {}  # ordered as first seen
    for _, page in _pages(session_factory, since, business):
        for lead in page:
            for key in lead.custom_fields or {}:
                custom_keys.setdefault(str(key), None)
    columns = list(LEAD_COLUMNS) + [f"custom.{key}" for key in custom_keys]
    leads = sent = 0
    files = [path]
    with _open(path) as out, ExitStack() as conversation_file:
        conversation_writer = None
        if messages:
            conversation_out = conversation_file.enter_context(_open(messages_path(path)))
            conversation_writer = csv.DictWriter(conversation_out, fieldnames=MESSAGE_COLUMNS)
        writer = csv.DictWriter(out, fieldnames=columns)
        writer.writeheader()
        if conversation_writer is not None:
            conversation_writer.writeheader()
            files.append(messages_path(path))
        for session, page in _pages(session_factory, since, business):
            ids = [lead.id for lead in page]
            appointments = _appointments(session, ids)
            for lead in page:
                row = _lead_row(lead, appointments.get(lead.id))
                custom = row.pop("custom_fields")
                row.update({f"custom.{key}": spreadsheet_cell(value) for key, value in custom.items()})
                writer.writerow({key: spreadsheet_cell(value) for key, value in row.items()})
                leads += 1
            if conversation_writer is not None:
                for lead_messages in _conversations(session, ids).values():
                    for message in lead_messages:
                        conversation_writer.writerow({k: spreadsheet_cell(v) for k, v in _message_row(message).items()})
                        sent += 1
    return ExportReport(leads, sent, tuple(files))


def spreadsheet_cell(value: Any) -> str:
    """A CSV cell a spreadsheet opens as text: a formula-looking value is quoted, never run."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (dict, list)):
        value = json.dumps(value, ensure_ascii=False)
    text = str(value)
    # CSV injection: what a lead typed must not run as a formula when the clinic opens the file in Excel.
    risky = text[:1] in ("=", "+", "-", "@", "\t", "\r") and not _PLAIN_NUMBER.fullmatch(text)
    return "'" + text if risky else text


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _open(path: Path) -> IO[str]:
    try:
        # utf-8-sig: Excel reads UTF-8 (names with accents) only when the file starts with a BOM.
        return path.open("w", encoding="utf-8-sig" if path.suffix.lower() == ".csv" else "utf-8", newline="")
    except OSError as error:
        raise ExportRefused(f"{path}: cannot be written ({error.strerror})") from None
