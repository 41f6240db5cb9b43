"""Dispatch throughput: touches per second with up to 100,000 scheduled, SQLite and PostgreSQL, 1 and 3 processes.

    python -m bench.dispatch_throughput [--due 1000] [--sizes 1000,10000,100000]

Each run loads N active leads with one text each (DUE of them due now, the rest in two days) and
times the dispatcher until the due ones are sent. "Instant vendor" is a sender that answers at
once (the cost of dispatch itself); "Twilio stand-in" is the real Twilio client over loopback.
The dispatcher has as many senders as `followup run` gives it. For one process, the CPU it used
per touch is printed too: unlike touches/s, it barely moves when the machine is busy.
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
from bot.core.ports import SendReceipt
from bot.scheduler import SENDERS
from bot.settings import Settings
from bot.store.models import Touch
from bot.usecases.dispatch import Dispatcher


class InstantSms:
    """A vendor that answers at once: what is left is dispatch's own cost."""

    def send_sms(self, message: object) -> SendReceipt:
        return SendReceipt(f"SM{uuid.uuid4().hex}", "queued")


def services_for(url: str, folder: Path, twilio_url: str | None, *, write_content: bool = True):
    # Worker processes read the content their parent wrote: three rewriting one file race.
    business, sequences = content(folder) if write_content else (folder / "business.yml", folder / "sequences")
    settings = Settings(
        DATABASE_URL=url,
        FOLLOWUP_BUSINESS=business,
        FOLLOWUP_SEQUENCES_DIR=sequences,
        TWILIO_ACCOUNT_SID=ACCOUNT_SID,
        TWILIO_AUTH_TOKEN=AUTH_TOKEN,
        TWILIO_FROM_NUMBER="+13125550100",
        TWILIO_API_URL=twilio_url or "http://127.0.0.1:9",
    )
    return build_services(settings, migrate=False, sms=None if twilio_url else InstantSms())


def sent_count(services) -> int:
    with services.session_factory() as session:
        return session.scalar(select(func.count(Touch.id)).where(Touch.status == "sent")) or 0


def run_once(kind: str, size: int, due: int, vendor: str, processes: int) -> tuple[float, float | None]:
    """Return touches per second for the due touches, and (one process) CPU milliseconds per touch."""
    with database(kind) as url, tempfile.TemporaryDirectory() as folder:
        load_leads(url, size, due_now=due)
        twilio = None
        if vendor == "twilio":
            from bot.standins.twilio_api import TwilioApiStandin

            twilio = TwilioApiStandin(ACCOUNT_SID, AUTH_TOKEN).start()
        try:
            if processes == 1:
                services = services_for(url, Path(folder), twilio.url if twilio else None)
                dispatcher = Dispatcher(services, senders=SENDERS)
                started, cpu_started = time.perf_counter(), time.process_time()
                dispatcher.run_due()
                elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
                dispatcher.close()
            else:
                content(Path(folder))
                # Every worker starts sending at one agreed moment, after its start-up (imports, engine):
                # what is timed is the sending, from that moment until the last worker is done.
                start_at = time.time() + 5
                workers = [
                    subprocess.Popen(
                        [
                            sys.executable,
                            "-m",
                            "bench.dispatch_throughput",
                            "--worker",
                            url,
                            folder,
                            twilio.url if twilio else "",
                            str(start_at),
                        ],
                        stdout=subprocess.PIPE,
                        text=True,
                    )
                    for _ in range(processes)
                ]
                finished = [float(worker.communicate()[0].split()[-1]) for worker in workers]
                assert all(worker.returncode == 0 for worker in workers), "a worker failed"
                elapsed = max(finished) - start_at
                services = services_for(url, Path(folder), None)
                cpu = None
            sent = sent_count(services)
            assert sent == due, f"{sent} sent of {due} due"
            return due / elapsed, (cpu * 1000 / due if cpu is not None else None)
        finally:
            if twilio:
                twilio.stop()


def worker(url: str, folder: str, twilio_url: str, start_at: str) -> None:
    """Send what is due from the agreed moment on; print when this worker was done."""
    dispatcher = Dispatcher(services_for(url, Path(folder), twilio_url or None, write_content=False), senders=SENDERS)
    time.sleep(max(0.0, float(start_at) - time.time()))
    dispatcher.run_due()
    print(time.time(), flush=True)
    dispatcher.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--due", type=int, default=1000)
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker)
        return
    print(machine())
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"{args.due} touches due now among N scheduled; touches/s (target >= 1000 per process, flat in N)")
    for kind, processes, vendor in [
        ("sqlite", 1, "instant"),
        ("postgresql", 1, "instant"),
        ("postgresql", 3, "instant"),
        ("sqlite", 1, "twilio"),
        ("postgresql", 1, "twilio"),
    ]:
        rates = []
        for size in sizes if vendor == "instant" else sizes[-1:]:
            rate, cpu_ms = run_once(kind, size, min(args.due, size), vendor, processes)
            rates.append(f"N={size:,}: {rate:,.0f}/s" + (f" ({cpu_ms:.2f} ms CPU)" if cpu_ms is not None else ""))
        label = "instant vendor" if vendor == "instant" else "Twilio stand-in"
        print(
            f"  {kind:<10} {processes} process{'es' if processes > 1 else '  '} {label:<15} " + ", ".join(rates),
            flush=True,
        )


if __name__ == "__main__":
    main()
