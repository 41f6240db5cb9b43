"""A Slack stand-in answering at Slack's own pace, and `followup run` started from a chosen checkout.

Slack takes about one chat.postMessage a second per channel (short bursts tolerated) and about 50
chat.update a minute per workspace, and answers 429 with Retry-After beyond that. The bot keeps to
those limits itself; this stand-in makes sure a benchmark cannot look faster than Slack would let it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from bot.slack.limits import RateLimiter
from bot.standins.server import RecordedRequest, Reply
from bot.standins.slack_api import SlackApiStandin, slack_error

BOT_TOKEN = "xoxb-bench"
LEADS_CHANNEL = "C0BENCHLEADS"
REPO = Path(__file__).resolve().parents[1]


class PacedSlack(SlackApiStandin):
    """Slack's Web API, refusing with 429 what goes beyond Slack's rate limits."""

    def __init__(
        self,
        *,
        post_rate: float = 1.0,
        post_burst: int = 5,
        update_rate: float = 50 / 60,
        update_burst: int = 10,
        channels: Mapping[str, str] | None = None,
    ) -> None:
        """`channels`: the workspace's channels, by id (default: the one leads channel of `slack_env`)."""
        super().__init__(BOT_TOKEN, channels=channels or {LEADS_CHANNEL: "leads"})
        self._posts = RateLimiter(post_rate, post_burst)
        self._updates = RateLimiter(update_rate, update_burst)
        #: chat.postMessage / chat.update answered, and refused with 429.
        self.done = {"chat.postMessage": 0, "chat.update": 0}
        self.refused = 0

    def handle(self, route: str, params: dict[str, str], request: RecordedRequest) -> Reply:
        if route in self.done:
            limiter = self._posts if route == "chat.postMessage" else self._updates
            key = str((request.data or {}).get("channel")) if route == "chat.postMessage" else route
            wait = limiter.try_acquire(key)
            if wait:
                self.refused += 1
                return slack_error("ratelimited", status=429, headers={"Retry-After": str(max(1, round(wait)))})
            self.done[route] += 1
        return super().handle(route, params, request)


def slack_env(slack: PacedSlack) -> dict[str, str]:
    """The settings that point `followup run` at the stand-in."""
    return {"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_LEADS_CHANNEL": LEADS_CHANNEL, "SLACK_API_URL": slack.url + "/api/"}


def start_checkout(env: dict[str, str], log: Path, code: Path = REPO) -> subprocess.Popen:
    """`followup run` from the checkout at `code` (this one, or a "before" worktree for a comparison)."""
    env = {**env, "PYTHONPATH": str(code)}
    with log.open("a") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "run"], cwd=code, env=env, stdout=out, stderr=subprocess.STDOUT
        )


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def profile(pid: int, seconds: float, top: int = 8, *, keep: Path | None = None, gil: bool = False) -> str:
    """Sample the process with py-spy (the `bench` extra) for `seconds`: where its time goes, by function.

    Each line: the share of busy samples (py-spy leaves out idle threads) in which the function was on
    the stack, busiest first, leaving out the frames every thread starts from; then the functions
    busy themselves (the innermost frame of a sample), which says what the time is spent on.
    `keep` saves py-spy's raw stacks there, for a closer look. `gil` keeps only the samples of the
    thread holding the interpreter lock: where the process's Python CPU goes, leaving out the threads
    waiting on a socket (which py-spy otherwise may count as busy).
    """
    import shutil
    import tempfile
    from collections import Counter

    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "stacks.txt"
        done = subprocess.run(
            [
                spy,
                "record",
                "--pid",
                str(pid),
                "--duration",
                str(int(seconds)),
                "--rate",
                "50",
                "--format",
                "raw",
                "--output",
                str(out),
                "--nonblocking",
                *(["--gil"] if gil else []),
            ],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0 or not out.exists():
            return f"py-spy could not sample: {done.stderr.strip()[-200:]}"
        if keep is not None:
            keep.write_text(out.read_text())
        inclusive: Counter[str] = Counter()
        own: Counter[str] = Counter()
        total = 0
        for line in out.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not count.isdigit():
                continue
            total += int(count)  # py-spy leaves out idle threads: every sample here is busy
            frames = stack.split(";")
            for frame in {frame.split(" (")[0] for frame in frames}:
                inclusive[frame] += int(count)
            own[frames[-1]] += int(count)
    busy = [
        (frame, count)
        for frame, count in inclusive.most_common()
        if frame
        and not frame.startswith(
            (
                "_bootstrap",
                "Thread.",
                "run (threading",
                "<module>",
                "_run_code",
                "_run_module",
                "BaseScheduler",
                "_worker",
                "WorkerThread",
            )
        )
    ]
    lines = [f"{count / total * 100:5.1f} %  {frame}" for frame, count in busy[:top]] if total else []
    if total:
        lines.append("  busy themselves (innermost frame):")
        lines += [f"{count / total * 100:5.1f} %  {frame}" for frame, count in own.most_common(top)]
    return "\n".join(lines) or "no busy samples"


def postgres_backends_cpu(pid: int, postgres_url: str) -> float:
    """CPU seconds used so far by the PostgreSQL server processes serving the process `pid`'s connections.

    On PostgreSQL a busy loop of queries burns the server's CPU more than the bot's own: the
    bot's sockets to the server are found in /proc, and their server processes by client port.
    """
    from sqlalchemy import create_engine, text

    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] in inodes and int(fields[2].rsplit(":", 1)[1], 16) == 5432:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    if not ports:
        return 0.0
    engine = create_engine(postgres_url)
    try:
        with engine.connect() as connection:
            backends = connection.scalars(
                text("SELECT pid FROM pg_stat_activity WHERE client_port = ANY(:ports)"), {"ports": sorted(ports)}
            ).all()
    finally:
        engine.dispose()
    total = 0.0
    for backend in backends:
        try:
            total += cpu_seconds(backend)
        except OSError:  # gone meanwhile
            pass
    return total
