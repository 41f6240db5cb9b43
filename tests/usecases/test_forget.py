"""`followup forget`: a lead's personal data is gone everywhere, the anonymous counts remain."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from bot.cli import build_parser
from bot.store.audit import CLI, Actor
from bot.store.models import Base, Lead, Message, Touch
from bot.usecases.dispatch import Dispatcher
from bot.usecases.forget import forget_lead
from bot.usecases.leads import LeadInput, add_lead
from tests.fakes import consented

PHONE, EMAIL, NAME = "+13125550142", "dana.lee@example.com", "Dana Lee"


def enroll_and_text(services) -> int:
    with services.session_factory.begin() as session:
        lead_id = add_lead(
            session,
            LeadInput(name=NAME, phone=PHONE, email=EMAIL, message="my back hurts", sms_consent=consented()),
            business=services.business,
            sequence=services.playbooks.get(),
            now=services.clock.now(),
            actor=Actor.lead(0),
        ).lead_id
    Dispatcher(services).run_due()
    return lead_id


def run_cli(*argv: str) -> int:
    """The command as `followup` runs it, minus main()'s process-wide signal setup."""
    args = build_parser().parse_args(argv)
    return args.func(args)


def every_stored_text(services) -> str:
    with services.session_factory() as session:
        return "\n".join(str(row) for table in Base.metadata.sorted_tables for row in session.execute(select(table)))


def test_forgetting_a_lead_leaves_no_name_phone_email_or_text_anywhere(services, sms):
    lead_id = enroll_and_text(services)
    assert sms.to(PHONE) and PHONE in every_stored_text(services)
    with services.session_factory.begin() as session:
        forget_lead(session, session.get(Lead, lead_id), now=services.clock.now(), actor=CLI)
    stored = every_stored_text(services)
    for personal in (PHONE, EMAIL, NAME, "Dana", "my back hurts", PHONE[2:]):
        assert personal not in stored


def test_the_counts_survive_and_nothing_more_is_sent(services, sms, clock):
    from datetime import timedelta

    lead_id = enroll_and_text(services)
    with services.session_factory.begin() as session:
        forget_lead(session, session.get(Lead, lead_id), now=services.clock.now(), actor=CLI)
    clock.advance(timedelta(days=10))
    sent_before = len(sms.sent)
    Dispatcher(services).run_due()
    assert len(sms.sent) == sent_before
    with services.session_factory() as session:
        assert session.scalar(select(func.count(Lead.id))) == 1
        assert session.scalar(select(func.count(Message.id)).where(Message.direction == "out")) == 1
        statuses = set(session.scalars(select(Touch.status).where(Touch.lead_id == lead_id)))
        assert "sent" in statuses and "scheduled" not in statuses


def test_the_command_asks_for_yes_then_erases(services, monkeypatch, capsys):
    lead_id = enroll_and_text(services)
    engine = services.session_factory.kw["bind"]
    monkeypatch.setenv("DATABASE_URL", engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("FOLLOWUP_BUSINESS", str(services.business.path))
    assert run_cli("forget", str(lead_id)) == 1
    assert PHONE in every_stored_text(services)
    assert run_cli("forget", str(lead_id), "--yes") == 0
    assert PHONE not in every_stored_text(services)
    assert f"lead #{lead_id} forgotten" in capsys.readouterr().out


def test_after_forget_the_sqlite_files_hold_no_trace_of_the_lead(services, database_url, monkeypatch, sms):
    if not database_url.startswith("sqlite"):
        return  # PostgreSQL's files are the server's; this is about the file a clinic keeps
    from bot.core.rules import LeadSignal
    from bot.usecases.conversations import InboundMessage, take_inbound

    lead_id = enroll_and_text(services)
    take_inbound(
        services,
        InboundMessage(
            channel="sms",
            sender=PHONE,
            signal=LeadSignal.QUESTION,
            body="Do you take Blue Cross? My knee clicks",
            provider_id="SM" + "7" * 32,
        ),
    )
    path = Path(database_url.removeprefix("sqlite:///"))
    files = [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]
    secrets = [s.encode() for s in (PHONE, PHONE[2:], EMAIL, NAME, "my back hurts", "My knee clicks")]
    before = b"".join(f.read_bytes() for f in files if f.exists())
    assert all(secret in before for secret in secrets[:3])  # what the test looks for is there to find

    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("FOLLOWUP_BUSINESS", str(services.business.path))
    assert run_cli("forget", str(lead_id), "--yes") == 0

    stored = b"".join(f.read_bytes() for f in files if f.exists())
    for secret in secrets:
        assert secret not in stored, secret
    assert (path.with_name(path.name + "-wal").stat().st_size if files[1].exists() else 0) == 0
