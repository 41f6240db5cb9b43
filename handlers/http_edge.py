"""What every HTTP route shares: reading bodies within limits, JSON errors, token and signature checks."""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.datastructures import FormData
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from twilio.request_validator import RequestValidator

#: Webhook bodies bigger than this are refused before parsing (an inbound email may carry attachments).
MAX_BODY = 256 * 1024
MAX_EMAIL_BODY = 20 * 1024 * 1024


class BadRequest(Exception):
    """The request cannot be used; the status and reason go back to the caller as JSON."""

    def __init__(self, status: int, reason: str, **extra: Any):
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.extra = extra

    def response(self) -> JSONResponse:
        return JSONResponse({"error": self.reason, **self.extra}, status_code=self.status)


def database_busy() -> JSONResponse:
    """Every connection of the web pool is in use: the caller retries (vendors do), nothing was changed."""
    return JSONResponse(
        {"error": "the database is busy; try again in a moment"}, status_code=503, headers={"Retry-After": "1"}
    )


def endpoint(handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    """A route's handler, answering a refused request with its JSON reason and a full pool with 503."""

    async def answer(request: Request) -> Response:
        try:
            return await handler(request)
        except BadRequest as error:
            return error.response()
        except PoolTimeout:
            return database_busy()

    return answer


async def read_body(request: Request, limit: int = MAX_BODY) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise BadRequest(413, f"body larger than {limit} bytes")
    body = bytearray()
    try:
        async for chunk in request.stream():
            body.extend(chunk)
            if len(body) > limit:
                raise BadRequest(413, f"body larger than {limit} bytes")
    except ClientDisconnect:
        # The client left, or the server's edge cut it off (bot.request_limits): nobody reads this answer,
        # but it ends the request as a refusal rather than as an exception logged with its traceback.
        raise BadRequest(400, "the client went away before sending the whole body") from None
    # Starlette's form() and json() read a cached body when there is one; the stream is spent.
    request._body = bytes(body)  # noqa: SLF001 - Starlette's form() and json() read this cache
    return request._body  # noqa: SLF001 - Starlette's form() and json() read this cache


async def request_fields(request: Request) -> dict[str, Any]:
    """A body sent as a form (urlencoded or multipart) or as a JSON object, as one dict of fields."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        return form_fields(await read_form(request))
    payload = load_json(await read_body(request) or b"null")
    if not isinstance(payload, dict):
        raise BadRequest(400, "body must be a JSON object or a form")
    return payload


async def read_form(request: Request, limit: int = MAX_BODY) -> FormData:
    await read_body(request, limit)  # enforce the limit; Starlette caches the body for form()
    try:
        return await request.form(max_files=50, max_fields=1000)
    except Exception as error:  # noqa: BLE001 - any parser failure is the caller's malformed body
        raise BadRequest(400, f"malformed form body: {type(error).__name__}") from error


def form_fields(form: FormData) -> dict[str, str]:
    """Plain string fields (files left out), for signature checks and parsing."""
    fields = {key: value for key, value in form.multi_items() if isinstance(value, str)}
    return require_storable(fields)


def require_storable(value: Any, where: str = "body") -> Any:
    """Refuse text no database can keep (NUL, lone surrogates) with a 400 naming the field; return the value."""
    if isinstance(value, str):
        if "\x00" in value:
            raise BadRequest(400, f"{where}: contains a NUL character")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise BadRequest(400, f"{where}: is not valid Unicode text") from None
    elif isinstance(value, dict):
        for key, item in value.items():
            require_storable(key, where)
            require_storable(item, f"{key}"[:60] if where == "body" else f"{where}.{key}"[:60])
    elif isinstance(value, list):
        for item in value:
            require_storable(item, where)
    return value


def load_json(body: bytes) -> Any:
    """Parse a JSON body, answering 400 for anything that is not JSON a database can keep."""
    try:
        return require_storable(json.loads(body))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise BadRequest(400, f"body is not valid JSON: {error}") from error
    except RecursionError:
        raise BadRequest(400, "body nested too deeply") from None


#: How far from now an appointment can be: beyond these it is an impossible value (year 1, year 9999), not a visit.
APPOINTMENT_PAST = timedelta(days=366)
APPOINTMENT_FUTURE = timedelta(days=3 * 366)


def appointment_start(text: str, where: str, now: datetime) -> datetime:
    """Read an ISO 8601 start with offset into UTC, refusing (422) anything no clinic could book."""
    example = "e.g. 2026-12-01T15:30:00-06:00"
    try:
        start = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as error:
        raise BadRequest(422, f"{where}: {text[:60]!r} is not ISO 8601 ({example})") from error
    if start.tzinfo is None:
        raise BadRequest(422, f"{where} needs a UTC offset ({example})")
    try:
        start = start.astimezone(UTC)
    except OverflowError:
        raise BadRequest(422, f"{where}: {text[:60]!r} is out of range") from None
    if not now - APPOINTMENT_PAST <= start <= now + APPOINTMENT_FUTURE:
        raise BadRequest(
            422,
            f"{where}: {start:%Y-%m-%d} is not a date an appointment can have "
            f"(within a year before and three years after today)",
        )
    return start


def require_bearer(request: Request, expected: str | None, setting: str) -> None:
    if not expected:
        raise BadRequest(503, f"{setting} is not configured on this server")
    if not hmac.compare_digest(bearer_token(request).encode(), expected.encode()):
        raise BadRequest(401, "invalid bearer token")


def bearer_token(request: Request) -> str:
    """The token of `Authorization: Bearer ...`, or 401 when there is none."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise BadRequest(401, "missing bearer token (Authorization: Bearer ...)")
    return token.strip()


def require_inbound_parse_token(request: Request, expected: str | None) -> None:
    """Inbound Parse has no signature: the URL carries the secret, as `?token=` or as basic auth's password.

    SendGrid posts to `https://user:TOKEN@host/...` as an Authorization: Basic header, so the secret
    need not sit in a query string (and in every proxy's access log).
    """
    if not expected:
        raise BadRequest(503, "SENDGRID_INBOUND_TOKEN is not configured on this server")
    given = [request.query_params.get("token", "")]
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "basic" and credentials:
        try:
            given.append(base64.b64decode(credentials.strip(), validate=True).decode("utf-8").partition(":")[2])
        except (binascii.Error, UnicodeDecodeError):
            raise BadRequest(401, "malformed basic auth header") from None
    # Every candidate is compared, so the time taken does not say which one was close.
    matches = [hmac.compare_digest(candidate.encode(), expected.encode()) for candidate in given]
    if not any(matches):
        raise BadRequest(403, "missing or wrong token for Inbound Parse (?token= or the basic auth password)")


def public_url(request: Request, public_base_url: str) -> str:
    """The URL as the vendor called it: signatures cover the public address, not the local one."""
    query = request.url.query
    return f"{public_base_url}{request.url.path}" + (f"?{query}" if query else "")


def require_twilio_signature(
    request: Request, params: Mapping[str, str], auth_token: str | None, public_base_url: str
) -> None:
    if not auth_token:
        raise BadRequest(503, "TWILIO_AUTH_TOKEN is not configured on this server")
    signature = request.headers.get("x-twilio-signature")
    if not signature:
        raise BadRequest(403, "missing X-Twilio-Signature")
    if not RequestValidator(auth_token).validate(public_url(request, public_base_url), dict(params), signature):
        raise BadRequest(403, "invalid X-Twilio-Signature")
