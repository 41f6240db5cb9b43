"""The HTTP edge's limits, against a real `followup run` over raw sockets: slow, big and many requests are cut off.

The process runs with short limits (headers within 1 s, a body within 2 s, 50 connections, a summary line
every second), so each case takes about as long as its limit. Every refusal is an HTTP answer with a JSON
reason, followed by the server closing the connection.
"""

from __future__ import annotations

import asyncio
import json
import os
import select
import signal
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from bot.request_limits import Refusal, RefusalLog, RequestLimits, uvicorn_options
from tests.conftest import TEST_BUSINESS
from tests.fakes import WEB_FORM_CONSENT
from tests.support.ports import free_port
from tests.support.processes import start_followup_run, stop, wait_healthy

LEAD_TOKEN = "lead-token"
#: Short limits, so that each slow client is cut off within a test's patience.
LIMITS = {
    "FOLLOWUP_HTTP_HEADER_TIMEOUT": "1",
    "FOLLOWUP_HTTP_BODY_TIMEOUT": "2",
    "FOLLOWUP_HTTP_KEEP_ALIVE_TIMEOUT": "1",
    "FOLLOWUP_HTTP_MAX_CONNECTIONS": "50",
    "FOLLOWUP_HTTP_MAX_HEADER_BYTES": "4096",
    "FOLLOWUP_HTTP_REFUSAL_LOG_SECONDS": "1",
}
#: Longer than any limit above: a test that waits this long for an answer has found a connection left hanging.
PATIENCE = 8.0


@dataclass
class RunningEdge:
    url: str
    port: int
    process: Any
    log: Path

    def output(self) -> str:
        return self.log.read_text()


def start(folder: Path, **extra: str) -> RunningEdge:
    business = folder / "business.yml"
    business.write_text(TEST_BUSINESS)
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{folder / 'followup.db'}",
        "FOLLOWUP_BUSINESS": str(business),
        "PORT": str(port),
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "LEAD_WEBHOOK_TOKEN": LEAD_TOKEN,
        "FOLLOWUP_CLOCK_START": "2026-12-01T09:00:00-06:00",
        **LIMITS,
        **extra,
    }
    log = folder / "run.log"
    process = start_followup_run(env, log, cwd=folder)
    url = f"http://127.0.0.1:{port}"
    wait_healthy(url, process, log=log)
    return RunningEdge(url, port, process, log)


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningEdge]:
    running = start(tmp_path_factory.mktemp("edge"))
    try:
        yield running
    finally:
        stop(running.process)


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=PATIENCE)


def read_until_closed(sock: socket.socket, patience: float = PATIENCE) -> bytes:
    """Everything the server sends until it closes the connection; fail if it keeps it open past `patience`."""
    received = bytearray()
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline:
        readable, _, _ = select.select([sock], [], [], max(deadline - time.monotonic(), 0))
        if not readable:
            continue
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            return bytes(received)
        received.extend(chunk)
    raise AssertionError(f"the server kept the connection open past {patience} s; it sent {bytes(received)!r}")


def status_and_reason(raw: bytes) -> tuple[int, str]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    assert b"content-type: application/json" in head.lower(), head
    return status, json.loads(body)["error"]


def trickle(sock: socket.socket, data: bytes, every: float, patience: float = PATIENCE) -> bytes:
    """Send `data` a byte at a time; stop when the server answers. Returns what was left unsent."""
    deadline = time.monotonic() + patience
    for index in range(len(data)):
        if time.monotonic() > deadline:
            raise AssertionError("the server let a trickling client go on past the test's patience")
        readable, _, _ = select.select([sock], [], [], every)
        if readable:
            return data[index:]
        try:
            sock.sendall(data[index : index + 1])
        except (BrokenPipeError, ConnectionResetError):
            return data[index:]
    return b""


def new_lead(url: str, n: int, timeout: float = 5.0) -> httpx.Response:
    return httpx.post(
        f"{url}/webhooks/leads",
        json={"name": f"Lead {n}", "phone": f"+1312555{n:04d}", **WEB_FORM_CONSENT},
        headers={"Authorization": f"Bearer {LEAD_TOKEN}"},
        timeout=timeout,
    )


LEAD_HEADERS = (
    b"POST /webhooks/leads HTTP/1.1\r\nHost: clinic\r\nAuthorization: Bearer "
    + LEAD_TOKEN.encode()
    + b"\r\nContent-Type: application/json\r\nX-Padding: "
    + b"p" * 200
    + b"\r\n"
)


# --- slow clients ---------------------------------------------------------------------------------


