"""`followup businesses`, `leads list --business` and `stats --business` for a deployment of one clinic.

The one clinic is today's business.yml and environment, unchanged: `followup businesses` reads its
channel, senders and addresses from the settings it always had.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.cli import main
from bot.standins.slack_api import SlackApiStandin

TOKEN = "xoxb-one-clinic"


@pytest.fixture
def slack():
    with SlackApiStandin(TOKEN, channels={"C0LEADS": "leads"}) as standin:
        yield standin


@pytest.fixture
def env(monkeypatch, tmp_path: Path, business_file: Path, database_url: str, slack):
    """Today's single-clinic settings, every vendor configured."""
    monkeypatch.chdir(tmp_path)
    for name, value in {
        "DATABASE_URL": database_url,
        "FOLLOWUP_BUSINESS": str(business_file),
        "SLACK_BOT_TOKEN": TOKEN,
        "SLACK_API_URL": slack.url + "/api/",
        "SLACK_LEADS_CHANNEL": "C0LEADS",
        "TWILIO_ACCOUNT_SID": "AC" + "4" * 32,
        "TWILIO_AUTH_TOKEN": "token",
        "TWILIO_FROM_NUMBER": "+13125550100",
        "SENDGRID_API_KEY": "SG.key",
        "SENDGRID_FROM_EMAIL": "hello@lakeside.example",
    }.items():
        monkeypatch.setenv(name, value)
    return tmp_path


def run(capsys, *words: str) -> tuple[int, str, str]:
    code = main(list(words))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_businesses_shows_the_one_clinic_healthy_from_today_s_settings(env, capsys):
    code, out, _ = run(capsys, "businesses")

    assert code == 0, out
    assert out.splitlines()[0] == "Lakeside Chiropractic (main): healthy"
    assert "Slack:     #leads (C0LEADS): reachable, the bot is in it" in out
    assert "Texts:     from +13125550100; replies and missed calls to +13125550100 come here" in out
    assert "Email:     from hello@lakeside.example; replies through SendGrid Inbound Parse come here" in out
    assert "Last send: nothing sent yet" in out
    assert "Leads:     0 open (not lost or opted out)" in out
    assert out.rstrip().endswith("1 business: all healthy")


def test_a_channel_slack_does_not_know_makes_businesses_exit_non_zero(env, monkeypatch, capsys):
    monkeypatch.setenv("SLACK_LEADS_CHANNEL", "#front-desk")

    code, out, _ = run(capsys, "businesses")

    assert code == 1
    assert "  PROBLEM Slack:     #front-desk: Slack lists no channel of that name" in out
    assert out.rstrip().endswith("1 business: 1 needs attention (main)")


def test_without_a_sender_the_one_clinic_needs_attention_as_json_too(env, monkeypatch, capsys):
    monkeypatch.delenv("TWILIO_ACCOUNT_SID")
    monkeypatch.delenv("TWILIO_AUTH_TOKEN")

    code, out, _ = run(capsys, "businesses", "--json")

    assert code == 1
    [clinic] = json.loads(out)
    assert (clinic["business"], clinic["healthy"]) == ("main", False)
    texts = next(check for check in clinic["checks"] if check["what"] == "Texts")
    assert texts["level"] == "problem" and "Twilio is not set up" in texts["text"]


def test_leads_and_stats_take_the_one_clinic_s_slug_and_refuse_any_other(env, capsys):
    csv_file = env / "leads.csv"
    csv_file.write_text("name,phone\nDana Lee,+13125550142\n")
    assert main(["import", str(csv_file), "--consent", "signed intake form"]) == 0
    capsys.readouterr()

    code, out, _ = run(capsys, "leads", "list", "--business", "main")
    assert code == 0
    assert out.splitlines()[0].split()[:2] == ["ID", "NAME"]  # one clinic: no column saying whose
    assert "Dana Lee" in out
    code, out, _ = run(capsys, "leads", "show", "Dana", "--business", "main", "--json")
    assert json.loads(out)["business"] == "main"
    code, out, _ = run(capsys, "stats", "--business", "main", "--json")
    assert json.loads(out)["rows"][0]["leads_in"] == 1
    code, out, _ = run(capsys, "stats")
    assert out.startswith("Stats, last 7 days (")  # one clinic: the headline numbers, as always

    for words in (["leads", "list"], ["leads", "show", "Dana"], ["stats"]):
        code, out, err = run(capsys, *words, "--business", "dental")
        assert code == 1
        assert out == ""
        assert err.strip() == "followup: --business 'dental': no business has that slug; the businesses are main"
