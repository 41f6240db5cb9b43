"""`followup run` as an operator starts it: a real process, waited for on /healthz, stopped by a signal."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]


def start_followup_run(env: dict[str, str], log: Path, *, cwd: Path = REPO) -> subprocess.Popen:
    """Start `followup run` with `env`, its output appended to `log`."""
    with log.open("a") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "run"], cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT
        )


def wait_healthy(url: str, process: subprocess.Popen, *, timeout: float = 30, log: Path | None = None) -> float:
    """Wait until `url`/healthz answers 200; return the seconds it took. Fail if the process exits first."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if process.poll() is not None:
            raise AssertionError(f"followup run exited with {process.returncode}: {_output(process, log)}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return time.monotonic() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.01)
    raise AssertionError(f"followup run did not become healthy within {timeout} s: {_output(process, log)}")


def stop(process: subprocess.Popen, how: signal.Signals = signal.SIGTERM, *, wait: float = 20) -> bool:
    """Stop the process with `how`; kill it if it has not exited within `wait` s. True if it stopped by itself."""
    if process.poll() is not None:
        return True
    process.send_signal(how)
    try:
        process.wait(timeout=wait)
        return True
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)
        return False


def _output(process: subprocess.Popen, log: Path | None) -> str:
    if log is not None and log.exists():
        return log.read_text()[-2000:]
    if process.stdout is not None and process.poll() is not None:
        return process.stdout.read()[-2000:]
    return "(no output kept)"
