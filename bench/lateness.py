"""Lateness: 2,000 leads whose touch falls due the same second; each text's delay past its due time.

    python -m bench.lateness [--leads 2000] [--databases sqlite,postgresql] [--before /tmp/before] [--profile 4]
                             [--processes 1,2,3] [--twilio-apart]

Two runs per database: one `followup run` up throughout; and one stopped (SIGTERM) just before
the due second and started again just after it, which must lose nothing. `followup run` runs as in
production: Slack (at its own pace, bench.slack_pace), Twilio and SendGrid all configured against
stand-ins, so every text sent also queues its thread entry for Slack. Printed too: the bot's CPU per
text and its peak resident size (VmHWM). Targets (issue 13): p99 <= 1 s running, <= 1.5 s across the
restart, none lost. `--profile N` samples the bot with py-spy for N s from the due second (one more run
per database, running throughout, not counted in the figures: sampling slows the process) and prints
where its time went.

`--processes 1,2,3` runs the PostgreSQL rows with that many `followup run` processes on the one
database, sharing the due touches (the deployment that spreads dispatch over processes); their CPU is
added up, and on PostgreSQL the CPU of the server processes serving them is printed beside it. The
floor, printed first: the same number of texts posted to the Twilio stand-in at once by a trivial
client in its own process (8 threads, a kept connection each, as the bot's senders), each text's
arrival past the moment they were all due; every row prints its p99 as a multiple of the floor's.
`--twilio-apart` runs the Twilio stand-in in a process of its own instead of beside the Slack and
SendGrid stand-ins in the benchmark's process, to see how much the stand-in itself holds back. Each
row ends with the machine's load average (/proc/loadavg) when it finished.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import multiprocessing
import os
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
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
    percentile,
    stop_bot,
    summary_ms,
    wait_healthy,
)
from bench.memory_startup import peak_mib
from bench.slack_pace import REPO, PacedSlack, postgres_backends_cpu, profile, slack_env, start_checkout
from bench.speed_to_lead import Arrivals
from bot.standins.sendgrid_api import SendGridApiStandin
from bot.standins.twilio_api import TwilioApiStandin


class TwilioApart:
    """The Twilio stand-in and its arrivals hook in a process of their own (`--twilio-apart`)."""

    def __init__(self) -> None:
        self._pipe, child = multiprocessing.Pipe()
        self._process = multiprocessing.get_context("fork").Process(target=_serve_twilio, args=(child,), daemon=True)
        self._process.start()
        self.url: str = self._pipe.recv()
        self.at = _RemoteArrivals(self._ask)
        self._asking = threading.Lock()
        #: The stand-in process's CPU seconds over the last run's burst.
        self.standin_cpu = 0.0

    def _ask(self, what: str, numbers: list[str] | None = None) -> dict[str, float]:
        with self._asking:
            self._pipe.send((what, numbers))
            return self._pipe.recv()

    def cpu_seconds(self) -> float:
        assert self._process.pid is not None
        return cpu_seconds(self._process.pid)

    def close(self) -> None:
        self._pipe.send(("stop", None))
        self._process.join(5)


class _RemoteArrivals:
    """`Arrivals.at` as seen from the benchmark's process: asked of the stand-in's process."""

    def __init__(self, ask: Callable[..., dict[str, float]]) -> None:
        self._ask = ask

    def of(self, numbers: list[str]) -> dict[str, float]:
        return self._ask("arrivals", numbers)


def _serve_twilio(pipe) -> None:  # noqa: ANN001 - a multiprocessing Connection
    with TwilioApiStandin(ACCOUNT_SID, AUTH_TOKEN) as twilio:
        arrivals = Arrivals(twilio)
        pipe.send(twilio.url)
        while True:
            what, numbers = pipe.recv()
            if what == "stop":
                return
            pipe.send({n: arrivals.at[n] for n in numbers if n in arrivals.at})


def arrived(arrivals: Arrivals | TwilioApart, numbers: list[str]) -> dict[str, float]:
    """When each of these numbers' texts reached the stand-in, for those that did."""
    if isinstance(arrivals, TwilioApart):
        return arrivals.at.of(numbers)
    return {n: arrivals.at[n] for n in numbers if n in arrivals.at}


#: About as long as the bench playbook's first text.
FLOOR_TEXT = "Hi Lead, this is Lakeside Dental. Thanks for reaching out! Reply STOP to opt out."


