"""The `followup` command: run the bot, check and preview content, import and inspect leads."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from collections.abc import Sequence as Seq
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from bot.core.config_errors import ConfigError


def _settings():  # noqa: ANN202 - imported late so `followup --help` stays fast
    from pydantic import ValidationError

    from bot.settings import Settings

    try:
        return Settings()
    except ValidationError as error:
        for problem in error.errors():
            where = ".".join(str(part) for part in problem["loc"]) or "settings"
            print(f"followup: {where}: {problem['msg'].removeprefix('Value error, ')}", file=sys.stderr)
        raise SystemExit(1) from None


def _fail(message: str) -> int:
    print(f"followup: {message}", file=sys.stderr)
    return 1


# --- check -------------------------------------------------------------------------------------


def cmd_check(args: argparse.Namespace) -> int:
    """Validate business.yml, every playbook and every template rendered against a sample lead."""
    from bot.core.business import load_business
    from bot.reports.content_check import check_content

    settings = _settings()
    if settings.folder_mode:
        return _check_folder(settings)
    try:
        business = load_business(settings.business_path)
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 1
    report = check_content(
        business, Path(settings.sequences_dir), Path(settings.templates_dir), reply_rules=settings.reply_rules_path
    )
    for line in report.lines:
        print(line)
    for warning in report.warnings + _unconfigured_channels(settings, business):
        print(f"warning: {warning}")
    for problem in report.problems:
        print(f"error: {problem}", file=sys.stderr)
    print(f"\n{report.summary()}")
    return 1 if report.problems else 0


def _count(number: int, one: str, many: str | None = None) -> str:
    """ "1 warning", "2 warnings": a count with its noun."""
    return f"{number} {one if number == 1 else (many or one + 's')}"


def _check_folder(settings) -> int:  # noqa: ANN001 - Settings, imported late here so `followup --help` stays fast
    """Validate every business file of FOLLOWUP_BUSINESSES and each business's playbooks and templates.

    Every problem is reported with its file and line, all at once; then one OK or FAILED line per business.
    """
    from bot.app import deployment_environment, ignored_in_folder_mode, missing_places, own_content
    from bot.core.business import read_business_folder, written_secrets
    from bot.core.businesses import Businesses
    from bot.core.reply_classifier import load_reply_rules
    from bot.reports.content_check import check_content

    folder = Path(settings.businesses_dir)
    try:
        businesses, file_problems = read_business_folder(folder, deployment_environment())
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 1
    try:
        # Two files claiming one number, address, token or channel would be refused at start, naming both.
        file_problems += missing_places(settings, Businesses(businesses))
    except ConfigError as error:
        file_problems += error.problems
    try:
        load_reply_rules(settings.reply_rules_path)
        reply_problems: list[str] = []
    except ConfigError as error:
        reply_problems = [str(problem) for problem in error.problems]
    warnings = [
        f"{alias} is set but ignored: each business file names its own" for alias in ignored_in_folder_mode(settings)
    ]
    errors = [str(problem) for problem in file_problems] + reply_problems
    verdicts: list[str] = []
    for business in businesses:
        own_sequences, own_templates = own_content(settings, business)
        report = check_content(
            business,
            Path(settings.sequences_dir),
            Path(settings.templates_dir),
            sequences_override=own_sequences,
            templates_override=own_templates,
            include_reply_rules=False,
        )
        warnings += [str(problem) for problem in written_secrets(business.path)]
        warnings += [f"{business.slug}: {warning}" for warning in report.warnings]
        errors += report.problems
        count = len(report.problems) + sum(Path(problem.path) == business.path for problem in file_problems)
        own = [what for what, place in (("sequences", own_sequences), ("templates", own_templates)) if place]
        verdicts.append(
            f"{'FAILED' if count else 'OK'} {business.slug} ({business.path}): {report.sequences} sequences, "
            f"{report.rendered} templates rendered"
            + (f", its own {' and '.join(own)}" if own else "")
            + (f", {count} error{'s' if count != 1 else ''}" if count else "")
        )
    loaded = {business.path for business in businesses}
    for path in sorted({Path(problem.path) for problem in file_problems} - loaded):
        if path.parent == folder and path.suffix in (".yml", ".yaml"):
            verdicts.append(f"FAILED {path.stem} ({path}): not read, see the errors above")
    for line in errors:
        print(f"error: {line}", file=sys.stderr)
    for warning in warnings:
        print(f"warning: {warning}")
    for line in sorted(verdicts, key=lambda line: line.split(" ", 2)[1]):
        print(line)
    verdict = "FAILED" if errors else "OK"
    counts = [
        _count(len(verdicts), "business", "businesses"),
        _count(len(warnings), "warning"),
        _count(len(errors), "error"),
    ]
    print(f"\n{verdict}: {', '.join(counts)}")
    return 1 if errors else 0


def _unconfigured_channels(settings, business) -> list[str]:  # noqa: ANN001 - Settings and Business, imported late here so `followup --help` stays fast
    """What `followup run` would hold back for want of a provider's settings."""
    from bot.app import email_configured, load_playbooks, sms_configured
    from bot.core.playbook import Channel
    from bot.usecases.dispatch import waiting_channels_warnings

    try:
        playbooks = load_playbooks(settings, business)
    except ConfigError:
        return []  # check_content has reported it
    configured = {
        channel
        for channel, ok in ((Channel.SMS, sms_configured(settings)), (Channel.EMAIL, email_configured(settings)))
        if ok
    }
    return waiting_channels_warnings(playbooks, configured)


