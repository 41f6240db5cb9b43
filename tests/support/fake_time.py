"""Monotonic seconds that pass only when the code under test sleeps: rate limits and waits without waiting."""

from __future__ import annotations


class FakeTime:
    """A `clock()` and a `sleep()` to hand to code that paces itself; sleeping moves the clock at once."""

    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
