"""`followup export`: a clinic takes every lead (and the conversations) to its spreadsheet or CRM."""

from __future__ import annotations

import csv
import json
import secrets
from datetime import timedelta
from pathlib import Path

import pytest

from bot.cli import main
from bot.reports import lead_export
from bot.store.models import Appointment, Lead, Message
from tests.conftest import NOW


@pytest.fixture
def env(monkeypatch, tmp_path: Path, business_file: Path, database_url: str):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("FOLLOWUP_BUSINESS", str(business_file))
    return tmp_path


def seed(
    session_factory,
    *,
    name: str,
    phone: str | None,
    email: str | None,
    created_days_ago: int = 0,
    custom: dict | None = None,
    first_message: str = "",
    stage: str = "new",
    business: str = "main",
) -> int:
    at = NOW - timedelta(days=created_days_ago)
    with session_factory.begin() as session:
        lead = Lead(
            business=business,
            name=name,
            phone=phone,
            email=email,
            source="web",
            first_message=first_message,
            custom_fields=custom or {},
            timezone="America/Chicago",
            stage=stage,
            sms_consent=bool(phone),
            sms_consent_method="web_form" if phone else None,
            sms_consent_at=at if phone else None,
            link_token=secrets.token_urlsafe(16),
            unsubscribe_token=secrets.token_urlsafe(16),
            created_at=at,
            updated_at=at,
        )
        session.add(lead)
        session.flush()
        return lead.id


@pytest.fixture
def clinic(services):
    """Three leads: one booked with a conversation, one opted out, one from last month."""
    factory = services.session_factory
    dana = seed(
        factory,
        name="Dana Núñez",
        phone="+13125550142",
        email="dana@example.com",
        custom={"insurance": "Aetna"},
        first_message='=HYPERLINK("http://evil.example","hi")',
        stage="booked",
    )
    sam = seed(factory, name="Sam Ortiz", phone="+14155552671", email=None, custom={"referrer": "Dr. Patel"})
    old = seed(factory, name="Old Lead", phone=None, email="old@example.com", created_days_ago=40, stage="lost")
    with factory.begin() as session:
        session.add(
            Appointment(
                business="main", lead_id=dana, start_at=NOW + timedelta(days=3), status="booked", created_at=NOW
            )
        )
        session.add_all(
            [
                Message(
                    lead_id=dana,
                    direction="out",
                    channel="sms",
                    body="Hi Dana, thanks for reaching out!",
                    status="delivered",
                    created_at=NOW,
                ),
                Message(
                    lead_id=dana,
                    direction="in",
                    channel="sms",
                    body="Can I come Friday?",
                    status="received",
                    created_at=NOW + timedelta(minutes=5),
                ),
            ]
        )
        sam_lead = session.get(Lead, sam)
        sam_lead.sms_opted_out_at = NOW
        sam_lead.stage = "opted_out"
    return {"dana": dana, "sam": sam, "old": old}


def test_csv_export_has_every_lead_with_stage_consent_appointment_and_custom_columns(env, clinic, capsys):
    out = env / "leads.csv"
    assert main(["export", str(out)]) == 0
    assert "3 leads written to" in capsys.readouterr().out
    assert out.read_bytes().startswith(b"\xef\xbb\xbf")  # Excel reads accents only after a BOM
    rows = list(csv.DictReader(out.open(encoding="utf-8-sig")))
    by_name = {row["name"]: row for row in rows}
    assert set(by_name) == {"Dana Núñez", "Sam Ortiz", "Old Lead"}
    dana = by_name["Dana Núñez"]
    assert dana["phone"] == "+13125550142"  # a phone stays a phone, not a quoted cell
    assert dana["stage"] == "booked" and dana["appointment_status"] == "booked"
    assert dana["appointment_start_at"].startswith("2026-11-28T15:00")
    assert dana["custom.insurance"] == "Aetna" and by_name["Sam Ortiz"]["custom.referrer"] == "Dr. Patel"
    assert by_name["Sam Ortiz"]["sms_opted_out_at"].startswith("2026-11-25")
    assert by_name["Sam Ortiz"]["email"] == "" and dana["sms_consent"] == "yes"
    assert dana["sms_consent_method"] == "web_form" and dana["sms_consent_at"].startswith("2026-11-25")
    assert by_name["Old Lead"]["sms_consent"] == "no" and by_name["Old Lead"]["sms_consent_method"] == ""
    # What a lead typed never runs as a spreadsheet formula.
    assert dana["first_message"].startswith("'=HYPERLINK")


