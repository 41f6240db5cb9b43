"""Many clinics on one PostgreSQL with three `followup run` processes: every guarantee, and what it costs.

    python -m bench.many_clinics [--clinics 50] [--leads 2000] [--processes 3] [--web-share 0.05]
                                 [--waves 20] [--timeout 3600] [--drain-slack]

A FOLLOWUP_BUSINESSES folder of `--clinics` clinics (tests.support.fleet.write_clinic_folder: each its own
number or messaging service, Slack channel, lead token and first text; lead i of every clinic has the
same phone). `--leads` leads a clinic arrive in `--waves` waves as fast as they can be taken: a
`--web-share` of each wave through the clinic's own web-form route (`/webhooks/leads/<slug>` for even
clinics, the bearer token alone for odd ones), the rest straight in through `add_lead`, as the fleet
does. Each lead's playbook is two texts, 0 s and 3 s after it arrives. Twilio and SendGrid are the
stand-ins (answering at once); Slack is `bench.slack_pace.PacedSlack`, at Slack's own pace (1 post a
second per channel, burst 5; 429 with Retry-After beyond it), so the cards drain far slower than the
texts: 50 × 2,000 cards need at least 2,000 s. The run ends when every text is final; the cards posted
by then are checked, the rest counted as still queued (`--drain-slack` waits for them too).

Printed: leads enrolled (by route), touches sent, duplicates, out of order, cross-business leaks (a text
from another clinic's sender or naming another clinic; a card, thread entry or lead of one clinic in
another's channel), lost (a touch not sent), texts/s, lateness (sent - due) p50/p99/max, each
process's peak RSS, and the times.
"""

from __future__ import annotations

import argparse
import json
import signal
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from textwrap import dedent

from sqlalchemy import func, insert, select

from bench.common import database, machine, percentile
from bench.slack_pace import PacedSlack
from bot.standins.sendgrid_api import SendGridApiStandin
from bot.standins.twilio_api import TwilioApiStandin
from bot.store.db import make_engine
from bot.store.models import Enrollment, Lead, OutboxEvent, Touch
from tests.support.content import midday_zone, phone
from tests.support.fleet import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    CLINIC_NAME,
    FINAL,
    LEAD_TAG,
    SENDGRID_KEY,
    Fleet,
    FleetClinic,
    post_lead,
    write_clinic_folder,
)

PLAYBOOK = dedent("""\
    name: compressed
    description: Two texts three seconds apart (bench.many_clinics).
    steps:
      - {id: first_sms, after: 0s, channel: sms, template: default/instant_sms}
      - {id: second_sms, after: 3s, channel: sms, template: default/checkin_sms}
    """)
STEPS = 2


def progress(url: str) -> tuple[int, int, int]:
    """Touches in all, final, and Slack notices still queued: two counts, cheap enough to ask every few seconds."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            total = connection.scalar(select(func.count()).select_from(Touch)) or 0
            final = connection.scalar(select(func.count()).where(Touch.status.in_(FINAL))) or 0
            queued = connection.scalar(select(func.count()).where(OutboxEvent.delivered_at.is_(None))) or 0
            return total, final, queued
    finally:
        engine.dispose()


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident memory so far (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


#: Bulk rows take ids from here up, far above the ids the web-form leads take from the tables' sequences.
BULK_IDS = 10_000_000


def insert_leads(url: str, batches: dict[FleetClinic, range], *, texts_due_in: timedelta = timedelta(0)) -> None:
    """Each clinic's leads as the rows intake writes for them: the lead (consent to texts on it), its enrollment
    in the two-text playbook, both touches (due now and in 3 s), and its card's notice. Far faster than add_lead,
    whose per-lead statements would make enrollment, not the bot, what a full-size run measures. `texts_due_in`
    puts the texts that much later (a run that measures Slack alone)."""
    now = datetime.now(UTC)
    zone = midday_zone(now)
    leads, enrollments, touches, notices = [], [], [], []
    for clinic, indexes in batches.items():
        for index in indexes:
            lead_id = BULK_IDS + clinic.index * 100_000 + index
            leads.append(
                dict(
                    id=lead_id,
                    business=clinic.slug,
                    name=clinic.lead_name(index),
                    phone=phone(index),
                    email=None,
                    source="web",
                    first_message="",
                    custom_fields={},
                    timezone=zone,
                    stage="new",
                    sms_consent=True,
                    email_consent=False,
                    link_token=f"mc{lead_id:012d}",
                    unsubscribe_token=f"mu{lead_id:012d}",
                    created_at=now,
                    updated_at=now,
                )
            )
            enrollments.append(
                dict(
                    id=lead_id,
                    lead_id=lead_id,
                    sequence_name="compressed",
                    state="active",
                    state_reason="",
                    enrolled_at=now,
                )
            )
            for position, (step, after) in enumerate((("first_sms", 0), ("second_sms", 3))):
                due = now + texts_due_in + timedelta(seconds=after)
                touches.append(
                    dict(
                        id=lead_id * 2 + position,
                        enrollment_id=lead_id,
                        lead_id=lead_id,
                        step_id=step,
                        position=position,
                        channel="sms",
                        planned_at=due,
                        due_at=due,
                        status="scheduled",
                        attempts=0,
                    )
                )
            notices.append(
                dict(business=clinic.slug, lead_id=lead_id, kind="lead_created", payload={}, created_at=now, attempts=0)
            )
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            for model, rows in ((Lead, leads), (Enrollment, enrollments), (Touch, touches), (OutboxEvent, notices)):
                if rows:
                    connection.execute(insert(model), rows)
    finally:
        engine.dispose()


def enroll(
    fleet: Fleet, clinics: list[FleetClinic], leads: int, waves: int, web_share: float, *, bulk: bool
) -> Counter[str]:
    """Every clinic's leads in waves: a share through its web-form route (six at a time), the rest straight in."""
    routes: Counter[str] = Counter()
    step = leads // waves
    with ThreadPoolExecutor(6) as pool:
        for wave in range(waves):
            indexes = range(wave * step, leads if wave == waves - 1 else (wave + 1) * step)
            web = indexes[: round(len(indexes) * web_share)]
            running = fleet.running()
            posted = [
                pool.submit(
                    post_lead,
                    running[i % len(running) :] + running[: i % len(running)],
                    clinic,
                    index,
                    by_path=clinic.index % 2 == 0,
                )
                for clinic in clinics
                for i, index in enumerate(web)
            ]
            rest = {clinic: indexes[len(web) :] for clinic in clinics}
            if bulk:
                insert_leads(fleet.database_url, rest)
            else:
                fleet.enroll_at(rest)
            for done in posted:
                done.result()
            routes["web form"] += len(posted)
            routes["bulk rows" if bulk else "add_lead"] += (len(indexes) - len(web)) * len(clinics)
    return routes


