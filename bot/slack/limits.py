"""Keep to Slack's rate limits (about one message a second per channel, small bursts) before Slack says so."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

#: chat.postMessage: about one message per second per channel, short bursts tolerated.
POST_RATE, POST_BURST = 1.0, 4
#: chat.update is Tier 3 (50+ a minute per workspace): one bucket for all channels.
UPDATE_RATE, UPDATE_BURST = 50 / 60, 10
#: conversations.history and .replies are Tier 3 (50+ a minute per workspace): read only after a lost answer.
READ_RATE, READ_BURST = 50 / 60, 5
#: A wait shorter than this is float rounding after sleeping exactly the time asked: the token is free.
_ROUNDING = 1e-6


@dataclass
class _Bucket:
    tokens: float
    updated: float
    #: Nothing may be taken before this moment (Slack answered 429 with Retry-After).
    held_until: float = 0.0


class RateLimiter:
    """Token buckets by key (a channel, a method): `acquire` waits for a token, or declines to wait long.

    Thread-safe. A caller reserves its token under the lock and sleeps outside it, so callers on
    the same key are served in turn at the configured rate. `clock` and `sleep` are injectable
    (monotonic seconds), so tests run without waiting.
    """

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._buckets: dict[str, _Bucket] = {}

    def _bucket(self, key: str, now: float) -> _Bucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(tokens=float(self.burst), updated=now)
        # No refill while held: the first token after a 429 comes when Slack said it would.
        refilled_from = max(bucket.updated, bucket.held_until)
        if now > refilled_from:
            bucket.tokens = min(float(self.burst), bucket.tokens + (now - refilled_from) * self.rate)
        bucket.updated = max(bucket.updated, now)
        return bucket

    def wait_time(self, key: str) -> float:
        """Seconds until a token for `key` is free (0 when one is free now)."""
        with self._lock:
            now = self._clock()
            bucket = self._bucket(key, now)
            return self._wait(bucket, now)

    def _wait(self, bucket: _Bucket, now: float) -> float:
        return max(0.0, bucket.held_until - now) + max(0.0, 1.0 - bucket.tokens) / self.rate

    def try_acquire(self, key: str) -> float:
        """Take a token for `key` if one is free now and return 0; else take nothing and return the seconds to wait."""
        with self._lock:
            now = self._clock()
            bucket = self._bucket(key, now)
            wait = self._wait(bucket, now)
            if wait > _ROUNDING:
                return wait
            bucket.tokens -= 1.0
            return 0.0

    def acquire(self, key: str, *, max_wait: float | None = None) -> bool:
        """Take a token for `key`, sleeping until it is free; False (nothing taken) if that is beyond max_wait."""
        with self._lock:
            now = self._clock()
            bucket = self._bucket(key, now)
            wait = self._wait(bucket, now)
            if max_wait is not None and wait > max_wait:
                return False
            # Reserve now (tokens may go negative) so later callers queue up behind this one.
            bucket.tokens -= 1.0
        if wait > 0:
            self._sleep(wait)
        return True

    def hold(self, key: str, seconds: float) -> None:
        """Take nothing for `key` for `seconds` (Slack answered 429 with this Retry-After)."""
        with self._lock:
            now = self._clock()
            bucket = self._bucket(key, now)
            bucket.held_until = max(bucket.held_until, now + max(0.0, seconds))
            bucket.tokens = min(bucket.tokens, 1.0)


class SlackLimits:
    """The limits the poster keeps: posts per channel; updates, and reads after a lost answer, per workspace."""

    def __init__(
        self,
        *,
        post_rate: float = POST_RATE,
        post_burst: int = POST_BURST,
        update_rate: float = UPDATE_RATE,
        update_burst: int = UPDATE_BURST,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        #: How a drain waits for the next free token (injectable, like the limiters' clock).
        self.sleep = sleep
        self.posts = RateLimiter(post_rate, post_burst, clock=clock, sleep=sleep)
        self.updates = RateLimiter(update_rate, update_burst, clock=clock, sleep=sleep)
        self.reads = RateLimiter(READ_RATE, READ_BURST, clock=clock, sleep=sleep)

    def limiter_for(self, method: str) -> RateLimiter:
        if method.startswith("conversations."):
            return self.reads
        return self.updates if method == "chat.update" else self.posts

    def key_for(self, method: str, channel: str) -> str:
        """Posts are limited per channel; updates and reads per workspace (one key per method)."""
        return channel if method in ("chat.postMessage", "files.upload") else method
