"""Durations as people write them in playbooks: 30s, 15m, 2h, 1d (and combinations like 1d12h)."""

from __future__ import annotations

import re
from datetime import timedelta

_PART = re.compile(r"(\d+)\s*([smhdw])")
_WHOLE = re.compile(r"^\s*(?:\d+\s*[smhdw]\s*)+$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class InvalidDuration(ValueError):
    """A duration must look like 30s, 15m, 2h, 1d or 1w (or a sum such as 1d12h); 0 is written 0s."""


def parse_duration(text: str | int) -> timedelta:
    """Turn '1d12h' into a timedelta; raise InvalidDuration with a readable message otherwise."""
    if isinstance(text, bool) or not isinstance(text, (str, int)):
        raise InvalidDuration(f"{text!r} is not a duration; write it like 30s, 15m, 2h or 1d")
    if isinstance(text, int):
        if text == 0:
            return timedelta(0)
        raise InvalidDuration(f"{text!r} has no unit; write it like {text}s, {text}m, {text}h or {text}d")
    lowered = text.strip().lower()
    if not _WHOLE.match(lowered):
        raise InvalidDuration(f"{text!r} is not a duration; write it like 30s, 15m, 2h or 1d")
    seconds = sum(int(n) * _UNIT_SECONDS[unit] for n, unit in _PART.findall(lowered))
    return timedelta(seconds=seconds)


def format_duration(delta: timedelta) -> str:
    """Write a timedelta back the way playbooks do (the largest units first)."""
    seconds = int(delta.total_seconds())
    if seconds == 0:
        return "0s"
    parts = []
    for unit in ("d", "h", "m", "s"):
        size = _UNIT_SECONDS[unit]
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts)
