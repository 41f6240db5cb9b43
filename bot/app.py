"""The composition root: read settings once, build every service, wire adapters to the core.

Everything a process runs is built here and only here: `build_services` for a CLI command or a test,
`assemble` for `followup run` and the sandbox (services, scheduler jobs, the Slack poster, the web app),
`request_limits` for the HTTP edge. `bot.server` only serves what `assemble` returns.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.routing import BaseRoute

from bot.channels.webhook_delivery import WebhookDeliverer
from bot.request_limits import RefusalLog, RequestLimits
from bot.scheduler import WorkScheduler
from bot.usecases.delivery import prune_processed_deliveries
from bot.usecases.dispatch import configured_channels, release_waiting_touches, waiting_channels_warnings
from bot.web import closed_routes, create_web_app
from handlers.http_edge import MAX_EMAIL_BODY

if TYPE_CHECKING:
    from slack_bolt.adapter.socket_mode import SocketModeHandler
    from slack_sdk import WebClient

    from bot.reports.digest import DigestSchedule
    from bot.slack.digest import WeeklyDigestJob


from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from bot.core.business import (
    SINGLE_BUSINESS_SLUG,
    Business,
    EmailPlace,
    SlackPlace,
    WebhookKeys,
    load_business,
    load_business_folder,
)
from bot.core.businesses import Businesses
from bot.core.clock import Clock, ScaledClock
from bot.core.config_errors import ConfigError, Problem
from bot.core.contacts import phone_country
from bot.core.ports import EmailSender, SmsFrom, SmsSender
from bot.core.templating import TemplateRenderer
from bot.reports.business_health import ChannelStatus, Vendors
from bot.reports.preview import PreviewSources
from bot.settings import Settings
from bot.slack.poster import SlackPoster
from bot.store.db import make_engine, make_session_factory, upgrade
from bot.usecases.services import Playbooks, Services

log = logging.getLogger(__name__)


def load_playbooks(settings: Settings, business: Business) -> Playbooks:
    """The business's playbook is the default; names resolve in its own sequences folder, then the shared one."""
    sequences_override, templates_override = own_content(settings, business)
    playbooks = Playbooks(
        sequences_dir=Path(settings.sequences_dir),
        templates_dir=Path(settings.templates_dir),
        default=str(business.sequence_ref),
        sequences_override=sequences_override,
        templates_override=templates_override,
    )
    playbooks.get()  # fail at start, not at the first lead, when the playbook is invalid
    return playbooks


def business_renderer(settings: Settings, business: Business) -> TemplateRenderer:
    """The business's wording: its own templates/ file by file (a folder of business files), else the shared."""
    return TemplateRenderer(Path(settings.templates_dir), overrides=own_content(settings, business)[1])


def own_content(settings: Settings, business: Business) -> tuple[Path | None, Path | None]:
    """A business's own `<slug>/sequences/` and `<slug>/templates/` beside its file, where they exist.

    Only in a folder of business files: one business.yml's folder is the shared content itself
    (Settings._content_beside_the_business_file).
    """
    if not settings.folder_mode:
        return None, None
    own = business.path.parent / business.slug
    sequences, templates = own / "sequences", own / "templates"
    return (sequences if sequences.is_dir() else None), (templates if templates.is_dir() else None)


#: What one business.yml takes from the environment; in a folder each business file says its own.
SINGLE_MODE_SETTINGS = {
    "slack": ("SLACK_LEADS_CHANNEL", "SLACK_ONCALL", "SLACK_ADMINS"),
    "sms": ("TWILIO_FROM_NUMBER", "TWILIO_MESSAGING_SERVICE_SID"),
    "email": ("SENDGRID_FROM_EMAIL", "SENDGRID_REPLY_TO"),
    "webhooks": (
        "LEAD_WEBHOOK_TOKEN",
        "BOOKING_WEBHOOK_TOKEN",
        "CALENDLY_WEBHOOK_SIGNING_KEY",
        "CALCOM_WEBHOOK_SECRET",
    ),
}