def _post_texts(url: str, numbers: list[str], threads: int, started: float) -> None:
    """The floor's client: post one text per number, `threads` kept connections at once, from `started`."""
    split = urllib.parse.urlsplit(url)
    path = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    auth = "Basic " + base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
    queue = list(reversed(numbers))
    lock = threading.Lock()

    def sender() -> None:
        connection = http.client.HTTPConnection(split.hostname or "127.0.0.1", split.port)
        while True:
            with lock:
                if not queue:
                    break
                number = queue.pop()
            body = urllib.parse.urlencode(
                {
                    "To": number,
                    "From": "+13125550100",
                    "Body": "Hi Lead, this is Lakeside Dental. Reply STOP to opt out.",
                }
            )
            connection.request(
                "POST", path, body, {"Authorization": auth, "Content-Type": "application/x-www-form-urlencoded"}
            )
            connection.getresponse().read()
        connection.close()

    time.sleep(max(0.0, started - time.time()))
    workers = [threading.Thread(target=sender) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


def floor(url: str, arrivals: Arrivals | TwilioApart, count: int, first_id: int, threads: int = 8) -> list[float]:
    """Seconds late of each of `count` texts all due at once, posted by a trivial client in its own process."""
    from bench.common import phone

    numbers = [phone(i) for i in range(first_id, first_id + count)]
    due = time.time() + 1.0
    client = multiprocessing.get_context("fork").Process(target=_post_texts, args=(url, numbers, threads, due))
    client.start()
    client.join(120)
    at = arrived(arrivals, numbers)
    return [at[n] - due for n in numbers if n in at]


def run(
    kind: str,
    leads: int,
    restart: bool,
    twilio_url: str,
    arrivals: Arrivals | TwilioApart,
    first_id: int,
    code: Path = REPO,
    sendgrid_url: str = "",
    profile_seconds: float = 0,
    processes: int = 1,
    gil: bool = False,
) -> tuple[list[float], int, float, float, float]:
    """Seconds late of each text that arrived, how many never did, the bots' CPU seconds meanwhile, their
    PostgreSQL server processes' CPU seconds meanwhile (0 on SQLite), and the bots' highest peak resident
    size (MiB)."""
    with database(kind) as url, tempfile.TemporaryDirectory() as folder, PacedSlack() as slack:
        business, sequences = content(Path(folder))
        ports = [free_port() for _ in range(processes)]
        envs = [
            {
                **bot_env(url, business, sequences, twilio_url, port),
                **slack_env(slack),
                "SENDGRID_API_KEY": "SG.bench",
                "SENDGRID_FROM_EMAIL": "hello@lakeside.example",
                "SENDGRID_API_URL": sendgrid_url,
            }
            for port in ports
        ]

        def start_all() -> list:
            return [start_checkout(env, Path(folder) / f"bot{index}.log", code) for index, env in enumerate(envs)]

        bots = start_all()
        for port, bot in zip(ports, bots, strict=True):
            wait_healthy(port, bot, timeout=60)
        due = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=4)
        load_leads(url, leads, due_now=0, due_later=due - datetime.now(UTC), now=datetime.now(UTC), start_id=first_id)
        from sqlalchemy import update

        from bot.store.db import make_engine
        from bot.store.models import Touch

        engine = make_engine(url)
        with engine.begin() as connection:  # exactly the same second for all of them
            connection.execute(update(Touch).values(due_at=due))
        engine.dispose()
        if restart:
            time.sleep(max(0.0, due.timestamp() - 1 - time.time()))
            for bot in bots:
                stop_bot(bot)
            time.sleep(max(0.0, due.timestamp() + 0.5 - time.time()))
            bots = start_all()
        from bench.common import phone

        numbers = [phone(i) for i in range(first_id, first_id + leads)]
        cpu_before = sum(cpu_seconds(bot.pid) for bot in bots)
        standin_before = arrivals.cpu_seconds() if isinstance(arrivals, TwilioApart) else 0.0
        server_before = _server_cpu(kind, bots)
        if profile_seconds:
            time.sleep(max(0.0, due.timestamp() - time.time()))
            print(
                profile(bots[0].pid, profile_seconds, top=24, keep=Path(f"/tmp/lateness-{kind}.stacks"), gil=gil),
                flush=True,
            )
        deadline = time.time() + 120
        at: dict[str, float] = {}
        while time.time() < deadline and len(at := arrived(arrivals, numbers)) < leads:
            time.sleep(0.1)
        cpu_used = sum(cpu_seconds(bot.pid) for bot in bots) - cpu_before
        if isinstance(arrivals, TwilioApart):
            arrivals.standin_cpu = arrivals.cpu_seconds() - standin_before
        server_used = _server_cpu(kind, bots) - server_before
        peak = max(peak_mib(bot.pid) for bot in bots)
        for bot in bots:
            stop_bot(bot)
        late = [at[n] - due.timestamp() for n in numbers if n in at]
        return late, leads - len(late), cpu_used, server_used, peak


