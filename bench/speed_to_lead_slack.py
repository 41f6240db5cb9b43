"""Speed to lead with Slack on: lead webhook posted -> Twilio request received while every card is posted.

    python -m bench.speed_to_lead_slack [--rate 50] [--seconds 20] [--databases sqlite,postgresql]
                                        [--before /tmp/before]

`followup run` as an operator starts it, with Slack, Twilio and SendGrid pointed at stand-ins (Slack
answering at its own pace, bench.slack_pace), fed by an open-loop generator in its own process
(leads posted on schedule whatever the answers, so a slow bot cannot slow the load). The floor is
the same two HTTP hops through a bare app (bench.speed_to_lead's), measured in the same run.
Printed: speed to lead p50/p99/max and p99 as a multiple of the floor's, intake's answer p99, leads
lost, the bot's CPU, and the Slack notices still queued when the load stops (Slack drains them at
about one post a second). Targets (issue 13): p99 <= 5x the floor and under 20 ms; intake p99 < 20 ms.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import httpx
from sqlalchemy import func, select

from bench.common import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    bot_env,
    content,
    database,
    free_port,
    machine,
    midday_zone,
    percentile,
    phone,
    stop_bot,
    summary_ms,
    wait_healthy,
)
from bench.slack_pace import REPO, PacedSlack, cpu_seconds, profile, slack_env, start_checkout
from bench.speed_to_lead import Arrivals
from bot.standins.sendgrid_api import SendGridApiStandin
from bot.standins.twilio_api import TwilioApiStandin
from bot.store.db import make_engine
from bot.store.models import OutboxEvent


def generate(url: str, rate: float, seconds: float, first: int, token: str) -> None:
    """In its own process: post leads on schedule; print each one's number, post time and answer time."""
    zone = midday_zone(datetime.now(UTC))
    client = httpx.Client(base_url=url, timeout=30, limits=httpx.Limits(max_connections=64))
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    results: list[dict] = []
    lock = threading.Lock()

    def post(index: int) -> None:
        number = phone(first + index)
        posted = time.time()
        try:
            status = client.post(
                "/webhooks/leads",
                headers=headers,
                json={
                    "name": f"Lead {index}",
                    "phone": number,
                    "timezone": zone,
                    "consent": True,
                    "consent_text": "I agree to texts",
                },
            ).status_code
        except httpx.HTTPError as error:
            status = repr(error)
        with lock:
            results.append({"phone": number, "posted": posted, "answer": time.time() - posted, "status": status})

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=64) as pool:
        for index in range(int(rate * seconds)):
            time.sleep(max(0.0, started + index / rate - time.monotonic()))
            pool.submit(post, index)
    client.close()
    print(json.dumps(results))


def drive(
    url: str, rate: float, seconds: float, first: int, token: str, arrivals: Arrivals
) -> tuple[list[float], list[float], int, list]:
    """Run the generator process; return speed-to-lead latencies, answer times, leads lost, failed posts."""
    generator = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.speed_to_lead_slack",
            "--generate",
            url,
            str(rate),
            str(seconds),
            str(first),
            token,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    results = json.loads(generator.stdout)
    failed = [r for r in results if r["status"] != 201]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not all(r["phone"] in arrivals.at for r in results):
        time.sleep(0.05)
    latencies = [arrivals.at[r["phone"]] - r["posted"] for r in results if r["phone"] in arrivals.at]
    lost = len([r for r in results if r["phone"] not in arrivals.at])
    return latencies, [r["answer"] for r in results], lost, failed


def sample_into(into: list[str], pid: int, seconds: float, keep: Path | None) -> None:
    into.append(profile(pid, seconds, 15, keep=keep))


