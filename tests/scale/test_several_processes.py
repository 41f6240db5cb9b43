"""Three `followup run` processes share one PostgreSQL: every touch goes out exactly once, in order."""

from __future__ import annotations

import os
import random
import signal
import time

from tests.scale.conftest import Fleet, texts_by_number
from tests.support.content import phone as phone_for

#: The issue's figure; FOLLOWUP_SCALE_LEADS makes a quicker local run.
LEADS = int(os.environ.get("FOLLOWUP_SCALE_LEADS") or 2000)
STEPS = 2


def assert_each_touch_once_in_order(fleet: Fleet, rows: list, leads: int) -> None:
    sent = texts_by_number(fleet.twilio)
    expected: dict[int, list[str]] = {}
    for row in rows:
        assert row.status == "sent", f"lead {row.lead_id} step {row.position}: {row.status}"
        expected.setdefault(row.lead_id, []).append(row.body_text)
    assert len(expected) == leads
    problems = []
    for lead_id, bodies in expected.items():
        phone = phone_for(lead_id - 1)
        if sent.get(phone) != bodies:
            problems.append(f"{phone}: sent {len(sent.get(phone, []))}, expected {len(bodies)}")
    assert not problems, f"{len(problems)} leads wrong, e.g. {problems[:5]}"
    assert len(fleet.twilio.messages) == leads * STEPS


def test_three_processes_started_and_stopped_at_random_send_each_touch_once_in_order(fleet: Fleet):
    seed = int(os.environ.get("FOLLOWUP_CHAOS_SEED") or random.randrange(10**6))
    chaos = random.Random(seed)
    bots = [fleet.add_process() for _ in range(3)]
    for bot in bots:
        bot.start()
    bots[0].wait_healthy()
    # Leads arrive in waves while processes come and go at random moments.
    waves = 8
    started = time.monotonic()
    for wave in range(waves):
        fleet.enroll(LEADS // waves, start=wave * (LEADS // waves))
        time.sleep(chaos.uniform(0.2, 0.8))
        victim = chaos.choice(bots)
        if victim.running:
            victim.stop(signal.SIGTERM)
        else:
            victim.start()
    for bot in bots:
        if not bot.running:
            bot.start()
    rows = fleet.wait_until_settled(LEADS * STEPS, timeout=90)
    elapsed = time.monotonic() - started
    fleet.stop_all()
    assert_each_touch_once_in_order(fleet, rows, LEADS)
    print(f"seed {seed}: {LEADS * STEPS} texts in {elapsed:.1f}s")
