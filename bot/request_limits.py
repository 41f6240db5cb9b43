"""The HTTP edge's limits: how long a client may take to send a request, how big it may be, how many may be open.

uvicorn (0.54, with h11) starts no timer before a connection's first response: a client that trickles its
headers or its body holds its connection for as long as it likes, and enough such clients lock every vendor
out. `bounded_protocol` gives uvicorn an HTTP protocol that cuts them off with a JSON reason, makes room for
a new connection by closing the one that has kept the server waiting longest, and counts what it refused,
so that `followup run` logs one summary line per interval instead of one line per refusal.
"""

from __future__ import annotations

import asyncio
import http
import json
import logging
import threading
from collections import Counter
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger(__name__)

#: The most asyncio's socket transport hands over in one read. h11's own buffer limit is set this far above
#: the header limit, so the header-size check here always answers first (431 with a reason, not h11's 400).
READ_CHUNK = 256 * 1024
#: How long a refused connection is still read, what arrives thrown away, after its answer went out: closing
#: at once with unread bytes makes the kernel send a reset, and the client would not see the answer.
LINGER_SECONDS = 1.0


@dataclass(frozen=True)
class RequestLimits:
    """What one connection may take of the server (the README's "Request limits" says how to set them)."""

    #: Seconds from a connection's opening (or a kept-alive connection's next first byte) to its complete headers.
    header_timeout: float = 10.0
    #: Seconds from the headers to the last byte of the body.
    body_timeout: float = 30.0
    #: Seconds an idle kept-alive connection stays open.
    keep_alive_timeout: float = 5.0
    #: Connections open at once; past it the longest-waiting one is closed, or the newcomer refused with 503.
    max_connections: int = 200
    #: The request line and headers together.
    max_header_bytes: int = 16 * 1024
    #: Any body, whatever the route: each route has its own smaller limit too (handlers.http_edge).
    max_body_bytes: int = 20 * 1024 * 1024
    #: How often the refusals of the last interval are summed up in the log.
    summary_seconds: float = 60.0


class Refusal(StrEnum):
    """Why the edge refused a connection or a request before the app saw all of it."""

    #: The request line and headers did not all arrive within header_timeout.
    HEADER_TIMEOUT = "headers too slow (408)"
    #: The body did not all arrive within body_timeout.
    BODY_TIMEOUT = "body too slow (408)"
    #: The request line and headers passed max_header_bytes.
    HEADERS_TOO_LARGE = "headers too large (431)"
    #: The body (as declared, or as it arrived) passed max_body_bytes.
    BODY_TOO_LARGE = "body too large (413)"
    #: Not HTTP/1.1 as h11 reads it.
    MALFORMED = "malformed (400)"
    #: max_connections were open and every one had a whole request in the app.
    TOO_MANY_CONNECTIONS = "too many connections (503)"
    #: Closed to make room for a new connection: of all open ones, it had kept the server waiting longest.
    MADE_ROOM = "closed to make room (408)"


def describe(counts: Counter[Refusal]) -> str:
    """'3 connections or requests: 2 headers too slow (408), 1 body too large (413)', largest count first."""
    total = sum(counts.values())
    parts = ", ".join(f"{count} {refusal.value}" for refusal, count in counts.most_common())
    return f"{total} connection{'s' if total != 1 else ''} or request{'s' if total != 1 else ''}: {parts}"


