"""Import leads from a CSV file: bad rows named by line and reason, good rows kept, no duplicates.

Each record is read on its own (bot.core.csv_records), so a bad byte, a broken quote or an oversized
field rejects its own row and no other; the file is streamed, so memory stays flat however long
it is. SMS consent must be accounted for: a `consent` column (yes/no per row, with an optional
`consent_text` saying how), or the operator's statement of how every lead in the file agreed
(`--consent`), or the operator's statement that they did not (`--no-sms-consent`).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from bot.core.config_errors import ConfigError
from bot.core.csv_records import RecordReader, UnreadableFile, detect_encoding
from bot.core.playbook import Sequence
from bot.store.audit import CLI
from bot.store.consent import MAX_EVIDENCE, ConsentMethod
from bot.usecases.leads import KNOWN_FIELDS, InvalidLead, LeadInput, add_lead, business_named, take_in_lead
from bot.usecases.services import Services

#: Rows stored in one transaction (each in its own savepoint).
ROWS_PER_TRANSACTION = 200
#: The longest value kept in a column followup does not know (kept as a custom field).
MAX_CUSTOM_FIELD = 1000


class ConsentNotAccountedFor(Exception):
    """The file does not say whether its leads agreed to texts; the message says how to say it."""


@dataclass
class ImportReport:
    added: int = 0
    existing: int = 0
    rejected: int = 0
    encoding: str = ""


def import_leads_csv(
    services: Services,
    path: Path,
    *,
    sequence: str | None = None,
    consent: str | None = None,
    no_sms_consent: bool = False,
    encoding: str | None = None,
    on_problem: Callable[[str], None] = lambda problem: None,
    business: str | None = None,
) -> ImportReport:
    """Take each row as its own lead, in its own transaction, so one bad row loses nothing else.

    The leads are `business`'s (its slug; None: the deployment's single business): a row is a lead
    already known only if that business knows it.

    `consent` says how every lead in the file agreed to texts (unless its own `consent` cell says
    no); `no_sms_consent` says none did (they get email and calls). Raises UnreadableFile and
    ConsentNotAccountedFor before anything is imported; every rejected row goes to `on_problem`.
    """
    owner = business_named(services, business)
    report = ImportReport()
    if consent is not None and no_sms_consent:
        raise ConsentNotAccountedFor("give --consent or --no-sms-consent, not both")
    if consent is not None:
        consent = " ".join(consent.split())
        if len(consent) < 3 or len(consent) > MAX_EVIDENCE:
            raise ConsentNotAccountedFor(
                f"--consent: say in a few words how these leads agreed to texts "
                f"(3 to {MAX_EVIDENCE} characters), e.g. --consent 'signed intake form'"
            )
    report.encoding = encoding or detect_encoding(path)

    def reject(line: int, why: str) -> None:
        report.rejected += 1
        on_problem(f"{path}:{line}: {why}")

    reader = RecordReader(path, report.encoding)
    records = iter(reader)
    header = next(records, None)
    if header is None:
        raise UnreadableFile(f"{path}:1: the file is empty; the first line must name the columns")
    if header.fields is None:
        raise UnreadableFile(f"{path}:{header.line}: the first line must name the columns: {header.problem}")
    columns = [name.strip().lower() for name in header.fields]
    reader.columns = len(columns)
    named = {name for name in columns if name}
    if not named & {"phone", "email"}:
        raise UnreadableFile(
            f"{path}:{header.line}: no 'phone' or 'email' column (columns: {', '.join(sorted(named))})"
        )
    if "consent" not in named and consent is None and not no_sms_consent:
        raise ConsentNotAccountedFor(
            f"{path}: say how these leads agreed to texts before they are texted (TCPA): add a 'consent' column "
            "(yes/no, and optionally 'consent_text' saying how), or pass --consent 'how they agreed' "
            "(e.g. --consent 'signed intake form at the front desk'), or --no-sms-consent to import them "
            "for email and calls only"
        )
    evidence = consent or f"import of {path.name}"
    # Rows are committed ROWS_PER_TRANSACTION at a time (a commit per row is most of the time on
    # SQLite); each row is its own savepoint, and counted only once its chunk is committed.
    stack = ExitStack()
    session = stack.enter_context(services.session_factory())
    in_chunk = 0
    pending = [0, 0]  # added, existing: not yet committed

    #: Rows naming a lead already known: applied under that lead's lock once the chunk is committed.
    known: list[tuple[LeadInput, Sequence]] = []

    def commit() -> None:
        if session.in_transaction():
            session.commit()
        for data, playbook in known:
            take_in_lead(services, data, sequence=playbook, actor=CLI, business=owner.slug)
        known.clear()
        report.added += pending[0]
        report.existing += pending[1]
        pending[0] = pending[1] = 0

    for record in records:
        if record.fields is None:
            reject(record.line, record.problem or "unreadable")
            continue
        if len(record.fields) > len(columns):
            reject(
                record.line,
                f"{len(record.fields)} fields, but the header names {len(columns)} columns (an unquoted comma?)",
            )
            continue
        # strict=False: a record with fewer fields than the header (its trailing empty cells left off) is read
        # with those fields absent; one with more was refused just above.
        fields = {name: value for name, value in zip(columns, record.fields, strict=False) if name}
        if not any(value.strip() for value in fields.values()):
            continue
        # Known columns have their own limits (LeadInput); the rest are kept as custom fields.
        too_long = next(
            (name for name, value in fields.items() if name not in KNOWN_FIELDS and len(value) > MAX_CUSTOM_FIELD), None
        )
        if too_long:
            reject(record.line, f"{too_long}: longer than {MAX_CUSTOM_FIELD} characters")
            continue
        if no_sms_consent and "consent" not in fields:
            fields["consent"] = "no"
        elif consent is not None and "consent" not in fields:
            fields["consent"] = "yes"
        try:
            data = LeadInput.parse(
                fields,
                default_region=services.default_region,
                default_source="import",
                consent_method=ConsentMethod.IMPORT,
                consent_evidence=f"{evidence} (line {record.line})",
            )
            playbook = services.playbooks.get(sequence or data.sequence)
        except InvalidLead as error:
            reject(record.line, str(error))
            continue
        except ConfigError as error:
            reject(record.line, f"sequence: {error}")
            continue
        if in_chunk >= ROWS_PER_TRANSACTION:
            commit()
            in_chunk = 0
        try:
            with session.begin_nested():  # a row the database refuses undoes only itself
                result = add_lead(
                    session,
                    data,
                    business=owner,
                    sequence=playbook,
                    now=services.clock.now(),
                    actor=CLI,
                    only_new=True,
                )
        except SQLAlchemyError as error:
            reject(record.line, f"not stored: {type(error).__name__}: {str(error).splitlines()[0][:200]}")
            continue
        in_chunk += 1
        pending[0 if result.created else 1] += 1
        if not result.created:
            known.append((data, playbook))
    commit()
    stack.close()
    if report.added:
        refresh_planner_statistics(services)
    return report


def refresh_planner_statistics(services: Services) -> None:
    """Let PostgreSQL plan the dispatcher's claim for the leads just loaded, not for an empty table.

    Autovacuum would analyze within about a minute; until then a claim with stale statistics can
    take seconds per batch (docs/benchmarks.md). SQLite plans from its indexes alone.
    """
    with services.session_factory.begin() as session:
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text("ANALYZE leads, enrollments, touches"))
