"""`followup run` schedules the weekly digest: one for a single business, as before; one per business in a folder."""

from __future__ import annotations

from pathlib import Path

from bot.app import assemble
from bot.settings import Settings
from tests.support.business_folder import write_two_clinics


def digest_jobs_of(settings: Settings) -> list[str]:
    parts = assemble(settings)
    try:
        return sorted(job for job in parts.scheduler.job_ids() if job.startswith("weekly_digest"))
    finally:
        parts.services.session_factory.kw["bind"].dispose()


def test_one_business_has_its_one_weekly_digest_as_before(business_file: Path, database_url):
    settings = Settings(
        _env_file=None,
        DATABASE_URL=database_url,
        FOLLOWUP_BUSINESS=business_file,
        SLACK_BOT_TOKEN="xoxb-test",
        SLACK_LEADS_CHANNEL="C0LEADS",
    )

    assert digest_jobs_of(settings) == ["weekly_digest"]


def test_each_business_of_a_folder_has_its_own_weekly_digest(tmp_path: Path, monkeypatch, database_url):
    folder = write_two_clinics(tmp_path / "clinics", monkeypatch)
    settings = Settings(_env_file=None, DATABASE_URL=database_url, FOLLOWUP_BUSINESSES=folder, SLACK_BOT_TOKEN="xoxb-a")

    assert digest_jobs_of(settings) == ["weekly_digest:bright-dental", "weekly_digest:lakeside-chiro"]


def test_no_digest_is_scheduled_when_it_is_off(tmp_path: Path, monkeypatch, database_url):
    folder = write_two_clinics(tmp_path / "clinics", monkeypatch)
    settings = Settings(
        _env_file=None,
        DATABASE_URL=database_url,
        FOLLOWUP_BUSINESSES=folder,
        SLACK_BOT_TOKEN="xoxb-a",
        FOLLOWUP_DIGEST="off",
    )

    assert digest_jobs_of(settings) == []
