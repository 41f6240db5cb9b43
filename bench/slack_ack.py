"""Slack acknowledgement latency for slash commands, p50/p99 (target p99 < 50 ms, Slack allows 3 s).

    python -m bench.slack_ack [--requests 300] [--rate 20] [--databases sqlite,postgresql]

A real `followup run` in HTTP mode, its Web API calls going to the local Slack stand-in. Each
request is a signed `/followup help` and `/followup find Lead`, timed from sending to the answer.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

import httpx
from slack_sdk.signature import SignatureVerifier

from bench.common import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    bot_env,
    content,
    database,
    free_port,
    load_leads,
    machine,
    start_bot,
    stop_bot,
    summary_ms,
    wait_healthy,
)
from bot.standins.slack_api import SlackApiStandin
from bot.standins.twilio_api import TwilioApiStandin

BOT_TOKEN, SECRET = "xoxb-bench", "bench-signing-secret"


def command(text: str, response_url: str) -> tuple[bytes, dict[str, str]]:
    body = urlencode(
        {
            "command": "/followup",
            "text": text,
            "user_id": "U0BENCH",
            "team_id": "T0SANDBOX",
            "channel_id": "C0LEADS",
            "trigger_id": "1.2.3",
            "response_url": response_url,
        }
    ).encode()
    timestamp = str(int(time.time()))
    return body, {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": SignatureVerifier(SECRET).generate_signature(timestamp=timestamp, body=body),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rate", type=float, default=20)
    parser.add_argument("--databases", default="sqlite,postgresql")
    args = parser.parse_args()
    print(machine())
    print(f"signed slash commands at {args.rate:g}/s, sent -> HTTP answer (the ack)", flush=True)
    with TwilioApiStandin(ACCOUNT_SID, AUTH_TOKEN) as twilio, SlackApiStandin(BOT_TOKEN) as slack:
        for kind in args.databases.split(","):
            with database(kind) as url, tempfile.TemporaryDirectory() as folder:
                load_leads(url, 1000, due_now=0)
                business, sequences = content(Path(folder))
                port = free_port()
                env = bot_env(
                    url,
                    business,
                    sequences,
                    twilio.url,
                    port,
                    SLACK_BOT_TOKEN=BOT_TOKEN,
                    SLACK_SIGNING_SECRET=SECRET,
                    SLACK_API_URL=slack.url + "/api/",
                    SLACK_LEADS_CHANNEL="C0LEADS",
                )
                bot = start_bot(env, Path(folder) / "bot.log")
                try:
                    wait_healthy(port, bot)
                    timings: dict[str, list[float]] = {"help": [], "find Lead 12": []}
                    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
                        started = time.monotonic()
                        for index in range(args.requests):
                            time.sleep(max(0.0, started + index / args.rate - time.monotonic()))
                            text = list(timings)[index % 2]
                            body, headers = command(text, f"{slack.url}/response/{index}")
                            sent = time.perf_counter()
                            answer = client.post("/slack/events", content=body, headers=headers)
                            timings[text].append(time.perf_counter() - sent)
                            assert answer.status_code == 200, answer.text
                    for text, values in timings.items():
                        print(f"  {kind:<10} /followup {text:<12} {summary_ms(values)}", flush=True)
                finally:
                    stop_bot(bot)


if __name__ == "__main__":
    main()
