"""Which business a webhook is for: the number or address it was sent to, its token, its secret, or its path.

Every lookup goes through the deployment's registry (`services.businesses`), which answers None when
nothing matches. A request that names no business here is refused with a 4xx and its reason before
anything is read into the bot: it is never handed to a default business. The one exception is the
deployment of exactly one business (today's single business.yml), which takes what its own vendors sign
as it always has (a text to any number of its Twilio account, an email to any inbound address): there is
no other business it could belong to.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable, Iterable
from email.utils import getaddresses

from starlette.requests import Request

from bot.core.business import Business
from bot.core.contacts import InvalidEmail, InvalidPhone, normalize_email, normalize_phone
from bot.usecases.services import Services
from handlers.http_edge import BadRequest, bearer_token


def business_named(services: Services, slug: str) -> Business:
    """The business a path names (`/webhooks/leads/<slug>`), or 404."""
    business = services.businesses.by_slug(slug)
    if business is None:
        raise BadRequest(404, f"no business {slug[:100]!r} in this deployment")
    return business


def the_only_business(services: Services) -> Business | None:
    """The deployment's business when it has exactly one: it takes every signed request, as before."""
    return services.businesses.only


def business_texted(services: Services, to: str | None, messaging_service_sid: str | None, *, call: bool) -> Business:
    """The business a text or call was sent to: by `To` (its Twilio number, or for a call its own phone),
    else by the messaging service it came through; 404 when it is none of them."""
    number = _phone(to, services.default_region)
    businesses = services.businesses
    found = businesses.by_sms_number(number) if number else None
    if found is None and messaging_service_sid:
        found = businesses.by_messaging_service(messaging_service_sid)
    if found is None and call and number:
        # A missed call may come in on the clinic's public number, forwarded to Twilio, not on its texting number.
        found = next((b for b in businesses if b.phone == number), None)
    found = found or the_only_business(services)
    if found is None:
        what = "call" if call else "text"
        raise BadRequest(
            404, f"no business of this deployment has the number {to or '(no To)'!s:.40}: the {what} was not taken"
        )
    return found


def businesses_emailed(services: Services, fields: dict[str, str]) -> list[Business]:
    """The businesses an inbound email was sent to (its envelope's recipients, then To and Cc), each once.

    An email addressed to two clinics' inbound addresses is a message to each. None of them: 404.
    """
    found: dict[str, Business] = {}
    for address in recipients(fields):
        business = services.businesses.by_inbound_address(address)
        if business is not None:
            found.setdefault(business.slug, business)
    if not found and (only := the_only_business(services)) is not None:
        return [only]
    if not found:
        raise BadRequest(
            404, "the email was sent to no inbound address of a business of this deployment: it was not taken"
        )
    return list(found.values())


def recipients(fields: dict[str, str]) -> list[str]:
    """The addresses an email was delivered to: the envelope's (what the mail server was told), then To and Cc."""
    try:
        envelope = json.loads(fields.get("envelope") or "{}")
    except json.JSONDecodeError:
        envelope = {}
    listed = envelope.get("to") if isinstance(envelope, dict) else None
    addresses = [item for item in listed if isinstance(item, str)] if isinstance(listed, list) else []
    addresses += [address for _, address in getaddresses([fields.get("to", ""), fields.get("cc", "")])]
    readable = []
    for address in addresses:
        try:
            readable.append(normalize_email(address))
        except InvalidEmail:
            continue
    return list(dict.fromkeys(readable))


def business_of_token(
    services: Services,
    request: Request,
    *,
    slug: str | None,
    key: Callable[[Business], str],
    lookup: Callable[[str], Business | None],
    setting: str,
) -> Business:
    """The business a bearer token belongs to; on a business's own path, only that business's token is taken.

    No business has such a token at all: the route is closed (503, naming the setting). A token of
    another business on this business's path is refused like any wrong token, and nothing is stored.
    """
    if slug is not None:
        business = business_named(services, slug)
        expected = key(business)
        if not expected:
            raise BadRequest(503, f"business {business.slug!r} has no {setting} configured on this server")
        if not hmac.compare_digest(bearer_token(request).encode(), expected.encode()):
            raise BadRequest(401, f"invalid bearer token for business {business.slug!r}")
        return business
    if not any(key(business) for business in services.businesses):
        raise BadRequest(503, f"{setting} is not configured on this server")
    found = lookup(bearer_token(request))
    if found is None:
        raise BadRequest(401, "invalid bearer token")
    return found


def keyed(services: Services, slug: str | None, key: Callable[[Business], str]) -> list[tuple[Business, str]]:
    """The businesses a signed calendar webhook may be for, with their secrets: the path's, or all that have one."""
    candidates: Iterable[Business] = [business_named(services, slug)] if slug is not None else services.businesses
    return [(business, key(business)) for business in candidates if key(business)]


def _phone(value: str | None, region: str) -> str | None:
    if not value:
        return None
    try:
        return normalize_phone(value, region)
    except InvalidPhone:
        return None