def check(fleet: Fleet, clinics: list[FleetClinic], slack: PacedSlack) -> dict[str, object]:
    """What the run kept and broke, read from the database and the stand-ins."""
    leads = {lead.id: lead for lead in fleet.leads()}
    touches = fleet.touches()
    by_slug = {clinic.slug: clinic for clinic in clinics}
    by_sender = {clinic.sender: clinic for clinic in clinics}
    expected: dict[tuple[str, str], list[str]] = {}
    lateness: list[float] = []
    lost = unsettled = 0
    owned = {(by_slug[lead.business].sender, lead.phone) for lead in leads.values()}
    for touch in touches:
        lead = leads[touch.lead_id]
        if touch.status not in FINAL:
            unsettled += 1  # still due or in flight when the run ended (a timed-out run)
            continue
        if touch.status != "sent":
            lost += 1
            continue
        expected.setdefault((by_slug[lead.business].sender, lead.phone), []).append(touch.body_text)
        lateness.append((touch.sent_at - touch.due_at).total_seconds())
    lost += len(leads) * STEPS - len(touches)  # a lead without its touches
    sent: dict[tuple[str, str], list[str]] = {}
    leaks = duplicates = out_of_order = 0
    for message in fleet.twilio.messages:
        key = (message["from"] or message["messaging_service_sid"] or "", message["to"])
        sent.setdefault(key, []).append(message["body"])
        clinic = by_sender.get(key[0])
        if clinic is None or set(CLINIC_NAME.findall(message["body"])) != {f"{clinic.index:02d}"}:
            leaks += 1
    for key, bodies in sent.items():
        wanted = expected.get(key)
        if key not in owned:
            leaks += len(bodies)  # no lead of that sender's clinic has this phone
            continue
        if wanted is None:
            continue  # its lead's touches were not final yet (a timed-out run): nothing to compare
        duplicates += len(bodies) - len(set(bodies))
        if list(dict.fromkeys(bodies)) != wanted:
            out_of_order += 1
    missing = sum(1 for key in expected if key not in sent)
    cards = entries = 0
    channels = {clinic.channel for clinic in clinics}
    leaks += sum(1 for call in slack.calls("chat.postMessage") if call.get("channel") not in channels)
    for clinic in clinics:
        own = f"{clinic.index:02d}"
        for post in slack.messages(clinic.channel):
            if post.get("thread_ts") in (None, post["ts"]):
                cards += 1
            else:
                entries += 1
            seen = json.dumps(post)
            if {tag for tag, _ in LEAD_TAG.findall(seen)} - {own} or set(CLINIC_NAME.findall(seen)) - {own}:
                leaks += 1
    card_ts = Counter((lead.slack_channel, lead.slack_ts) for lead in leads.values() if lead.slack_ts)
    leaks += sum(1 for lead in leads.values() if lead.slack_ts and lead.slack_channel != by_slug[lead.business].channel)
    sent_at = sorted(touch.sent_at for touch in touches if touch.sent_at is not None)
    span = (sent_at[-1] - sent_at[0]).total_seconds() if len(sent_at) > 1 else float("nan")
    return {
        "leads": len(leads),
        "sent": len(lateness),
        "texts at Twilio": len(fleet.twilio.messages),
        "duplicates": duplicates + sum(count - 1 for count in card_ts.values()),
        "out of order": out_of_order,
        "leaks": leaks,
        "lost": lost + missing,
        "unsettled": unsettled,
        "texts/s": len(lateness) / span if span else float("nan"),
        "span": span,
        "lateness": lateness,
        "cards": cards,
        "entries": entries,
    }