def ignored_in_folder_mode(settings: Settings) -> list[str]:
    """The single-business settings that are set but mean nothing with FOLLOWUP_BUSINESSES (each file says its own)."""
    if not settings.folder_mode:
        return []
    by_alias = {str(info.alias): name for name, info in Settings.model_fields.items()}
    return [
        alias
        for aliases in SINGLE_MODE_SETTINGS.values()
        for alias in aliases
        if getattr(settings, by_alias[alias], None)
    ]


def deployment_environment() -> dict[str, str]:
    """What `${ENV_NAME}` in a business file reads: the process environment over the .env file, as Settings does."""
    from dotenv import dotenv_values

    from_file = {name: value for name, value in dotenv_values(".env").items() if value is not None}
    return {**from_file, **os.environ}


def load_businesses(settings: Settings, environ: Mapping[str, str] | None = None) -> Businesses:
    """Every business this deployment serves: one business.yml, or each file of the FOLLOWUP_BUSINESSES folder.

    A folder is checked whole before anything starts: every file's problems, two businesses claiming
    the same number, channel, address or token, and a business that has no channel or sender of its
    own for a provider that is configured.
    """
    if settings.businesses_dir is None:
        return Businesses([single_business(settings)])
    found = load_business_folder(settings.businesses_dir, deployment_environment() if environ is None else environ)
    businesses = Businesses(found)
    problems = missing_places(settings, businesses)
    if problems:
        raise ConfigError(problems)
    for alias in ignored_in_folder_mode(settings):
        log.warning("%s is set but ignored: with FOLLOWUP_BUSINESSES each business file names its own", alias)
    return businesses


def missing_places(settings: Settings, businesses: Businesses) -> list[Problem]:
    """The businesses without their own channel or sender for a provider this deployment has configured."""
    ignored = set(ignored_in_folder_mode(settings))

    def note(group: str) -> str:
        names = [alias for alias in SINGLE_MODE_SETTINGS[group] if alias in ignored]
        if not names:
            return ""
        verbs = ("applies", "is") if len(names) == 1 else ("apply", "are")
        return (
            f"; {' and '.join(names)} {verbs[0]} only to one business.yml (FOLLOWUP_BUSINESS)"
            f" and {verbs[1]} ignored here"
        )

    wanted = []
    if settings.slack_bot_token:
        wanted.append(
            (
                "slack",
                lambda b: bool(b.slack.channel),
                "Slack is configured (SLACK_BOT_TOKEN) but this business has no channel of its own",
                'add `slack:` with `channel: "#its-leads"` (or the channel id)',
            )
        )
    if twilio_credentials(settings) is not None:
        wanted.append(
            (
                "sms",
                lambda b: bool(b.sms.number or b.sms.messaging_service_sid),
                "Twilio is configured (TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN) but this business has no SMS sender",
                'add `sms:` with `from_number: "+1..."` or `messaging_service_sid: MG...`',
            )
        )
    if settings.sendgrid_api_key:
        wanted.append(
            (
                "email",
                lambda b: bool(b.email.from_address),
                "SendGrid is configured (SENDGRID_API_KEY) but this business has no from-address",
                "add `email:` with `from_address: hello@...` (an address verified in SendGrid)",
            )
        )
    return [
        Problem(business.path, None, message, fix + note(group))
        for group, has, message, fix in wanted
        for business in businesses
        if not has(business)
    ]


def sending_threads(settings: Settings) -> int:
    """How many threads may talk to the database and the providers at once, beside the web handlers."""
    return settings.senders + settings.fast_lane_threads + 2  # the dispatching thread and a scheduler job


def twilio_credentials(settings: Settings) -> tuple[str, str] | None:
    """The Twilio account SID and auth token, or None when texting is not configured."""
    account_sid, auth_token = settings.twilio_account_sid, settings.twilio_auth_token
    return (account_sid, auth_token) if account_sid and auth_token else None


def sendgrid_credentials(settings: Settings) -> tuple[str, str] | None:
    """The SendGrid API key and sender address, or None when email is not configured."""
    api_key, from_email = settings.sendgrid_api_key, settings.sendgrid_from_email
    return (api_key, from_email) if api_key and from_email else None


def sms_configured(settings: Settings) -> bool:
    return twilio_credentials(settings) is not None


def email_configured(settings: Settings) -> bool:
    if settings.folder_mode:
        return bool(settings.sendgrid_api_key)  # each business file names its from-address
    return sendgrid_credentials(settings) is not None


