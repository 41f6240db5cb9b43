"""The one HTTP app: vendor webhooks, tracked links, health, and (when configured) Slack."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import AsyncIterator, Callable

from starlette.applications import Starlette
from starlette.routing import BaseRoute

from bot.reply_classifier import load_reply_rules
from bot.services import Services
from bot.settings import Settings
from handlers.calendar_webhooks import CalendarWebhooks
from handlers.webhooks import Webhooks


def create_web_app(
    services: Services,
    settings: Settings,
    *,
    extra_routes: list[BaseRoute] | None = None,
    on_start: Callable[[], None] | None = None,
    on_stop: Callable[[], None] | None = None,
) -> Starlette:
    """Build the ASGI app; the scheduler (on_start/on_stop) runs for as long as the server does."""
    webhooks = Webhooks(services, settings, load_reply_rules(settings.reply_rules_path))
    calendars = CalendarWebhooks(services, calendly_signing_key=settings.calendly_signing_key,
                                 calcom_secret=settings.calcom_webhook_secret)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        if on_start:
            on_start()
        try:
            yield
        finally:
            if on_stop:
                on_stop()

    app = Starlette(routes=[*webhooks.routes(), *calendars.routes(), *(extra_routes or [])], lifespan=lifespan)
    app.state.calendar_webhooks = calendars
    return app
