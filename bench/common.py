"""What every benchmark shares: the machine it ran on, a database, content, lead loading, percentiles."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import time
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, insert, text

from bot.core.business import SINGLE_BUSINESS_SLUG
from bot.store.db import make_engine
from bot.store.models import Enrollment, Lead, Touch
from tests.support import processes
from tests.support.content import always_open_business, phone
from tests.support.content import midday_zone as midday_zone  # re-exported: the benchmarks import it from here
from tests.support.databases import migrated_database
from tests.support.ports import free_port as free_port  # re-exported: the benchmarks import it from here
from tests.support.processes import start_followup_run

POSTGRES_URL = os.environ.get("FOLLOWUP_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REPO = Path(__file__).resolve().parents[1]
ACCOUNT_SID = "AC" + "7" * 32
AUTH_TOKEN = "bench-token"


def machine() -> str:
    """One line naming the machine, so figures are never read without it."""
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown cpu",
    )
    memory = next(
        (
            int(line.split()[1]) // 1024
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        ),
        0,
    )
    pg = ""
    try:
        with create_engine(POSTGRES_URL).connect() as connection:
            pg = ", " + connection.scalar(text("SHOW server_version")).split()[0].join(("PostgreSQL ", ""))
    except Exception:  # noqa: BLE001 - no server: say so in the line
        pg = ", no PostgreSQL"
    return (
        f"machine: {os.cpu_count()} cores ({cpu}), {memory} MiB, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}{pg}; {python_speed()}"
    )


def python_speed() -> str:
    """How fast this machine runs plain Python right now: shared machines differ from run to run."""
    started = time.perf_counter()
    sum(i * i for i in range(10**7))
    return f"10M-square sum in {time.perf_counter() - started:.2f} s, load {os.getloadavg()[0]:.1f}"


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


def summary_ms(values: list[float]) -> str:
    return (
        f"n={len(values)} p50={percentile(values, 50) * 1000:.1f} ms p99={percentile(values, 99) * 1000:.1f} ms "
        f"max={max(values) * 1000:.1f} ms"
        if values
        else "n=0"
    )


def database(kind: str) -> AbstractContextManager[str]:
    """A fresh, migrated database URL: a SQLite file, or a PostgreSQL schema dropped afterwards."""
    return migrated_database(kind, postgres_url=POSTGRES_URL)


def content(
    folder: Path, *, steps: str = "- {id: first_sms, after: 0s, channel: sms, template: default/instant_sms}"
) -> tuple[Path, Path]:
    """A business that may send at any hour, and a one-step playbook (or the steps given)."""
    sequences = folder / "sequences"
    sequences.mkdir(parents=True, exist_ok=True)
    (sequences / "bench.yml").write_text(f"name: bench\ndescription: benchmarks\nsteps:\n  {steps}\n")
    return always_open_business(folder, sequence="bench"), sequences


def load_leads(
    url: str,
    count: int,
    *,
    due_now: int,
    due_later: timedelta = timedelta(days=2),
    now: datetime | None = None,
    start_id: int = 1,
    analyze: bool = True,
) -> None:
    """Bulk-insert `count` active leads with one SMS touch each; the first `due_now` are due at `now`."""
    now = now or datetime.now(UTC)
    zone = midday_zone(now)
    engine = make_engine(url)
    chunk = 5000
    with engine.begin() as connection:
        for first in range(start_id, start_id + count, chunk):
            ids = range(first, min(first + chunk, start_id + count))
            connection.execute(
                insert(Lead),
                [
                    dict(
                        id=i,
                        business=SINGLE_BUSINESS_SLUG,
                        name=f"Lead {i}",
                        phone=phone(i),
                        email=None,
                        source="bench",
                        first_message="",
                        custom_fields={},
                        timezone=zone,
                        stage="new",
                        sms_consent=True,
                        email_consent=True,
                        link_token=f"bench{i:012d}",
                        unsubscribe_token=f"unsub{i:012d}",
                        created_at=now,
                        updated_at=now,
                    )
                    for i in ids
                ],
            )
            connection.execute(
                insert(Enrollment),
                [
                    dict(id=i, lead_id=i, sequence_name="bench", state="active", state_reason="", enrolled_at=now)
                    for i in ids
                ],
            )
            connection.execute(
                insert(Touch),
                [
                    dict(
                        id=i,
                        enrollment_id=i,
                        lead_id=i,
                        step_id="first_sms",
                        position=0,
                        channel="sms",
                        planned_at=now,
                        due_at=now if i - start_id < due_now else now + due_later,
                        status="scheduled",
                        attempts=0,
                    )
                    for i in ids
                ],
            )
        if connection.dialect.name == "postgresql":
            for table in ("leads", "enrollments", "touches"):
                connection.execute(
                    text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
                )
    if analyze and engine.dialect.name == "postgresql":
        # What autovacuum does within a minute of a bulk load; without it, see docs/benchmarks.md.
        with engine.begin() as connection:
            connection.execute(text("ANALYZE"))
    engine.dispose()


def bot_env(url: str, business: Path, sequences: Path, twilio_url: str, port: int, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": url,
        "FOLLOWUP_BUSINESS": str(business),
        "FOLLOWUP_SEQUENCES_DIR": str(sequences),
        "PORT": str(port),
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "LEAD_WEBHOOK_TOKEN": "bench-lead",
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "TWILIO_FROM_NUMBER": "+13125550100",
        "TWILIO_API_URL": twilio_url,
        "FOLLOWUP_POLL_SECONDS": "1",
        **extra,
    }


def start_bot(env: dict[str, str], log: Path) -> subprocess.Popen:
    return start_followup_run(env, log)


def wait_healthy(port: int, process: subprocess.Popen, timeout: float = 30) -> float:
    """Wait until /healthz answers 200; return the seconds it took from now."""
    return processes.wait_healthy(f"http://127.0.0.1:{port}", process, timeout=timeout)


def stop_bot(process: subprocess.Popen) -> None:
    processes.stop(process)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")
