"""The `followup` command as an operator uses it: check, preview, import, leads, db upgrade."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.cli import main


@pytest.fixture
def env(monkeypatch, tmp_path: Path, business_file: Path, database_url: str):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("FOLLOWUP_BUSINESS", str(business_file))
    return tmp_path


def test_check_passes_on_the_shipped_content(env, capsys):
    assert main(["check"]) == 0
    out = capsys.readouterr().out
    assert "OK:" in out and "sequence default" in out and "segment" in out


def test_check_names_the_file_and_line_of_a_broken_business_file(env, monkeypatch, capsys):
    broken = env / "broken.yml"
    broken.write_text(
        "name: X\ntimezone: Mars/Base\nphone: '+13125550142'\naddress: 1 Main St\n"
        "booking_link: https://example.com\nsequence: default\n"
    )
    monkeypatch.setenv("FOLLOWUP_BUSINESS", str(broken))
    assert main(["check"]) == 1
    assert f"{broken}:2" in capsys.readouterr().err


def test_preview_shows_each_touch_in_business_and_lead_time_with_its_text(env, capsys):
    assert main(["preview", "--lead", "name=Sam Ortiz,phone=+14155552671", "--start", "2026-11-25T11:00-06:00"]) == 0
    out = capsys.readouterr().out
    assert "Sam" in out and "business" in out
    # The lead is in California, the clinic in Chicago: each time shows both clocks, labelled.
    assert "1. First text [instant_sms, sms]  Wed, Nov 25 at 11:00 AM CST (9:00 AM PST their time)" in out
    assert "Reply STOP to opt out" in out


def test_preview_of_reminders_counts_back_from_the_appointment(env, capsys):
    assert (
        main(
            [
                "preview",
                "--sequence",
                "appointment_reminders",
                "--start",
                "2026-11-25T09:00-06:00",
                "--appointment",
                "2026-11-30T10:00-06:00",
                "--brief",
            ]
        )
        == 0
    )
    assert "appointment Mon, Nov 30 at 10:00 AM CST" in capsys.readouterr().out


def test_preview_shows_what_this_lead_gets_and_lists_the_rest_as_skipped_with_the_reason(env, capsys):
    # A text-only lead: no email at all, so no email renders and only the day-7 text applies.
    assert (
        main(["preview", "--lead", "name=Sam Ortiz,phone=+14155552671,email=", "--start", "2026-11-25T09:00-06:00"])
        == 0
    )
    out = capsys.readouterr().out
    shown, _, skipped = out.partition("skipped for this lead")
    assert "Subject:" not in shown and "Thank-you email [" not in shown
    assert "Day-7 keep-in-touch text [day7_nurture_sms, sms]" in shown
    assert "Day-7 keep-in-touch email [" not in shown
    assert "- Thank-you email (same_day_email, email): lead has no email address" in skipped
    assert "- Day-7 keep-in-touch email (day7_nurture_email, email): lead has no email address" in skipped


def test_preview_of_a_lead_with_email_sends_the_day7_email_not_the_text(env, capsys):
    assert main(["preview", "--start", "2026-11-25T09:00-06:00", "--brief"]) == 0
    shown, _, skipped = capsys.readouterr().out.partition("skipped for this lead")
    assert "Day-7 keep-in-touch email [" in shown and "Day-7 keep-in-touch text [" not in shown
    assert "Day-7 keep-in-touch text (day7_nurture_sms, sms): lead gets this by email instead" in skipped


def test_preview_of_a_lead_who_did_not_agree_to_texts_says_where_each_text_goes_instead(env, capsys):
    assert main(["preview", "--lead", "consent=no", "--start", "2026-11-25T11:00-06:00", "--brief"]) == 0
    out = capsys.readouterr().out
    assert "; no consent to texts on record" in out.splitlines()[0]
    assert "1. First text [instant_sms, sms]  Wed, Nov 25 at 11:00 AM CST" in out
    assert "(goes by email instead: no SMS consent on record)" in out.splitlines()[4]

    assert main(["preview", "--lead", "consent=no,email=", "--start", "2026-11-25T11:00-06:00", "--brief"]) == 0
    assert "(handed to the team as a call instead: no SMS consent on record)" in capsys.readouterr().out


def test_preview_s_sample_lead_agreed_to_texts_on_the_web_form(env, capsys):
    assert main(["preview", "--start", "2026-11-25T11:00-06:00", "--brief"]) == 0
    out = capsys.readouterr().out
    assert "; agreed to texts" in out.splitlines()[0] and "instead: no SMS consent" not in out


def test_preview_says_why_a_night_leads_first_text_waits(env, capsys):
    assert main(["preview", "--lead", "phone=+13125550142", "--start", "2026-11-24T23:30-06:00", "--brief"]) == 0
    out = capsys.readouterr().out
    assert "1. First text [instant_sms, sms]  Wed, Nov 25 at 8:00 AM CST  (waits: quiet hours" in out


def test_preview_refuses_a_lead_left_with_no_way_to_reach_them(env, capsys):
    assert main(["preview", "--lead", "phone=,email="]) == 1
    assert "give at least one way to reach the lead" in capsys.readouterr().err


def test_preview_refuses_a_time_without_an_offset(env, capsys):
    assert main(["preview", "--start", "2026-11-25T09:00"]) == 1
    assert "needs a UTC offset" in capsys.readouterr().err


def test_import_keeps_good_rows_reports_bad_ones_by_line_and_makes_no_duplicates(env, capsys):
    csv_file = env / "leads.csv"
    csv_file.write_text(
        "name,phone,email,source,insurance\n"
        "Dana Lee,(312) 555-0142,dana@example.com,web,Aetna\n"
        "No Way,,,web,\n"
        "Bad Phone,12,,web,\n"
        "Dana Again,312.555.0142,,web,\n"
        "Sam Ortiz,,sam@example.com,referral,\n"
    )
    assert main(["import", str(csv_file), "--consent", "signed intake form"]) == 1  # rows were rejected
    captured = capsys.readouterr()
    assert f"{csv_file}:3: phone or email" in captured.err
    assert f"{csv_file}:4: phone:" in captured.err
    assert "2 added, 1 already known, 2 rejected" in captured.out
    assert main(["leads", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == ["Dana Lee", "Sam Ortiz"]
    assert rows[0]["enrollment_state"] == "active" and rows[0]["next_touch"]["step"]


def test_import_reads_us_time_zone_abbreviations_and_names_the_line_of_a_zone_that_is_not_a_place(env, capsys):
    csv_file = env / "leads.csv"
    csv_file.write_text(
        "name,phone,timezone\n"
        "Dana Lee,(312) 555-0142,CST\n"
        "Sam Ortiz,(415) 555-0142,Pacific/Nowhere\n"
        "Ana Ruiz,(212) 555-0142,EST5EDT\n"
    )
    assert main(["import", str(csv_file), "--no-sms-consent"]) == 1
    captured = capsys.readouterr()
    assert f"{csv_file}:3: timezone: 'Pacific/Nowhere'" in captured.err
    assert f"{csv_file}:4: timezone: 'EST5EDT'" in captured.err
    assert "1 added, 0 already known, 2 rejected" in captured.out
    assert main(["leads", "list", "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert main(["leads", "show", str(row["id"]), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["name"], shown["timezone"]) == ("Dana Lee", "America/Chicago")


def test_import_of_a_file_without_contact_columns_says_so(env, capsys):
    csv_file = env / "people.csv"
    csv_file.write_text("name,city\nDana,Chicago\n")
    assert main(["import", str(csv_file)]) == 1
    assert f"{csv_file}:1: no 'phone' or 'email' column" in capsys.readouterr().err


def test_leads_show_tells_the_whole_story_for_people_and_scripts(env, capsys):
    csv_file = env / "leads.csv"
    csv_file.write_text("name,phone\nDana Lee,+13125550142\n")
    assert main(["import", str(csv_file), "--consent", "signed intake form"]) == 0
    capsys.readouterr()
    assert main(["leads", "show", "Dana"]) == 0
    text = capsys.readouterr().out
    assert "Dana Lee" in text and "touches:" in text and "scheduled" in text
    assert main(["leads", "show", "(312) 555-0142", "--json"]) == 0
    detail = json.loads(capsys.readouterr().out)
    assert detail["stage"] == "new" and detail["touches"]
    assert all(t["status"] == "scheduled" for t in detail["touches"])
    assert main(["leads", "show", "nobody"]) == 1
    assert "no lead matches 'nobody'" in capsys.readouterr().err


def test_db_upgrade_is_safe_to_run_twice(env, capsys):
    assert main(["db", "upgrade"]) == 0
    assert main(["db", "upgrade"]) == 0
    assert "up to date" in capsys.readouterr().out


def test_import_refreshes_the_planner_statistics_on_postgresql(env, database_url, capsys):
    csv_file = env / "leads.csv"
    csv_file.write_text("name,phone,consent\nDana Lee,+13125550142,yes\n")
    assert main(["import", str(csv_file)]) == 0
    if not database_url.startswith("postgresql"):
        return  # SQLite has no planner statistics to go stale
    from sqlalchemy import text

    from bot.store.db import make_engine

    engine = make_engine(database_url)
    with engine.connect() as connection:
        analyzed = connection.scalar(
            text(
                "SELECT last_analyze IS NOT NULL FROM pg_stat_user_tables "
                "WHERE relname = 'touches' AND schemaname = current_schema()"
            )
        )
    engine.dispose()
    assert analyzed


def test_check_warns_when_a_playbook_s_channel_has_no_provider_configured(env, monkeypatch, capsys):
    monkeypatch.setenv("SENDGRID_API_KEY", "SG.x")
    monkeypatch.setenv("SENDGRID_FROM_EMAIL", "hello@lakeside.example")
    assert main(["check"]) == 0
    out = capsys.readouterr().out
    assert "warning: SMS is not configured (set TWILIO_ACCOUNT_SID" in out
    assert "warning: email is not configured" not in out


# --- init: a folder the clinic owns -----------------------------------------------------------


@pytest.fixture
def clinic(monkeypatch, tmp_path: Path, database_url: str) -> Path:
    """A clinic's own folder made by `followup init`, run from inside it as the README says."""
    for name in ("FOLLOWUP_BUSINESS", "FOLLOWUP_SEQUENCES_DIR", "FOLLOWUP_TEMPLATES_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", database_url)
    folder = tmp_path / "lakeside"
    assert main(["init", str(folder)]) == 0
    monkeypatch.chdir(folder)
    return folder


