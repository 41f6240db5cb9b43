"""CPU per text through the real twilio-python client, the Twilio stand-in in a process of its own.

    python -m bench.twilio_client_cpu [--texts 3000] [--threads 1,8] [--rounds 3] [--before /tmp/before] [--stock]

The adapter `followup run` sends with (bot.channels.twilio_sms.TwilioSmsSender, twilio-python with the
bot's own HTTP client) sends `--texts` texts from `--threads` threads in a fresh process; the CPU that
process used for the sends (user + system, after a warm-up of 50 texts) over the texts, and how many
connections the stand-in saw them arrive on. The stand-in runs in another process, so its own work is
not counted. `--before DIR` runs the same with the code checked out in DIR, alternating with this
checkout round by round; `--stock` adds twilio-python with its own HTTP client (a requests Session).
Target (issue 13): <= 0.6 ms a text (the whole bot's, of which this is a part).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from bench.common import ACCOUNT_SID, AUTH_TOKEN, machine

REPO = Path(__file__).resolve().parents[1]

_SENDER = """
import json, os, sys, time
from concurrent.futures import ThreadPoolExecutor
from bot.channels.twilio_sms import TwilioSmsSender
from bot.core.ports import OutgoingSms

url, texts, threads, offset, stock = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
sender = TwilioSmsSender(os.environ["SID"], os.environ["TOKEN"], from_number="+13125550100", api_url=url,
                         connections=threads)
body = "Hi Dana, this is Lakeside Chiropractic. Book a time that suits you: https://example.com/book. STOP to end."
if stock == "stock":  # twilio-python as it comes: its own HTTP client, a requests Session
    from twilio.rest import Client
    client = Client(os.environ["SID"], os.environ["TOKEN"])
    client.api.base_url = url

def send(index):
    if stock == "stock":
        client.api.v2010.account.messages.create(to=f"+1312{offset + index:07d}", body=body, from_="+13125550100",
                                                 status_callback="https://bot.example/webhooks/twilio/status")
        return
    sender.send_sms(OutgoingSms(to=f"+1312{offset + index:07d}", body=body, reference=f"touch-{index}",
                                status_callback="https://bot.example/webhooks/twilio/status"))

with ThreadPoolExecutor(threads) as pool:
    list(pool.map(send, range(50)))
    started, wall = os.times(), time.perf_counter()
    list(pool.map(send, range(50, 50 + texts)))
    ended, wall = os.times(), time.perf_counter() - wall
print(json.dumps({"cpu": (ended.user + ended.system) - (started.user + started.system), "wall": wall}))
"""

_STANDIN = """
import json, sys
from bot.standins.twilio_api import TwilioApiStandin
standin = TwilioApiStandin(sys.argv[1], sys.argv[2]).start()
print(standin.url, flush=True)
for line in sys.stdin:  # "ports FROM": how many connections the requests since FROM arrived on
    start = int(line.split()[1])
    requests = standin.requests[start:]
    print(json.dumps({"requests": len(standin.requests), "ports": len({r.client_port for r in requests})}), flush=True)
"""


def stock(label: str) -> str:
    return "stock" if label.startswith("twilio-python") else "bot"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=3000)
    parser.add_argument("--threads", default="1,8")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--before", type=Path, help="a checkout of the code to compare with, alternating")
    parser.add_argument("--stock", action="store_true", help="also twilio-python with its own HTTP client (requests)")
    args = parser.parse_args()
    print(machine())
    print(
        f"CPU per text through twilio-python and the bot's HTTP client, {args.texts:,} texts a round, "
        "the stand-in in its own process (target: the whole bot <= 0.6 ms a text)",
        flush=True,
    )
    codes = ([("before", args.before)] if args.before else []) + [("after" if args.before else "this", REPO)]
    if args.stock:
        codes.insert(0, ("twilio-python's own client", REPO))
    env = {**os.environ, "PYTHONPATH": str(REPO), "SID": ACCOUNT_SID, "TOKEN": AUTH_TOKEN}
    standin = subprocess.Popen(
        [sys.executable, "-c", _STANDIN, ACCOUNT_SID, AUTH_TOKEN],
        cwd=REPO,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert standin.stdout is not None and standin.stdin is not None
    url = standin.stdout.readline().strip()
    seen = 0
    offset = 0
    try:
        for threads in (int(t) for t in args.threads.split(",")):
            results: dict[str, list[tuple[float, float, int]]] = {label: [] for label, _ in codes}
            for _ in range(args.rounds):
                for label, code in codes:
                    done = subprocess.run(
                        [sys.executable, "-c", _SENDER, url, str(args.texts), str(threads), str(offset), stock(label)],
                        cwd=code,
                        env={**env, "PYTHONPATH": str(code)},
                        capture_output=True,
                        text=True,
                        check=True,
                    )
                    offset += args.texts + 50
                    figures = json.loads(done.stdout)
                    standin.stdin.write(f"ports {seen}\n")
                    standin.stdin.flush()
                    counted = json.loads(standin.stdout.readline())
                    seen = counted["requests"]
                    results[label].append((figures["cpu"] / args.texts, figures["wall"] / args.texts, counted["ports"]))
            for label, rows in results.items():
                cpu = [row[0] * 1000 for row in rows]
                wall = [row[1] * 1000 for row in rows]
                print(
                    f"  {threads} thread(s) {label:<26}: CPU {statistics.median(cpu):.3f} ms a text "
                    f"(rounds {', '.join(f'{c:.3f}' for c in cpu)}), wall {statistics.median(wall):.3f} ms a text, "
                    f"connections {max(row[2] for row in rows)} for {args.texts + 50:,} texts",
                    flush=True,
                )
    finally:
        standin.stdin.close()
        standin.terminate()
        standin.wait(timeout=10)


if __name__ == "__main__":
    main()
