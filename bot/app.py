"""The composition root: read settings once, build every service, wire adapters to the core."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine

from bot.core.business import Business, load_business
from bot.core.clock import Clock, ScaledClock
from bot.core.contacts import phone_country
from bot.store.db import make_engine, make_session_factory, upgrade
from bot.core.ports import EmailSender, SmsSender
from bot.usecases.services import Playbooks, Services
from bot.reports.preview import PreviewSources
from bot.slack.poster import SlackPoster
from bot.settings import Settings
from bot.core.templating import TemplateRenderer


def load_playbooks(settings: Settings, business: Business) -> Playbooks:
    """The business's playbook is the default; names resolve in the sequences folder."""
    playbooks = Playbooks(
        sequences_dir=Path(settings.sequences_dir),
        templates_dir=Path(settings.templates_dir),
        default=str(business.sequence_ref),
    )
    playbooks.get()  # fail at start, not at the first lead, when the playbook is invalid
    return playbooks


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
    return sendgrid_credentials(settings) is not None


def build_sms_sender(settings: Settings) -> SmsSender | None:
    credentials = twilio_credentials(settings)
    if credentials is None:
        return None
    account_sid, auth_token = credentials
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
    engine = engine or make_engine(settings.database_url, threads=sending_threads(settings))
    if migrate:
        upgrade(engine)
    business = load_business(settings.business_path)
    return Services(
        session_factory=make_session_factory(engine, webhook_receivers=settings.webhook_urls),
        clock=clock or ScaledClock(settings.time_scale, start=settings.clock_start),
        business=business,
        playbooks=load_playbooks(settings, business),
        renderer=TemplateRenderer(Path(settings.templates_dir)),
        public_base_url=settings.public_base_url,
        sms=sms if sms is not None else build_sms_sender(settings),
        email=email if email is not None else build_email_sender(settings, business),
        default_region=settings.default_region,
        sms_countries=settings.sms_country_codes or frozenset({business_country(business)}),
    )


def business_country(business: Business) -> str:
    """The business's own country: its phone number's, else the region its numbers are read in."""
    return phone_country(business.phone) or business.default_region


def preview_sources(settings: Settings) -> PreviewSources:
    """What `followup preview` reads: the business file, playbooks and wording `followup run` would use."""
    return PreviewSources(business_path=Path(settings.business_path), sequences_dir=Path(settings.sequences_dir),
                          templates_dir=Path(settings.templates_dir), default_region=settings.default_region,
                          public_base_url=settings.public_base_url)


def build_slack_poster(settings: Settings, services: Services, *, timeout: float = 10.0) -> SlackPoster | None:
    """The poster for these settings, or None when Slack is not configured (notices then wait in the outbox)."""
    if not (settings.slack_bot_token and settings.slack_leads_channel):
        return None
    from slack_sdk import WebClient

    base_url = settings.slack_api_url if settings.slack_api_url.endswith("/") else settings.slack_api_url + "/"
    client = WebClient(token=settings.slack_bot_token, base_url=base_url, timeout=int(timeout))
    return SlackPoster(services, client, settings.slack_leads_channel, settings.slack_oncall,
                       admins=settings.slack_admin_ids)
