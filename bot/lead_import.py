"""Import leads from a CSV file: bad rows named by line and reason, good rows kept, no duplicates."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import text

from bot.audit import CLI
from bot.config_errors import ConfigError
from bot.leads import InvalidLead, LeadInput, add_lead
from bot.services import Services


@dataclass
class ImportReport:
    added: int = 0
    existing: int = 0
    problems: list[str] = field(default_factory=list)


def import_leads_csv(services: Services, path: Path, *, sequence: str | None = None) -> ImportReport:
    """Take each row as its own lead, in its own transaction, so one bad row loses nothing else."""
    report = ImportReport()
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as error:
        report.problems.append(f"{path}: cannot read: {error.strerror}")
        return report
    with handle:
        try:
            reader = csv.DictReader(handle)
            if not reader.fieldnames:
                report.problems.append(f"{path}:1: the file is empty; the first line must name the columns")
                return report
            columns = {name.strip().lower() for name in reader.fieldnames if name}
            if not columns & {"phone", "email"}:
                report.problems.append(f"{path}:1: no 'phone' or 'email' column (columns: {', '.join(sorted(columns))})")
                return report
            for row in reader:
                line = reader.line_num
                fields = {(k or "").strip().lower(): (v or "") for k, v in row.items() if k}
                if not any(value.strip() for value in fields.values()):
                    continue
                try:
                    data = LeadInput.parse(fields, default_region=services.default_region, default_source="import")
                    playbook = services.playbooks.get(sequence or data.sequence)
                except InvalidLead as error:
                    report.problems.append(f"{path}:{line}: {error}")
                    continue
                except ConfigError as error:
                    report.problems.append(f"{path}:{line}: sequence: {error}")
                    continue
                with services.session_factory.begin() as session:
                    result = add_lead(session, data, business=services.business, sequence=playbook,
                                      now=services.clock.now(), actor=CLI)
                if result.created:
                    report.added += 1
                else:
                    report.existing += 1
        except (csv.Error, UnicodeDecodeError) as error:
            report.problems.append(f"{path}:{reader.line_num}: not a readable CSV file: {error}")
    if report.added:
        refresh_planner_statistics(services)
    return report


def refresh_planner_statistics(services: Services) -> None:
    """Let PostgreSQL plan the dispatcher's claim for the leads just loaded, not for an empty table.

    Autovacuum would analyze within about a minute; until then a claim with stale statistics can
    take seconds per batch (docs/benchmarks.md). SQLite plans from its indexes alone.
    """
    with services.session_factory.begin() as session:
        if session.bind.dialect.name == "postgresql":
            session.execute(text("ANALYZE leads, enrollments, touches"))
