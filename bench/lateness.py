"""Lateness: 2,000 leads whose touch falls due the same second; each text's delay past its due time.

    python -m bench.lateness [--leads 2000] [--databases sqlite,postgresql]

Two runs per database: one `followup run` up throughout; and one stopped (SIGTERM) just before
the due second and started again just after it, which must lose nothing. Target: p99 within 2 s.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from bench.common import (ACCOUNT_SID, AUTH_TOKEN, bot_env, content, database, free_port, load_leads, machine,
                          start_bot, stop_bot, summary_ms, wait_healthy)
from bench.speed_to_lead import Arrivals
from bot.standins.twilio_api import TwilioApiStandin


def run(kind: str, leads: int, restart: bool, twilio: TwilioApiStandin, arrivals: Arrivals,
        first_id: int) -> tuple[list[float], int, float]:
    """Seconds late of each text that arrived, how many never did, and the bot's CPU seconds meanwhile."""
    with database(kind) as url, tempfile.TemporaryDirectory() as folder:
        business, sequences = content(Path(folder))
        port = free_port()
        env = bot_env(url, business, sequences, twilio.url, port)
        bot = start_bot(env, Path(folder) / "bot.log")
        wait_healthy(port, bot)
        due = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=4)
        load_leads(url, leads, due_now=0, due_later=due - datetime.now(timezone.utc), now=datetime.now(timezone.utc),
                   start_id=first_id)
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
            bot = start_bot(env, Path(folder) / "bot.log")
        from bench.common import phone

        numbers = [phone(i) for i in range(first_id, first_id + leads)]
        cpu_before = cpu_seconds(bot.pid)
        deadline = time.time() + 120
        while time.time() < deadline and not all(n in arrivals.at for n in numbers):
            time.sleep(0.1)
        cpu_used = cpu_seconds(bot.pid) - cpu_before
        stop_bot(bot)
        late = [arrivals.at[n] - due.timestamp() for n in numbers if n in arrivals.at]
        return late, leads - len(late), cpu_used


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used so far, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=2000)
    parser.add_argument("--databases", default="sqlite,postgresql")
    args = parser.parse_args()
    print(machine())
    print(f"{args.leads:,} texts due the same second, seconds late (target p99 <= 2 s, none lost)", flush=True)
    first = 1
    with TwilioApiStandin(ACCOUNT_SID, AUTH_TOKEN) as twilio:
        arrivals = Arrivals(twilio)
        for kind in args.databases.split(","):
            for restart in (False, True):
                late, lost, cpu = run(kind, args.leads, restart, twilio, arrivals, first)
                first += args.leads
                label = "restarted around due time" if restart else "running throughout"
                first_out = f"first {min(late) * 1000:.0f} ms, " if late else ""
                print(f"  {kind:<10} {label:<26} late by {first_out}{summary_ms(late)}, lost {lost}; "
                      f"bot CPU {cpu / args.leads * 1000:.2f} ms a text", flush=True)


if __name__ == "__main__":
    main()
