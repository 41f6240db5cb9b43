"""`followup stats` as an operator runs it: the same numbers as /followup stats, as a table, CSV or JSON."""

from __future__ import annotations

import csv
import io
import json

import pytest

from bot.cli import main
from tests.known_history import ALICE, BOB, seed_known_history


@pytest.fixture
def history(services, clock, monkeypatch, tmp_path, business_file, database_url):
    seeded = seed_known_history(services, clock)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("FOLLOWUP_BUSINESS", str(business_file))
    # The CLI's clock starts where the history ends, so "the last seven days" are the history's.
    monkeypatch.setenv("FOLLOWUP_CLOCK_START", clock.now().isoformat())
    return seeded


def run(capsys, *words: str) -> tuple[int, str, str]:
    code = main(["stats", *words])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_by_source_prints_the_table_slack_shows(history, capsys):
    code, out, _ = run(capsys, "7d", "by", "source")

    assert code == 0
    assert out.startswith("By source, last 7 days (")
    assert (
        "\n".join(
            [
                "Source    Leads  Reached  Replied  Reply%  Booked  Book%  Came  Lost",
                "facebook      2        2        2    100%       1    50%     0     1",
                "website       2        2        1     50%       1    50%     1     0",
                "referral      1        1        0      0%       1   100%     0     0",
            ]
        )
        in out
    )
    assert "Leads that came in during the period" in out


def test_csv_has_a_header_row_of_column_keys_and_one_row_per_touch(history, capsys):
    code, out, _ = run(capsys, "by", "touch", "--csv")

    assert code == 0
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == ["playbook", "touch", "channel", "sent", "replies", "reply_rate", "bookings", "booking_rate"]
    assert rows[1:] == [
        ["Standard follow-up", "First text", "Text", "4", "3", "0.75", "2", "0.5"],
        ["Standard follow-up", "Thank-you email", "Email", "2", "0", "0.0", "1", "0.5"],
    ]


def test_json_is_machine_readable_with_the_same_numbers(history, capsys):
    code, out, _ = run(capsys, "30d", "by", "person", "--json")

    assert code == 0
    report = json.loads(out)
    assert (report["breakdown"], report["days"]) == ("person", 30)
    assert [
        (r["team_member"], r["calls"], r["calls_no_answer"], r["leads_claimed"], r["bookings"]) for r in report["rows"]
    ] == [(BOB, 2, 1, 1, 1), (ALICE, 1, 0, 1, 1)]
    assert {"key": "calls_left_voicemail", "heading": "Voicemail", "kind": "count"} in report["columns"]


def test_by_playbook_as_json(history, capsys):
    _, out, _ = run(capsys, "by", "playbook", "--json")

    assert json.loads(out)["rows"] == [
        {
            "playbook": "Standard follow-up",
            "leads": 5,
            "replied": 3,
            "reply_rate": 0.6,
            "booked": 3,
            "booking_rate": 0.6,
            "finished": 0,
            "nurture": 0,
        }
    ]


def test_the_headline_numbers_read_as_lines_and_as_one_json_row(history, capsys):
    code, out, _ = run(capsys)
    assert code == 0
    assert "Leads in:" in out and "Booking rate:" in out
    assert [line.split(":")[1].strip() for line in out.splitlines() if line.startswith(("Leads in:", "Booked:"))] == [
        "5",
        "3",
    ]

    _, out, _ = run(capsys, "30d", "--json")
    [row] = json.loads(out)["rows"]
    assert (row["leads_in"], row["contacted"], row["replied"], row["booked"], row["attended"], row["no_shows"]) == (
        6,
        6,
        4,
        3,
        1,
        1,
    )
    assert row["show_rate"] == 0.5


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("words", "wrong"), [(["by", "weather"], "'by weather'"), (["90d"], "'90d'"), (["source"], "'source'")]
)
def test_words_it_cannot_read_are_named_with_the_accepted_forms(history, capsys, words, wrong):
    code, out, err = run(capsys, *words)

    assert code == 1 and out == ""
    assert f"followup: stats: {wrong} is neither a period nor a breakdown" in err
    assert "stats [7d|30d] [by source|touch|person|playbook]" in err


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_json_and_csv_cannot_both_be_asked_for(history, capsys):
    with pytest.raises(SystemExit) as refused:
        main(["stats", "--json", "--csv"])
    assert refused.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_source_that_looks_like_a_formula_is_kept_as_text_in_the_csv(services, history, capsys):
    from bot.store.audit import SYSTEM
    from bot.usecases.leads import LeadInput, add_lead
    from tests.fakes import WEB_FORM_CONSENT

    data = LeadInput.parse({"name": "Pat", "phone": "+13125550177", "source": '=HYPERLINK("x")', **WEB_FORM_CONSENT})
    with services.session_factory.begin() as session:
        add_lead(
            session,
            data,
            business=services.business,
            sequence=services.playbooks.get(),
            now=services.clock.now(),
            actor=SYSTEM,
        )

    _, out, _ = run(capsys, "by", "source", "--csv")

    assert "'=HYPERLINK" in out