def test_init_writes_the_business_file_playbooks_and_templates_to_edit(clinic, capsys):
    assert (clinic / "business.yml").is_file()
    assert {p.stem for p in (clinic / "sequences").glob("*.yml")} == {
        "default",
        "chiropractic",
        "dental",
        "nurture",
        "appointment_reminders",
        "appointment_confirmation",
        "no_show",
        "after_visit",
    }
    assert (clinic / "templates" / "default" / "instant_sms.sms.j2").is_file()
    assert not list(clinic.rglob("__pycache__")) and not (clinic / "sequences" / "business.yml").exists()


def test_the_clinics_own_wording_and_playbook_are_what_check_and_preview_use(clinic, capsys):
    first_text = clinic / "templates" / "default" / "instant_sms.sms.j2"
    first_text.write_text("Hi {{ lead.first_name }}, Maple Street Chiro here. When suits you for a first visit?")
    playbook = clinic / "sequences" / "default.yml"
    playbook.write_text(playbook.read_text().replace("label: First text", "label: Hello text"))
    capsys.readouterr()

    assert main(["preview", "--lead", "phone=+13125550142", "--start", "2026-11-25T11:00-06:00"]) == 0
    out = capsys.readouterr().out
    assert "Maple Street Chiro here" in out and "1. Hello text [instant_sms, sms]" in out
    assert main(["check"]) == 0
    assert f"({Path('sequences') / 'default.yml'})" in capsys.readouterr().out


