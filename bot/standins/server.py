"""Threaded local HTTP server plumbing shared by the vendor stand-ins.

A stand-in answers on 127.0.0.1 with the vendor's wire format, records every request it
receives, and can be told to misbehave on its next requests (fault injection) so tests, the
sandbox and benchmarks exercise the real client libraries against realistic failures.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit

log = logging.getLogger(__name__)

#: The route kind a fault may name to match any route of a stand-in.
ANY_ROUTE = "*"
#: Where every stand-in listens: this machine only.
HOST = "127.0.0.1"


class Headers(Mapping[str, str]):
    """Request headers, read case-insensitively as HTTP means them."""

    def __init__(self, pairs: Iterator[tuple[str, str]] | list[tuple[str, str]]):
        self._items = {name.lower(): (name, value) for name, value in pairs}

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()][1]

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Headers({dict(self.items())!r})"


@dataclass(frozen=True)
class Fault:
    """How a stand-in misbehaves on one request."""

    #: Answer with this HTTP status and the vendor's error body for it (None: answer normally).
    status: int | None = None
    #: Seconds the client should wait, sent the way the vendor sends it (Retry-After, ...).
    retry_after: float | None = None
    #: Seconds to wait before answering: longer than the client timeout makes a slow vendor.
    delay: float = 0.0
    #: Send an invalid JSON body (on a normal answer the work is still done: outcome unknown).
    malformed: bool = False
    #: Close the connection without any answer, before doing the work.
    drop: bool = False
    #: A JSON body to answer with instead of the vendor's usual error body.
    body: Any = None
    #: Answer normally, then close the kept-alive connection without a word (a server's keep-alive limit).
    hang_up: bool = False


@dataclass
class Reply:
    """One HTTP answer a stand-in sends."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> Reply:
        """Answer with a JSON body."""
        return cls(
            status,
            json.dumps(payload).encode(),
            {"Content-Type": "application/json; charset=utf-8", **(headers or {})},
        )


@dataclass(frozen=True)
class RecordedRequest:
    """One request a stand-in received, and what it answered."""

    method: str
    #: The path without the query string.
    path: str
    query: Mapping[str, str]
    headers: Headers
    body: bytes
    #: The body parsed: a dict for form or JSON objects, any JSON value, or None if unparsed.
    data: Any
    received_at: datetime
    #: Which route of the stand-in it matched (e.g. "messages.create", "chat.postMessage"); None if none.
    route: str | None
    #: The injected fault applied to it, if any.
    fault: Fault | None
    #: The HTTP status answered; None when the connection was dropped.
    status: int | None
    #: The answer body parsed as JSON, when it was JSON.
    response: Any
    #: The caller's port: requests that share one are on one kept-alive connection.
    client_port: int = 0


class RequestBodyError(ValueError):
    """The request body could not be parsed as its Content-Type says."""


