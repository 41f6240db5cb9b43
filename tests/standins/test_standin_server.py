"""The shared stand-in plumbing: recording, fault queues, hooks, lifecycle."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request

import pytest

from bot.standins.server import ANY_ROUTE, Fault, RecordedRequest, Reply, StandinServer


class EchoStandin(StandinServer):
    """The smallest stand-in: POST /echo answers the form it got."""

    routes = frozenset({"echo"})

    def route(self, method, path):
        return ("echo", {}) if path == "/echo" else None

    def handle(self, route, params, request):
        return Reply.json(200, {"got": request.data})

    def fault_reply(self, route, fault):
        return Reply.json(fault.status or 200, fault.body or {"error": fault.status})


def post(url: str, data: bytes = b"a=1&a=2&b=x", timeout: float = 1.0) -> tuple[int, bytes]:
    request = urllib.request.Request(
        url, data=data, headers={"Content-Type": "application/x-www-form-urlencoded"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@pytest.fixture
def echo():
    with EchoStandin() as standin:
        yield standin


def test_requests_are_recorded_with_parsed_form_and_case_insensitive_headers(echo):
    status, body = post(echo.url + "/echo?q=1")

    assert status == 200
    assert json.loads(body) == {"got": {"a": ["1", "2"], "b": "x"}}
    [request] = echo.requests
    assert request.method == "POST" and request.path == "/echo" and request.query == {"q": "1"}
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert request.route == "echo" and request.status == 200 and request.response == {"got": request.data}
    assert request.received_at.tzinfo is not None


def test_faults_apply_in_order_then_the_route_behaves_again(echo):
    echo.fail_next("echo", status=503, times=2)
    echo.fail_next("echo", body={"custom": True})

    statuses = [post(echo.url + "/echo")[0] for _ in range(4)]

    assert statuses == [503, 503, 200, 200]
    assert [r.fault for r in echo.requests][:3] == [Fault(status=503)] * 2 + [Fault(body={"custom": True})]
    assert json.loads(post(echo.url + "/echo")[1]) == {"got": {"a": ["1", "2"], "b": "x"}}


def test_a_fault_for_any_route_applies_when_the_route_has_none(echo):
    echo.fail_next(ANY_ROUTE, status=500)

    assert post(echo.url + "/echo")[0] == 500


def test_fail_next_rejects_unknown_routes_and_empty_faults(echo):
    with pytest.raises(ValueError, match="unknown route"):
        echo.fail_next("ehco", status=500)
    with pytest.raises(ValueError):
        echo.fail_next("echo")


def test_malformed_sends_a_body_that_is_not_json(echo):
    echo.fail_next("echo", malformed=True)

    status, body = post(echo.url + "/echo")

    assert status == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(body)


def test_dropped_connections_get_no_answer_and_are_recorded_without_status(echo):
    echo.fail_next("echo", drop=True)

    with pytest.raises((ConnectionError, urllib.error.URLError)):
        post(echo.url + "/echo")
    assert echo.requests[-1].status is None


def test_a_delay_past_the_client_timeout_times_out_the_client(echo):
    echo.fail_next("echo", delay=0.5)

    with pytest.raises(TimeoutError):
        post(echo.url + "/echo", timeout=0.1)


def test_hooks_see_each_request_after_it_was_answered(echo):
    seen: list[RecordedRequest] = []
    done = threading.Event()
    echo.on_request.append(lambda r: (seen.append(r), done.set()))
    echo.on_request.insert(0, lambda r: 1 / 0)  # a broken hook does not stop the others

    post(echo.url + "/echo")

    assert done.wait(1)
    assert seen[0].status == 200


def test_wait_for_requests_returns_once_enough_arrived(echo):
    threading.Timer(0.05, post, args=(echo.url + "/echo",)).start()

    assert len(echo.wait_for_requests("echo", 1, timeout=1)) == 1
    with pytest.raises(TimeoutError):
        echo.wait_for_requests("echo", 2, timeout=0.05)


def test_unknown_paths_answer_not_found(echo):
    assert post(echo.url + "/nope")[0] == 404
    assert echo.requests[-1].route is None


def test_stop_is_prompt_even_with_a_delayed_answer_pending():
    standin = EchoStandin().start()
    standin.fail_next("echo", delay=30)

    def post_and_ignore_the_drop() -> None:
        try:
            post(standin.url + "/echo", timeout=5)
        except (ConnectionError, urllib.error.URLError):
            pass

    threading.Thread(target=post_and_ignore_the_drop, daemon=True).start()
    time.sleep(0.1)

    started = time.monotonic()
    standin.stop()
    standin.stop()

    assert time.monotonic() - started < 2
    with pytest.raises(RuntimeError):
        standin.url  # noqa: B018 - reading the property is what raises
