"""Speed to lead: lead webhook posted -> Twilio API request received, p50/p99 at 1, 10 and 50 leads/s.

    python -m bench.speed_to_lead [--seconds 6] [--rates 1,10,50] [--databases sqlite,postgresql]

A real `followup run` process serves the webhook; the Twilio stand-in runs here and notes when
each message request arrives. The floor is the same two HTTP hops through a bare app with no bot
logic (receive a POST, make one POST to the stand-in). Every lead must arrive: none lost.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import httpx

from bench.common import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    bot_env,
    content,
    database,
    free_port,
    machine,
    midday_zone,
    phone,
    start_bot,
    stop_bot,
    summary_ms,
    wait_healthy,
)
from bot.standins.twilio_api import TwilioApiStandin


class Arrivals:
    """When the stand-in received a message request, by recipient."""

    def __init__(self, twilio: TwilioApiStandin):
        self.at: dict[str, float] = {}
        self._changed = threading.Condition()
        twilio.on_request.append(self._seen)

    def _seen(self, request) -> None:  # noqa: ANN001 - a RecordedRequest
        if request.route == "messages.create" and isinstance(request.data, dict):
            to = request.data.get("To")
            with self._changed:
                self.at.setdefault(to[-1] if isinstance(to, list) else to, time.time())
                self._changed.notify_all()


def drive(
    url: str, rate: int, seconds: float, first: int, path: str, headers: dict[str, str], arrivals: Arrivals
) -> list[float]:
    """Post `rate` leads a second for `seconds`; return each one's posted-to-Twilio latency."""
    posted: dict[str, float] = {}
    zone = midday_zone(datetime.now(UTC))
    total = int(rate * seconds)
    client = httpx.Client(base_url=url, timeout=30, limits=httpx.Limits(max_connections=64))

    def post(index: int) -> None:
        number = phone(first + index)
        posted[number] = time.time()
        # A zone where it is midday: the lead's 8 a.m.-9 p.m. rule never holds the text back.
        client.post(
            path,
            json={
                "name": f"Lead {index}",
                "phone": number,
                "timezone": zone,
                "consent": True,
                "consent_text": "I agree to texts",
            },
            headers=headers,
        ).raise_for_status()

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=32) as pool:
        futures = []
        for index in range(total):
            time.sleep(max(0.0, started + index / rate - time.monotonic()))
            futures.append(pool.submit(post, index))
    failures = [f.exception() for f in futures if f.exception()]
    if failures:
        print(f"    {len(failures)} posts failed, e.g. {failures[0]!r}", flush=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not all(n in arrivals.at for n in posted):
        time.sleep(0.05)
    client.close()
    lost = [n for n in posted if n not in arrivals.at]
    if lost:
        print(f"    LOST {len(lost)} of {total}", flush=True)
    return [arrivals.at[n] - posted[n] for n in posted if n in arrivals.at]


def floor_app(twilio_url: str):
    """A bare app making the same two hops: receive a POST, make one POST to the stand-in."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    client = httpx.Client(auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=10)
    messages = f"{twilio_url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"

    async def lead(request):  # noqa: ANN001, ANN202 - a Starlette route handler
        body = await request.json()
        await run_in_threadpool(
            client.post, messages, data={"To": body["phone"], "From": "+13125550100", "Body": "hello"}
        )
        return JSONResponse({"ok": True}, status_code=201)

    return Starlette(routes=[Route("/webhooks/leads", lead, methods=["POST"])])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6)
    parser.add_argument("--rates", default="1,10,50")
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--floor-server", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.floor_server:
        import uvicorn

        port, twilio_url = args.floor_server
        uvicorn.run(floor_app(twilio_url), host="127.0.0.1", port=int(port), log_level="warning")
        return
    print(machine())
    rates = [int(r) for r in args.rates.split(",")]
    print(
        f"lead webhook posted -> Twilio request received ({args.seconds:g} s at each rate; target p99 < 20 ms at 50/s)",
        flush=True,
    )
    first = 0
    with TwilioApiStandin(ACCOUNT_SID, AUTH_TOKEN) as twilio:
        arrivals = Arrivals(twilio)
        port = free_port()
        floor = subprocess.Popen([sys.executable, "-m", "bench.speed_to_lead", "--floor-server", str(port), twilio.url])
        try:
            time.sleep(1.5)
            for rate in rates:
                latencies = drive(
                    f"http://127.0.0.1:{port}", rate, args.seconds, first, "/webhooks/leads", {}, arrivals
                )
                first += int(rate * args.seconds)
                print(f"  floor (two bare hops) {rate:>3}/s: {summary_ms(latencies)}", flush=True)
        finally:
            stop_bot(floor)
        for kind in args.databases.split(","):
            with database(kind) as url, tempfile.TemporaryDirectory() as folder:
                business, sequences = content(Path(folder))
                port = free_port()
                bot = start_bot(bot_env(url, business, sequences, twilio.url, port), Path(folder) / "bot.log")
                try:
                    wait_healthy(port, bot)
                    for rate in rates:
                        latencies = drive(
                            f"http://127.0.0.1:{port}",
                            rate,
                            args.seconds,
                            first,
                            "/webhooks/leads",
                            {"Authorization": "Bearer bench-lead"},
                            arrivals,
                        )
                        first += int(rate * args.seconds)
                        print(f"  followup on {kind:<10} {rate:>3}/s: {summary_ms(latencies)}", flush=True)
                finally:
                    stop_bot(bot)


if __name__ == "__main__":
    main()