def run(args: argparse.Namespace) -> None:
    print(machine())
    print(
        f"{args.clinics} clinics × {args.leads} leads, {args.processes} processes on PostgreSQL, "
        f"{args.web_share:.0%} through the web-form routes, {args.waves} waves, two texts each (0 s, 3 s)"
    )
    with database("postgresql") as url, tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        sequences = work / "sequences"
        sequences.mkdir()
        (sequences / "compressed.yml").write_text(PLAYBOOK)
        clinics = write_clinic_folder(work / "clinics", args.clinics, sequence="compressed")
        with (
            TwilioApiStandin(ACCOUNT_SID, AUTH_TOKEN) as twilio,
            SendGridApiStandin(SENDGRID_KEY, rate_limit_per_minute=None) as sendgrid,
            PacedSlack(channels={clinic.channel: clinic.slug for clinic in clinics}) as slack,
        ):
            fleet = Fleet(url, work / "clinics", sequences, twilio, sendgrid, work, slack=slack)
            try:
                measure(fleet, clinics, slack, args)
            finally:
                fleet.kill_all()


def measure(fleet: Fleet, clinics: list[FleetClinic], slack: PacedSlack, args: argparse.Namespace) -> None:
    bots = [fleet.add_process(FOLLOWUP_POLL_SECONDS="1") for _ in range(args.processes)]
    for bot in bots:
        bot.start()
    for bot in bots:
        bot.wait_healthy(timeout=120)
    started = time.monotonic()
    routes = enroll(fleet, clinics, args.leads, args.waves, args.web_share, bulk=not args.add_lead)
    enrolled = time.monotonic() - started
    expected = sum(routes.values()) * STEPS
    deadline = started + args.timeout
    while True:
        total, final, queued = progress(fleet.database_url)
        if total >= expected and final >= expected and not (args.drain_slack and queued):
            break
        if time.monotonic() > deadline:
            print(f"timed out: {final} of {expected} touches final, {queued} Slack notices queued")
            break
        time.sleep(2)
    settled = time.monotonic() - started
    _, _, queued = progress(fleet.database_url)
    rss = [peak_rss_mib(bot.process.pid) for bot in bots if bot.process is not None and bot.running]
    for bot in bots:
        bot.stop(signal.SIGTERM, wait=60)
    figures = check(fleet, clinics, slack)
    late = figures["lateness"]
    assert isinstance(late, list)
    print(
        f"leads enrolled      {figures['leads']:,} ({routes['web form']:,} by web form, "
        f"{routes['add_lead']:,} by add_lead, {routes['bulk rows']:,} as bulk rows) in {enrolled:.0f} s"
    )
    print(
        f"touches sent        {figures['sent']:,} of {expected:,} "
        f"({figures['texts at Twilio']:,} texts at the Twilio stand-in)"
    )
    print(f"duplicates          {figures['duplicates']}")
    print(f"out of order        {figures['out of order']}")
    print(f"cross-business      {figures['leaks']}")
    print(f"lost                {figures['lost']} ({figures['unsettled']:,} touches not yet final at the end)")
    print(f"throughput          {figures['texts/s']:.0f} texts/s (first text to last: {figures['span']:.0f} s)")
    print(
        f"lateness (sent-due) p50 {percentile(late, 50):.1f} s, p99 {percentile(late, 99):.1f} s, "
        f"max {max(late, default=float('nan')):.1f} s"
    )
    print(f"peak RSS            {', '.join(f'{mib:.0f} MiB' for mib in rss)}")
    print(
        f"slack               {figures['cards']:,} cards and {figures['entries']:,} thread entries posted, "
        f"{slack.refused:,} posts refused 429, {queued:,} notices still queued at the end"
    )
    print(f"time                {settled:.0f} s from the first lead to the last touch final")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clinics", type=int, default=50)
    parser.add_argument("--leads", type=int, default=2000, help="leads a clinic")
    parser.add_argument("--processes", type=int, default=3)
    parser.add_argument("--web-share", type=float, default=0.05, help="the share of leads through the web-form routes")
    parser.add_argument("--waves", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=3600, help="seconds to wait for every touch to be final")
    parser.add_argument(
        "--add-lead", action="store_true", help="enroll the rest through add_lead, not as bulk rows (slower)"
    )
    parser.add_argument("--drain-slack", action="store_true", help="wait for every Slack notice as well")
    run(parser.parse_args())


if __name__ == "__main__":
    main()
