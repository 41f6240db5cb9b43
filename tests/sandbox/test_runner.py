"""The sandbox runner without a browser: it starts, takes a lead end to end, stops, and starts again where it was."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import select

from bot import SHIPPED_SEQUENCES
from bot.sandbox.runner import DATABASE_FILE, LEADS_CHANNEL, STATE_FILE, Sandbox, demo_start, sandbox_settings
from bot.store.models import Lead
from tests.fakes import WEB_FORM_CONSENT
from tests.sandbox.conftest import START, chiropractic
from tests.support.ports import free_port

BUSINESS = SHIPPED_SEQUENCES / "business.yml"
ROOT = Path(__file__).resolve().parents[2]


def wait_for(condition, timeout: float = 5.0) -> None:  # noqa: ANN001 - a callable returning a truth value
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


@pytest.mark.parametrize("business_path", [None, BUSINESS], ids=["two clinics", "your own business.yml"])
def test_sandbox_takes_a_lead_to_a_text_and_a_card_then_stops(tmp_path: Path, business_path: Path | None) -> None:
    sandbox = Sandbox(port=0, directory=tmp_path, business_path=business_path, start_at=START).start()
    try:
        assert sandbox.missing == []
        channel = next(iter(sandbox.services.businesses)).slack.channel
        assert channel == (LEADS_CHANNEL if business_path else chiropractic(sandbox).slack.channel)
        answer = sandbox.actions.submit_lead(
            {"name": "Dana Lee", "phone": "+13125550101", "message": "Neck pain", **WEB_FORM_CONSENT}
        )
        assert answer.status == 201
        wait_for(lambda: any(t["direction"] == "out" and t["status"] == "delivered" for t in sandbox.world.texts))
        wait_for(lambda: any(m.get("blocks") for m in sandbox.slack.messages(channel)))
        state = httpx.get(f"{sandbox.url}/sandbox/api/state", timeout=5).json()
        assert [p["name"] for p in state["phones"]] == ["Dana Lee"]
        assert state["clock"]["next_due"]["step"] is not None
        port = sandbox.port
    finally:
        sandbox.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)


def test_a_second_start_keeps_the_leads_the_channel_and_the_time(tmp_path: Path) -> None:
    with Sandbox(port=0, directory=tmp_path, start_at=START) as first:
        leads = chiropractic(first).slack.channel
        first.actions.submit_lead({"name": "Dana Lee", "phone": "+13125550101", **WEB_FORM_CONSENT})
        wait_for(lambda: len(first.slack.messages(leads)) >= 2 and first.world.texts)
        first.skip(timedelta(hours=3))
        stopped_at = first.clock.now()
        channel = first.slack.messages(leads)
    assert (tmp_path / DATABASE_FILE).exists() and (tmp_path / STATE_FILE).exists()

    with Sandbox(port=0, directory=tmp_path) as second:
        assert second.notices == []
        with second.services.session_factory() as session:
            assert [lead.name for lead in session.scalars(select(Lead))] == ["Dana Lee"]
        assert [m["ts"] for m in second.slack.messages(leads)][: len(channel)] == [m["ts"] for m in channel]
        assert [t["body"] for t in second.world.texts] == [t["body"] for t in first.world.texts]
        assert stopped_at <= second.clock.now() < stopped_at + timedelta(minutes=1)
        # The card is updated in place, not posted again: chat.update finds the restored message.
        second.actions.text_from_lead("+13125550101", "Yes please call me")
        wait_for(
            lambda: any(r.route == "chat.update" and r.response.get("ok") for r in second.slack.requests if r.response)
        )


def test_the_page_refuses_actions_by_someone_outside_the_team(tmp_path: Path) -> None:
    with Sandbox(port=0, directory=tmp_path, start_at=START) as sandbox:
        answer = httpx.post(f"{sandbox.url}/sandbox/api/slack/command", json={"user": "U0STRANGER", "text": "list"})
        assert answer.status_code == 400
        assert "not a member" in answer.json()["error"]
        page = httpx.get(f"{sandbox.url}/sandbox", timeout=5)
        assert page.status_code == 200
        assert "default-src 'self'" in page.headers["content-security-policy"]


def test_sandbox_settings_name_only_the_stand_ins_whatever_the_environment_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {
        "TWILIO_API_URL": "https://api.twilio.com",
        "SLACK_APP_TOKEN": "xapp-real",
        "DATABASE_URL": "postgresql://prod/db",
        "SENDGRID_API_KEY": "SG.real",
        "SLACK_API_URL": "https://slack.com/api/",
    }.items():
        monkeypatch.setenv(name, value)
    settings = sandbox_settings(
        directory=tmp_path,
        public_base_url="http://127.0.0.1:1",
        twilio_url="http://t",
        sendgrid_url="http://s",
        slack_url="http://k",
        business_path=BUSINESS,
    )
    assert settings.twilio_api_url == "http://t" and settings.sendgrid_api_url == "http://s"
    assert settings.slack_api_url == "http://k/api/" and settings.slack_app_token is None
    assert settings.database_url.endswith(f"/{DATABASE_FILE}") and settings.database_url.startswith("sqlite:///")
    assert settings.sendgrid_api_key != "SG.real"


@pytest.mark.parametrize(
    ("local", "expected"),
    [
        (datetime(2027, 3, 2, 10, 30), datetime(2027, 3, 2, 10, 30)),  # open now: now
        (datetime(2027, 3, 2, 22, 0), datetime(2027, 3, 3, 9, 0)),  # Tuesday night: Wednesday an hour after opening
        (datetime(2027, 3, 6, 21, 0), datetime(2027, 3, 8, 9, 0)),  # Saturday night: Monday, closed on Sunday
    ],
)
def test_the_sandbox_day_starts_when_the_clinic_may_text(tmp_path: Path, local: datetime, expected: datetime) -> None:
    zone = ZoneInfo("America/Chicago")
    with Sandbox(port=0, directory=tmp_path, start_at=START) as sandbox:
        start = demo_start(local.replace(tzinfo=zone).astimezone(UTC), sandbox.services)
    assert start.astimezone(zone).replace(tzinfo=None) == expected


def test_followup_sandbox_prints_its_url_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith(("SLACK_", "TWILIO_", "SENDGRID_"))}
    env["PYTHONPATH"] = str(ROOT)
    process = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "sandbox", "--port", str(port), "--no-browser"],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        first_line = process.stdout.readline()
        assert f"http://127.0.0.1:{port}/sandbox" in first_line, first_line
        wait_for(lambda: _answers(f"http://127.0.0.1:{port}/healthz"), timeout=20)
        assert "followup sandbox" in httpx.get(f"http://127.0.0.1:{port}/sandbox", timeout=5).text
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert code == 0, process.stdout.read()
    assert (tmp_path / DATABASE_FILE).exists() and (tmp_path / STATE_FILE).exists()


def test_followup_sandbox_says_so_when_its_port_is_taken(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "bot.cli", "sandbox", "--port", str(port), "--no-browser"],
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1
    assert f"port {port}" in done.stderr and "--port" in done.stderr


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_at_a_day_a_second_a_week_plays_out_with_every_touch_on_time(tmp_path: Path) -> None:
    from bot.store.models import Touch

    with Sandbox(port=0, directory=tmp_path, start_at=START) as sandbox:
        sandbox.actions.submit_lead(
            {"name": "Dana Lee", "phone": "+13125550101", "email": "dana@example.com", **WEB_FORM_CONSENT}
        )
        wait_for(lambda: sandbox.world.texts)
        sandbox.set_speed(86400)
        wait_for(lambda: sandbox.clock.now() > START + timedelta(days=8), timeout=30)
        sandbox.set_speed(1)
        with sandbox.services.session_factory() as session:
            touches = session.scalars(select(Touch).order_by(Touch.position)).all()
            missed = [(t.step_id, t.skip_reason) for t in touches if t.skip_reason and "missed" in t.skip_reason]
            statuses = {t.step_id: t.status for t in touches}
    assert not missed
    assert statuses["day5_final_sms"] == "sent" and statuses["day1_checkin_sms"] == "sent", statuses
    assert len([t for t in sandbox.world.texts if t["direction"] == "out"]) == 3


def _as_version_1(state_path: Path) -> dict:
    """Rewrite a saved page file as the one-clinic sandbox wrote it (version 1: no clinic numbers, STOP per phone)."""
    import json

    data = json.loads(state_path.read_text())
    for text in data["texts"]:
        text.pop("clinic_number", None)
    old = {
        "version": 1,
        **{k: data[k] for k in ("texts", "emails", "human_messages", "slack_messages", "slack_home_views")},
        "opted_out_numbers": sorted({number for number, _ in data["opted_out"]}),
        "simulated_now": data["simulated_now"],
        "sim_times": data["sim_times"],
    }
    state_path.write_text(json.dumps(old))
    return old


def test_a_one_clinic_sandbox_saved_here_is_set_aside_and_the_two_clinics_start_afresh(tmp_path: Path) -> None:
    with Sandbox(port=0, directory=tmp_path, business_path=BUSINESS, start_at=START) as old:
        old.actions.submit_lead({"name": "Dana Lee", "phone": "+13125550101", **WEB_FORM_CONSENT})
        wait_for(lambda: old.world.texts)
    _as_version_1(tmp_path / STATE_FILE)

    with Sandbox(port=0, directory=tmp_path, start_at=START) as sandbox:
        [notice] = sandbox.notices
        state = httpx.get(f"{sandbox.url}/sandbox/api/state", timeout=5).json()
        with sandbox.services.session_factory() as session:
            leads = session.scalars(select(Lead)).all()
        answer = sandbox.actions.submit_lead({"name": "Ann Moss", "phone": "+13125550102", **WEB_FORM_CONSENT})

    assert "main" in notice and "starts afresh with Lakeside Chiropractic and Summit Family Dental" in notice
    assert state["notices"] == [notice] and state["phones"] == [] and leads == []
    kept = sorted(path.name for path in tmp_path.iterdir() if ".set-aside-" in path.name)
    assert [name.split(".set-aside-")[0] for name in kept] == [DATABASE_FILE, STATE_FILE]
    assert answer.status == 201  # the new sandbox works


def test_a_version_1_page_file_of_your_own_clinic_is_read_with_its_number(tmp_path: Path) -> None:
    with Sandbox(port=0, directory=tmp_path, business_path=BUSINESS, start_at=START) as old:
        old.actions.submit_lead({"name": "Dana Lee", "phone": "+13125550101", **WEB_FORM_CONSENT})
        wait_for(lambda: old.world.texts)
        old.actions.text_from_lead("+13125550101", "STOP")
    saved = _as_version_1(tmp_path / STATE_FILE)

    with Sandbox(port=0, directory=tmp_path, business_path=BUSINESS) as sandbox:
        number = sandbox.actions.clinic_number(next(iter(sandbox.services.businesses)))
        texts, opted_out, notices = list(sandbox.world.texts), set(sandbox.world.opted_out), list(sandbox.notices)

    assert notices == [] and saved["opted_out_numbers"] == ["+13125550101"]
    assert [t["body"] for t in texts] == [t["body"] for t in saved["texts"]]
    assert {t["clinic_number"] for t in texts} == {number}
    assert opted_out == {("+13125550101", number)}