def test_messages_go_to_a_second_csv_beside_the_first(env, clinic):
    out = env / "leads.csv"
    assert main(["export", str(out), "--messages"]) == 0
    conversation = list(csv.DictReader((env / "leads.messages.csv").open(encoding="utf-8-sig")))
    assert [(row["direction"], row["body"]) for row in conversation] == [
        ("out", "Hi Dana, thanks for reaching out!"),
        ("in", "Can I come Friday?"),
    ]
    assert {row["lead_id"] for row in conversation} == {str(clinic["dana"])}


def test_json_export_nests_the_conversation_under_each_lead(env, clinic):
    out = env / "leads.json"
    assert main(["export", str(out), "--messages"]) == 0
    leads = {lead["id"]: lead for lead in json.loads(out.read_text())}
    assert leads[clinic["dana"]]["custom_fields"] == {"insurance": "Aetna"}
    assert [m["body"] for m in leads[clinic["dana"]]["messages"]] == [
        "Hi Dana, thanks for reaching out!",
        "Can I come Friday?",
    ]
    assert leads[clinic["old"]]["messages"] == []
    assert leads[clinic["dana"]]["first_message"].startswith("=HYPERLINK")  # JSON carries text as it is


def test_since_keeps_only_leads_changed_from_that_day(env, clinic):
    out = env / "recent.json"
    assert main(["export", str(out), "--since", "2026-11-01"]) == 0
    assert {lead["name"] for lead in json.loads(out.read_text())} == {"Dana Núñez", "Sam Ortiz"}


def test_an_empty_database_exports_an_empty_list(env, services):
    out = env / "leads.json"
    assert main(["export", str(out)]) == 0
    assert json.loads(out.read_text()) == []


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["export", "leads.xlsx"], "must end in .csv or .json"),
        (["export", "leads.csv", "--since", "last week"], "YYYY-MM-DD"),
        (["export", "no-such-folder/leads.csv"], "cannot be written"),
    ],
)
def test_a_bad_export_request_says_what_to_fix(env, services, capsys, args, reason):
    assert main(args) == 1
    assert reason in capsys.readouterr().err


def test_leads_are_read_a_page_at_a_time(env, services, monkeypatch):
    monkeypatch.setattr(lead_export, "PAGE", 2)
    for number in range(5):
        seed(services.session_factory, name=f"Lead {number}", phone=f"+1312555010{number}", email=None)
    pages = []
    original = lead_export._pages

    def counting(*args, **kwargs):
        for session, page in original(*args, **kwargs):
            pages.append(len(page))
            yield session, page

    monkeypatch.setattr(lead_export, "_pages", counting)
    report = lead_export.export_leads(services.session_factory, env / "leads.json")
    assert report.leads == 5 and pages == [2, 2, 1]


def test_one_business_s_export_has_only_its_own_leads(services, tmp_path: Path):
    """An agency exports one clinic's leads for that clinic's CRM: another clinic's never go with them."""
    seed(services.session_factory, name="Main Lead", phone="+13125550101", email=None)
    # The same phone, a lead of each clinic.
    seed(services.session_factory, name="Dental Lead", phone="+13125550101", email=None, business="bright-dental")
    out = tmp_path / "dental.csv"

    report = lead_export.export_leads(services.session_factory, out, business="bright-dental")

    assert report.leads == 1
    assert [row["name"] for row in csv.DictReader(out.open(encoding="utf-8-sig"))] == ["Dental Lead"]
    everyone = lead_export.export_leads(services.session_factory, tmp_path / "all.json")
    assert everyone.leads == 2


def test_export_for_a_business_nobody_has_is_refused_naming_the_ones_there_are(env, clinic, capsys):
    assert main(["export", str(env / "x.csv"), "--business", "nope"]) == 1
    assert "--business 'nope': no business has that slug; the businesses are main" in capsys.readouterr().err
    assert not (env / "x.csv").exists()
