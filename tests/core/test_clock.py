"""The one clock: real time or sped up, never jumping back when the speed changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.core.clock import ManualClock, ScaledClock, utc


class FakeWall:
    def __init__(self, start: float):
        self.now = start

    def __call__(self) -> float:
        return self.now


START = datetime(2026, 11, 25, 15, 0, tzinfo=UTC).timestamp()


def test_a_scale_of_3600_makes_an_hour_pass_each_real_second():
    wall = FakeWall(START)
    clock = ScaledClock(3600, wall=wall)
    before = clock.now()
    wall.now += 2
    assert clock.now() - before == timedelta(hours=2)


def test_changing_the_speed_never_moves_time_backwards():
    wall = FakeWall(START)
    clock = ScaledClock(3600, wall=wall)
    wall.now += 10
    fast = clock.now()
    clock.set_scale(1)
    assert clock.now() == fast
    wall.now += 1
    assert clock.now() - fast == timedelta(seconds=1)


def test_real_seconds_until_a_moment_shrink_with_the_scale():
    wall = FakeWall(START)
    clock = ScaledClock(60, wall=wall)
    assert clock.real_seconds_until(clock.now() + timedelta(minutes=5)) == pytest.approx(5)
    assert clock.real_seconds_until(clock.now() - timedelta(minutes=5)) == 0


def test_skipping_ahead_moves_simulated_time_only():
    wall = FakeWall(START)
    clock = ScaledClock(1, wall=wall)
    clock.advance(timedelta(days=1))
    assert clock.now() == datetime.fromtimestamp(START, tz=UTC) + timedelta(days=1)


@pytest.mark.parametrize("scale", [0, -1])
def test_a_scale_must_be_positive(scale):
    with pytest.raises(ValueError):
        ScaledClock(scale)


def test_naive_database_values_are_taken_as_utc():
    assert utc(datetime(2026, 1, 1, 12, 0)) == datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def test_a_manual_clock_moves_only_when_told():
    clock = ManualClock(datetime(2026, 1, 1, tzinfo=UTC))
    clock.advance(timedelta(minutes=5))
    assert clock.now() == datetime(2026, 1, 1, 0, 5, tzinfo=UTC)