def build_sms_sender(settings: Settings) -> SmsSender | None:
    credentials = twilio_credentials(settings)
    if credentials is None:
        return None
    account_sid, auth_token = credentials
    if settings.folder_mode:
        # Every business file names its own sender (checked by load_businesses); a text naming none is refused.
        from bot.channels.twilio_sms import TwilioSmsSender

        return TwilioSmsSender(
            account_sid=account_sid,
            auth_token=auth_token,
            api_url=settings.twilio_api_url,
            connections=sending_threads(settings),
        )
    if not (settings.twilio_from_number or settings.twilio_messaging_service_sid):
        # Refused at start, not at the first lead: until each business names its own sender, the deployment's
        # is the only one, and the adapter would refuse every text for want of it.
        raise ConfigError(
            [
                Problem(
                    "environment",
                    None,
                    "Twilio is configured (TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN) but texts have no sender",
                    fix="set TWILIO_FROM_NUMBER or TWILIO_MESSAGING_SERVICE_SID",
                )
            ]
        )
    from bot.channels.twilio_sms import TwilioSmsSender

    return TwilioSmsSender(
        account_sid=account_sid,
        auth_token=auth_token,
        from_number=settings.twilio_from_number,
        messaging_service_sid=settings.twilio_messaging_service_sid,
        api_url=settings.twilio_api_url,
        connections=sending_threads(settings),
    )


def build_email_sender(settings: Settings, business: Business) -> EmailSender | None:
    if settings.folder_mode and settings.sendgrid_api_key:
        from bot.channels.sendgrid_email import SendGridEmailSender

        # No deployment-wide sender: each email carries its business's (OutgoingEmail.sender); SendGrid
        # refuses one that names none rather than sending it from another clinic's address.
        return SendGridEmailSender(api_key=settings.sendgrid_api_key, from_email="", api_url=settings.sendgrid_api_url)
    credentials = sendgrid_credentials(settings)
    if credentials is None:
        return None
    api_key, from_email = credentials
    from bot.channels.sendgrid_email import SendGridEmailSender

    return SendGridEmailSender(
        api_key=api_key,
        from_email=from_email,
        from_name=business.name,
        reply_to=settings.sendgrid_reply_to,
        api_url=settings.sendgrid_api_url,
    )


def build_services(
    settings: Settings,
    *,
    engine: Engine | None = None,
    clock: Clock | None = None,
    sms: SmsSender | None = None,
    email: EmailSender | None = None,
    migrate: bool = True,
) -> Services:
    """Build everything the use cases need from settings; tests pass their own clock or senders."""
    businesses = load_businesses(settings)  # before the database: a bad file stops the start with its line
    engine = engine or make_engine(settings.database_url, threads=sending_threads(settings))
    if migrate:
        # Rows stored before businesses had slugs (migration 0014) are one business.yml's ("main" in a folder too).
        single = next(iter(businesses))
        upgrade(engine, business=SINGLE_BUSINESS_SLUG if settings.folder_mode else single.slug)
    return services_for(
        settings,
        businesses,
        session_factory=make_session_factory(engine, webhook_receivers=settings.webhook_urls),
        clock=clock or ScaledClock(settings.time_scale, start=settings.clock_start),
        sms=sms if sms is not None else build_sms_sender(settings),
        email=email,
    )


def services_for(
    settings: Settings,
    businesses: Businesses,
    *,
    session_factory: sessionmaker[Session],
    clock: Clock,
    sms: SmsSender | None,
    email: EmailSender | None,
) -> Services:
    """The services for these businesses, each with its own playbooks and wording (overrides beside its file).

    `services.business` (the call sites not yet given a lead's business) is the first by slug in a folder.
    """
    first = next(iter(businesses))
    playbooks: dict[str, Playbooks] = {}
    problems: list[Problem] = []
    for business in businesses:
        try:
            playbooks[business.slug] = load_playbooks(settings, business)
        except ConfigError as error:
            problems.extend(error.problems)
    if problems:
        raise ConfigError(problems)
    folder = settings.folder_mode
    renderers = {business.slug: business_renderer(settings, business) for business in businesses}
    return Services(
        session_factory=session_factory,
        clock=clock,
        business=first,
        playbooks=playbooks[first.slug],
        renderer=renderers[first.slug],
        public_base_url=settings.public_base_url,
        sms=sms,
        email=email if email is not None else build_email_sender(settings, first),
        default_region=settings.default_region,
        sms_countries=settings.sms_country_codes or frozenset(business_country(b) for b in businesses),
        # One business.yml: left to Services, so a test's replace(business=...) still means the one business.
        every_business=businesses if folder else None,
        playbooks_by_business=playbooks if folder else {},
        renderers_by_business=renderers if folder else {},
    )


