"""An otherwise idle `followup run` with thousands of Slack posts queued: CPU while it drains, and SIGTERM.

    python -m bench.slack_backlog [--posts 5000] [--seconds 20] [--databases sqlite,postgresql]
                                  [--before /tmp/before]

The queue holds `--posts` new leads' cards (nothing else is due); the Slack stand-in answers at
Slack's pace, so the backlog drains at about one post a second. Printed per database: the bot's
CPU as a share of one core over `--seconds`, the posts Slack took and refused (429), the "maximum
number of running instances" lines in its log, and how long SIGTERM took to stop it. Target: under
5 % of a core, stopped within 5 s. With `--before DIR` the same run is made first with the code
checked out in DIR (e.g. `git worktree add /tmp/before <commit>`), so both are measured together.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert

from bench.common import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    POSTGRES_URL,
    bot_env,
    content,
    database,
    free_port,
    load_leads,
    machine,
    wait_healthy,
)
from bench.slack_pace import REPO, PacedSlack, cpu_seconds, postgres_backends_cpu, profile, slack_env, start_checkout
from bot.standins.twilio_api import TwilioApiStandin
from bot.store.db import make_engine
from bot.store.models import OutboxEvent


def queue_cards(url: str, count: int) -> None:
    """`count` leads, none due for days, each with its card still to be posted."""
    now = datetime.now(UTC)
    load_leads(url, count, due_now=0, due_later=timedelta(days=2), now=now)
    engine = make_engine(url)
    with engine.begin() as connection:
        connection.execute(
            insert(OutboxEvent),
            [dict(lead_id=i, kind="lead_created", payload={}, created_at=now, attempts=0) for i in range(1, count + 1)],
        )
    engine.dispose()


def measure(kind: str, code: Path, posts: int, seconds: float, twilio_url: str, profile_seconds: float = 0) -> str:
    with database(kind) as url, tempfile.TemporaryDirectory() as folder, PacedSlack() as slack:
        queue_cards(url, posts)
        business, sequences = content(Path(folder))
        port = free_port()
        log = Path(folder) / "bot.log"
        bot = start_checkout({**bot_env(url, business, sequences, twilio_url, port), **slack_env(slack)}, log, code)
        try:
            wait_healthy(port, bot, timeout=60)
            time.sleep(3)  # past the start-up and the first burst
            server = (lambda: postgres_backends_cpu(bot.pid, POSTGRES_URL)) if kind == "postgresql" else (lambda: 0.0)
            cpu, server_cpu, started = cpu_seconds(bot.pid), server(), time.monotonic()
            posted = slack.done["chat.postMessage"]
            time.sleep(seconds)
            elapsed = time.monotonic() - started
            share, server_share = (cpu_seconds(bot.pid) - cpu) / elapsed, (server() - server_cpu) / elapsed
            posted = slack.done["chat.postMessage"] - posted
            sampled = profile(bot.pid, profile_seconds) if profile_seconds else ""
            stopping = time.monotonic()
            bot.terminate()
            try:
                bot.wait(timeout=120)
                stopped = f"{time.monotonic() - stopping:.1f} s"
            except Exception:  # noqa: BLE001 - report, then make sure it is gone
                bot.kill()
                bot.wait()
                stopped = "not within 120 s (killed)"
        finally:
            if bot.poll() is None:
                bot.kill()
                bot.wait()
        floods = log.read_text(errors="replace").count("maximum number of running instances")
        served = f" (+ {server_share * 100:.1f} % in its PostgreSQL server processes)" if kind == "postgresql" else ""
        return (
            f"CPU {share * 100:5.1f} % of a core over {seconds:g} s{served}; {posted} posts taken "
            f"({posted / seconds:.2f}/s), {slack.refused} refused (429); {floods} 'maximum number of running "
            f"instances' lines; SIGTERM stopped it in {stopped}"
            + (
                f"\n    py-spy, {profile_seconds:g} s, share of samples with the function on a busy stack:\n    "
                + sampled.replace("\n", "\n    ")
                if sampled
                else ""
            )
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--before", type=Path, help="a checkout of the code to compare with, run first")
    parser.add_argument("--profile", type=float, default=0, help="then sample it with py-spy for this many seconds")
    args = parser.parse_args()
    print(machine())
    print(
        f"idle bot, {args.posts} cards queued, Slack at its own pace (1 post/s per channel, burst 5); "
        "target: < 5 % of a core, SIGTERM < 5 s",
        flush=True,
    )
    codes = ([("before", args.before)] if args.before else []) + [("after" if args.before else "this", REPO)]
    with TwilioApiStandin(ACCOUNT_SID, AUTH_TOKEN) as twilio:
        for kind in args.databases.split(","):
            for label, code in codes:
                result = measure(kind, code, args.posts, args.seconds, twilio.url, args.profile)
                print(f"  {kind:<10} {label:<6}: {result}", flush=True)


if __name__ == "__main__":
    main()
