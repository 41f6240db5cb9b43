"""Dispatch throughput: touches per second with up to 100,000 scheduled, SQLite and PostgreSQL, 1 and 3 processes.

    python -m bench.dispatch_throughput [--due 1000] [--sizes 1000,10000,100000]

Each run loads N active leads with one text each (DUE of them due now, the rest in two days) and
times the dispatcher until the due ones are sent. "Instant vendor" is a sender that answers at
once (the cost of dispatch itself); "Twilio stand-in" is the real Twilio client over loopback.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import func, select

from bench.common import ACCOUNT_SID, AUTH_TOKEN, content, database, load_leads, machine
from bot.app import build_services
from bot.dispatch import Dispatcher
from bot.models import Touch
from bot.ports import SendReceipt
from bot.settings import Settings


class InstantSms:
    """A vendor that answers at once: what is left is dispatch's own cost."""

    def send_sms(self, message: object) -> SendReceipt:
        return SendReceipt(f"SM{uuid.uuid4().hex}", "queued")


def services_for(url: str, folder: Path, twilio_url: str | None):
    business, sequences = content(folder)
    settings = Settings(DATABASE_URL=url, FOLLOWUP_BUSINESS=business, FOLLOWUP_SEQUENCES_DIR=sequences,
                        TWILIO_ACCOUNT_SID=ACCOUNT_SID, TWILIO_AUTH_TOKEN=AUTH_TOKEN,
                        TWILIO_FROM_NUMBER="+13125550100", TWILIO_API_URL=twilio_url or "http://127.0.0.1:9")
    return build_services(settings, migrate=False, sms=None if twilio_url else InstantSms())


def sent_count(services) -> int:
    with services.session_factory() as session:
        return session.scalar(select(func.count(Touch.id)).where(Touch.status == "sent")) or 0


def run_once(kind: str, size: int, due: int, vendor: str, processes: int) -> float:
    """Return touches per second for the due touches."""
    with database(kind) as url, tempfile.TemporaryDirectory() as folder:
        load_leads(url, size, due_now=due)
        twilio = None
        if vendor == "twilio":
            from bot.standins.twilio_api import TwilioApiStandin

            twilio = TwilioApiStandin(ACCOUNT_SID, AUTH_TOKEN).start()
        try:
            if processes == 1:
                services = services_for(url, Path(folder), twilio.url if twilio else None)
                started = time.perf_counter()
                Dispatcher(services).run_due()
                elapsed = time.perf_counter() - started
            else:
                workers = [subprocess.Popen([sys.executable, "-m", "bench.dispatch_throughput", "--worker", url,
                                             folder, twilio.url if twilio else ""]) for _ in range(processes)]
                started = time.perf_counter()
                for worker in workers:
                    worker.wait()
                elapsed = time.perf_counter() - started
                services = services_for(url, Path(folder), None)
            sent = sent_count(services)
            assert sent == due, f"{sent} sent of {due} due"
            return due / elapsed
        finally:
            if twilio:
                twilio.stop()


def worker(url: str, folder: str, twilio_url: str) -> None:
    Dispatcher(services_for(url, Path(folder), twilio_url or None)).run_due()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--due", type=int, default=1000)
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker)
        return
    print(machine())
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"{args.due} touches due now among N scheduled; touches/s (target >= 1000 per process, flat in N)")
    for kind, processes, vendor in [("sqlite", 1, "instant"), ("postgresql", 1, "instant"),
                                    ("postgresql", 3, "instant"), ("sqlite", 1, "twilio"),
                                    ("postgresql", 1, "twilio")]:
        rates = []
        for size in sizes if vendor == "instant" else sizes[-1:]:
            rate = run_once(kind, size, min(args.due, size), vendor, processes)
            rates.append(f"N={size:,}: {rate:,.0f}/s")
        label = "instant vendor" if vendor == "instant" else "Twilio stand-in"
        print(f"  {kind:<10} {processes} process{'es' if processes > 1 else '  '} {label:<15} " + ", ".join(rates),
              flush=True)


if __name__ == "__main__":
    main()
