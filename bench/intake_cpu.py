"""Intake's cost per new lead: CPU and statements, for intake alone and for the instant text's fast lane.

    python -m bench.intake_cpu [--leads 500] [--databases sqlite,postgresql] [--before /tmp/before]

One process per checkout and database takes `--leads` new leads in one after another, as the lead
webhook does (`take_in_lead`, then the dispatcher's `run_leads` for the lead's instant text, to a
vendor that answers at once), after a warm-up of 50. Printed per lead: the process's CPU
(time.process_time) and the statements it sent (an executemany counts once), for intake and for the
fast lane separately, and on PostgreSQL the CPU of the server processes serving it (they run on
the same cores). One lead at a time and no other load: this is cost, not latency; the machine's
load moves it far less than it moves latency. Target (issue 13): on PostgreSQL, CPU per new lead
<= 3 ms in the bot.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC
from pathlib import Path

from bench.common import POSTGRES_URL, REPO, database, machine, midday_zone, phone

WARM_UP = 50


def measure(url: str, leads: int) -> dict[str, float]:
    """In this process: take `leads` new leads in, each with its instant text; the cost of each part."""
    from datetime import datetime

    from sqlalchemy import event

    from bench.dispatch_throughput import services_for
    from bench.slack_pace import postgres_backends_cpu
    from bot.store.audit import Actor
    from bot.usecases.dispatch import Dispatcher
    from bot.usecases.leads import LeadInput, take_in_lead

    with tempfile.TemporaryDirectory() as folder:
        services = services_for(url, Path(folder), None)
        dispatcher = Dispatcher(services)  # the fast lane's: one lead at a time, in the caller's thread
        engine = services.session_factory.kw["bind"]
        statements = [0]
        event.listen(engine, "before_cursor_execute", lambda *args: statements.__setitem__(0, statements[0] + 1))
        zone = midday_zone(datetime.now(UTC))
        playbook = services.playbooks.get()

        def lead(index: int) -> LeadInput:
            return LeadInput.parse(
                {
                    "name": f"Lead {index}",
                    "phone": phone(index),
                    "timezone": zone,
                    "consent": True,
                    "consent_text": "I agree to texts",
                },
                default_source="web",
            )

        def server_cpu() -> float:
            return postgres_backends_cpu(os.getpid(), POSTGRES_URL) if url.startswith("postgresql") else 0.0

        for index in range(WARM_UP):
            result = take_in_lead(services, lead(index), sequence=playbook, actor=Actor.lead(0))
            dispatcher.run_leads([result.lead_id])
        inputs = [lead(WARM_UP + index) for index in range(leads)]  # parsing is the edge's, not timed here
        totals = {"intake_cpu": 0.0, "intake_statements": 0.0, "lane_cpu": 0.0, "lane_statements": 0.0}
        server_started, wall_started = server_cpu(), time.perf_counter()
        for data in inputs:
            cpu, sent = time.process_time(), statements[0]
            result = take_in_lead(services, data, sequence=playbook, actor=Actor.lead(0))
            middle, middle_sent = time.process_time(), statements[0]
            report = dispatcher.run_leads([result.lead_id])
            assert result.created and report.sent == 1, "every lead new, every instant text sent"
            totals["intake_cpu"] += middle - cpu
            totals["intake_statements"] += middle_sent - sent
            totals["lane_cpu"] += time.process_time() - middle
            totals["lane_statements"] += statements[0] - middle_sent
        totals["server_cpu"] = server_cpu() - server_started
        totals["wall"] = time.perf_counter() - wall_started
        dispatcher.close()
        return {key: value / leads for key, value in totals.items()}


def run(kind: str, code: Path, leads: int) -> dict[str, float]:
    """One fresh database and one process running the checkout at `code`."""
    with database(kind) as url:
        # Run as a file, so `bot` (and the helpers from `bench`) come from `code`, which need not have this one.
        done = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--measure", url, str(leads)],
            cwd=code,
            env={**os.environ, "PYTHONPATH": str(code)},
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise SystemExit(f"the measuring process failed:\n{done.stderr[-3000:]}")
        return json.loads(done.stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=500)
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--before", type=Path, help="a checkout of the code to compare with, run first")
    parser.add_argument("--rounds", type=int, default=1, help="before and after in turn, this many times")
    parser.add_argument("--measure", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure[0], int(args.measure[1]))))
        return
    print(machine())
    print(
        f"cost per new lead, {args.leads} leads one at a time after {WARM_UP} warm-up "
        "(target: PostgreSQL CPU per new lead <= 3 ms)",
        flush=True,
    )
    codes = ([("before", args.before)] if args.before else []) + [("after" if args.before else "this", REPO)]
    for kind in args.databases.split(","):
        for _ in range(args.rounds):
            for label, code in codes:
                cost = run(kind, code, args.leads)
                server = f"; PostgreSQL server {cost['server_cpu'] * 1000:.2f} ms" if kind == "postgresql" else ""
                print(
                    f"  {kind:<10} {label:<6}: intake {cost['intake_cpu'] * 1000:.2f} ms CPU, "
                    f"{cost['intake_statements']:.1f} statements; instant text {cost['lane_cpu'] * 1000:.2f} ms, "
                    f"{cost['lane_statements']:.1f} statements; "
                    f"together {(cost['intake_cpu'] + cost['lane_cpu']) * 1000:.2f} ms"
                    f"{server}; {cost['wall'] * 1000:.1f} ms a lead end to end",
                    flush=True,
                )


if __name__ == "__main__":
    main()
