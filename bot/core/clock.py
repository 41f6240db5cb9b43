"""The one clock: real time, or time running faster for demos and tests (FOLLOWUP_TIME_SCALE)."""

from __future__ import annotations

import threading
import time as _time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...

    def real_seconds_until(self, moment: datetime) -> float: ...


def utc(moment: datetime) -> datetime:
    """Return an aware UTC datetime; naive values are taken as UTC (SQLite hands them back naive)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


class ScaledClock:
    """Wall-clock time, optionally sped up: with scale 3600 an hour passes each real second.

    The scale can change while running (the sandbox's clock control); simulated time never jumps
    back when it does, because each change re-anchors at the current simulated instant.
    """

    def __init__(self, scale: float = 1.0, *, start: datetime | None = None, wall: Callable[[], float] = _time.time):
        if scale <= 0:
            raise ValueError("time scale must be positive")
        self._wall = wall
        self._lock = threading.Lock()
        self._real_anchor = wall()
        # A demo or a test may start the clock at a chosen instant (say, a Tuesday morning).
        self._simulated_anchor = utc(start).timestamp() if start else self._real_anchor
        self._scale = float(scale)

    @property
    def scale(self) -> float:
        return self._scale

    def set_scale(self, scale: float) -> None:
        if scale <= 0:
            raise ValueError("time scale must be positive")
        with self._lock:
            real = self._wall()
            self._simulated_anchor = self._simulated_at(real)
            self._real_anchor = real
            self._scale = float(scale)

    def advance(self, delta: timedelta) -> None:
        """Jump simulated time forward (the sandbox's 'skip ahead')."""
        with self._lock:
            self._simulated_anchor += delta.total_seconds()

    def _simulated_at(self, real: float) -> float:
        return self._simulated_anchor + (real - self._real_anchor) * self._scale

    def now(self) -> datetime:
        with self._lock:
            return datetime.fromtimestamp(self._simulated_at(self._wall()), tz=UTC)

    def real_seconds_until(self, moment: datetime) -> float:
        return max(0.0, (utc(moment) - self.now()).total_seconds() / self._scale)


class ManualClock:
    """A clock that moves only when told: the fixed `now` of tests."""

    def __init__(self, start: datetime):
        self._now = utc(start)

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> None:
        self._now += delta

    def set(self, moment: datetime) -> None:
        self._now = utc(moment)

    def real_seconds_until(self, moment: datetime) -> float:
        return 0.0