def single_business(settings: Settings) -> Business:
    """Today's one business.yml, with the deployment's own channel, senders and secrets as the business's.

    One clinic configures these in the environment (SLACK_LEADS_CHANNEL, TWILIO_FROM_NUMBER, LEAD_WEBHOOK_TOKEN,
    ...); carried on the Business, every route and send reads them the same way whether the deployment serves
    one business or many.
    """
    return with_deployment_settings(load_business(settings.business_path), settings)


def with_deployment_settings(business: Business, settings: Settings) -> Business:
    """The business with the environment's Slack channel, senders and webhook secrets (single-business mode)."""
    return replace(
        business,
        slack=SlackPlace(
            channel=settings.slack_leads_channel or "",
            on_call=settings.slack_oncall or "",
            admins=tuple(sorted(settings.slack_admin_ids)),
        ),
        sms=SmsFrom(
            number=settings.twilio_from_number or None,
            messaging_service_sid=settings.twilio_messaging_service_sid or None,
        ),
        email=EmailPlace(
            from_address=settings.sendgrid_from_email or "",
            from_name=business.name,
            reply_to=settings.sendgrid_reply_to or "",
        ),
        webhooks=WebhookKeys(
            lead_token=settings.lead_webhook_token or "",
            booking_token=settings.booking_webhook_token or "",
            calendly_signing_key=settings.calendly_signing_key or "",
            calcom_secret=settings.calcom_webhook_secret or "",
        ),
    )


def business_country(business: Business) -> str:
    """The business's own country: its phone number's, else the region its numbers are read in."""
    return phone_country(business.phone) or business.default_region


def digest_jobs(
    services: Services, client: WebClient, schedule: DigestSchedule, *, single_channel: str
) -> list[WeeklyDigestJob]:
    """One digest job per business, each posting to its own channel; one business posts to `single_channel`.

    A business of several that names no channel gets no digest (nowhere it may be posted is its own).
    """
    from bot.slack.digest import WeeklyDigestJob  # matplotlib and the digest load only when it is scheduled

    if services.businesses.only is not None:
        return [WeeklyDigestJob(services, client, single_channel, schedule)]
    return [
        WeeklyDigestJob(services, client, business.slack.channel, schedule, business)
        for business in services.businesses
        if business.slack.channel
    ]


def preview_sources(settings: Settings) -> PreviewSources:
    """What `followup preview` reads: the business file, playbooks and wording `followup run` would use."""
    return PreviewSources(
        business_path=Path(settings.business_path),
        sequences_dir=Path(settings.sequences_dir),
        templates_dir=Path(settings.templates_dir),
        default_region=settings.default_region,
        public_base_url=settings.public_base_url,
    )


def build_slack_poster(settings: Settings, services: Services, *, timeout: float = 10.0) -> SlackPoster | None:
    """The poster for these settings, or None when Slack is not configured (notices then wait in the outbox).

    Slack is configured with a bot token and a channel to post to: SLACK_LEADS_CHANNEL, or (several
    businesses) the channel each business file names (each lead's notices go to its business's channel).
    """
    several = services.businesses.only is None
    if not settings.slack_bot_token:
        return None
    if not (settings.slack_leads_channel or (several and any(b.slack.channel for b in services.businesses))):
        return None
    from slack_sdk import WebClient

    base_url = settings.slack_api_url if settings.slack_api_url.endswith("/") else settings.slack_api_url + "/"
    client = WebClient(token=settings.slack_bot_token, base_url=base_url, timeout=int(timeout))
    return SlackPoster(
        services, client, settings.slack_leads_channel or "", settings.slack_oncall, admins=settings.slack_admin_ids
    )


