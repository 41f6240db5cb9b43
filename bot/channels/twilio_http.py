"""twilio-python's HttpClient over keep-alive connections it holds itself.

twilio-python lets an application bring its own HTTP client (`Client(http_client=...)`). Its
default one goes through a requests Session: every call re-reads the whole process environment
for proxy settings, checks the CA bundle's path on disk and prepares the request in several
layers, and its pool keeps `cpu_count + 4` connections to Twilio (6 on two cores), so with more
sender threads than that the extra connections are closed after each text and the next one pays a
new TCP and TLS handshake. Going through urllib3's pool directly (this module's previous form)
removed requests' layers but kept urllib3's own (its Retry, Timeout, pool-key and response
objects, and headers and body sent in two writes): about a third of a send's CPU.

This client keeps `http.client` connections itself, one per thread that is sending at the moment,
handed back to an idle stack after each answer and reused by the next text, whichever thread sends
it. A kept connection the server closed while idle (a keep-alive limit) is noticed before it is
used and replaced; a request is never repeated, since a text whose answer was lost must not be sent
twice blindly (the core decides). Proxy (`HTTPS_PROXY`, `NO_PROXY`) and CA settings are read once.
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import os
import select
import socket
import ssl
import threading
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import Message
from urllib.parse import urlencode, urlsplit

from twilio.http import HttpClient
from twilio.http.response import Response

from bot.channels.twilio_errors import TwilioAnswerLost, TwilioUnreachable

_logger = logging.getLogger("twilio.http_client")

_JSON_TYPES = ("application/json", "application/scim+json")
#: A connection idle longer than this is closed rather than reused: servers and load balancers drop
#: idle keep-alive connections after a while, and one dropped just as a text is written loses its answer.
IDLE_SECONDS = 30.0


@dataclass(frozen=True)
class RawAnswer:
    """One answer as bytes, headers read case-insensitively."""

    status: int
    headers: Message
    data: bytes


class _Connection:
    """One kept connection and when it was last handed back."""

    __slots__ = ("http", "idle_since")

    def __init__(self, connection: http.client.HTTPConnection):
        self.http = connection
        self.idle_since = 0.0


class KeptAliveTwilioHttpClient(HttpClient):
    """Keeps up to `connections` idle keep-alive connections to Twilio, shared by all threads.

    Never retries. Failures are `TwilioUnreachable` when nothing reached Twilio and
    `TwilioAnswerLost` when the request may have been taken.
    """

    def __init__(self, base_url: str, *, timeout: float, connections: int = 10):
        super().__init__(_logger, False, timeout)
        parts = urlsplit(base_url)
        self._scheme = parts.scheme
        self._host = parts.hostname or ""
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._origin = f"{parts.scheme}://{parts.netloc}"
        self._keep = max(1, connections)
        self._idle: list[_Connection] = []
        self._lock = threading.Lock()
        self._last = threading.local()
        self._tls: ssl.SSLContext | None = None
        if self._scheme == "https":
            ca = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("SSL_CERT_FILE")
            self._tls = ssl.create_default_context(cafile=ca or _certifi_bundle())
        proxy = urllib.request.getproxies().get(self._scheme)
        self._proxy = urlsplit(proxy) if proxy and not urllib.request.proxy_bypass(self._host) else None

    def request(
        self,
        method: str,
        url: str,
        params: Mapping[str, object] | None = None,
        data: Mapping[str, object] | None = None,
        headers: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,  # never followed: Twilio's API answers without redirects
    ) -> Response:
        if timeout is None:
            timeout = self.timeout
        elif timeout <= 0:
            raise ValueError(timeout)
        sent_headers = dict(headers or {})
        if auth:
            sent_headers["Authorization"] = _basic(auth)
        body = None
        if data is not None:
            if sent_headers.get("Content-Type") in _JSON_TYPES:
                body = json.dumps(data).encode()
            else:
                body = urlencode(data, doseq=True).encode()
                sent_headers["Content-Type"] = "application/x-www-form-urlencoded"
        if params:
            url = f"{url}{'&' if '?' in url else '?'}{urlencode(params, doseq=True)}"
        if self.logger.isEnabledFor(logging.INFO):
            self.log_request({"method": method.upper(), "url": url, "params": None, "headers": headers})
        self._last.headers = {}
        answer = self._exchange(method.upper(), url, body, sent_headers, timeout)
        response = Response(answer.status, answer.data.decode("utf-8", errors="replace"), dict(answer.headers.items()))
        self._last.headers = response.headers
        if self.logger.isEnabledFor(logging.INFO):
            self.logger.info("Response Status Code: %s", response.status_code)
        return response

    def raw_get(self, url: str, *, auth: tuple[str, str] | None = None) -> RawAnswer:
        """GET a URL as bytes, redirects not followed (media: the caller decides where credentials go).

        URLs on another host than Twilio's (its media CDN) go over a connection of their own, not kept.
        """
        headers = {"Authorization": _basic(auth)} if auth else {}
        timeout = self.timeout or 10.0
        parts = urlsplit(url)
        if f"{parts.scheme}://{parts.netloc}" == self._origin:
            return self._exchange("GET", url, None, headers, timeout)
        other = KeptAliveTwilioHttpClient(f"{parts.scheme}://{parts.netloc}", timeout=timeout, connections=1)
        try:
            return other._exchange("GET", url, None, headers, timeout)
        finally:
            other.close()

    @property
    def last_headers(self) -> Mapping[str, str]:
        """The headers of this thread's last answer (Retry-After lives there; Twilio's errors drop them)."""
        return getattr(self._last, "headers", {}) or {}

    def close(self) -> None:
        """Close the idle connections (those in use close when their answer is read)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.http.close()

    # -- the exchange ----------------------------------------------------------------------

    def _exchange(
        self, method: str, url: str, body: bytes | None, headers: Mapping[str, str], timeout: float
    ) -> RawAnswer:
        parts = urlsplit(url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        if self._proxy is not None and self._scheme == "http":
            target = url  # a plain-HTTP proxy takes the absolute URL
        connection = self._take(timeout)
        try:
            connection.http.request(method, target or "/", body=body, headers=dict(headers))
            answer = connection.http.getresponse()
            data = answer.read()
        except (OSError, http.client.HTTPException) as error:
            connection.http.close()
            raise TwilioAnswerLost(f"{type(error).__name__}: {error}") from error
        except BaseException:
            connection.http.close()
            raise
        if answer.will_close:
            connection.http.close()
        else:
            self._give_back(connection)
        return RawAnswer(answer.status, answer.msg, data)

    def _take(self, timeout: float) -> _Connection:
        """An idle connection still open at the other end, else a new one."""
        while True:
            with self._lock:
                connection = self._idle.pop() if self._idle else None
            if connection is None:
                return self._open(timeout)
            if time.monotonic() - connection.idle_since < IDLE_SECONDS and _still_open(connection.http.sock):
                connection.http.sock.settimeout(timeout)  # type: ignore[union-attr]  # _still_open checked it
                return connection
            connection.http.close()

    def _give_back(self, connection: _Connection) -> None:
        connection.idle_since = time.monotonic()
        with self._lock:
            if len(self._idle) < self._keep:
                self._idle.append(connection)
                return
        connection.http.close()

    def _open(self, timeout: float) -> _Connection:
        host, port = (self._proxy.hostname or "", self._proxy.port or 80) if self._proxy else (self._host, self._port)
        made: http.client.HTTPConnection
        if self._tls is not None:
            made = _NoDelayHTTPSConnection(host, port, timeout=timeout, context=self._tls)
            if self._proxy is not None:
                made.set_tunnel(self._host, self._port)
        else:
            made = _NoDelayHTTPConnection(host, port, timeout=timeout)
        try:
            made.connect()
        except (OSError, http.client.HTTPException) as error:  # refused, unresolvable, proxy refused, no handshake
            made.close()
            raise TwilioUnreachable(f"{type(error).__name__}: {error}") from error
        return _Connection(made)


#: http.client's own (not in its type stubs): writes the headers put so far, then the body.
_SEND_OUTPUT = vars(http.client.HTTPConnection)["_send_output"]


class _NoDelayHTTPConnection(http.client.HTTPConnection):
    """A request's headers and body in one write (one packet, one system call), without Nagle's delay."""

    def connect(self) -> None:
        super().connect()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _send_output(self, message_body: object = None, encode_chunked: bool = False) -> None:
        # http.client writes the headers, then the body: with TCP_NODELAY two packets for every text.
        if not isinstance(message_body, bytes) or encode_chunked:
            _SEND_OUTPUT(self, message_body, encode_chunked)
            return
        lines: list[bytes] = vars(self)["_buffer"]  # the request line and headers http.client has put
        lines.extend((b"", b""))
        message = b"\r\n".join(lines) + message_body
        del lines[:]
        self.send(message)


class _NoDelayHTTPSConnection(_NoDelayHTTPConnection, http.client.HTTPSConnection):
    """The same over TLS (super().connect() is HTTPSConnection's: tunnel, then the handshake)."""


def _still_open(sock: socket.socket | None) -> bool:
    """Whether an idle connection is still open: nothing to read on it (a close would be readable, as EOF)."""
    if sock is None:
        return False
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return not poller.poll(0)


def _basic(auth: tuple[str, str]) -> str:
    return "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()


def _certifi_bundle() -> str | None:
    try:
        import certifi
    except ImportError:  # the system's own store then
        return None
    return certifi.where()