def test_a_connection_that_sends_nothing_is_answered_408_and_closed_after_the_header_timeout(edge):
    with connect(edge.port) as sock:
        status, reason = status_and_reason(read_until_closed(sock))

    assert status == 408 and "headers did not arrive within 1 s" in reason


def test_headers_trickled_slower_than_the_header_timeout_are_cut_off(edge):
    with connect(edge.port) as sock:
        unsent = trickle(sock, LEAD_HEADERS + b"\r\n", every=0.05)
        status, reason = status_and_reason(read_until_closed(sock))

    assert unsent, "the whole request went out: the trickle was not slow enough to test anything"
    assert status == 408 and "headers" in reason


def test_a_body_trickled_slower_than_the_body_timeout_is_cut_off_and_nothing_is_stored(edge):
    body = json.dumps({"name": "Slow Sam", "phone": "+13125559999", **WEB_FORM_CONSENT}).encode()
    with connect(edge.port) as sock:
        sock.sendall(LEAD_HEADERS + b"Content-Length: %d\r\n\r\n" % len(body))
        unsent = trickle(sock, body, every=0.05)
        status, reason = status_and_reason(read_until_closed(sock))

    assert unsent and status == 408 and "body did not arrive within 2 s" in reason
    assert new_lead(edge.url, 1).status_code == 201  # the server is fine, and Sam was never taken in
    assert "Slow Sam" not in edge.output() and "Exception in ASGI application" not in edge.output()


def test_an_idle_kept_alive_connection_is_closed_after_the_keep_alive_timeout(edge):
    with connect(edge.port) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: clinic\r\n\r\n")
        raw = read_until_closed(sock, patience=4)

    assert raw.startswith(b"HTTP/1.1 200") and raw.count(b"HTTP/1.1") == 1


@pytest.mark.parametrize("pipelined", [False, True], ids=["after-the-answer", "with-the-first-request"])
def test_a_kept_alive_connections_next_request_gets_the_header_timeout_too(edge, pipelined):
    first, partial = b"GET /healthz HTTP/1.1\r\nHost: clinic\r\n\r\n", b"GET /healthz HTTP/1.1\r\nHost: cl"
    with connect(edge.port) as sock:
        if pipelined:
            sock.sendall(first + partial)
        else:
            sock.sendall(first)
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
            sock.sendall(partial)
        raw = read_until_closed(sock)

    second = raw[raw.index(b"HTTP/1.1 408") :]
    assert b"headers did not arrive" in second


# --- big requests ---------------------------------------------------------------------------------


def test_a_body_declared_larger_than_any_route_takes_is_refused_413_before_it_is_sent(edge):
    with connect(edge.port) as sock:
        sock.sendall(LEAD_HEADERS + b"Content-Length: %d\r\n\r\n" % (200 * 1024 * 1024))
        status, reason = status_and_reason(read_until_closed(sock))

    assert status == 413 and "body larger than" in reason


def test_a_body_declared_larger_than_its_route_takes_is_refused_413_before_it_is_sent(edge):
    with connect(edge.port) as sock:
        sock.sendall(LEAD_HEADERS + b"Content-Length: %d\r\n\r\n" % (1024 * 1024))
        status, reason = status_and_reason(read_until_closed(sock))

    assert status == 413 and f"body larger than {256 * 1024} bytes" in reason


def test_a_chunked_body_past_the_routes_limit_is_refused_while_it_is_still_coming(edge):
    chunk = b"%x\r\n%s\r\n" % (16 * 1024, b"x" * 16 * 1024)
    sent = 0
    with connect(edge.port) as sock:
        # A small send buffer, so that what counts as sent is near what the server took in (the kernel's
        # buffers on both sides hold megabytes otherwise).
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 32 * 1024)
        sock.sendall(LEAD_HEADERS + b"Transfer-Encoding: chunked\r\n\r\n")
        answered = False
        while sent < 64 * 1024 * 1024 and not answered:
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += 16 * 1024
            answered = bool(select.select([sock], [], [], 0)[0])
        status, reason = status_and_reason(read_until_closed(sock))

    assert status == 413 and "body larger than" in reason
    assert sent < 4 * 1024 * 1024, "the server read megabytes past the route's 256 KB limit before answering"


def test_headers_larger_than_the_limit_get_431(edge):
    with connect(edge.port) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: clinic\r\nX-Big: " + b"b" * 8000 + b"\r\n\r\n")
        status, reason = status_and_reason(read_until_closed(sock))

    assert status == 431 and "larger than 4096 bytes" in reason


def test_malformed_http_gets_400_with_a_reason(edge):
    with connect(edge.port) as sock:
        sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        status, reason = status_and_reason(read_until_closed(sock))

    assert status == 400 and "malformed" in reason


# --- many connections -----------------------------------------------------------------------------


