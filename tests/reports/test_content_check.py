"""`followup check` refuses a lead-facing template that reads a field only the team may see."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bot import SHIPPED_SEQUENCES, SHIPPED_TEMPLATES
from bot.cli import main


@pytest.fixture
def content(tmp_path: Path, monkeypatch, business_file: Path) -> Path:
    """A copy of the shipped playbooks and templates that the test may edit, used by `followup check`."""
    shutil.copytree(SHIPPED_SEQUENCES, tmp_path / "sequences")
    shutil.copytree(SHIPPED_TEMPLATES, tmp_path / "templates")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'check.db'}")
    monkeypatch.setenv("FOLLOWUP_BUSINESS", str(business_file))
    monkeypatch.setenv("FOLLOWUP_SEQUENCES_DIR", str(tmp_path / "sequences"))
    monkeypatch.setenv("FOLLOWUP_TEMPLATES_DIR", str(tmp_path / "templates"))
    return tmp_path


def add_line(path: Path, line: str, *, at: int) -> None:
    lines = path.read_text().splitlines()
    lines.insert(at - 1, line)
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize(
    "use, field",
    [
        ("Good to know: {{ appointment.notes }}", "appointment.notes"),
        ("{% if appointment['notes'] %}Note: {{ appointment['notes'] }}{% endif %}", "appointment.notes"),
        ("We are calling because {{ call.reason }}", "call.reason"),
        ("You wrote: {{ lead.message }}", "lead.message"),
        ("Insurer: {{ lead.custom.insurer }}", "lead.custom"),
    ],
)
def test_check_fails_a_reminder_email_that_reads_a_staff_field_naming_file_and_line(content, capsys, use, field):
    template = content / "templates" / "appointment_reminders" / "day_before.email.txt.j2"
    add_line(template, use, at=4)
    assert main(["check"]) == 1
    said = capsys.readouterr()
    assert f"{template}:4: {field}" in said.out + said.err


def test_check_fails_a_text_that_reads_the_call_reason(content, capsys):
    template = content / "templates" / "default" / "checkin_sms.sms.j2"
    add_line(template, "{{ call.reason }}", at=1)
    assert main(["check"]) == 1
    said = capsys.readouterr()
    assert f"{template}:1: call.reason" in said.out + said.err


def test_call_scripts_may_read_the_call_reason(content, capsys):
    assert "call.reason" in (content / "templates" / "default" / "first_call.call_script.j2").read_text()
    assert main(["check"]) == 0
