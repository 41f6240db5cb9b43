"""The one HTTP app: vendor webhooks, tracked links, health, and (when configured) Slack."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import replace

from sqlalchemy import Engine
from sqlalchemy.orm import sessionmaker
from starlette.applications import Starlette
from starlette.routing import BaseRoute

from bot.channels.twilio_sms import failure_kind
from bot.core.business import Business
from bot.core.reply_classifier import load_reply_rules
from bot.settings import Settings
from bot.store.db import make_web_engine
from bot.usecases.services import Services
from handlers.calendar_webhooks import CalendarWebhooks
from handlers.lead_webhooks import LeadWebhooks
from handlers.links import LinkRoutes
from handlers.sendgrid_webhooks import SendgridWebhooks
from handlers.twilio_webhooks import TwilioWebhooks


def web_services(services: Services, web_engine: Engine) -> Services:
    """The bot's services as the HTTP routes see them: the same in every way but their database pool.

    The routes get connections of their own (bot.store.db.make_web_engine), so a dispatcher holding every
    connection of the main pool never makes a webhook wait. The rest is shared (the same lead locks, the
    same doorbells), so a lead taken by a route and by the dispatcher is taken under the one lock.
    """
    factory = services.session_factory
    return replace(services, session_factory=sessionmaker(class_=factory.class_, **{**factory.kw, "bind": web_engine}))


#: Each secret-guarded route, the setting that opens it, and what it is for (`followup run` names the closed ones).
GUARDED_ROUTES: tuple[tuple[str, str, str], ...] = (
    ("POST /webhooks/leads", "LEAD_WEBHOOK_TOKEN", "new leads from the web form"),
    ("POST /webhooks/booking", "BOOKING_WEBHOOK_TOKEN", "bookings from your booking tool"),
    ("POST /webhooks/calendly", "CALENDLY_WEBHOOK_SIGNING_KEY", "Calendly bookings"),
    ("POST /webhooks/calcom", "CALCOM_WEBHOOK_SECRET", "Cal.com bookings"),
    ("POST /webhooks/twilio/sms, /status, /voice", "TWILIO_AUTH_TOKEN", "texts, delivery reports and missed calls"),
    ("POST /webhooks/sendgrid/inbound", "SENDGRID_INBOUND_TOKEN", "email replies (Inbound Parse)"),
    ("POST /webhooks/sendgrid/events", "SENDGRID_WEBHOOK_PUBLIC_KEY", "email delivery events and bounces"),
)


#: The secrets each business has of its own (in a single business.yml deployment, read from the settings named).
BUSINESS_KEYS: dict[str, Callable[[Business], str]] = {
    "LEAD_WEBHOOK_TOKEN": lambda business: business.webhooks.lead_token,
    "BOOKING_WEBHOOK_TOKEN": lambda business: business.webhooks.booking_token,
    "CALENDLY_WEBHOOK_SIGNING_KEY": lambda business: business.webhooks.calendly_signing_key,
    "CALCOM_WEBHOOK_SECRET": lambda business: business.webhooks.calcom_secret,
}


def closed_routes(settings: Settings, businesses: Iterable[Business] = ()) -> list[str]:
    """One line per route that refuses every request (503) because its secret is unset, saying which one.

    A business's own secret (its lead token, its calendar keys) opens its route when any business has one.
    """
    values = {field.alias: getattr(settings, name) for name, field in Settings.model_fields.items() if field.alias}
    businesses = list(businesses)
    for setting, key in BUSINESS_KEYS.items():
        values[setting] = values.get(setting) or any(key(business) for business in businesses)
    lines = [
        f"{route} is closed (answers 503): {setting} is not set, so no {purpose} are taken"
        for route, setting, purpose in GUARDED_ROUTES
        if not values.get(setting)
    ]
    if not settings.slack_signing_secret:
        lines.append(
            "POST /slack/events is closed: SLACK_SIGNING_SECRET is not set"
            + (" (Socket Mode needs none)" if settings.slack_app_token else "")
        )
    return lines


def create_web_app(
    services: Services,
    settings: Settings,
    *,
    extra_routes: list[BaseRoute] | None = None,
    on_start: Callable[[], None] | None = None,
    on_stop: Callable[[], None] | None = None,
) -> Starlette:
    """Build the ASGI app; the scheduler (on_start/on_stop) runs for as long as the server does."""
    web_engine = make_web_engine(services.session_factory.kw["bind"])
    routes_services = web_services(services, web_engine)
    reply_rules = load_reply_rules(settings.reply_rules_path)
    vendor_routes: list[LeadWebhooks | TwilioWebhooks | SendgridWebhooks | LinkRoutes] = [
        LeadWebhooks(routes_services, reply_rules=reply_rules),
        TwilioWebhooks(
            routes_services,
            auth_token=settings.twilio_auth_token,
            public_base_url=settings.public_base_url,
            reply_rules=reply_rules,
            failure_kind=failure_kind,
        ),
        SendgridWebhooks(
            routes_services,
            inbound_token=settings.sendgrid_inbound_token,
            events_public_key=settings.sendgrid_webhook_public_key,
            reply_rules=reply_rules,
        ),
        LinkRoutes(routes_services),
    ]
    calendars = CalendarWebhooks(routes_services)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        if on_start:
            on_start()
        try:
            yield
        finally:
            if on_stop:
                on_stop()
            if web_engine is not services.session_factory.kw["bind"]:
                web_engine.dispose()

    routes = [route for group in vendor_routes for route in group.routes()]
    app = Starlette(routes=[*routes, *calendars.routes(), *(extra_routes or [])], lifespan=lifespan)
    app.state.calendar_webhooks = calendars
    app.state.web_engine = web_engine
    return app