# --- init --------------------------------------------------------------------------------------


def cmd_init(args: argparse.Namespace) -> int:
    """Copy business.yml, the playbooks and the templates into a folder the clinic owns, to edit."""
    from bot.clinic_folder import init_clinic_folder

    folder = Path(args.folder).expanduser()
    try:
        report = init_clinic_folder(folder)
    except OSError as error:
        return _fail(f"init {folder}: {error}")
    shown = folder.resolve()
    print(
        f"followup init: wrote {len(report.written)} files into {shown}"
        + (f", kept {len(report.kept)} already there" if report.kept else "")
    )
    print(f"  {shown / 'business.yml'}  your name, time zone, phone, address, hours and booking link")
    print(f"  {shown / 'sequences'}/  the playbooks: which touch goes out when")
    print(f"  {shown / 'templates'}/  the wording of every text, email and call script")
    print("These are used whenever this business.yml is: run the commands from the folder,")
    print(f"  cd {shown} && followup check && followup preview && followup sandbox")
    print(f"or point at it from anywhere: FOLLOWUP_BUSINESS={shown / 'business.yml'} followup run")
    return 0


# --- preview -----------------------------------------------------------------------------------


def _parse_when(text: str | None, name: str) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{name}: {text!r} is not an ISO 8601 date and time such as 2026-12-01T09:30-06:00") from None
    if moment.tzinfo is None:
        raise ValueError(f"{name}: {text!r} needs a UTC offset, such as 2026-12-01T09:30-06:00")
    return moment.astimezone(UTC)


def _lead_fields(text: str | None) -> dict[str, str]:
    fields: dict[str, str] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        if not sep:
            raise ValueError(f"--lead: {part!r} should be key=value (e.g. name=Dana Lee,phone=+14155552671)")
        fields[key.strip()] = value.strip()
    return fields


def cmd_preview(args: argparse.Namespace) -> int:
    """Show when each touch goes out, in business and lead local time, with its text."""
    from bot.app import preview_sources
    from bot.reports.preview import render_preview

    settings = _settings()
    try:
        text = render_preview(
            preview_sources(settings),
            sequence=args.sequence,
            lead_fields=_lead_fields(args.lead),
            start=_parse_when(args.start, "--start"),
            appointment=_parse_when(args.appointment, "--appointment"),
            show_text=not args.brief,
        )
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 1
    except ValueError as error:
        return _fail(str(error))
    print(text)
    return 0


# --- database, import, leads -------------------------------------------------------------------