def queued_notices(url: str) -> tuple[int, int]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            pending = connection.scalar(select(func.count()).where(OutboxEvent.delivered_at.is_(None)))
            total = connection.scalar(select(func.count()).select_from(OutboxEvent))
    finally:
        engine.dispose()
    return pending or 0, total or 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=50)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument(
        "--before",
        type=Path,
        action="append",
        default=[],
        help="a checkout of the code to compare with, run first (again for more, in turn)",
    )
    parser.add_argument(
        "--slack-off", action="store_true", help="one more row per database: this code with Slack not configured"
    )
    parser.add_argument(
        "--profile", type=float, default=0, help="sample the bot with py-spy for this many seconds while the load runs"
    )
    parser.add_argument("--keep-profile", type=Path, help="a folder to save py-spy's raw stacks in, one file a row")
    parser.add_argument("--generate", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate:
        url, rate, seconds, first, token = args.generate
        generate(url, float(rate), float(seconds), int(first), token)
        return
    print(machine())
    print(
        f"speed to lead at {args.rate:g} leads/s for {args.seconds:g} s, Slack on at its own pace "
        "(targets: p99 <= 5x floor and < 20 ms; intake p99 < 20 ms)",
        flush=True,
    )
    first = 0
    with TwilioApiStandin(ACCOUNT_SID, AUTH_TOKEN) as twilio, SendGridApiStandin("SG.bench") as sendgrid:
        arrivals = Arrivals(twilio)
        port = free_port()
        floor_server = subprocess.Popen(
            [sys.executable, "-m", "bench.speed_to_lead", "--floor-server", str(port), twilio.url], cwd=REPO
        )
        try:
            time.sleep(2)
            latencies, answers, lost, _ = drive(
                f"http://127.0.0.1:{port}", args.rate, args.seconds, first, "", arrivals
            )
        finally:
            stop_bot(floor_server)
        first += int(args.rate * args.seconds)
        floor_p99 = percentile(latencies, 99)
        print(
            f"  floor (two bare hops): {summary_ms(latencies)}; answer p99 {percentile(answers, 99) * 1000:.1f} ms",
            flush=True,
        )
        codes = [("before" if len(args.before) == 1 else path.name, path) for path in args.before]
        codes.append(("after" if args.before else "this", REPO))
        if args.slack_off:
            codes.append(("no Slack", REPO))  # the same code with Slack not configured: what posting cards costs
        for kind in args.databases.split(","):
            for label, code in codes:
                with database(kind) as url, tempfile.TemporaryDirectory() as folder, PacedSlack() as slack:
                    business, sequences = content(Path(folder))
                    port = free_port()
                    env = {
                        **bot_env(url, business, sequences, twilio.url, port),
                        **(slack_env(slack) if label != "no Slack" else {}),
                        "SENDGRID_API_KEY": "SG.bench",
                        "SENDGRID_FROM_EMAIL": "hello@lakeside.example",
                        "SENDGRID_API_URL": sendgrid.url,
                    }
                    bot = start_checkout(env, Path(folder) / "bot.log", code)
                    try:
                        wait_healthy(port, bot, timeout=60)
                        cpu, started = cpu_seconds(bot.pid), time.monotonic()
                        sampled: list[str] = []
                        keep = args.keep_profile / f"{kind}-{label}.txt" if args.keep_profile else None
                        sampler = threading.Thread(target=sample_into, args=(sampled, bot.pid, args.profile, keep))
                        if args.profile:
                            sampler.start()  # py-spy takes CPU of its own: quote latencies from a run without --profile
                        latencies, answers, lost, failed = drive(
                            f"http://127.0.0.1:{port}", args.rate, args.seconds, first, "bench-lead", arrivals
                        )
                        if args.profile:
                            sampler.join()
                        share = (cpu_seconds(bot.pid) - cpu) / (time.monotonic() - started)
                        pending, total = queued_notices(url)
                        took = dict(slack.done, refused=slack.refused)
                    finally:
                        stop_bot(bot)
                    first += int(args.rate * args.seconds)
                    leads = int(args.rate * args.seconds)
                    print(
                        f"  {kind:<10} {label:<8}: {summary_ms(latencies)} = "
                        f"{percentile(latencies, 99) / floor_p99:.1f}x floor p99; "
                        f"answer p99 {percentile(answers, 99) * 1000:.1f} ms; lost {lost}, "
                        f"failed posts {len(failed)}; CPU {share * 100:.0f} % of a core; Slack took "
                        f"{took['chat.postMessage']} posts and {took['chat.update']} edits "
                        f"({took['refused']} refused), "
                        f"{pending} of {total} notices ({total / leads:.1f} per lead) still queued",
                        flush=True,
                    )
                    if sampled:
                        print(
                            f"    py-spy, {args.profile:g} s under the load, share of busy samples:\n    "
                            + sampled[0].replace("\n", "\n    "),
                            flush=True,
                        )


if __name__ == "__main__":
    main()