def slack_channel_checker(settings: Settings, *, timeout: float = 10.0) -> Callable[[str], ChannelStatus] | None:
    """Asks Slack whether the bot can post in a channel (`followup businesses`); None when Slack is not set up."""
    if not settings.slack_bot_token:
        return None
    from slack_sdk import WebClient

    from bot.slack.channel_check import channel_status

    base_url = settings.slack_api_url if settings.slack_api_url.endswith("/") else settings.slack_api_url + "/"
    client = WebClient(token=settings.slack_bot_token, base_url=base_url, timeout=int(timeout))
    return lambda channel: channel_status(client, channel)


def deployment_vendors(settings: Settings) -> Vendors:
    """Which vendors this deployment has credentials for (the senders are each business's own)."""
    return Vendors(
        slack=bool(settings.slack_bot_token), sms=sms_configured(settings), email=bool(settings.sendgrid_api_key)
    )


@dataclass
class RunningParts:
    """Everything `followup run` runs, assembled but not started (the sandbox runs the same parts)."""

    services: Services
    scheduler: WorkScheduler
    poster: SlackPoster | None
    app: Starlette


def request_limits(settings: Settings) -> RequestLimits:
    """The HTTP edge's limits from settings; no body is larger than the largest route takes (an inbound email)."""
    return RequestLimits(
        header_timeout=settings.http_header_timeout,
        body_timeout=settings.http_body_timeout,
        keep_alive_timeout=settings.http_keep_alive_timeout,
        max_connections=settings.http_max_connections,
        max_header_bytes=settings.http_max_header_bytes,
        max_body_bytes=MAX_EMAIL_BODY,
        summary_seconds=settings.http_refusal_log_seconds,
    )


def assemble(settings: Settings, *, clock: Clock | None = None, refusals: RefusalLog | None = None) -> RunningParts:
    """Wire the bot from settings: services, scheduler jobs, the Slack poster and the web app.

    With `refusals`, what the HTTP edge refused is logged once per interval and in total at stop.
    """
    services = build_services(settings, clock=clock)
    for line in closed_routes(settings, services.businesses):
        log.warning("%s", line)
    for warning in waiting_channels_warnings(services.playbooks, configured_channels(services)):
        log.error("%s", warning)
    released = release_waiting_touches(services)
    if released:
        log.info("%d touch(es) that waited for a channel's settings go out now", released)
    scheduler = WorkScheduler(
        services,
        poll_seconds=settings.poll_seconds,
        click_escalation_delay=settings.click_escalation_delay,
        claim_reminder_delay=settings.claim_reminder_delay,
        send_lease_seconds=settings.send_lease_seconds,
        senders=settings.senders,
        fast_lane_workers=settings.fast_lane_threads,
    )
    # Sends a stopped process left `sending` (touches and one-off messages alike) are settled by the
    # dispatcher's own ticks (bot.usecases.send_recovery): no job of their own.
    # Delivery ids kept for replay protection are forgotten once no retry or replay can bring them back.
    scheduler.add_periodic("processed_deliveries_pruning", lambda: prune_processed_deliveries(services), seconds=3600)
    if settings.webhook_urls:
        deliverer = WebhookDeliverer(
            services, secret=settings.webhook_secret or "", max_attempts=settings.webhook_max_attempts
        )
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

        # One digest per business: its own leads, at FOLLOWUP_DIGEST's hour in its time zone, in its channel.
        client = slack_client(settings)
        single_channel = settings.slack_leads_channel or ""
        for job in digest_jobs(services, client, settings.digest_schedule, single_channel=single_channel):
            job_id = "weekly_digest" if services.businesses.only is not None else f"weekly_digest:{job.business.slug}"
            scheduler.add_periodic(job_id, job.run_once, seconds=60)
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
    app = create_web_app(
        services, settings, extra_routes=extra_routes, on_start=_in_turn(on_start), on_stop=_in_turn(on_stop)
    )
    return RunningParts(services, scheduler, poster, app)


def _in_turn(steps: list[Callable[[], object]]) -> Callable[[], None]:
    """One callable that runs the steps in order (what each returns is not needed)."""

    def run() -> None:
        for step in steps:
            step()

    return run