def _services(migrate: bool = True):  # noqa: ANN202 - Services, imported late here so `followup --help` stays fast
    from bot.app import build_services

    return build_services(_settings(), migrate=migrate)


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from bot.core.business import load_business
    from bot.store.db import make_engine, upgrade

    settings = _settings()
    # Rows stored before they named a business are the configured business's.
    upgrade(make_engine(settings.database_url), business=load_business(settings.business_path).slug)
    print(f"database is up to date ({_redact(settings.database_url)})")
    return 0


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def cmd_import(args: argparse.Namespace) -> int:
    """Import leads from CSV: each bad row reported with its line and reason, good rows kept."""
    from bot.core.csv_records import UnreadableFile
    from bot.usecases.lead_import import ConsentNotAccountedFor, import_leads_csv

    path = Path(args.file)
    if not path.exists():
        return _fail(f"{path}: file not found")
    try:
        services = _services()
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 1
    try:
        report = import_leads_csv(
            services,
            path,
            sequence=args.sequence,
            consent=args.consent,
            no_sms_consent=args.no_sms_consent,
            encoding=args.encoding,
            on_problem=lambda problem: print(problem, file=sys.stderr),
        )
    except (UnreadableFile, ConsentNotAccountedFor) as error:
        return _fail(str(error))
    print(
        f"{path}: {report.added} added, {report.existing} already known, {report.rejected} rejected "
        f"(read as {report.encoding})"
    )
    return 1 if report.rejected else 0


class UnknownBusinessArgument(ValueError):
    """--business names no configured business; the message names the ones there are."""


def _business_asked(services, slug: str | None) -> str | None:  # noqa: ANN001 - Services, imported late
    """The business `--business` names (its slug), checked against the configured ones; None when not given."""
    if slug is None:
        return None
    known = services.businesses.slugs
    if slug not in known:
        raise UnknownBusinessArgument(
            f"--business {slug!r}: no business has that slug; the businesses are {', '.join(sorted(known))}"
        )
    return slug


def _several_businesses(services) -> bool:  # noqa: ANN001 - Services, imported late
    return len(services.businesses) > 1


def cmd_leads_list(args: argparse.Namespace) -> int:
    from bot.reports.lead_views import lead_summary
    from bot.store.models import Lead

    services = _services()
    try:
        business = _business_asked(services, args.business)
    except UnknownBusinessArgument as error:
        return _fail(str(error))
    with services.session_factory() as session:
        query = select(Lead).order_by(Lead.id)
        if args.stage:
            query = query.where(Lead.stage == args.stage)
        if business is not None:
            query = query.where(Lead.business == business)
        rows = [lead_summary(session, lead) for lead in session.scalars(query.limit(args.limit))]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no leads yet")
        return 0
    # One business's leads need no column saying whose they are.
    whose = business is None and _several_businesses(services)
    table = [("ID", *(("BUSINESS",) if whose else ()), "NAME", "CONTACT", "STAGE", "SEQUENCE", "NEXT")]
    for row in rows:
        state = f"{row['sequence']} {row['enrollment_state']}" if row["sequence"] else "-"
        if row["enrollment_state"] in ("paused", "stopped") and row["enrollment_reason"]:
            state += f" ({row['enrollment_reason']})"
        nxt = row["next_touch"]
        table.append(
            (
                str(row["id"]),
                *((row["business"],) if whose else ()),
                row["name"] or "-",
                row["phone"] or row["email"] or "-",
                row["stage"],
                state,
                f"{nxt['step']} {nxt['due_at'][:16]}" if nxt else "-",
            )
        )
    print(_format_table(table))
    return 0