class RefusalLog:
    """What the edge refused: counted as it happens (any thread), said in one line per interval and at stop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._recent: Counter[Refusal] = Counter()
        self._total: Counter[Refusal] = Counter()

    def count(self, refusal: Refusal) -> None:
        with self._lock:
            self._recent[refusal] += 1
            self._total[refusal] += 1

    def totals(self) -> dict[Refusal, int]:
        with self._lock:
            return dict(self._total)

    def log_interval(self, seconds: float) -> None:
        """Log what was refused since the last call, if anything (a scheduler job calls this each interval)."""
        with self._lock:
            recent, self._recent = self._recent, Counter()
        if recent:
            log.warning("HTTP edge refused %s in the last %g s", describe(recent), seconds)

    def log_total(self) -> None:
        """Log what was refused since the server started (at stop)."""
        with self._lock:
            total = Counter(self._total)
        log.info("HTTP edge refused %s since start", describe(total) if total else "nothing")


class QuietPerRequestWarnings(logging.Filter):
    """Drop uvicorn's warnings that any client can set off once per request: the refusals are counted instead.

    Installed on the "uvicorn.error" logger; everything else it says (startup, shutdown, the app's
    exceptions) goes through.
    """

    PER_REQUEST = (
        "Invalid HTTP request received.",
        "Unsupported upgrade request.",
        "No supported WebSocket library detected",
        "Exceeded concurrency limit.",
    )

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.PER_REQUEST)


def answer(status: int, reason: str, *, retry_after: bool = False) -> bytes:
    """A whole HTTP/1.1 response with a JSON reason that closes the connection, as bytes for the socket."""
    body = json.dumps({"error": reason}).encode()
    lines = [
        f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}",
        "content-type: application/json",
        f"content-length: {len(body)}",
        "connection: close",
        *(["retry-after: 1"] if retry_after else []),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + body


class _Edge:
    """What every connection of one server shares: the limits, the refusal log, the connections open now."""

    def __init__(self, limits: RequestLimits, refusals: RefusalLog) -> None:
        self.limits = limits
        self.refusals = refusals
        self.open: set[BoundedH11Protocol] = set()
        self.lingering = 0

    def longest_waiting(self) -> BoundedH11Protocol | None:
        """The open connection that has waited longest on its client (for headers, a body or a next request)."""
        waiting = [connection for connection in self.open if connection.waiting_since is not None]
        return min(waiting, key=lambda connection: connection.waiting_since or 0.0, default=None)


class _WatchedConnection(h11.Connection):
    """h11's server side, showing its protocol each request's headers, body and end as they are parsed."""

    def __init__(self, protocol: BoundedH11Protocol, max_incomplete_event_size: int) -> None:
        super().__init__(h11.SERVER, max_incomplete_event_size=max_incomplete_event_size)
        self._protocol = protocol

    def next_event(self) -> Any:
        event = super().next_event()
        self._protocol.watch(event)
        return event


class BoundedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with deadlines for headers and body, size caps, and a cap on open connections.

    A refusal is answered with a JSON reason and `Connection: close`, then the connection is read (and what
    arrives thrown away) for LINGER_SECONDS so the client sees the answer, then closed. `bounded_protocol`
    makes the subclass that uvicorn instantiates, with the server's shared state in `edge`.
    """

    edge: ClassVar[_Edge]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        limits = self.edge.limits
        self.conn = _WatchedConnection(self, limits.max_header_bytes + READ_CHUNK)
        #: The deadline of the phase the request is in: its headers, or its body.
        self._deadline: asyncio.TimerHandle | None = None
        self._linger: asyncio.TimerHandle | None = None
        self._awaiting_headers = True
        self._body_bytes = 0
        #: When the server began waiting on the client (None while the app has a whole request).
        self.waiting_since: float | None = None
        #: What watch() refused, for send_400_response to answer (uvicorn calls it for any parse error).
        self._refusal: tuple[Refusal, int, str] | None = None
        self._lingering = False

    # --- the connection -----------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]  # as uvicorn's own: a Transport, not asyncio's BaseTransport
        super().connection_made(transport)
        edge, limits = self.edge, self.edge.limits
        self.waiting_since = self.loop.time()
        if len(edge.open) >= limits.max_connections:
            victim = edge.longest_waiting()
            if victim is None:
                self._refuse(
                    Refusal.TOO_MANY_CONNECTIONS,
                    503,
                    f"more than {limits.max_connections} connections are open; try again in a moment",
                    retry_after=True,
                )
                return
            victim._refuse(
                Refusal.MADE_ROOM,
                408,
                "closed to make room for another connection: this one had "
                "kept the server waiting longest for its request",
            )
        edge.open.add(self)
        self._set_deadline(limits.header_timeout, self._headers_too_slow)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_deadline()
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
            self.edge.lingering -= 1
        self.edge.open.discard(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            return  # the answer is out; what the client still sends is read only to be thrown away
        limits = self.edge.limits
        if self._awaiting_headers and self._deadline is None:
            # A kept-alive connection's next request: the clock for its headers starts with its first byte.
            self._set_deadline(limits.header_timeout, self._headers_too_slow)
        super().data_received(data)
        if self._awaiting_headers and not self._lingering and len(self.conn.trailing_data[0]) > limits.max_header_bytes:
            self._refuse(
                Refusal.HEADERS_TOO_LARGE,
                431,
                f"the request line and headers are larger than {limits.max_header_bytes} bytes",
            )

    def watch(self, event: Any) -> None:
        """See each event h11 parses before uvicorn acts on it; raise to have the request refused instead."""
        limits = self.edge.limits
        if isinstance(event, h11.Request):
            self._awaiting_headers = False
            self._cancel_deadline()
            self._body_bytes = 0
            # The size as sent, near enough ("NAME: value\r\n" per header): a request that came whole in one
            # read was never measured in data_received.
            size = len(event.method) + len(event.target) + 12 + sum(len(n) + len(v) + 4 for n, v in event.headers)
            if size > limits.max_header_bytes:
                self._refuse_parsed(
                    Refusal.HEADERS_TOO_LARGE,
                    431,
                    f"the request line and headers are larger than {limits.max_header_bytes} bytes",
                )
            declared = next((value for name, value in event.headers if name == b"content-length"), None)
            if declared is not None and declared.isdigit() and int(declared) > limits.max_body_bytes:
                self._refuse_parsed(Refusal.BODY_TOO_LARGE, 413, f"body larger than {limits.max_body_bytes} bytes")
            self._set_deadline(limits.body_timeout, self._body_too_slow)
        elif isinstance(event, h11.Data):
            self._body_bytes += len(event.data)
            if self._body_bytes > limits.max_body_bytes:
                self._refuse_parsed(Refusal.BODY_TOO_LARGE, 413, f"body larger than {limits.max_body_bytes} bytes")
        elif isinstance(event, h11.EndOfMessage):
            self._cancel_deadline()
            self.waiting_since = None  # the whole request is in: from here on the app is the one working

    def _refuse_parsed(self, refusal: Refusal, status: int, reason: str) -> None:
        # Raised out of next_event, uvicorn stops handling the request and calls send_400_response.
        self._refusal = (refusal, status, reason)
        raise h11.RemoteProtocolError(reason, error_status_hint=status)

    def send_400_response(self, msg: str) -> None:
        """Answer what h11 or watch() refused: watch()'s own status and reason, or 400 for malformed HTTP."""
        refusal, status, reason = self._refusal or (Refusal.MALFORMED, 400, "malformed HTTP request")
        self._refusal = None
        self._refuse(refusal, status, reason)

    def on_response_complete(self) -> None:
        self._cancel_deadline()
        if self.conn.their_state is h11.SEND_BODY and not self.transport.is_closing():
            # Answered before the client had sent its whole body (a route's 413, a 401): the rest is not read.
            self.server_state.total_requests += 1
            self._close_after_answer()
            return
        self._awaiting_headers = True
        self.waiting_since = self.loop.time()
        super().on_response_complete()
        if self._awaiting_headers and not self.transport.is_closing() and self.conn.trailing_data[0]:
            # Part of a next request came with this one: it is not idle, its headers' clock runs from now.
            self._unset_keepalive_if_required()
            self._set_deadline(self.edge.limits.header_timeout, self._headers_too_slow)

    def shutdown(self) -> None:
        if self._lingering:
            self.transport.close()
            return
        try:
            super().shutdown()
        except h11.LocalProtocolError:  # a request half-read: there is nothing to finish politely
            self.transport.close()

    # --- refusing -------------------------------------------------------------------------------------

    def _headers_too_slow(self) -> None:
        self._deadline = None
        self._refuse(
            Refusal.HEADER_TIMEOUT,
            408,
            f"the request line and headers did not arrive within {self.edge.limits.header_timeout:g} s",
        )

    def _body_too_slow(self) -> None:
        self._deadline = None
        self._refuse(
            Refusal.BODY_TIMEOUT, 408, f"the request body did not arrive within {self.edge.limits.body_timeout:g} s"
        )

    def _refuse(self, refusal: Refusal, status: int, reason: str, *, retry_after: bool = False) -> None:
        """Answer `status` with `reason` and close, whatever the request's state; the app's part is dropped."""
        if self._lingering or self.transport.is_closing():
            return
        self.edge.refusals.count(refusal)
        self._cancel_deadline()
        self._unset_keepalive_if_required()
        self.edge.open.discard(self)
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            # The app's receive() now hears a disconnect, and whatever it sends is dropped.
            cycle.disconnected = True
            cycle.message_event.set()
            if cycle.response_started:
                self.transport.close()  # half an answer is out: nothing sensible can follow it
                return
        self.transport.write(answer(status, reason, retry_after=retry_after))
        self._close_after_answer()

    def _close_after_answer(self) -> None:
        self._lingering = True
        self._cancel_deadline()
        self.edge.open.discard(self)
        if self.edge.lingering >= self.edge.limits.max_connections:
            self.transport.close()  # a flood: better a reset for some than a file descriptor for each
            return
        self.edge.lingering += 1
        self.flow.resume_reading()
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self._linger = self.loop.call_later(LINGER_SECONDS, self.transport.close)

    def _set_deadline(self, seconds: float, expired: Any) -> None:
        self._cancel_deadline()
        self._deadline = self.loop.call_later(seconds, expired)

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None


def bounded_protocol(limits: RequestLimits, refusals: RefusalLog) -> type[BoundedH11Protocol]:
    """The protocol class for one uvicorn server (`Config(http=...)`): its connections share limits and counts."""
    return type("BoundedH11Protocol", (BoundedH11Protocol,), {"edge": _Edge(limits, refusals)})


def uvicorn_options(limits: RequestLimits, refusals: RefusalLog) -> dict[str, Any]:
    """The uvicorn.Config arguments that put these limits on a server."""
    return {
        "http": bounded_protocol(limits, refusals),
        # No WebSocket route exists; without a protocol for them an upgrade is an ordinary (refused) request.
        "ws": "none",
        "timeout_keep_alive": limits.keep_alive_timeout,
        "h11_max_incomplete_event_size": limits.max_header_bytes + READ_CHUNK,
    }
