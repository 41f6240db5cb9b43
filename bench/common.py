"""What every benchmark shares: the machine it ran on, a database, content, lead loading, percentiles."""

from __future__ import annotations

import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from textwrap import dedent
from typing import Iterator

import httpx
from sqlalchemy import create_engine, insert, text

from bot.db import make_engine, upgrade
from bot.models import Enrollment, Lead, Touch

POSTGRES_URL = os.environ.get("FOLLOWUP_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REPO = Path(__file__).resolve().parents[1]
ACCOUNT_SID = "AC" + "7" * 32
AUTH_TOKEN = "bench-token"


def machine() -> str:
    """One line naming the machine, so figures are never read without it."""
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor() or "unknown cpu")
    memory = next((int(line.split()[1]) // 1024 for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal")), 0)
    pg = ""
    try:
        with create_engine(POSTGRES_URL).connect() as connection:
            pg = ", " + connection.scalar(text("SHOW server_version")).split()[0].join(("PostgreSQL ", ""))
    except Exception:  # noqa: BLE001 - no server: say so in the line
        pg = ", no PostgreSQL"
    return (f"machine: {os.cpu_count()} cores ({cpu}), {memory} MiB, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}{pg}; {python_speed()}")


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
    return (f"n={len(values)} p50={percentile(values, 50) * 1000:.1f} ms p99={percentile(values, 99) * 1000:.1f} ms "
            f"max={max(values) * 1000:.1f} ms" if values else "n=0")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


#: Places around the world, one of which is near midday at any hour (leads must name a place, not an offset).
_PLACES = ("Pacific/Auckland", "Australia/Sydney", "Asia/Tokyo", "Asia/Shanghai", "Asia/Bangkok", "Asia/Dhaka",
           "Asia/Karachi", "Asia/Dubai", "Europe/Moscow", "Europe/Athens", "Europe/Berlin", "Europe/London",
           "Atlantic/Azores", "America/Noronha", "America/Sao_Paulo", "America/Halifax", "America/New_York",
           "America/Chicago", "America/Denver", "America/Los_Angeles", "America/Anchorage", "Pacific/Honolulu")


def midday_zone(now: datetime) -> str:
    """A place where it is around noon now: the lead's daytime rule never holds a touch back."""
    from zoneinfo import ZoneInfo

    return min(_PLACES, key=lambda place: abs(now.astimezone(ZoneInfo(place)).hour + 0.5 - 12.5))


@contextmanager
def database(kind: str) -> Iterator[str]:
    """A fresh, migrated database URL: a SQLite file, or a PostgreSQL schema dropped afterwards."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            url = f"sqlite:///{folder}/bench.db"
            upgrade(make_engine(url))
            yield url
        return
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_URL)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    try:
        yield url
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def content(folder: Path, *, steps: str = "- {id: first_sms, after: 0s, channel: sms, template: default/instant_sms}"
            ) -> tuple[Path, Path]:
    """A business that may send at any hour, and a one-step playbook (or the steps given)."""
    sequences = folder / "sequences"
    sequences.mkdir(parents=True, exist_ok=True)
    (sequences / "bench.yml").write_text(f"name: bench\ndescription: benchmarks\nsteps:\n  {steps}\n")
    business = folder / "business.yml"
    business.write_text(dedent("""\
        name: Lakeside Chiropractic
        timezone: America/Chicago
        phone: "+13125550111"
        address: 1200 Lakeshore Dr, Chicago, IL 60610
        booking_link: https://example.com/book
        sequence: bench
        send_window: always
        """))
    return business, sequences


#: Chicago area codes whose 555 exchange numbers pass phone validation (10,000 each).
_AREA_CODES = ("312", "773", "872", "630", "708", "847", "224", "331", "815", "779")


def phone(index: int) -> str:
    """A distinct valid E.164 number per lead, for up to 100,000 leads."""
    return f"+1{_AREA_CODES[index // 10_000 % len(_AREA_CODES)]}555{index % 10_000:04d}"


def load_leads(url: str, count: int, *, due_now: int, due_later: timedelta = timedelta(days=2),
               now: datetime | None = None, start_id: int = 1, analyze: bool = True) -> None:
    """Bulk-insert `count` active leads with one SMS touch each; the first `due_now` are due at `now`."""
    now = now or datetime.now(timezone.utc)
    zone = midday_zone(now)
    engine = make_engine(url)
    chunk = 5000
    with engine.begin() as connection:
        for first in range(start_id, start_id + count, chunk):
            ids = range(first, min(first + chunk, start_id + count))
            connection.execute(insert(Lead), [dict(
                id=i, name=f"Lead {i}", phone=phone(i), email=None, source="bench", first_message="",
                custom_fields={}, timezone=zone, stage="new", sms_consent=True, email_consent=True,
                link_token=f"bench{i:012d}", created_at=now, updated_at=now) for i in ids])
            connection.execute(insert(Enrollment), [dict(
                id=i, lead_id=i, sequence_name="bench", state="active", state_reason="", enrolled_at=now)
                for i in ids])
            connection.execute(insert(Touch), [dict(
                id=i, enrollment_id=i, lead_id=i, step_id="first_sms", position=0, channel="sms",
                planned_at=now, due_at=now if i - start_id < due_now else now + due_later,
                status="scheduled", attempts=0) for i in ids])
        if connection.dialect.name == "postgresql":
            for table in ("leads", "enrollments", "touches"):
                connection.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                        f"(SELECT max(id) FROM {table}))"))
    if analyze and engine.dialect.name == "postgresql":
        # What autovacuum does within a minute of a bulk load; without it, see docs/benchmarks.md.
        with engine.begin() as connection:
            connection.execute(text("ANALYZE"))
    engine.dispose()


def bot_env(url: str, business: Path, sequences: Path, twilio_url: str, port: int, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": url, "FOLLOWUP_BUSINESS": str(business), "FOLLOWUP_SEQUENCES_DIR": str(sequences),
        "PORT": str(port), "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}", "LEAD_WEBHOOK_TOKEN": "bench-lead",
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN, "TWILIO_FROM_NUMBER": "+13125550100",
        "TWILIO_API_URL": twilio_url, "FOLLOWUP_POLL_SECONDS": "1", **extra,
    }


def start_bot(env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("a") as out:
        return subprocess.Popen([sys.executable, "-m", "bot.cli", "run"], cwd=REPO, env=env, stdout=out,
                                stderr=subprocess.STDOUT)


def wait_healthy(port: int, process: subprocess.Popen, timeout: float = 30) -> float:
    """Wait until /healthz answers 200; return the seconds it took from now."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if process.poll() is not None:
            raise RuntimeError(f"followup run exited with {process.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return time.monotonic() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.01)
    raise RuntimeError("followup run did not become healthy")


def stop_bot(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")
