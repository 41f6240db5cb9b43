"""Memory and start-up as `followup run` runs for real: idle, through a 2,000-lead burst, with 100,000 active leads.

    python -m bench.memory_startup [--leads 100000] [--burst 2000] [--burst-rate 500]
                                   [--databases sqlite,postgresql] [--before /tmp/before]

`followup run` is started as an operator starts it, with Slack, Twilio and SendGrid all pointed at
stand-ins (Slack at its own pace, bench.slack_pace). Per database:
- idle: start to the first 200 from /healthz (migrations included), then resident size (VmRSS)
  after the scheduler has ticked for `--settle` seconds;
- burst: `--burst` leads posted to the lead webhook by an open-loop generator in its own process
  (`--burst-rate` a second, at most 64 requests in flight), each texted at once and its card queued
  for Slack; the peak resident size (VmHWM, the kernel's own high-water mark) once every text is out,
  and VmRSS after settling;
- loaded: the process restarted over `--leads` active leads (bulk-loaded, one text each due in two
  days): start-up, and VmRSS after settling.
Targets (issue 13): under 200 MiB through the burst and with 100,000 active leads; idle under 100 MiB.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
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
    rss_mib,
    stop_bot,
    wait_healthy,
)
from bench.slack_pace import REPO, PacedSlack, slack_env, start_checkout
from bench.speed_to_lead import Arrivals
from bot.standins.sendgrid_api import SendGridApiStandin
from bot.standins.twilio_api import TwilioApiStandin


def peak_mib(pid: int) -> float:
    """The process's peak resident size so far (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Bot:
    """One `followup run` over one database, with every vendor pointed at a stand-in."""

    def __init__(
        self,
        url: str,
        folder: Path,
        code: Path,
        twilio: TwilioApiStandin,
        sendgrid: SendGridApiStandin,
        slack: PacedSlack,
    ) -> None:
        business, sequences = content(folder)
        self.port = free_port()
        self.env = {
            **bot_env(url, business, sequences, twilio.url, self.port),
            **slack_env(slack),
            "SENDGRID_API_KEY": "SG.bench",
            "SENDGRID_FROM_EMAIL": "hello@lakeside.example",
            "SENDGRID_API_URL": sendgrid.url,
        }
        self.log, self.code = folder / "bot.log", code
        self.process: subprocess.Popen | None = None

    def start(self) -> float:
        """Start it; return the seconds from launch to serving."""
        self.process = start_checkout(self.env, self.log, self.code)
        return wait_healthy(self.port, self.process, timeout=60)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def stop(self) -> None:
        if self.process is not None:
            stop_bot(self.process)
            self.process = None


def burst(bot: Bot, leads: int, rate: float, first: int, arrivals: Arrivals) -> tuple[float, int]:
    """Post `leads` new leads through the webhook; wait for every text. Return seconds taken and texts missing."""
    started = time.monotonic()
    generated = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.speed_to_lead_slack",
            "--generate",
            f"http://127.0.0.1:{bot.port}",
            str(rate),
            str(leads / rate),
            str(first),
            "bench-lead",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    import json

    numbers = [row["phone"] for row in json.loads(generated.stdout)]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not all(number in arrivals.at for number in numbers):
        time.sleep(0.1)
    return time.monotonic() - started, sum(number not in arrivals.at for number in numbers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=100_000)
    parser.add_argument("--burst", type=int, default=2000)
    parser.add_argument("--burst-rate", type=float, default=500)
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--settle", type=float, default=5)
    parser.add_argument("--before", type=Path, help="a checkout of the code to compare with, run first")
    args = parser.parse_args()
    print(machine())
    print(
        "targets: start to serving < 2 s; resident size idle < 100 MiB, through a burst and with "
        f"{args.leads:,} active leads < 200 MiB; Slack, Twilio and SendGrid configured (stand-ins)",
        flush=True,
    )
    codes = ([("before", args.before)] if args.before else []) + [("after" if args.before else "this", REPO)]
    first = 0
    with TwilioApiStandin(ACCOUNT_SID, AUTH_TOKEN) as twilio, SendGridApiStandin("SG.bench") as sendgrid:
        arrivals = Arrivals(twilio)
        for kind in args.databases.split(","):
            for label, code in codes:
                with database(kind) as url, tempfile.TemporaryDirectory() as folder, PacedSlack() as slack:
                    bot = Bot(url, Path(folder), code, twilio, sendgrid, slack)
                    try:
                        startup = bot.start()
                        time.sleep(args.settle)
                        idle = rss_mib(bot.pid)
                        took, missing = burst(bot, args.burst, args.burst_rate, first, arrivals)
                        first += args.burst
                        peak = peak_mib(bot.pid)
                        time.sleep(args.settle)
                        after_burst = rss_mib(bot.pid)
                    finally:
                        bot.stop()
                    print(
                        f"  {kind:<10} {label:<6} idle: start to serving {startup:.2f} s, RSS {idle:.0f} MiB; "
                        f"burst of {args.burst:,} at {args.burst_rate:g}/s: every text out in {took:.1f} s "
                        f"({missing} missing), peak RSS {peak:.0f} MiB, {after_burst:.0f} MiB "
                        f"{args.settle:g} s later",
                        flush=True,
                    )
                    load_leads(url, args.leads, due_now=0, start_id=100_000)
                    try:
                        startup = bot.start()
                        time.sleep(args.settle)
                        loaded, loaded_peak = rss_mib(bot.pid), peak_mib(bot.pid)
                    finally:
                        bot.stop()
                    print(
                        f"  {kind:<10} {label:<6} {args.leads:,} active: start to serving {startup:.2f} s, "
                        f"RSS {loaded:.0f} MiB (peak {loaded_peak:.0f} MiB)",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