def test_init_again_keeps_what_the_clinic_edited(clinic, capsys):
    (clinic / "business.yml").write_text(
        (clinic / "business.yml").read_text().replace("Lakeside Chiropractic", "Maple Street Chiropractic")
    )
    capsys.readouterr()
    assert main(["init", str(clinic)]) == 0
    assert "wrote 0 files" in capsys.readouterr().out
    assert "Maple Street Chiropractic" in (clinic / "business.yml").read_text()


def test_the_sandbox_and_run_use_the_clinics_folder_named_by_followup_business(clinic, monkeypatch, tmp_path):
    from bot.sandbox.runner import sandbox_settings
    from bot.settings import Settings

    monkeypatch.chdir(tmp_path)  # anywhere else: the business file names the folder
    monkeypatch.setenv("FOLLOWUP_BUSINESS", str(clinic / "business.yml"))
    for settings in (
        Settings(),
        sandbox_settings(
            directory=tmp_path,
            public_base_url="http://x",
            twilio_url="http://x",
            sendgrid_url="http://x",
            slack_url="http://x",
        ),
    ):
        assert (settings.sequences_dir, settings.templates_dir) == (clinic / "sequences", clinic / "templates")
    monkeypatch.setenv("FOLLOWUP_TEMPLATES_DIR", str(tmp_path))
    assert Settings().templates_dir == tmp_path  # set explicitly, it still wins


def test_init_refuses_a_file_in_the_way(tmp_path, capsys):
    (tmp_path / "taken").write_text("x")
    assert main(["init", str(tmp_path / "taken")]) == 1
    assert "is a file, not a folder" in capsys.readouterr().err


def test_the_bot_refuses_to_start_when_twilio_is_configured_without_a_number_or_messaging_service(env, monkeypatch):
    """`followup run` prints this and exits 1 (cmd_run), before serving anything."""
    from bot.app import build_services
    from bot.core.config_errors import ConfigError
    from bot.settings import Settings

    monkeypatch.setenv("TWILIO_ACCOUNT_SID", "AC" + "1" * 32)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "token")
    monkeypatch.delenv("TWILIO_FROM_NUMBER", raising=False)
    monkeypatch.delenv("TWILIO_MESSAGING_SERVICE_SID", raising=False)

    with pytest.raises(ConfigError, match="set TWILIO_FROM_NUMBER or TWILIO_MESSAGING_SERVICE_SID"):
        build_services(Settings(_env_file=None), migrate=False)
