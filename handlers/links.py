"""The links a lead opens (the tracked booking link `/b/{token}`, unsubscribe `/u/{token}`) and `/healthz`.

A link's token is the only key: a token of the wrong shape is not worth a query. Only a person's
click counts (not a HEAD, not a link scanner, not a fetch the moment a message arrived), and only a
POST unsubscribes (the confirmation page's button, or RFC 8058's one-click POST from the mail client).
"""

from __future__ import annotations

import re
from html import escape

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from bot.store.db import is_reachable
from bot.usecases.links import follow_booking_link, unsubscribe_by_link, unsubscribe_link_business
from bot.usecases.render_context import prefilled_booking_link
from bot.usecases.services import Services
from handlers.http_edge import BadRequest, endpoint

#: What a lead's link token looks like (secrets.token_urlsafe); anything else is not worth a query.
LINK_TOKEN = re.compile(r"[A-Za-z0-9_-]{8,64}")

#: Mail and chat link scanners fetch every link in a message the moment it arrives; their fetches are
#: not a lead clicking. Matched case-insensitively anywhere in the User-Agent.
LINK_SCANNER_AGENTS = (
    "bot",
    "crawl",
    "spider",
    "preview",
    "scan",
    "slurp",
    "facebookexternalhit",
    "whatsapp",
    "skypeuripreview",
    "microsoft office",
    "ms-office",
    "outlook-ios",
    "safelinks",
    "proofpoint",
    "mimecast",
    "barracuda",
    "google-safety",
    "googleimageproxy",
    "yahoomailproxy",
    "curl/",
    "wget/",
    "python-",
    "go-http-client",
    "okhttp",
    "java/",
    "libwww",
    "httpclient",
)

_UNSUBSCRIBE_PAGE = """<!doctype html><meta charset="utf-8"><title>Unsubscribe</title>
<body style="font-family:sans-serif;max-width:32em;margin:3em auto">
<h1>Unsubscribe from {name}</h1><p>Stop all email from {name}?</p>
<form method="post"><button type="submit">Unsubscribe</button></form></body>"""
_UNSUBSCRIBED_PAGE = """<!doctype html><meta charset="utf-8"><title>Unsubscribed</title>
<body style="font-family:sans-serif;max-width:32em;margin:3em auto">
<h1>You are unsubscribed</h1><p>{name} will not email you again.</p></body>"""


def is_link_scanner(user_agent: str) -> bool:
    """Whether a User-Agent is a machine's (or absent, as no browser's is)."""
    agent = user_agent.strip().lower()
    return not agent or any(marker in agent for marker in LINK_SCANNER_AGENTS)


class LinkRoutes:
    """GET /b/{token}, GET|POST /u/{token} and GET /healthz, bound to the services."""

    def __init__(self, services: Services):
        self.services = services

    def routes(self) -> list[Route]:
        return [
            Route("/b/{token}", endpoint(self.booking_link), methods=["GET"]),
            Route("/u/{token}", endpoint(self.unsubscribe), methods=["GET", "POST"]),
            Route("/healthz", endpoint(self.health), methods=["GET"]),
        ]

    async def booking_link(self, request: Request) -> Response:
        """Send the lead to their business's booking page, filled in; a token no lead has goes to the only
        business's page (one clinic: as before), or is refused (several: whose page would it be?)."""
        token = request.path_params["token"]
        who = None
        if LINK_TOKEN.fullmatch(token):
            # A HEAD (Starlette answers it on GET routes) and a link scanner's fetch are no person's click.
            person = request.method == "GET" and not is_link_scanner(request.headers.get("user-agent", ""))
            who = await run_in_threadpool(follow_booking_link, self.services, token, by_a_person=person)
        if who is not None:
            business = self.services.business_of(who.business)
            return RedirectResponse(
                prefilled_booking_link(business.booking_link, name=who.name, email=who.email), status_code=302
            )
        only = self.services.businesses.only
        if only is None:
            raise BadRequest(404, "unknown booking link")
        return RedirectResponse(only.booking_link, status_code=302)

    async def unsubscribe(self, request: Request) -> Response:
        """GET (and HEAD) show the confirmation page; only its POST, or RFC 8058's one-click POST, unsubscribes."""
        token = request.path_params["token"]
        slug = None
        if LINK_TOKEN.fullmatch(token):
            slug = await run_in_threadpool(unsubscribe_link_business, self.services, token)
        business = self.services.business_of(slug) if slug is not None else self.services.businesses.only
        if business is None:
            raise BadRequest(404, "unknown unsubscribe link")
        name = escape(business.name)
        if request.method != "POST":
            return Response(_UNSUBSCRIBE_PAGE.format(name=name), media_type="text/html")
        done = LINK_TOKEN.fullmatch(token) is not None and await run_in_threadpool(
            unsubscribe_by_link, self.services, token
        )
        if not done:
            raise BadRequest(404, "unknown unsubscribe link")
        return Response(_UNSUBSCRIBED_PAGE.format(name=name), media_type="text/html")

    async def health(self, request: Request) -> Response:
        try:
            await run_in_threadpool(is_reachable, self.services.session_factory.kw["bind"])
        except Exception as error:  # noqa: BLE001 - any database failure means not healthy
            return JSONResponse({"ok": False, "error": f"database: {type(error).__name__}"}, status_code=503)
        return JSONResponse({"ok": True})
