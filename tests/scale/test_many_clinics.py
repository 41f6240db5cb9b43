"""Many clinics, three `followup run` processes, one PostgreSQL: every guarantee holds for every clinic at once.

Each clinic of the folder has its own number (or messaging service), Slack channel, lead token and first
text; lead `i` of every clinic has the same phone, so every phone is a lead of every clinic at once. Leads
come in through each clinic's own web-form route and straight into the database, in waves, while the
processes are stopped and started at random.
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from textwrap import dedent

import pytest

from bot.standins.sendgrid_api import SendGridApiStandin
from bot.standins.slack_api import SlackApiStandin
from bot.standins.twilio_api import TwilioApiStandin
from tests.scale.conftest import COMPRESSED_PLAYBOOK
from tests.support.content import phone as phone_for
from tests.support.fleet import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    CLINIC_NAME,
    LEAD_TAG,
    SENDGRID_KEY,
    SLACK_TOKEN,
    Fleet,
    FleetClinic,
    post_lead,
    texts_by_sender,
    write_clinic_folder,
)

#: Reduced for CI (the issue's 50 × 2,000 is bench/many_clinics.py); these make a bigger local run.
CLINICS = int(os.environ.get("FOLLOWUP_SCALE_CLINICS") or 10)
LEADS_EACH = int(os.environ.get("FOLLOWUP_SCALE_CLINIC_LEADS") or 20)
WAVES = 5
#: The phone index of the lead who is a lead of two clinics and sends STOP to one of them.
SHARED = 9999


@pytest.fixture
def clinic_fleet(postgres_url: str, tmp_path: Path):
    sequences = tmp_path / "sequences"
    sequences.mkdir()
    (sequences / "compressed.yml").write_text(COMPRESSED_PLAYBOOK)
    # Room for a STOP to arrive between the two texts, however busy the machine.
    (sequences / "patient.yml").write_text(
        dedent("""\
        name: patient
        description: Two texts far enough apart for the lead to answer between them.
        steps:
          - {id: first_sms, after: 0s, channel: sms, template: default/instant_sms}
          - {id: second_sms, after: 12s, channel: sms, template: default/checkin_sms}
        """)
    )
    clinics = write_clinic_folder(tmp_path / "clinics", CLINICS, sequence="compressed")
    with (
        TwilioApiStandin(ACCOUNT_SID, AUTH_TOKEN) as twilio,
        SendGridApiStandin(SENDGRID_KEY, rate_limit_per_minute=None) as sendgrid,
        SlackApiStandin(SLACK_TOKEN) as slack,
    ):
        world = Fleet(postgres_url, tmp_path / "clinics", sequences, twilio, sendgrid, tmp_path, slack=slack)
        try:
            yield world, clinics
        finally:
            world.kill_all()


def enroll_wave(fleet: Fleet, clinics: list[FleetClinic], indexes: range) -> None:
    """Half of each clinic's wave through its own web-form route (by path or by token alone), half straight in."""
    through_web = indexes[: len(indexes) // 2]
    running = fleet.running()
    with ThreadPoolExecutor(6) as pool:
        posted = [
            pool.submit(post_lead, random.sample(running, len(running)), clinic, index, by_path=clinic.index % 2 == 0)
            for clinic in clinics
            for index in through_web
        ]
        fleet.enroll_at({clinic: indexes[len(through_web) :] for clinic in clinics})
        for done in posted:
            done.result()


def wait_for_text(fleet: Fleet, sender: str, to: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while (sender, to) not in texts_by_sender(fleet.twilio):
        if time.monotonic() > deadline:
            raise AssertionError(f"no text from {sender} to {to} within {timeout}s")
        time.sleep(0.1)


def test_many_clinics_on_three_processes_keep_each_touch_once_in_order_and_apart(clinic_fleet):
    fleet, clinics = clinic_fleet
    seed = int(os.environ.get("FOLLOWUP_CHAOS_SEED") or random.randrange(10**6))
    chaos = random.Random(seed)
    bots = [fleet.add_process() for _ in range(3)]
    for bot in bots:
        bot.start()
    for bot in bots:
        bot.wait_healthy(timeout=60)

    # One phone is a lead of the first two clinics; it answers STOP to the first clinic's number only.
    stopped, kept = clinics[0], clinics[1]
    shared = phone_for(SHARED)
    for clinic in (stopped, kept):
        post_lead(bots, clinic, SHARED, by_path=True, sequence="patient")
    wait_for_text(fleet, stopped.sender, shared)
    assert stopped.number is not None  # a STOP is sent to a number
    assert fleet.twilio.inbound_sms(f"{bots[0].url}/webhooks/twilio/sms", shared, "STOP", to=stopped.number) == 200

    # Leads arrive in waves while processes come and go at random moments.
    step = LEADS_EACH // WAVES
    for wave in range(WAVES):
        if not fleet.running():  # the web forms need a process to post to
            bots[wave % 3].start()
            bots[wave % 3].wait_healthy(timeout=60)
        enroll_wave(fleet, clinics, range(wave * step, (wave + 1) * step))
        time.sleep(chaos.uniform(0.2, 0.8))
        victim = chaos.choice(bots)
        if victim.running:
            victim.stop(signal.SIGTERM)
        else:
            victim.start()
            victim.wait_healthy(timeout=60)
    for bot in bots:
        if not bot.running:
            bot.start()
    leads_each = step * WAVES
    rows = fleet.wait_until_settled((leads_each * CLINICS + 2) * 2, timeout=120)
    fleet.wait_for_slack(timeout=180)
    fleet.stop_all()

    leads = {lead.id: lead for lead in fleet.leads()}
    by_slug = {clinic.slug: clinic for clinic in clinics}
    assert Counter(lead.business for lead in leads.values()) == {
        clinic.slug: leads_each + (clinic in (stopped, kept)) for clinic in clinics
    }

    # Each touch sent exactly once, in order, from its own clinic's sender, and nothing else sent.
    expected: dict[tuple[str, str], list[str]] = {}
    for row in rows:
        lead = leads[row.lead_id]
        if lead.phone == shared and lead.business == stopped.slug and row.position == 1:
            assert row.status != "sent", "the text after STOP went out"
            continue
        assert row.status == "sent", f"{lead.business} {lead.name} step {row.position}: {row.status}"
        expected.setdefault((by_slug[lead.business].sender, lead.phone), []).append(row.body_text)
    sent = texts_by_sender(fleet.twilio)
    wrong = [
        f"{key}: sent {[body[:40] for body in sent.get(key, [])]}, expected {[body[:40] for body in bodies]}"
        for key, bodies in expected.items()
        if sent.get(key) != bodies
    ]
    assert not wrong, f"{len(wrong)} leads' texts wrong (seed {seed}), e.g. {wrong[:5]}"
    assert sorted(sent) == sorted(expected), f"texts nobody expected: {sorted(set(sent) - set(expected))[:5]}"

    # No lead's text carries another clinic's name or wording; each first text is its clinic's own.
    by_sender = {clinic.sender: clinic for clinic in clinics}
    for (sender, to), bodies in sent.items():
        clinic = by_sender[sender]
        for body in bodies:
            assert set(CLINIC_NAME.findall(body)) == {f"{clinic.index:02d}"}, f"{clinic.slug} to {to}: {body!r}"
        assert bodies[0].startswith(clinic.greeting), f"{clinic.slug}'s first text to {to}: {bodies[0]!r}"

    # A STOP to the first clinic's number stopped its texts only: the other clinic's lead of the phone went on.
    shared_leads = {lead.business: lead for lead in leads.values() if lead.phone == shared}
    assert shared_leads[stopped.slug].sms_opted_out_at is not None
    assert shared_leads[kept.slug].sms_opted_out_at is None
    assert len(sent[(stopped.sender, shared)]) == 1 and len(sent[(kept.sender, shared)]) == 2

    # Each lead's card is in its own clinic's channel, once; no card, thread entry or name of one clinic in another's.
    assert fleet.slack is not None
    posted_to = {call["channel"] for call in fleet.slack.calls("chat.postMessage")}
    assert posted_to <= {clinic.channel for clinic in clinics}, f"posts outside every clinic's channel: {posted_to}"
    for clinic in clinics:
        messages = fleet.slack.messages(clinic.channel)
        cards = [m["ts"] for m in messages if m.get("thread_ts") in (None, m["ts"])]
        own = [lead for lead in leads.values() if lead.business == clinic.slug]
        assert all(lead.slack_channel == clinic.channel for lead in own), f"{clinic.slug}: a card elsewhere"
        # One card a lead, no second card of any: a duplicate would be one more top-level post.
        assert sorted(cards) == sorted(lead.slack_ts for lead in own), f"{clinic.slug}: cards != its leads"
        assert all(m["thread_ts"] in cards for m in messages if m.get("thread_ts") not in (None, m["ts"]))
        seen = json.dumps(messages)
        assert {tag for tag, _ in LEAD_TAG.findall(seen)} == {f"{clinic.index:02d}"}, f"another's lead in {clinic.slug}"
        assert set(CLINIC_NAME.findall(seen)) <= {f"{clinic.index:02d}"}, f"another clinic named in {clinic.slug}"
    print(f"seed {seed}: {CLINICS} clinics × {leads_each} leads, {len(fleet.twilio.messages)} texts")
