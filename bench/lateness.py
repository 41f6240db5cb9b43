"""Lateness: 2,000 leads whose touch falls due the same second; each text's delay past its due time.

    python -m bench.lateness [--leads 2000] [--databases sqlite,postgresql] [--before /tmp/before] [--profile 4]

Two runs per database: one `followup run` up throughout; and one stopped (SIGTERM) just before
the due second and started again just after it, which must lose nothing. `followup run` runs as in
production: Slack (at its own pace, bench.slack_pace), Twilio and SendGrid all configured against
stand-ins, so every text sent also queues its thread entry for Slack. Printed too: the bot's CPU per
text and its peak resident size (VmHWM). Targets (issue 13): p99 <= 1 s running, <= 1.5 s across the
restart, none lost. `--profile N` samples the bot with py-spy for N s from the due second (one more run
per database, running throughout, not counted in the figures: sampling slows the process) and prints
where its time went.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.common import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    bot_env,
    content,
    database,
    free_port,
    load_leads,
    machine,
    stop_bot,
    summary_ms,
    wait_healthy,
)
from bench.memory_startup import peak_mib
from bench.slack_pace import REPO, PacedSlack, profile, slack_env, start_checkout
from bench.speed_to_lead import Arrivals
from bot.standins.sendgrid_api import SendGridApiStandin
from bot.standins.twilio_api import TwilioApiStandin


def run(
    kind: str,
    leads: int,
    restart: bool,
    twilio: TwilioApiStandin,
    arrivals: Arrivals,
    first_id: int,
    code: Path = REPO,
    sendgrid_url: str = "",
    profile_seconds: float = 0,
) -> tuple[list[float], int, float, float]:
    """Seconds late of each text that arrived, how many never did, the bot's CPU seconds meanwhile, and
    its peak resident size (MiB)."""
    with database(kind) as url, tempfile.TemporaryDirectory() as folder, PacedSlack() as slack:
        business, sequences = content(Path(folder))
        port = free_port()
        env = {
            **bot_env(url, business, sequences, twilio.url, port),
            **slack_env(slack),
            "SENDGRID_API_KEY": "SG.bench",
            "SENDGRID_FROM_EMAIL": "hello@lakeside.example",
            "SENDGRID_API_URL": sendgrid_url,
        }
        bot = start_checkout(env, Path(folder) / "bot.log", code)
        wait_healthy(port, bot, timeout=60)
        due = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=4)
        load_leads(url, leads, due_now=0, due_later=due - datetime.now(UTC), now=datetime.now(UTC), start_id=first_id)
        from sqlalchemy import update

        from bot.store.db import make_engine
        from bot.store.models import Touch

        engine = make_engine(url)
        with engine.begin() as connection:  # exactly the same second for all of them
            connection.execute(update(Touch).values(due_at=due))
        engine.dispose()
        if restart:
            time.sleep(max(0.0, due.timestamp() - 1 - time.time()))
            stop_bot(bot)
            time.sleep(max(0.0, due.timestamp() + 0.5 - time.time()))
            bot = start_checkout(env, Path(folder) / "bot.log", code)
        from bench.common import phone

        numbers = [phone(i) for i in range(first_id, first_id + leads)]
        cpu_before = cpu_seconds(bot.pid)
        if profile_seconds:
            time.sleep(max(0.0, due.timestamp() - time.time()))
            print(profile(bot.pid, profile_seconds, top=12), flush=True)
        deadline = time.time() + 120
        while time.time() < deadline and not all(n in arrivals.at for n in numbers):
            time.sleep(0.1)
        cpu_used = cpu_seconds(bot.pid) - cpu_before
        peak = peak_mib(bot.pid)
        stop_bot(bot)
        late = [arrivals.at[n] - due.timestamp() for n in numbers if n in arrivals.at]
        return late, leads - len(late), cpu_used, peak


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used so far, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=2000)
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--before", type=Path, help="a checkout of the code to compare with, run first")
    parser.add_argument("--profile", type=float, default=0, help="seconds to sample each code with py-spy, after")
    args = parser.parse_args()
    print(machine())
    print(
        f"{args.leads:,} texts due the same second, seconds late, Slack, Twilio and SendGrid configured "
        "(targets: p99 <= 1 s running, <= 1.5 s across a restart, none lost)",
        flush=True,
    )
    codes = ([("before", args.before)] if args.before else []) + [("after" if args.before else "this", REPO)]
    first = 1
    with TwilioApiStandin(ACCOUNT_SID, AUTH_TOKEN) as twilio, SendGridApiStandin("SG.bench") as sendgrid:
        arrivals = Arrivals(twilio)
        for kind in args.databases.split(","):
            for restart in (False, True):
                for code_label, code in codes:
                    late, lost, cpu, peak = run(kind, args.leads, restart, twilio, arrivals, first, code, sendgrid.url)
                    first += args.leads
                    label = "restarted around due time" if restart else "running throughout"
                    first_out = f"first {min(late) * 1000:.0f} ms, " if late else ""
                    print(
                        f"  {kind:<10} {code_label:<6} {label:<26} late by {first_out}{summary_ms(late)}, "
                        f"lost {lost}; bot CPU {cpu / args.leads * 1000:.2f} ms a text; peak RSS {peak:.0f} MiB",
                        flush=True,
                    )
            for code_label, code in codes if args.profile else ():
                print(f"  {kind} {code_label}: py-spy from the due second, {args.profile:g} s", flush=True)
                run(kind, args.leads, False, twilio, arrivals, first, code, sendgrid.url, args.profile)
                first += args.leads


if __name__ == "__main__":
    main()