def cmd_leads_show(args: argparse.Namespace) -> int:
    from bot.reports.lead_views import lead_detail
    from bot.usecases.leads import find_lead

    services = _services()
    try:
        business = _business_asked(services, args.business)
    except UnknownBusinessArgument as error:
        return _fail(str(error))
    with services.session_factory() as session:
        found = find_lead(session, args.lead, default_region=services.default_region, business=business)
        if not found:
            of = f" among {business}'s leads" if business else ""
            return _fail(f"no lead matches {args.lead!r}{of} (use an id, phone, email or name)")
        if len(found) > 1:
            names = ", ".join(
                f"#{lead.id} {lead.name}" + (f" ({lead.business})" if _several_businesses(services) else "")
                for lead in found[:10]
            )
            return _fail(f"{args.lead!r} matches {len(found)} leads: {names}; use the id or --business")
        detail = lead_detail(session, found[0])
    if args.json:
        print(json.dumps(detail, indent=2))
        return 0
    print(_format_detail(detail))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Write every lead (changed since a date, if given) to CSV or JSON, streamed in pages."""
    from datetime import date
    from datetime import time as day_time

    from bot.reports.lead_export import ExportRefused, export_leads

    try:
        services = _services()
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 1
    try:
        business = _business_asked(services, args.business)
    except UnknownBusinessArgument as error:
        return _fail(str(error))
    # --since is midnight where the leads are: the business's own, or with several and none asked, UTC.
    if business is not None:
        zone = services.business_of(business).timezone
    elif services.businesses.only is not None:
        zone = services.businesses.only.timezone
    else:
        zone = UTC
    since = None
    if args.since:
        try:
            day = date.fromisoformat(args.since)
        except ValueError:
            return _fail(f"--since {args.since!r}: give a date as YYYY-MM-DD (midnight in the business's time zone)")
        since = datetime.combine(day, day_time(0), tzinfo=zone).astimezone(UTC)
    try:
        report = export_leads(
            services.session_factory, Path(args.file), since=since, messages=args.messages, business=business
        )
    except ExportRefused as error:
        return _fail(str(error))
    written = " and ".join(str(path) for path in report.files)
    extra = f" and {report.messages} messages" if args.messages else ""
    print(f"{report.leads} leads{extra} written to {written}")
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    """The period's numbers, or one breakdown, as a table, CSV or JSON: the same numbers as /followup stats."""
    from bot.core.report_request import ACCEPTED_FORMS, StatsWordsError, read_stats_words
    from bot.reports.breakdowns import business_table, headline_table, stats_table
    from bot.reports.stats import lead_stats

    try:
        request = read_stats_words(args.words)
    except StatsWordsError as wrong:
        return _fail(
            f"stats: {str(wrong)!r} is neither a period nor a breakdown; write followup "
            f"{ACCEPTED_FORMS} (add --json or --csv for a file)"
        )
    try:
        services = _services()
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 1
    try:
        business = _business_asked(services, args.business)
    except UnknownBusinessArgument as error:
        return _fail(str(error))
    now = services.clock.now()
    # Without --business, several businesses' headline numbers are one row each and the agency's total.
    per_business = request.by is None and business is None and _several_businesses(services)
    with services.session_factory() as session:
        if per_business:
            names = {each.slug: each.name for each in services.businesses}
            table = business_table(session, now=now, days=request.days, businesses=names)
        elif request.by is None:
            table = headline_table(lead_stats(session, now=now, days=request.days, business=business))
        else:
            table = stats_table(
                session,
                now=now,
                days=request.days,
                by=request.by,
                playbook_of=services.playbooks_of(business) if business else services.playbooks.get,
                business=business,
            )
    breakdown = "business" if per_business else (str(request.by) if request.by else None)
    if args.json:
        print(json.dumps({**_stats_json(table, breakdown), "business": business}, indent=2, ensure_ascii=False))
    elif args.csv:
        _write_stats_csv(table, sys.stdout)
    else:
        # The period in the business's own time; the agency's (several zones) in UTC.
        shown = services.business_of(business) if business else services.businesses.only
        scope = ""
        if business:
            scope = f" — {shown.name}"
        elif shown is None and not per_business:
            scope = " — every business"
        zone = shown.timezone if shown is not None else UTC
        print(_stats_text(table, zone, headline=request.by is None and not per_business, scope=scope))
    return 0


def _stats_json(table, breakdown: str | None) -> dict[str, Any]:  # noqa: ANN001 - a bot.reports.breakdowns.StatsTable
    return {
        "breakdown": breakdown,
        "days": table.days,
        "since": table.since.isoformat(),
        "until": table.until.isoformat(),
        "columns": [
            {"key": column.key, "heading": column.heading, "kind": str(column.kind)} for column in table.columns
        ],
        "rows": table.records(),
        "footnote": table.footnote,
    }


