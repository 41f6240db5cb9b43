"""Many clinics' cards queued at once: how fast the poster empties them into 50 channels at Slack's pace.

    python -m bench.slack_channels [--clinics 50] [--cards 2000] [--processes 1,3] [--seconds 30]
                                   [--before /tmp/before]

A FOLLOWUP_BUSINESSES folder of `--clinics` clinics (tests.support.fleet.write_clinic_folder), each with
its own Slack channel, and `--cards` new leads a clinic whose cards are queued (nothing else is due: their
texts fall due in two days), so the queue holds clinics × cards notices when `followup run` starts. Slack is
`bench.slack_pace.PacedSlack`: one chat.postMessage a second per channel with bursts of 5, 429 with
Retry-After beyond that, so the most a deployment can post is about one card a second per channel.

For each process count (all on one PostgreSQL database), after a 5 s start: the cards Slack took over
`--seconds` (a second and as a share of the clinics' allowance), the posts it refused (429), and the CPU
of the bot processes and of their PostgreSQL server processes. With `--before DIR` the same runs are made
first with the code checked out in DIR (`git worktree add /tmp/before <commit>`), so both are measured in
one run on the same machine. The machine line and the load are printed with the figures.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from bench.common import POSTGRES_URL, database, free_port, machine
from bench.many_clinics import PLAYBOOK, insert_leads
from bench.slack_pace import REPO, PacedSlack, cpu_seconds, postgres_backends_cpu, start_checkout
from bot.standins.sendgrid_api import SendGridApiStandin
from bot.standins.twilio_api import TwilioApiStandin
from tests.support.fleet import ACCOUNT_SID, AUTH_TOKEN, SENDGRID_KEY, Fleet, write_clinic_folder
from tests.support.processes import stop, wait_healthy

WARM_UP_SECONDS = 5.0


def load() -> str:
    return Path("/proc/loadavg").read_text().split()[0]


def measure(code: Path, clinics: int, cards: int, processes: int, seconds: float) -> str:
    with database("postgresql") as url, tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        sequences = work / "sequences"
        sequences.mkdir()
        (sequences / "compressed.yml").write_text(PLAYBOOK)
        fleet_clinics = write_clinic_folder(work / "clinics", clinics, sequence="compressed")
        insert_leads(url, {clinic: range(cards) for clinic in fleet_clinics}, texts_due_in=timedelta(days=2))
        with (
            TwilioApiStandin(ACCOUNT_SID, AUTH_TOKEN) as twilio,
            SendGridApiStandin(SENDGRID_KEY, rate_limit_per_minute=None) as sendgrid,
            PacedSlack(channels={clinic.channel: clinic.slug for clinic in fleet_clinics}) as slack,
        ):
            fleet = Fleet(url, work / "clinics", sequences, twilio, sendgrid, work, slack=slack)
            bots = []
            try:
                for number in range(processes):
                    port = free_port()
                    env = {**fleet.env(FOLLOWUP_POLL_SECONDS="1"), "PORT": str(port)}
                    env["PUBLIC_BASE_URL"] = f"http://127.0.0.1:{port}"
                    bot = start_checkout(env, work / f"bot{number}.log", code)
                    bots.append(bot)
                    wait_healthy(f"http://127.0.0.1:{port}", bot, timeout=120, log=work / f"bot{number}.log")
                time.sleep(WARM_UP_SECONDS)
                loads = [load()]
                cpu = sum(cpu_seconds(bot.pid) for bot in bots)
                server = sum(postgres_backends_cpu(bot.pid, POSTGRES_URL) for bot in bots)
                posted, refused, started = slack.done["chat.postMessage"], slack.refused, time.monotonic()
                time.sleep(seconds)
                elapsed = time.monotonic() - started
                posted, refused = slack.done["chat.postMessage"] - posted, slack.refused - refused
                cpu = sum(cpu_seconds(bot.pid) for bot in bots) - cpu
                server = sum(postgres_backends_cpu(bot.pid, POSTGRES_URL) for bot in bots) - server
                loads.append(load())
            finally:
                for bot in bots:
                    stop(bot, wait=30)
    rate = posted / elapsed
    return (
        f"{rate:6.1f} cards/s ({rate / clinics:4.0%} of {clinics}/s), {refused / elapsed:5.1f} refused (429)/s; "
        f"CPU a card: bots {cpu / max(posted, 1) * 1000:5.1f} ms, PostgreSQL {server / max(posted, 1) * 1000:5.1f} ms "
        f"(bots {cpu / elapsed:4.0%} of a core, server {server / elapsed:4.0%}); load {loads[0]}→{loads[1]}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clinics", type=int, default=50)
    parser.add_argument("--cards", type=int, default=2000, help="cards queued a clinic")
    parser.add_argument("--processes", default="1,3", help="process counts to run, comma-separated")
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--before", type=Path, help="a checkout of the code to compare with, run first")
    args = parser.parse_args()
    print(machine())
    print(
        f"{args.clinics} clinics × {args.cards} cards queued ({args.clinics * args.cards:,}), PostgreSQL, "
        f"Slack at its pace (1 post/s a channel, burst 5); {args.seconds:g} s after a {WARM_UP_SECONDS:g} s start",
        flush=True,
    )
    codes = ([("before", args.before)] if args.before else []) + [("after" if args.before else "this", REPO)]
    for processes in (int(count) for count in args.processes.split(",")):
        for label, code in codes:
            result = measure(code, args.clinics, args.cards, processes, args.seconds)
            print(f"  {processes} process{'es' if processes > 1 else '  '} {label:<6}: {result}", flush=True)


if __name__ == "__main__":
    main()
