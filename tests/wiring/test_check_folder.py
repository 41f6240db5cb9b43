"""`followup check` with FOLLOWUP_BUSINESSES: every business file and each business's content, file and line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.cli import main
from tests.support.business_folder import business_text, write_two_clinics


@pytest.fixture
def clinics(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FOLLOWUP_BUSINESS", raising=False)
    folder = write_two_clinics(tmp_path / "clinics", monkeypatch)
    monkeypatch.setenv("FOLLOWUP_BUSINESSES", str(folder))
    return folder


def test_check_prints_one_ok_line_per_business_of_a_good_folder(clinics, capsys):
    assert main(["check"]) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith(("OK ", "FAILED "))]
    assert [line.split(" (")[0] for line in lines] == ["OK bright-dental", "OK lakeside-chiro"]
    assert "its own sequences" in lines[0] and "its own templates" in lines[1]
    assert out.rstrip().endswith("OK: 2 businesses, 0 warnings, 0 errors")


def test_check_reports_every_problem_of_a_broken_folder_with_file_and_line_and_fails(clinics, monkeypatch, capsys):
    lakeside = clinics / "lakeside-chiro.yml"
    lakeside.write_text(
        lakeside.read_text().replace("  channel: C0LAKESIDE", "  channel: #lakeside").replace("phone:", "phnoe:")
    )
    own_template = clinics / "bright-dental" / "templates" / "dental" / "instant_sms.sms.j2"
    own_template.parent.mkdir(parents=True)
    own_template.write_text("Hi {{ lead.first_name }},\nsee you {% if %} soon\n")
    (clinics / "quiet.yml").write_text(business_text("Quiet Clinic", "+13125550177"))
    monkeypatch.delenv("LAKESIDE_LEAD_TOKEN")

    assert main(["check"]) == 1

    captured = capsys.readouterr()
    assert f"{lakeside}:3: unknown key 'phnoe'" in captured.err
    assert f"{lakeside}:8: slack.channel is empty: YAML reads the unquoted #lakeside as a comment" in captured.err
    assert f"{lakeside}:16: environment variable LAKESIDE_LEAD_TOKEN is not set" in captured.err
    assert f"{own_template}:2: Jinja syntax error" in captured.err
    verdicts = [line.split(" (")[0] for line in captured.out.splitlines() if line.startswith(("OK ", "FAILED "))]
    assert verdicts == ["FAILED bright-dental", "FAILED lakeside-chiro", "OK quiet"]
    assert "FAILED: 3 businesses" in captured.out


def test_check_warns_of_a_webhook_secret_written_in_a_business_file(clinics, capsys):
    lakeside = clinics / "lakeside-chiro.yml"
    lakeside.write_text(lakeside.read_text().replace("${LAKESIDE_LEAD_TOKEN}", "written-out-secret"))
    assert main(["check"]) == 0
    assert f"warning: {lakeside}:16: webhooks.lead_token is written in the file" in capsys.readouterr().out


def test_check_of_a_folder_with_slack_configured_names_the_business_without_a_channel(clinics, monkeypatch, capsys):
    dental = clinics / "bright-dental.yml"
    dental.write_text(dental.read_text().replace('slack:\n  channel: "#bright-dental-leads"\n', ""))
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-agency")
    assert main(["check"]) == 1
    assert (
        f"{dental}: Slack is configured (SLACK_BOT_TOKEN) but this business has no channel" in capsys.readouterr().err
    )


def test_check_of_an_empty_folder_fails_saying_so(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FOLLOWUP_BUSINESS", raising=False)
    monkeypatch.setenv("FOLLOWUP_BUSINESSES", str(tmp_path))
    assert main(["check"]) == 1
    assert "has no <slug>.yml in it" in capsys.readouterr().err


def test_the_readme_example_clinic_file_is_one_check_accepts(tmp_path: Path, monkeypatch, capsys):
    """The README's many-clinics example is copied by people setting up an agency: it must read well as written."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    example = re.search(r"```yaml\n# businesses/lakeside-chiro\.yml\n(.*?)```", readme, re.S)
    assert example is not None, "the README's example business file is gone or renamed"
    folder = tmp_path / "businesses"
    folder.mkdir()
    (folder / "lakeside-chiro.yml").write_text(example.group(1))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FOLLOWUP_BUSINESS", raising=False)
    monkeypatch.setenv("FOLLOWUP_BUSINESSES", str(folder))
    for name in ("LAKESIDE_LEAD_TOKEN", "LAKESIDE_BOOKING_TOKEN", "LAKESIDE_CALENDLY_KEY", "LAKESIDE_CALCOM_SECRET"):
        monkeypatch.setenv(name, f"{name.lower()}-value")
    assert main(["check"]) == 0
    assert capsys.readouterr().out.rstrip().endswith("OK: 1 business, 0 warnings, 0 errors")