def _write_stats_csv(table, out) -> None:  # noqa: ANN001 - a StatsTable, a text stream
    import csv

    from bot.reports.lead_export import spreadsheet_cell

    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([column.key for column in table.columns])
    for row in table.rows:
        writer.writerow([spreadsheet_cell(value) for value in row])


def _stats_text(table, zone, *, headline: bool, scope: str = "") -> str:  # noqa: ANN001 - a StatsTable, a time zone
    from bot.reports.breakdowns import cell_text, text_lines

    first, last = table.since.astimezone(zone), table.until.astimezone(zone)
    lines = [
        f"{table.title}{scope}, last {table.days} days ({first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M} "
        f"{getattr(zone, 'key', zone)})",
        "",
    ]
    if headline:
        [row] = table.rows
        width = max(len(column.heading) for column in table.columns)
        lines += [
            f"{column.heading + ':':<{width + 1}} {cell_text(value, column.kind) or '—'}"
            for column, value in zip(table.columns, row, strict=True)
        ]
    else:
        lines += text_lines(table) if table.rows else ["nothing in this period"]
    # A label comes from what leads and forms sent: no control character reaches the terminal.
    shown = ["".join(ch if ch.isprintable() else "?" for ch in line) for line in lines]
    return "\n".join([*shown, "", table.footnote])


def cmd_businesses(args: argparse.Namespace) -> int:
    """Each business and its health: its Slack channel, its senders, its last send, its open leads."""
    from bot.app import build_services, deployment_vendors, slack_channel_checker
    from bot.reports.business_health import business_activity, business_health, health_text

    settings = _settings()
    try:
        services = build_services(settings)
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 1
    ask_slack = slack_channel_checker(settings)
    vendors = deployment_vendors(settings)
    businesses = list(services.businesses)
    with services.session_factory() as session:
        activity = business_activity(session, [business.slug for business in businesses])
    now = services.clock.now()
    report = [
        business_health(
            business,
            vendors=vendors,
            channel=ask_slack(business.slack.channel) if ask_slack and business.slack.channel else None,
            activity=activity[business.slug],
            now=now,
            several=len(businesses) > 1,
        )
        for business in businesses
    ]
    if args.json:
        print(json.dumps([_health_json(health) for health in report], indent=2, ensure_ascii=False))
    else:
        print(health_text(report))
    return 0 if all(health.healthy for health in report) else 1


def _health_json(health) -> dict[str, Any]:  # noqa: ANN001 - a bot.reports.business_health.BusinessHealth
    return {
        "business": health.slug,
        "name": health.name,
        "healthy": health.healthy,
        "checks": [{"what": check.what, "level": str(check.level), "text": check.text} for check in health.checks],
    }


def cmd_forget(args: argparse.Namespace) -> int:
    """Erase one lead's personal data for a deletion request; anonymous counts stay."""
    from bot.store.audit import CLI
    from bot.usecases.forget import forget, scrub_database_files
    from bot.usecases.leads import find_lead

    services = _services()
    with services.session_factory() as session:
        found = [lead.id for lead in find_lead(session, args.lead, default_region=services.default_region)]
    if len(found) != 1:
        return _fail(f"{args.lead!r} matches {len(found)} leads; give exactly one (an id is surest)")
    if not args.yes:
        return _fail(f"this erases lead #{found[0]}'s name, contacts and every message; run again with --yes to do it")
    done = forget(services, found[0], actor=CLI)
    left = scrub_database_files(services.session_factory.kw["bind"])
    print(
        f"lead #{done.lead_id} forgotten: {done.messages} messages, {done.touches} touches and "
        f"{done.call_tasks} call tasks emptied; its card, thread and call tasks in Slack are edited to say "
        "the data was erased (by `followup run`, at once if it is running, else when it starts)"
    )
    if left:
        print(f"note: {left}")
    return 0


