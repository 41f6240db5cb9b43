"""The businesses one deployment serves, and how an inbound request finds the one it is for.

Every lookup answers None when nothing matches: a request that names no business is refused by its
route, never handed to a default one (an agency's clinic A must not receive clinic B's leads because a
number was mistyped). The registry refuses, when it is built, two businesses that would claim the same
request (a number, an inbound address, a token or a channel), naming both files.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from bot.core.business import SLUG, SLUG_RULE, Business
from bot.core.config_errors import ConfigError, Problem

__all__ = ["SLUG", "SLUG_RULE", "Businesses", "UnknownBusiness", "normalize_channel", "normalize_inbound_address"]


class UnknownBusiness(LookupError):
    """A slug that names no business of this deployment (a lead's business file was removed, or a typo)."""

    def __init__(self, slug: str, known: Iterable[str]):
        self.slug = slug
        self.known = tuple(known)
        super().__init__(f"no business {slug!r} (known: {', '.join(self.known) or 'none'})")


def normalize_inbound_address(address: str) -> str:
    """Compare addresses as mail servers route them: case-insensitively, and without a +tag."""
    text = address.strip().lower()
    # "Lakeside <leads@in.example>" as a To header names the address in angle brackets.
    if "<" in text and text.endswith(">"):
        text = text[text.rindex("<") + 1 : -1].strip()
    local, at, domain = text.rpartition("@")
    if not at:
        return text
    return f"{local.split('+', 1)[0]}@{domain}"


def normalize_channel(channel: str) -> str:
    """A channel as written (#Leads, leads) or as Slack sends it (C0123ABC): one form to compare."""
    text = channel.strip()
    if text.startswith("#"):
        return text[1:].lower()
    # Ids are upper case (C…, G…); names are lower case in Slack: either way case never tells two apart.
    return text.lower()


@dataclass(frozen=True)
class _Key:
    what: str
    of: Callable[[Business], Iterable[str]]


def _one(value: str) -> tuple[str, ...]:
    return (value,) if value else ()


_KEYS = (
    _Key("SMS number", lambda b: _one(b.sms.number or "")),
    _Key("messaging service", lambda b: _one(b.sms.messaging_service_sid or "")),
    _Key("inbound email address", lambda b: _one(normalize_inbound_address(b.email.inbound_address))),
    _Key("lead webhook token", lambda b: _one(b.webhooks.lead_token)),
    _Key("booking webhook token", lambda b: _one(b.webhooks.booking_token)),
    _Key("Slack channel", lambda b: _one(normalize_channel(b.slack.channel))),
)


class Businesses:
    """An immutable set of businesses, by slug and by each key an inbound request can carry."""

    def __init__(self, businesses: Iterable[Business]):
        self._all: tuple[Business, ...] = tuple(businesses)
        problems: list[Problem] = []
        self._by_slug: dict[str, Business] = {}
        for business in self._all:
            if not SLUG.match(business.slug):
                problems.append(Problem(business.path, None, f"{business.slug!r} is not a usable slug", SLUG_RULE))
            other = self._by_slug.setdefault(business.slug, business)
            if other is not business:
                problems.append(
                    Problem(
                        business.path,
                        None,
                        f"slug {business.slug!r} is also {other.path}'s",
                        "give every business its own file name (the slug is the file's name)",
                    )
                )
        self._indexes: dict[str, dict[str, Business]] = {}
        for key in _KEYS:
            index: dict[str, Business] = {}
            for business in self._all:
                for value in key.of(business):
                    other = index.setdefault(value, business)
                    if other is not business:
                        problems.append(
                            Problem(
                                business.path,
                                None,
                                f"{key.what} {value!r} is also {other.slug}'s ({other.path})",
                                f"each business needs its own {key.what}: a request to it could not tell them apart",
                            )
                        )
            self._indexes[key.what] = index
        if problems:
            raise ConfigError(problems)

    def __iter__(self) -> Iterator[Business]:
        return iter(self._all)

    def __len__(self) -> int:
        return len(self._all)

    @property
    def slugs(self) -> tuple[str, ...]:
        return tuple(business.slug for business in self._all)

    @property
    def only(self) -> Business | None:
        """The business, when this deployment serves exactly one (today's single business.yml)."""
        return self._all[0] if len(self._all) == 1 else None

    def by_slug(self, slug: str) -> Business | None:
        return self._by_slug.get(slug)

    def require(self, slug: str) -> Business:
        """The business of a stored row: raise UnknownBusiness when its file is gone."""
        business = self._by_slug.get(slug)
        if business is None:
            raise UnknownBusiness(slug, self.slugs)
        return business

    def by_sms_number(self, e164: str) -> Business | None:
        """The business whose number a text or call was sent to (Twilio's `To`)."""
        return self._indexes["SMS number"].get(e164.strip()) if e164 else None

    def by_messaging_service(self, sid: str) -> Business | None:
        """The business whose messaging service a text came through (Twilio's `MessagingServiceSid`)."""
        return self._indexes["messaging service"].get(sid.strip()) if sid else None

    def by_inbound_address(self, address: str) -> Business | None:
        """The business whose inbound address an email was sent to."""
        return self._indexes["inbound email address"].get(normalize_inbound_address(address)) if address else None

    def by_lead_token(self, token: str) -> Business | None:
        return self._by_secret(token, lambda business: business.webhooks.lead_token)

    def by_booking_token(self, token: str) -> Business | None:
        return self._by_secret(token, lambda business: business.webhooks.booking_token)

    def _by_secret(self, token: str, secret_of: Callable[[Business], str]) -> Business | None:
        """The business whose secret this is, compared in constant time with every business's.

        A dictionary lookup would answer faster for a near miss than for a far one; a secret must not
        be guessable by timing the answers.
        """
        if not token:
            return None
        given = token.encode()
        found = None
        for business in self._all:
            secret = secret_of(business)
            if secret and hmac.compare_digest(secret.encode(), given):
                found = business
        return found

    def by_channel(self, channel: str) -> Business | None:
        """The business whose Slack channel (id or #name) a request came from."""
        return self._indexes["Slack channel"].get(normalize_channel(channel)) if channel else None