def parse_body(content_type: str, body: bytes) -> Any:
    """Parse a JSON or form body; repeated form fields become lists."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    if not body:
        return {}
    if media_type == "application/json":
        try:
            return json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise RequestBodyError(f"invalid JSON body: {error}") from error
    if media_type in ("application/x-www-form-urlencoded", ""):
        return _pairs_to_dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    return None


def _pairs_to_dict(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name, value in pairs:
        if name in result:
            previous = result[name]
            result[name] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            result[name] = value
    return result


class StandinServer(ABC):
    """A vendor API stand-in on 127.0.0.1 with a random port, served from a background thread.

    Subclasses implement `route`, `handle` and `fault_reply`. Use as a context manager or call
    `start()` and `stop()`. Hooks in `on_request` are called with each `RecordedRequest` on the
    server thread after the answer was sent; hand slow work to another thread.
    """

    #: Route kinds `fail_next` accepts (besides ANY_ROUTE); subclasses list theirs.
    routes: frozenset[str] = frozenset()

    def __init__(self) -> None:
        self.on_request: list[Callable[[RecordedRequest], None]] = []
        self._lock = threading.Lock()
        self._received = threading.Condition(self._lock)
        self._requests: list[RecordedRequest] = []
        self._faults: dict[str, deque[Fault]] = {}
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> Self:
        """Listen on a free port and serve in a daemon thread."""
        if self._httpd is not None:
            return self
        self._stopping.clear()
        self._httpd = _Server((HOST, 0), _handler_for(self))
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{type(self).__name__}:{self._httpd.server_address[1]}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket; delayed answers are abandoned."""
        if self._httpd is None:
            return
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The base URL, e.g. http://127.0.0.1:54321 (no trailing slash)."""
        if self._httpd is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return f"http://{HOST}:{self._httpd.server_port}"

    # -- recording -------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def requests_for(self, route: str) -> list[RecordedRequest]:
        """The requests that matched one route kind, oldest first."""
        with self._lock:
            return [r for r in self._requests if r.route == route]

    def wait_for_requests(self, route: str, count: int = 1, timeout: float = 5.0) -> list[RecordedRequest]:
        """Block until `count` requests matched `route`, then return them; TimeoutError if not."""
        deadline = time.monotonic() + timeout
        with self._received:
            while True:
                matched = [r for r in self._requests if r.route == route]
                if len(matched) >= count:
                    return matched
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"{len(matched)} of {count} {route} requests after {timeout}s")
                self._received.wait(remaining)

    def forget_requests(self) -> None:
        """Drop the recorded requests (a long sandbox run would otherwise keep them all)."""
        with self._lock:
            self._requests.clear()

    def _record(self, request: RecordedRequest) -> None:
        with self._received:
            self._requests.append(request)
            self._received.notify_all()

    # -- fault injection -------------------------------------------------------------------

    def fail_next(
        self,
        route: str,
        status: int | None = None,
        *,
        times: int = 1,
        retry_after: float | None = None,
        delay: float = 0.0,
        malformed: bool = False,
        drop: bool = False,
        body: Any = None,
        hang_up: bool = False,
    ) -> None:
        """Make the next `times` requests to `route` (or ANY_ROUTE) misbehave as described.

        Faults queue up in order; a request takes the first queued fault of its route, else the
        first of ANY_ROUTE.
        """
        if route != ANY_ROUTE and route not in self.routes:
            raise ValueError(f"unknown route {route!r}; known: {sorted(self.routes)}")
        if status is None and not (delay or malformed or drop or hang_up or body is not None):
            raise ValueError("fail_next needs a status, delay, malformed, drop, hang_up or body")
        if times < 1:
            raise ValueError("times must be at least 1")
        fault = Fault(status, retry_after, delay, malformed, drop, body, hang_up)
        with self._lock:
            self._faults.setdefault(route, deque()).extend([fault] * times)

    def clear_faults(self) -> None:
        """Forget every fault not yet used."""
        with self._lock:
            self._faults.clear()

    def _take_fault(self, route: str | None) -> Fault | None:
        with self._lock:
            for kind in (route, ANY_ROUTE):
                queue = self._faults.get(kind) if kind is not None else None
                if queue:
                    return queue.popleft()
        return None

    # -- what subclasses implement ---------------------------------------------------------

    @abstractmethod
    def route(self, method: str, path: str) -> tuple[str, dict[str, str]] | None:
        """Name the route kind and path parameters for a request, or None if not served."""

    @abstractmethod
    def handle(self, route: str, params: dict[str, str], request: RecordedRequest) -> Reply:
        """Do the work of one request and answer as the vendor would."""

    @abstractmethod
    def fault_reply(self, route: str | None, fault: Fault) -> Reply:
        """The vendor's answer for an injected error status."""

    def not_found(self, method: str, path: str) -> Reply:
        """The vendor's answer for a path it does not serve."""
        return Reply.json(404, {"error": "not_found", "path": path})

    # -- serving ---------------------------------------------------------------------------

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        received_at = datetime.now(UTC)
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        split = urlsplit(handler.path)
        headers = Headers(list(handler.headers.items()))
        try:
            data = parse_body(headers.get("Content-Type", ""), body)
        except RequestBodyError:
            data = None
        matched = self.route(handler.command, split.path)
        route, params = matched if matched else (None, {})
        fault = self._take_fault(route)
        request = RecordedRequest(
            client_port=handler.client_address[1],
            method=handler.command,
            path=split.path,
            query=_pairs_to_dict(parse_qsl(split.query, keep_blank_values=True)),
            headers=headers,
            body=body,
            data=data,
            received_at=received_at,
            route=route,
            fault=fault,
            status=None,
            response=None,
        )

        if fault is not None and fault.delay:
            self._stopping.wait(fault.delay)
        if fault is not None and (fault.drop or self._stopping.is_set()):
            handler.close_connection = True
            self._record(request)
            self._call_hooks(request)
            return

        if matched is None:
            reply = self.not_found(handler.command, split.path)
        elif fault is not None and (fault.status is not None or fault.body is not None):
            reply = self.fault_reply(route, fault)
        else:
            try:
                reply = self.handle(route, params, request)  # type: ignore[arg-type]  # route is None only when nothing matched, answered above
            except Exception:  # a stand-in bug must show as a 500, not hang the client
                log.exception("%s failed on %s %s", type(self).__name__, handler.command, handler.path)
                reply = Reply.json(500, {"error": "standin_crashed"})
        if fault is not None and fault.malformed:
            reply = Reply(reply.status, _garble(reply.body), reply.headers)

        try:
            response = json.loads(reply.body) if reply.body else None
        except (UnicodeDecodeError, json.JSONDecodeError):
            response = None
        request = replace(request, status=reply.status, response=response)
        # Recorded before answering, so a client that got its answer finds its request here.
        self._record(request)

        handler.send_response(reply.status)
        for name, value in reply.headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(reply.body)))
        handler.end_headers()
        if handler.command != "HEAD" and reply.body:
            handler.wfile.write(reply.body)
        handler.wfile.flush()
        if fault is not None and fault.hang_up:
            handler.close_connection = True
        self._call_hooks(request)

    def _call_hooks(self, request: RecordedRequest) -> None:
        for hook in list(self.on_request):
            try:
                hook(request)
            except Exception:  # a broken hook must not take the stand-in down with it
                log.exception("on_request hook %r failed", hook)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog of 5 drops connections under a burst of concurrent
    # clients (benchmarks, pooled senders), which then look like connect timeouts.
    request_queue_size = 128


def _garble(body: bytes) -> bytes:
    """Cut a JSON body so it no longer parses."""
    return body[: max(1, len(body) // 2)] if len(body) > 1 else b"{"


def _handler_for(standin: StandinServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = f"followup-{type(standin).__name__}"
        # Keep-alive, as the real APIs do: clients reuse pooled connections instead of paying a
        # connect (and this server a thread) per request. Every answer carries Content-Length.
        protocol_version = "HTTP/1.1"
        # Headers and body go out in two writes; without this, Nagle holds the body back until the
        # client's delayed ACK of the headers (about 40 ms) on every kept-alive request.
        disable_nagle_algorithm = True

        def do_GET(self) -> None:
            standin._serve(self)

        do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_GET

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("%s: " + format, type(standin).__name__, *args)

    return Handler
