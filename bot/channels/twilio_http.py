"""twilio-python's HttpClient on one urllib3 connection pool, without requests' per-call overhead.

twilio-python lets an application bring its own HTTP client (`Client(http_client=...)`); its
default one goes through a requests Session, which for every call re-reads the whole process
environment for proxy settings, checks the CA bundle's path on disk and prepares the request in
several layers. Measured against the local Twilio stand-in that was about two thirds of a send's
CPU (docs/benchmarks.md), and 2,000 texts due the same second waited on it. This client keeps
twilio-python's request building, response parsing and errors, and does the transport with the
urllib3 pool requests itself uses underneath: proxy and CA settings are read once, when it is built.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import urllib.request
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit

import certifi
import urllib3
from twilio.http import HttpClient
from twilio.http.response import Response

_logger = logging.getLogger("twilio.http_client")

_JSON_TYPES = ("application/json", "application/scim+json")


class PooledTwilioHttpClient(HttpClient):
    """Keeps up to `connections` keep-alive connections to Twilio, shared by all threads.

    Never retries: a send whose answer was lost must not be repeated blindly (the core decides).
    Transport failures surface as urllib3's own exceptions: `NewConnectionError` and
    `ConnectTimeoutError` when nothing reached Twilio, `ReadTimeoutError` and `ProtocolError` when
    the request may have been taken.
    """

    def __init__(self, base_url: str, *, timeout: float, connections: int = 10):
        super().__init__(_logger, False, timeout)
        self._pool = _pool_manager(base_url, connections)
        self._last = threading.local()

    def request(
        self,
        method: str,
        url: str,
        params: Mapping[str, object] | None = None,
        data: Mapping[str, object] | None = None,
        headers: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        if timeout is None:
            timeout = self.timeout
        elif timeout <= 0:
            raise ValueError(timeout)
        sent_headers = dict(headers or {})
        if auth:
            sent_headers.update(urllib3.make_headers(basic_auth=f"{auth[0]}:{auth[1]}"))
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
        answer = self._pool.request(
            method.upper(),
            url,
            body=body,
            headers=sent_headers,
            timeout=urllib3.Timeout(connect=timeout, read=timeout),
            retries=False,
            redirect=allow_redirects,
        )
        response = Response(answer.status, answer.data.decode("utf-8", errors="replace"), dict(answer.headers))
        self._last.headers = response.headers
        if self.logger.isEnabledFor(logging.INFO):
            self.logger.info("Response Status Code: %s", response.status_code)
        return response

    def raw_get(self, url: str, *, auth: tuple[str, str] | None = None) -> urllib3.BaseHTTPResponse:
        """GET a URL as bytes, redirects not followed (media: the caller decides where credentials go)."""
        headers = urllib3.make_headers(basic_auth=f"{auth[0]}:{auth[1]}") if auth else {}
        return self._pool.request(
            "GET",
            url,
            headers=headers,
            retries=False,
            redirect=False,
            timeout=urllib3.Timeout(connect=self.timeout, read=self.timeout),
        )

    @property
    def last_headers(self) -> Mapping[str, str]:
        """The headers of this thread's last answer (Retry-After lives there; Twilio's errors drop them)."""
        return getattr(self._last, "headers", {}) or {}


def _pool_manager(base_url: str, connections: int) -> urllib3.PoolManager:
    """A pool for Twilio's host, through the proxy the environment names for it (HTTPS_PROXY, NO_PROXY)."""
    options: dict[str, Any] = {
        "num_pools": 4,
        "maxsize": connections,
        "ca_certs": os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("SSL_CERT_FILE") or certifi.where(),
    }
    parts = urlsplit(base_url)
    proxy = urllib.request.getproxies().get(parts.scheme)
    if proxy and not urllib.request.proxy_bypass(parts.hostname or ""):
        return urllib3.ProxyManager(proxy, **options)
    return urllib3.PoolManager(**options)