def _format_table(rows: Seq[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows)


def _format_detail(detail: dict[str, Any]) -> str:
    lines = [
        f"#{detail['id']} {detail['name'] or '(no name)'}  stage: {detail['stage']}  owner: {detail['owner'] or '-'}",
        f"  phone: {detail['phone'] or '-'}  email: {detail['email'] or '-'}  source: {detail['source']}",
        f"  asked: {detail['first_message'] or '-'}",
    ]
    if detail["sms_opted_out_at"]:
        lines.append(f"  SMS opted out at {detail['sms_opted_out_at']}")
    consent = detail["consent"]
    if consent["sms"]:
        lines.append(f"  SMS consent: on record ({consent['sms_method']}, {consent['sms_at']})")
    else:
        lines.append(f"  SMS consent: {consent['why_no_sms'] or 'none on record'}")
    if consent["log"]:
        lines.append("consent log:")
        for entry in consent["log"]:
            what = "granted" if entry["granted"] else "revoked"
            said = f": {entry['evidence']!r}" if entry["evidence"] else ""
            lines.append(f"  {entry['at'][:16]}  {entry['channel']} {what} by {entry['method']} ({entry['by']}){said}")
    lines.append("sequences:")
    for e in detail["enrollments"]:
        lines.append(f"  {e['sequence']}: {e['state']}" + (f" ({e['reason']})" if e["reason"] else ""))
    lines.append("touches:")
    for t in detail["touches"]:
        extra = f"  {t['reason']}" if t["reason"] else ""
        lines.append(f"  {t['due_at'][:16]}  {t['step']:<22} {t['channel']:<9} {t['status']}{extra}")
    if detail["messages"]:
        lines.append("messages:")
        for m in detail["messages"]:
            arrow = "->" if m["direction"] == "out" else "<-"
            cls = f" [{m['class']}]" if m["class"] else ""
            lines.append(f"  {m['at'][:16]} {arrow} {m['channel']}{cls} {m['status']}: {m['body'][:80]!r}")
            if m.get("why"):
                lines.append(f"      why: {m['why']}")
    if detail["call_tasks"]:
        lines.append("call tasks:")
        for c in detail["call_tasks"]:
            lines.append(f"  #{c['id']} {c['status']} {c['reason']}" + (f" -> {c['outcome']}" if c["outcome"] else ""))
    if detail["appointments"]:
        lines.append("appointments:")
        for a in detail["appointments"]:
            lines.append(f"  {a['start_at']} {a['status']}")
    return "\n".join(lines)


# --- run ---------------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    """Upgrade the database and run the bot until interrupted."""
    from bot.core import log_redaction
    from bot.server import serve

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("apscheduler").setLevel(logging.WARNING)  # a line per tick says nothing
    logging.getLogger("twilio.http_client").setLevel(logging.WARNING)  # headers and numbers of every request
    if hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)  # a client hanging up must not kill the server
    try:
        settings = _settings()
        log_redaction.install(log_redaction.settings_secrets(settings.model_dump()))
        return serve(settings)
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 1


