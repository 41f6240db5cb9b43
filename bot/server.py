"""`followup run`: migrate, start the scheduler, and serve HTTP with a production ASGI server."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import uvicorn
from starlette.applications import Starlette
from starlette.routing import BaseRoute

from bot.app import build_services, build_slack_poster
from bot.core.clock import Clock
from bot.usecases.delivery import prune_processed_deliveries
from bot.usecases.dispatch import configured_channels, release_waiting_touches, waiting_channels_warnings
from bot.scheduler import WorkScheduler
from bot.usecases.services import Services
from bot.settings import Settings
from bot.slack.poster import SlackPoster
from bot.request_limits import QuietPerRequestWarnings, RefusalLog, RequestLimits, uvicorn_options
from bot.web import closed_routes, create_web_app
from bot.channels.webhook_delivery import WebhookDeliverer
from handlers.http_edge import MAX_EMAIL_BODY

if TYPE_CHECKING:
    from slack_bolt.adapter.socket_mode import SocketModeHandler

log = logging.getLogger(__name__)


@dataclass
class RunningParts:
    """Everything `followup run` runs, assembled but not started (the sandbox runs the same parts)."""

    services: Services
    scheduler: WorkScheduler
    poster: SlackPoster | None
    app: Starlette


def request_limits(settings: Settings) -> RequestLimits:
    """The HTTP edge's limits from settings; no body is larger than the largest route takes (an inbound email)."""
    return RequestLimits(header_timeout=settings.http_header_timeout, body_timeout=settings.http_body_timeout,
                         keep_alive_timeout=settings.http_keep_alive_timeout,
                         max_connections=settings.http_max_connections,
                         max_header_bytes=settings.http_max_header_bytes, max_body_bytes=MAX_EMAIL_BODY,
                         summary_seconds=settings.http_refusal_log_seconds)


def assemble(settings: Settings, *, clock: Clock | None = None, refusals: RefusalLog | None = None) -> RunningParts:
    """Wire the bot from settings: services, scheduler jobs, the Slack poster and the web app.

    With `refusals`, what the HTTP edge refused is logged once per interval and in total at stop.
    """
    services = build_services(settings, clock=clock)
    for line in closed_routes(settings):
        log.warning("%s", line)
    for warning in waiting_channels_warnings(services.playbooks, configured_channels(services)):
        log.error("%s", warning)
    released = release_waiting_touches(services)
    if released:
        log.info("%d touch(es) that waited for a channel's settings go out now", released)
    scheduler = WorkScheduler(services, poll_seconds=settings.poll_seconds,
                              click_escalation_delay=settings.click_escalation_delay,
                              claim_reminder_delay=settings.claim_reminder_delay,
                              send_lease_seconds=settings.send_lease_seconds, senders=settings.senders,
                              fast_lane_workers=settings.fast_lane_threads)
    # Sends a stopped process left `sending` (touches and one-off messages alike) are settled by the
    # dispatcher's own ticks (bot.usecases.send_recovery): no job of their own.
    # Delivery ids kept for replay protection are forgotten once no retry or replay can bring them back.
    scheduler.add_periodic("processed_deliveries_pruning", lambda: prune_processed_deliveries(services),
                           seconds=3600)
    if settings.webhook_urls:
        deliverer = WebhookDeliverer(services, secret=settings.webhook_secret or "",
                                     max_attempts=settings.webhook_max_attempts)
        scheduler.add_periodic("outbound_webhooks", deliverer.deliver_once, seconds=max(settings.poll_seconds, 1.0))
        log.info("outbound webhooks: lead events go to %d receiver(s)", len(settings.webhook_urls))
    poster = build_slack_poster(settings, services)
    if poster is not None:
        # Its own thread, not a scheduler job: it sleeps until woken or until Slack's pace lets the next post go.
        services.wakeups.connect(poster=poster.wake)
    else:
        log.warning("Slack is not configured (SLACK_BOT_TOKEN, SLACK_LEADS_CHANNEL): no lead cards will be posted")
    if poster is not None and settings.digest_schedule is not None:
        from bot.slack_app import slack_client
        from bot.slack.digest import WeeklyDigestJob

        digest = WeeklyDigestJob(services, slack_client(settings), settings.slack_leads_channel or "",
                                 settings.digest_schedule)
        scheduler.add_periodic("weekly_digest", digest.run_once, seconds=60)
    extra_routes: list[BaseRoute] = []
    on_start: list[Callable[[], object]] = [scheduler.start]
    on_stop: list[Callable[[], object]] = [scheduler.shutdown]
    if poster is not None:
        on_start.append(lambda: poster.start(idle_seconds=settings.poll_seconds))
        on_stop.insert(0, poster.stop)
    if settings.slack_bot_token and (settings.slack_signing_secret or settings.slack_app_token):
        from bot.slack_app import build_slack_app, slack_client, slack_route, start_socket_mode

        slack = build_slack_app(services, settings, client=slack_client(settings))
        if settings.slack_signing_secret:
            extra_routes.append(slack_route(slack))
        if settings.slack_app_token:
            # Socket Mode: Slack needs no public URL; the connection opens with the server and closes with it.
            socket: list[SocketModeHandler] = []
            on_start.append(lambda: socket.append(start_socket_mode(slack, settings.slack_app_token or "")))
            on_stop.insert(0, lambda: [handler.close() for handler in socket])
    if refusals is not None:
        seconds = settings.http_refusal_log_seconds
        scheduler.add_periodic("refused_requests_summary", lambda: refusals.log_interval(seconds), seconds=seconds)
        # Last, after the server has closed its connections: uvicorn re-raises SIGTERM once it returns.
        on_stop.append(refusals.log_total)
    app = create_web_app(services, settings, extra_routes=extra_routes,
                         on_start=_in_turn(on_start), on_stop=_in_turn(on_stop))
    return RunningParts(services, scheduler, poster, app)


def _in_turn(steps: list[Callable[[], object]]) -> Callable[[], None]:
    """One callable that runs the steps in order (what each returns is not needed)."""
    def run() -> None:
        for step in steps:
            step()
    return run


def serve(settings: Settings) -> int:
    """Run the bot in this process until SIGINT or SIGTERM."""
    refusals = RefusalLog()
    parts = assemble(settings, refusals=refusals)
    limits = request_limits(settings)
    log.info("followup for %s on http://%s:%d (sequence %s)", parts.services.business.name, settings.host,
             settings.port, parts.services.playbooks.default)
    log.info("request limits: headers within %g s, body within %g s, %d connections, idle keep-alive %g s",
             limits.header_timeout, limits.body_timeout, limits.max_connections, limits.keep_alive_timeout)
    quiet = QuietPerRequestWarnings()
    logging.getLogger("uvicorn.error").addFilter(quiet)
    try:
        # log_config=None: uvicorn logs through the root handlers, and so through their redaction.
        uvicorn.run(parts.app, host=settings.host, port=settings.port, log_level="info", access_log=False,
                    log_config=None, **uvicorn_options(limits, refusals))
    finally:
        logging.getLogger("uvicorn.error").removeFilter(quiet)
    return 0
