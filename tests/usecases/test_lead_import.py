"""`followup import` as an operator runs it: nothing lost on the way in, and consent accounted for."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli import main


@pytest.fixture
def env(monkeypatch, tmp_path: Path, business_file: Path, database_url: str):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("FOLLOWUP_BUSINESS", str(business_file))
    return tmp_path


def phone(index: int) -> str:
    return f"+1312555{index:04d}"


def leads_json(capsys) -> list[dict]:
    assert main(["leads", "list", "--json", "--limit", "100000"]) == 0
    return json.loads(capsys.readouterr().out)


def test_a_bad_byte_a_broken_quote_and_an_oversized_field_reject_only_their_own_rows(env, database_url, capsys):
    rows = [f"Lead {i},{phone(i)},lead{i}@example.com,yes,Zoë's clinic" for i in range(400)]
    lines = [line.encode("utf-8") for line in ["name,phone,email,consent,referrer", *rows]]
    lines[101] = lines[101].replace(b"Lead 100", b"Lead \xff100")  # a bad byte in a UTF-8 file
    lines[201] = lines[201].replace(b"Lead 200", b'"Lead 200')  # a quote that never closes
    lines[301] = lines[301].replace(b"clinic", b"x" * 70_000)  # a field far past any real one
    csv_file = env / "leads.csv"
    csv_file.write_bytes(b"\r\n".join(lines) + b"\r\n")

    run = subprocess.run(
        [sys.executable, "-m", "bot.cli", "import", str(csv_file)],
        capture_output=True,
        text=True,
        env={**os.environ},
        cwd=env,
        timeout=600,
    )

    assert run.returncode == 1, run.stderr
    problems = run.stderr.strip().splitlines()
    assert len(problems) == 3
    assert problems[0].startswith(f"{csv_file}:102: byte 0xff")
    assert problems[1].startswith(f"{csv_file}:202: a quoted field opened here")
    assert problems[2].startswith(f"{csv_file}:302: ")
    assert "397 added, 0 already known, 3 rejected" in run.stdout
    names = {row["name"] for row in leads_json(capsys)}
    assert len(names) == 397 and "Lead 201" in names and "Lead 399" in names
    assert {"Lead 100", "Lead 200", "Lead 300"}.isdisjoint(names)


@pytest.mark.parametrize("encoding", ["utf-8-sig", "cp1252"])
def test_excel_s_usual_encodings_are_read(env, capsys, encoding):
    csv_file = env / "leads.csv"
    csv_file.write_bytes(
        "name,phone,consent\nRenée Côté,(312) 555-0142,yes\nJosé Núñez,(312) 555-0143,no\n".encode(encoding)
    )
    assert main(["import", str(csv_file)]) == 0
    assert "2 added" in capsys.readouterr().out
    assert [row["name"] for row in leads_json(capsys)] == ["Renée Côté", "José Núñez"]


def test_a_row_with_more_fields_than_the_header_is_rejected_not_cut_short(env, capsys):
    csv_file = env / "leads.csv"
    csv_file.write_text("name,phone,consent\nDana Lee,(312) 555-0142,yes\nSmith, John,(312) 555-0143,yes\n")
    assert main(["import", str(csv_file)]) == 1
    captured = capsys.readouterr()
    assert f"{csv_file}:3: 4 fields, but the header names 3 columns" in captured.err
    assert "1 added, 0 already known, 1 rejected" in captured.out


def test_import_without_a_consent_column_or_flag_is_refused_and_imports_nothing(env, capsys):
    csv_file = env / "leads.csv"
    csv_file.write_text("name,phone\nDana Lee,(312) 555-0142\n")
    assert main(["import", str(csv_file)]) == 1
    error = capsys.readouterr().err
    assert "say how these leads agreed to texts" in error and "--consent" in error and "--no-sms-consent" in error
    assert main(["leads", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_the_consent_column_and_flag_put_each_lead_s_consent_on_record(env, capsys):
    csv_file = env / "leads.csv"
    csv_file.write_text(
        "name,phone,consent,consent_text\n"
        "Dana Lee,(312) 555-0142,yes,ticked the box on the paper intake form\n"
        "Sam Ortiz,(312) 555-0143,no,\n"
        "Ana Ruiz,(312) 555-0144,maybe,\n"
    )
    assert main(["import", str(csv_file)]) == 1
    captured = capsys.readouterr()
    assert f"{csv_file}:4: consent: 'maybe' is not yes or no" in captured.err

    assert main(["leads", "show", "Dana", "--json"]) == 0
    dana = json.loads(capsys.readouterr().out)["consent"]
    assert dana["sms"] is True and dana["sms_method"] == "import"
    [entry] = dana["log"]
    assert (entry["granted"], entry["method"], entry["by"]) == (True, "import", "an operator")
    assert entry["evidence"] == "ticked the box on the paper intake form"

    assert main(["leads", "show", "Sam"]) == 0
    shown = capsys.readouterr().out
    assert "SMS consent: no SMS consent on record" in shown

    flagged = env / "more.csv"
    flagged.write_text("name,phone\nBo Chan,(312) 555-0145\n")
    assert main(["import", str(flagged), "--consent", "signed the front-desk sign-up sheet"]) == 0
    capsys.readouterr()
    assert main(["leads", "show", "Bo"]) == 0
    shown = capsys.readouterr().out
    assert "SMS consent: on record (import" in shown
    assert "signed the front-desk sign-up sheet (line 2)" in shown