def _server_cpu(kind: str, bots: list) -> float:
    """CPU seconds so far of the PostgreSQL server processes serving these bots (0 on SQLite)."""
    if kind != "postgresql":
        return 0.0
    from bench.common import POSTGRES_URL

    return sum(postgres_backends_cpu(bot.pid, POSTGRES_URL) for bot in bots)


def load() -> str:
    """The machine's load averages (1, 5 and 15 minutes), as /proc/loadavg has them now."""
    return "load " + " ".join(Path("/proc/loadavg").read_text().split()[:3])


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used so far, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=2000)
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--before", type=Path, help="a checkout of the code to compare with, run first")
    parser.add_argument("--profile", type=float, default=0, help="seconds to sample each code with py-spy, after")
    parser.add_argument(
        "--processes", default="1", help="comma-separated counts of `followup run` processes for PostgreSQL rows"
    )
    parser.add_argument("--restart", default="no,yes", help="'no', 'yes' or 'no,yes': which runs to make")
    parser.add_argument("--gil", action="store_true", help="profile only the thread holding the GIL (its CPU)")
    parser.add_argument("--twilio-apart", action="store_true", help="the Twilio stand-in in its own process")
    args = parser.parse_args()
    counts = [int(count) for count in args.processes.split(",")]
    restarts = [answer == "yes" for answer in args.restart.split(",")]
    print(machine())
    print(
        f"{args.leads:,} texts due the same second, seconds late, Slack, Twilio and SendGrid configured "
        "(targets: p99 <= 1 s running, <= 1.5 s across a restart, none lost); Twilio stand-in "
        + ("in its own process" if args.twilio_apart else "in the benchmark's process, beside Slack's and SendGrid's"),
        flush=True,
    )
    codes = ([("before", args.before)] if args.before else []) + [("after" if args.before else "this", REPO)]
    first = 1
    twilio_apart = TwilioApart() if args.twilio_apart else None
    try:
        with TwilioApiStandin(ACCOUNT_SID, AUTH_TOKEN) as own_twilio, SendGridApiStandin("SG.bench") as sendgrid:
            twilio_url = twilio_apart.url if twilio_apart else own_twilio.url
            arrivals: Arrivals | TwilioApart = twilio_apart or Arrivals(own_twilio)
            standin_started = twilio_apart.cpu_seconds() if twilio_apart else 0.0
            floor_late = floor(twilio_url, arrivals, args.leads, first)
            standin = (
                f"; the stand-in's CPU {(twilio_apart.cpu_seconds() - standin_started) / args.leads * 1000:.2f} ms a "
                "text"
                if twilio_apart
                else ""
            )
            first += args.leads
            floor_p99 = percentile(floor_late, 99)
            print(
                f"  floor: a trivial client in its own process, 8 kept connections: late by {summary_ms(floor_late)}, "
                f"lost {args.leads - len(floor_late)}{standin}; {load()}",
                flush=True,
            )
            for kind in args.databases.split(","):
                for processes in counts if kind == "postgresql" else [1]:
                    for restart in restarts:
                        for code_label, code in codes:
                            late, lost, cpu, server, peak = run(
                                kind,
                                args.leads,
                                restart,
                                twilio_url,
                                arrivals,
                                first,
                                code,
                                sendgrid.url,
                                processes=processes,
                            )
                            first += args.leads
                            label = "restarted around due time" if restart else "running throughout"
                            first_out = f"first {min(late) * 1000:.0f} ms, " if late else ""
                            server_cpu = f" (+ {server / args.leads * 1000:.2f} ms in PostgreSQL)" if server else ""
                            if twilio_apart is not None:
                                server_cpu += (
                                    f" (+ {twilio_apart.standin_cpu / args.leads * 1000:.2f} ms in the stand-in)"
                                )
                            print(
                                f"  {kind:<10} x{processes} {code_label:<6} {label:<26} late by {first_out}"
                                f"{summary_ms(late)} = {percentile(late, 99) / floor_p99:.1f}x floor p99, lost {lost}; "
                                f"bot CPU {cpu / args.leads * 1000:.2f} ms a text{server_cpu}; "
                                f"peak RSS {peak:.0f} MiB; {load()}",
                                flush=True,
                            )
                for code_label, code in codes if args.profile else ():
                    print(f"  {kind} {code_label}: py-spy from the due second, {args.profile:g} s", flush=True)
                    run(
                        kind,
                        args.leads,
                        False,
                        twilio_url,
                        arrivals,
                        first,
                        code,
                        sendgrid.url,
                        args.profile,
                        gil=args.gil,
                    )
                    first += args.leads
    finally:
        if twilio_apart is not None:
            twilio_apart.close()


if __name__ == "__main__":
    main()
