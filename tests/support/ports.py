"""Loopback ports for the servers tests and benchmarks start."""

from __future__ import annotations

import random
import socket
import threading
from pathlib import Path

#: Linux's default ephemeral range, when /proc does not say.
_DEFAULT_EPHEMERAL = (32768, 60999)
#: Below this, ports belong to well-known services.
_LOWEST = 10000

_handed_out: set[int] = set()
_lock = threading.Lock()


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return _DEFAULT_EPHEMERAL


def free_port() -> int:
    """A loopback port nobody listens on now, and that the OS will not give anyone else in the meantime.

    The port is taken below the ephemeral range: a port the OS picked (bind to port 0) was handed back
    free, and the next server started on port 0 (a stand-in in the same test) or an outgoing connection
    could be given it before the bot under test binds it, which failed a start with "address already in
    use". Outside that range only an explicit bind can take it; ports already handed out in this process
    are never handed out again, and a random pick keeps parallel runs apart.
    """
    low, _ = _ephemeral_range()
    top = low if low > _LOWEST + 1000 else 65535
    with _lock:
        for _ in range(200):
            port = random.randrange(_LOWEST, top)
            if port in _handed_out:
                continue
            with socket.socket() as probe:
                try:
                    probe.bind(("127.0.0.1", port))
                except OSError:
                    continue
            _handed_out.add(port)
            return port
    raise RuntimeError(f"no free loopback port between {_LOWEST} and {top}")