def test_a_thousand_slow_connections_do_not_lock_out_an_ordinary_webhook(tmp_path: Path):
    """With the cap (50) full of clients trickling headers, a new connection closes the longest-waiting one.

    Its own process, with a header timeout far longer than the test, so making room is the only way out.
    """
    running = start(tmp_path, FOLLOWUP_HTTP_HEADER_TIMEOUT="60")
    slow: list[socket.socket] = []
    try:
        for _ in range(1000):
            sock = connect(running.port)
            sock.sendall(b"POST /webhooks/leads HTTP/1.1\r\nHost: clinic\r\n")
            slow.append(sock)

        answer = new_lead(running.url, 2, timeout=5)

        assert answer.status_code == 201
        # The oldest of them were told why they were closed, in JSON, long before their header timeout.
        status, reason = status_and_reason(read_until_closed(slow[0], patience=2))
        assert status == 408 and "to make room" in reason
        time.sleep(1.5)  # a summary interval
    finally:
        for sock in slow:
            sock.close()
        stop(running.process)

    summaries = [line for line in running.output().splitlines() if "HTTP edge refused" in line]
    assert any(Refusal.MADE_ROOM.value in line for line in summaries), summaries


def test_refusals_are_summed_up_once_per_interval_never_a_line_each(edge):
    before = len(edge.output())
    for _ in range(30):
        with connect(edge.port) as sock:
            sock.sendall(b"NOT HTTP\r\n\r\n")
            read_until_closed(sock)
    time.sleep(2.5)  # two summary intervals

    output = edge.output()[before:]
    assert "Invalid HTTP request received" not in output
    summaries = [line for line in output.splitlines() if "HTTP edge refused" in line]
    refused = sum(int(line.split("HTTP edge refused ", 1)[1].split(" ", 1)[0]) for line in summaries)
    assert refused >= 30 and any(Refusal.MALFORMED.value in line for line in summaries)
    assert len(summaries) < refused / 3, summaries


def test_followup_run_logs_the_total_refused_when_it_stops(tmp_path: Path):
    running = start(tmp_path)
    try:
        with connect(running.port) as sock:
            read_until_closed(sock)  # a header timeout
        with connect(running.port) as sock:
            sock.sendall(b"NOT HTTP\r\n\r\n")
            read_until_closed(sock)
    finally:
        assert stop(running.process, signal.SIGTERM)

    [total] = [line for line in running.output().splitlines() if "since start" in line]
    assert "refused 2 connections or requests" in total
    assert f"1 {Refusal.HEADER_TIMEOUT.value}" in total and f"1 {Refusal.MALFORMED.value}" in total


# --- when every connection is being answered ------------------------------------------------------


class HeldApp:
    """An ASGI app whose /hold requests wait until the test lets them go (a slow route)."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.held = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        self.held += 1  # on the server's one event loop: no lock needed
        while scope["path"] == "/hold" and not self.release.is_set():
            await asyncio.sleep(0.01)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})


def test_past_the_cap_with_every_connection_being_answered_a_new_one_gets_503_and_retry_after():
    app, refusals, port = HeldApp(), RefusalLog(), free_port()
    limits = RequestLimits(max_connections=3, header_timeout=5)
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", lifespan="off", **uvicorn_options(limits, refusals)
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    held: list[socket.socket] = []
    try:
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.01)
        for _ in range(3):
            sock = connect(port)
            sock.sendall(b"GET /hold HTTP/1.1\r\nHost: clinic\r\n\r\n")
            held.append(sock)
        while app.held < 3 and time.monotonic() < deadline + PATIENCE:
            time.sleep(0.01)  # until the three requests are in the app, none of them waiting on its client

        with connect(port) as newcomer:
            newcomer.sendall(b"GET /hold HTTP/1.1\r\nHost: clinic\r\n\r\n")
            raw = read_until_closed(newcomer)
        status, reason = status_and_reason(raw)
        app.release.set()
        answers = [read_first_response(sock) for sock in held]
    finally:
        app.release.set()
        for sock in held:
            sock.close()
        server.should_exit = True
        thread.join(timeout=10)

    assert status == 503 and "more than 3 connections" in reason and b"retry-after: 1" in raw.lower()
    assert all(answer.startswith(b"HTTP/1.1 200") for answer in answers)
    assert refusals.totals() == {Refusal.TOO_MANY_CONNECTIONS: 1}


def read_first_response(sock: socket.socket) -> bytes:
    received = b""
    deadline = time.monotonic() + PATIENCE
    while b"\r\n\r\nok" not in received and time.monotonic() < deadline:
        chunk = sock.recv(65536)
        if not chunk:
            break
        received += chunk
    return received
