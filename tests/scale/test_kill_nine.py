"""`kill -9` at random moments, before, during and after vendor calls: nothing twice, nothing lost."""

from __future__ import annotations

import os
import random
import signal
import time

from sqlalchemy import select

from bot.store.db import make_engine
from bot.store.models import OutboxEvent
from tests.scale.conftest import Fleet, texts_by_number
from tests.support.content import phone as phone_for

LEADS = 300


def test_processes_killed_at_random_send_nothing_twice_and_lose_nothing_silently(fleet: Fleet):
    seed = int(os.environ.get("FOLLOWUP_CHAOS_SEED") or random.randrange(10**6))
    chaos = random.Random(seed)
    # Slow vendors widen the window in which a kill lands mid-call.
    fleet.twilio.fail_next("messages.create", delay=0.005, times=10 * LEADS)
    fleet.sendgrid.fail_next("mail.send", delay=0.005, times=10 * LEADS)
    bots = [fleet.add_process() for _ in range(3)]
    for bot in bots:
        bot.start()
    bots[0].wait_healthy()
    fleet.enroll(LEADS, sequence="compressed_email", email=True)
    kills = 0
    deadline = time.monotonic() + 6
    while time.monotonic() < deadline:
        time.sleep(chaos.uniform(0.2, 0.7))
        victim = chaos.choice(bots)
        if victim.running:
            victim.stop(signal.SIGKILL)
            kills += 1
        else:
            victim.start()
    for bot in bots:
        if not bot.running:
            bot.start()
    settling = time.monotonic()
    rows = fleet.wait_until_settled(LEADS * 3, timeout=60)
    print(f"settled in {time.monotonic() - settling:.1f}s")
    fleet.stop_all()

    texts = texts_by_number(fleet.twilio)
    emails: dict[str, int] = {}
    for accepted in fleet.sendgrid.emails:
        for address in accepted.to:
            emails[address] = emails.get(address, 0) + 1
    engine = make_engine(fleet.database_url)
    with engine.connect() as connection:
        flagged = set(
            connection.scalars(
                select(OutboxEvent.payload["touch_id"].as_integer()).where(OutboxEvent.kind == "needs_person")
            )
        )
    engine.dispose()
    unknown_emails = 0
    for lead_id in {r.lead_id for r in rows}:
        touches = [r for r in rows if r.lead_id == lead_id]
        sms = [t for t in touches if t.channel == "sms"]
        assert all(t.status == "sent" for t in sms), f"seed {seed}: lead {lead_id} texts {[t.status for t in sms]}"
        # Each text exactly once at Twilio, in the playbook's order.
        assert texts.get(phone_for(lead_id - 1)) == [t.body_text for t in sms], f"seed {seed}: lead {lead_id}"
        [mail] = [t for t in touches if t.channel == "email"]
        sent_emails = emails.get(f"lead{lead_id - 1}@example.com", 0)
        assert sent_emails <= 1, f"seed {seed}: lead {lead_id} emailed {sent_emails} times"
        if mail.status == "sent":
            assert sent_emails == 1
        else:
            # SendGrid cannot be asked: a crash mid-email is a person's call, never a blind resend.
            assert mail.status == "unknown", f"seed {seed}: lead {lead_id} email {mail.status}"
            unknown_emails += 1
    unknown_ids = {r for r in flagged if r is not None}
    assert len(unknown_ids) >= unknown_emails
    print(f"seed {seed}: {kills} kills, {len(fleet.twilio.messages)} texts, {unknown_emails} emails for a person")
