"""`followup run`: serve the assembled bot (bot.app.assemble) with a production ASGI server until stopped."""

from __future__ import annotations

import logging

import uvicorn

from bot.app import assemble, request_limits
from bot.request_limits import QuietPerRequestWarnings, RefusalLog, uvicorn_options
from bot.settings import Settings

log = logging.getLogger(__name__)


def serve(settings: Settings) -> int:
    """Run the bot in this process until SIGINT or SIGTERM."""
    refusals = RefusalLog()
    parts = assemble(settings, refusals=refusals)
    limits = request_limits(settings)
    log.info(
        "followup for %s on http://%s:%d (sequence %s)",
        parts.services.business.name,
        settings.host,
        settings.port,
        parts.services.playbooks.default,
    )
    log.info(
        "request limits: headers within %g s, body within %g s, %d connections, idle keep-alive %g s",
        limits.header_timeout,
        limits.body_timeout,
        limits.max_connections,
        limits.keep_alive_timeout,
    )
    quiet = QuietPerRequestWarnings()
    logging.getLogger("uvicorn.error").addFilter(quiet)
    try:
        # log_config=None: uvicorn logs through the root handlers, and so through their redaction.
        uvicorn.run(
            parts.app,
            host=settings.host,
            port=settings.port,
            log_level="info",
            access_log=False,
            log_config=None,
            **uvicorn_options(limits, refusals),
        )
    finally:
        logging.getLogger("uvicorn.error").removeFilter(quiet)
    return 0
