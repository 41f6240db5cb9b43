"""Memory and start-up: resident size idle and with 100,000 active leads; start to serving.

    python -m bench.memory_startup [--leads 100000] [--databases sqlite,postgresql]

Start-up is timed from launching `followup run` to its first 200 from /healthz (migrations
included). Resident size (VmRSS) is read after the scheduler has ticked for a few seconds.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bench.common import (ACCOUNT_SID, AUTH_TOKEN, bot_env, content, database, free_port, load_leads, machine,
                          rss_mib, start_bot, stop_bot, wait_healthy)
from bot.standins.twilio_api import TwilioApiStandin


def measure(url: str, folder: Path, twilio_url: str, settle: float) -> tuple[float, float]:
    business, sequences = content(folder)
    port = free_port()
    bot = start_bot(bot_env(url, business, sequences, twilio_url, port), folder / "bot.log")
    try:
        startup = wait_healthy(port, bot)
        time.sleep(settle)
        return startup, rss_mib(bot.pid)
    finally:
        stop_bot(bot)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=100_000)
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--settle", type=float, default=5)
    args = parser.parse_args()
    print(machine())
    print("targets: start to serving < 2 s; resident size < 200 MB idle and with 100,000 active leads", flush=True)
    with TwilioApiStandin(ACCOUNT_SID, AUTH_TOKEN) as twilio:
        for kind in args.databases.split(","):
            with database(kind) as url, tempfile.TemporaryDirectory() as folder:
                startup, idle = measure(url, Path(folder), twilio.url, args.settle)
                print(f"  {kind:<10} empty:            start to serving {startup:.2f} s, RSS {idle:.0f} MiB",
                      flush=True)
                load_leads(url, args.leads, due_now=0)
                startup, loaded = measure(url, Path(folder), twilio.url, args.settle)
                print(f"  {kind:<10} {args.leads:,} active: start to serving {startup:.2f} s, RSS {loaded:.0f} MiB",
                      flush=True)


if __name__ == "__main__":
    main()