def cmd_sandbox(args: argparse.Namespace) -> int:
    """Run the real bot against local Slack, Twilio and SendGrid stand-ins, played from a web page."""
    from bot.sandbox.runner import own_business_file, run_sandbox

    try:
        settings = _settings()
        return run_sandbox(port=args.port, open_browser=not args.no_browser, business_path=own_business_file(settings))
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="followup", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    commands.add_parser("run", help="run the bot (server and scheduler)").set_defaults(func=cmd_run)
    sandbox = commands.add_parser("sandbox", help="try the whole bot in the browser, no accounts needed")
    sandbox.add_argument("--port", type=int, default=3000, help="the page's port (default 3000)")
    sandbox.add_argument("--no-browser", action="store_true", help="print the URL without opening a browser")
    sandbox.set_defaults(func=cmd_sandbox)
    commands.add_parser("check", help="validate business.yml, playbooks and templates").set_defaults(func=cmd_check)
    init = commands.add_parser("init", help="copy business.yml, playbooks and templates into a folder to edit")
    init.add_argument("folder", help="the clinic's folder (created if need be; files already there are kept)")
    init.set_defaults(func=cmd_init)

    preview = commands.add_parser("preview", help="show a sequence's timeline for a lead")
    preview.add_argument("--sequence", help="a sequence name or a path to a YAML file (default: the business's)")
    preview.add_argument(
        "--lead",
        help="sample lead fields, e.g. 'name=Dana Lee,phone=+14155552671,email=d@x.org' "
        "(consent=no: a lead who did not agree to texts)",
    )
    preview.add_argument("--start", help="when the lead comes in (ISO 8601 with offset; default now)")
    preview.add_argument("--appointment", help="the appointment time, for reminder sequences")
    preview.add_argument("--brief", action="store_true", help="times only, without the rendered text")
    preview.set_defaults(func=cmd_preview)

    importer = commands.add_parser("import", help="import leads from a CSV file")
    importer.add_argument("file")
    importer.add_argument("--sequence", help="enroll the new leads in this sequence (default: the business's)")
    importer.add_argument(
        "--consent",
        metavar="HOW",
        help="how every lead in the file agreed to texts, e.g. 'signed intake form' "
        "(a 'consent' column, when there is one, decides row by row)",
    )
    importer.add_argument(
        "--no-sms-consent", action="store_true", help="these leads did not agree to texts: email and calls only"
    )
    importer.add_argument("--encoding", help="the file's encoding (default: UTF-8, with or without BOM, else cp1252)")
    importer.set_defaults(func=cmd_import)

    leads = commands.add_parser("leads", help="list or show leads")
    lead_commands = leads.add_subparsers(dest="leads_command", required=True)
    listing = lead_commands.add_parser("list", help="a table of leads")
    listing.add_argument("--stage", choices=["new", "contacted", "engaged", "booked", "nurture", "lost", "opted_out"])
    listing.add_argument("--limit", type=int, default=500)
    listing.add_argument("--business", metavar="SLUG", help="only this business's leads (default: every business's)")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=cmd_leads_list)
    show = lead_commands.add_parser("show", help="one lead's whole story")
    show.add_argument("lead", help="an id, phone, email or name")
    show.add_argument("--business", metavar="SLUG", help="look among this business's leads only")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=cmd_leads_show)

    export = commands.add_parser(
        "export", help="write every lead to leads.csv or leads.json (for a CRM or a spreadsheet)"
    )
    export.add_argument("file", help="where to write; .csv or .json says the format")
    export.add_argument(
        "--since",
        help="only leads changed since this date (YYYY-MM-DD, midnight in the business's time zone; UTC for several)",
    )
    export.add_argument("--business", metavar="SLUG", help="only this business's leads (a folder's file name)")
    export.add_argument(
        "--messages",
        action="store_true",
        help="add the conversation (JSON: under each lead; CSV: a second file, NAME.messages.csv)",
    )
    export.set_defaults(func=cmd_export)

    stats = commands.add_parser(
        "stats", help="the numbers: leads in, rates; or one breakdown (same as /followup stats)"
    )
    stats.add_argument(
        "words",
        nargs="*",
        metavar="7d|30d|by WHAT",
        help="the period, 7d (default) or 30d, and a breakdown: by source, by touch, by person or "
        "by playbook, e.g. `followup stats 30d by source`",
    )
    stats.add_argument(
        "--business",
        metavar="SLUG",
        help="this business's numbers only (default: each business's, and the agency's total)",
    )
    output = stats.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="machine-readable: columns, rows and the footnote")
    output.add_argument("--csv", action="store_true", help="CSV with a header row of column keys")
    stats.set_defaults(func=cmd_stats)

    businesses = commands.add_parser(
        "businesses", help="each business and its health: Slack channel, senders, last send (exit 1 if any is not)"
    )
    businesses.add_argument("--json", action="store_true", help="machine-readable: each business and its checks")
    businesses.set_defaults(func=cmd_businesses)

    forget = commands.add_parser("forget", help="erase a lead's personal data (a deletion request)")
    forget.add_argument("lead", help="an id, phone, email or name")
    forget.add_argument("--yes", action="store_true", help="really erase it")
    forget.set_defaults(func=cmd_forget)

    db = commands.add_parser("db", help="database maintenance")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    db_commands.add_parser("upgrade", help="migrate the database to the newest schema").set_defaults(
        func=cmd_db_upgrade
    )
    return parser


def main(argv: Seq[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


def console_main() -> int:
    """The installed `followup` command: like main, but a closed pipe (`| head`) ends it quietly."""
    if hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    return main()


if __name__ == "__main__":
    raise SystemExit(console_main())
