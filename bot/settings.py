"""Settings from the environment (and a .env file): read once, in the composition root."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot import SHIPPED_SEQUENCES, SHIPPED_TEMPLATES


def default_business_path() -> Path:
    """A business.yml in the working directory wins; otherwise the shipped sample."""
    local = Path("business.yml")
    return local if local.exists() else SHIPPED_SEQUENCES / "business.yml"


#: Threads waiting on the providers for scheduled sends, per process. Eight, not four: with four,
#: each text's call waited longer for the interpreter behind the dispatching thread, and 2,000
#: texts due at once took a fifth longer (docs/benchmarks.md).
DEFAULT_SENDERS = 8
#: Threads sending new leads' instant touches, beside whatever batch is in progress.
DEFAULT_FAST_LANE_THREADS = 4


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    database_url: str = Field("sqlite:///followup.db", alias="DATABASE_URL")
    business_path: Path = Field(default_factory=default_business_path, alias="FOLLOWUP_BUSINESS")
    #: A folder of business files, `<slug>.yml` each, for a deployment serving many (instead of one business.yml).
    businesses_dir: Path | None = Field(None, alias="FOLLOWUP_BUSINESSES")
    sequences_dir: Path = Field(SHIPPED_SEQUENCES, alias="FOLLOWUP_SEQUENCES_DIR")
    templates_dir: Path = Field(SHIPPED_TEMPLATES, alias="FOLLOWUP_TEMPLATES_DIR")
    reply_rules_path: Path | None = Field(None, alias="FOLLOWUP_REPLY_RULES")
    time_scale: float = Field(1.0, alias="FOLLOWUP_TIME_SCALE", gt=0)
    #: Start the bot's clock at this instant instead of now (ISO 8601 with offset; demos and tests).
    clock_start: datetime | None = Field(None, alias="FOLLOWUP_CLOCK_START")
    #: How often the scheduler looks for due work, in real seconds (instant touches don't wait for it).
    poll_seconds: float = Field(1.0, alias="FOLLOWUP_POLL_SECONDS", gt=0)
    #: Threads waiting on Twilio and SendGrid for the scheduled sends (groups of sends in flight at once).
    senders: int = Field(DEFAULT_SENDERS, alias="FOLLOWUP_SENDERS", ge=1, le=32)
    #: Threads sending new leads' instant touches beside the scheduled ones.
    fast_lane_threads: int = Field(DEFAULT_FAST_LANE_THREADS, alias="FOLLOWUP_FAST_LANE_THREADS", ge=1, le=16)
    #: Real seconds before a touch left `sending` by a process that died is settled (never resent blindly).
    send_lease_seconds: float = Field(60.0, alias="FOLLOWUP_SEND_LEASE_SECONDS", gt=0)
    default_region: str = Field("US", alias="FOLLOWUP_DEFAULT_REGION")
    #: A booking-link click with no booking after this long escalates to a call task.
    click_escalation_delay: str = Field("2h", alias="FOLLOWUP_CLICK_ESCALATION_DELAY")
    #: A call task nobody claims within this long gets one reminder to SLACK_ONCALL.
    claim_reminder_delay: str = Field("30m", alias="FOLLOWUP_CLAIM_REMINDER_DELAY")

    host: str = Field("127.0.0.1", alias="HOST")
    port: int = Field(3000, alias="PORT")
    public_base_url: str = Field("http://127.0.0.1:3000", alias="PUBLIC_BASE_URL")
    #: The HTTP edge's limits (bot.request_limits): a client that sends its request slower than this is cut off.
    http_header_timeout: float = Field(10.0, alias="FOLLOWUP_HTTP_HEADER_TIMEOUT", gt=0)
    http_body_timeout: float = Field(30.0, alias="FOLLOWUP_HTTP_BODY_TIMEOUT", gt=0)
    http_keep_alive_timeout: float = Field(5.0, alias="FOLLOWUP_HTTP_KEEP_ALIVE_TIMEOUT", gt=0)
    #: Connections open at once; past it the one that kept the server waiting longest is closed (else 503).
    http_max_connections: int = Field(200, alias="FOLLOWUP_HTTP_MAX_CONNECTIONS", ge=1)
    http_max_header_bytes: int = Field(16 * 1024, alias="FOLLOWUP_HTTP_MAX_HEADER_BYTES", ge=1024)
    #: How often refused connections are summed up in one log line (never a line per refusal).
    http_refusal_log_seconds: float = Field(60.0, alias="FOLLOWUP_HTTP_REFUSAL_LOG_SECONDS", gt=0)

    lead_webhook_token: str | None = Field(None, alias="LEAD_WEBHOOK_TOKEN")
    booking_webhook_token: str | None = Field(None, alias="BOOKING_WEBHOOK_TOKEN")
    #: The signing key of the Calendly webhook subscription (Calendly-Webhook-Signature).
    calendly_signing_key: str | None = Field(None, alias="CALENDLY_WEBHOOK_SIGNING_KEY")
    #: The secret set on the Cal.com webhook (X-Cal-Signature-256).
    calcom_webhook_secret: str | None = Field(None, alias="CALCOM_WEBHOOK_SECRET")

    twilio_account_sid: str | None = Field(None, alias="TWILIO_ACCOUNT_SID")
    twilio_auth_token: str | None = Field(None, alias="TWILIO_AUTH_TOKEN")
    twilio_from_number: str | None = Field(None, alias="TWILIO_FROM_NUMBER")
    twilio_messaging_service_sid: str | None = Field(None, alias="TWILIO_MESSAGING_SERVICE_SID")
    twilio_api_url: str = Field("https://api.twilio.com", alias="TWILIO_API_URL")

    sendgrid_api_key: str | None = Field(None, alias="SENDGRID_API_KEY")
    sendgrid_from_email: str | None = Field(None, alias="SENDGRID_FROM_EMAIL")
    sendgrid_reply_to: str | None = Field(None, alias="SENDGRID_REPLY_TO")
    sendgrid_webhook_public_key: str | None = Field(None, alias="SENDGRID_WEBHOOK_PUBLIC_KEY")
    sendgrid_inbound_token: str | None = Field(None, alias="SENDGRID_INBOUND_TOKEN")
    sendgrid_api_url: str = Field("https://api.sendgrid.com", alias="SENDGRID_API_URL")

    slack_bot_token: str | None = Field(None, alias="SLACK_BOT_TOKEN")
    slack_signing_secret: str | None = Field(None, alias="SLACK_SIGNING_SECRET")
    slack_app_token: str | None = Field(None, alias="SLACK_APP_TOKEN")
    slack_leads_channel: str | None = Field(None, alias="SLACK_LEADS_CHANNEL")
    slack_oncall: str | None = Field(None, alias="SLACK_ONCALL")
    slack_admins: str = Field("", alias="SLACK_ADMINS")
    slack_api_url: str = Field("https://slack.com/api/", alias="SLACK_API_URL")
    #: A user group (S…) whose members are on the team besides the leads channel's members.
    slack_team_group: str | None = Field(None, alias="SLACK_TEAM_GROUP")
    #: Leads one person may add with `/followup new` in an hour.
    slack_new_leads_per_hour: int = Field(20, alias="FOLLOWUP_SLACK_NEW_LEADS_PER_HOUR", ge=1)
    #: Countries (ISO 3166 codes, comma-separated) whose numbers the business texts; default its own.
    sms_countries: str = Field("", alias="FOLLOWUP_SMS_COUNTRIES")

    #: When the weekly digest is posted to the leads channel (business time), e.g. "mon 08:00"; "off" for never.
    digest: str = Field("mon 08:00", alias="FOLLOWUP_DIGEST")

    #: The clinic's own systems (CRM, Zapier, Make) that hear of lead events: one URL or several, comma-separated.
    webhook_url: str = Field("", alias="FOLLOWUP_WEBHOOK_URL")
    #: Signs every outbound webhook post; required when FOLLOWUP_WEBHOOK_URL is set.
    webhook_secret: str | None = Field(None, alias="FOLLOWUP_WEBHOOK_SECRET")
    #: Attempts per event before it is given up and the team told (backoff from 10 s to 6 h between them).
    webhook_max_attempts: int = Field(10, alias="FOLLOWUP_WEBHOOK_MAX_ATTEMPTS", ge=1, le=50)

    @field_validator("public_base_url")
    @classmethod
    def _strip_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("clock_start")
    @classmethod
    def _clock_start_has_offset(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("FOLLOWUP_CLOCK_START needs a UTC offset, e.g. 2026-12-01T09:00-06:00")
        return value

    @field_validator("businesses_dir", mode="before")
    @classmethod
    def _empty_folder_setting_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _one_business_or_a_folder(self) -> Settings:
        if self.businesses_dir is not None and "business_path" in self.model_fields_set:
            raise ValueError(
                "FOLLOWUP_BUSINESS and FOLLOWUP_BUSINESSES are both set: set FOLLOWUP_BUSINESS for one "
                "business.yml, or FOLLOWUP_BUSINESSES for a folder of business files, not both"
            )
        return self

    @property
    def folder_mode(self) -> bool:
        """Whether this deployment serves a folder of business files (FOLLOWUP_BUSINESSES)."""
        return self.businesses_dir is not None

    @model_validator(mode="after")
    def _content_beside_the_business_file(self) -> Settings:
        """A clinic's folder (`followup init DIR`) holds its playbooks and wording beside its business.yml: use them.

        FOLLOWUP_SEQUENCES_DIR and FOLLOWUP_TEMPLATES_DIR, when set, still win. A folder of business files
        keeps each business's own beside its file instead (bot.app reads them).
        """
        if self.businesses_dir is not None:
            return self
        folder = Path(self.business_path).parent
        if "sequences_dir" not in self.model_fields_set and (folder / "sequences").is_dir():
            self.sequences_dir = folder / "sequences"
        if "templates_dir" not in self.model_fields_set and (folder / "templates").is_dir():
            self.templates_dir = folder / "templates"
        return self

    @field_validator("digest")
    @classmethod
    def _digest_is_a_day_and_hour(cls, value: str) -> str:
        from bot.reports.digest import DigestSchedule

        DigestSchedule.parse(value)  # raises with the fix in its message
        return value

    @property
    def digest_schedule(self):  # noqa: ANN201 - a DigestSchedule or None, imported late to keep settings light
        from bot.reports.digest import DigestSchedule

        return DigestSchedule.parse(self.digest)

    @field_validator("webhook_url")
    @classmethod
    def _webhook_urls_are_http(cls, value: str) -> str:
        for url in (part.strip() for part in value.split(",") if part.strip()):
            if not url.startswith(("https://", "http://")):
                raise ValueError(f"FOLLOWUP_WEBHOOK_URL: {url!r} is not an http(s) URL")
        return value

    @model_validator(mode="after")
    def _webhooks_are_signed(self) -> Settings:
        if self.webhook_urls and not self.webhook_secret:
            raise ValueError(
                "FOLLOWUP_WEBHOOK_URL is set but FOLLOWUP_WEBHOOK_SECRET is not: outbound webhooks "
                "are always signed; set a long random secret and give it to the receiver"
            )
        return self

    @property
    def webhook_urls(self) -> tuple[str, ...]:
        return tuple(part.strip() for part in self.webhook_url.split(",") if part.strip())

    @property
    def slack_admin_ids(self) -> frozenset[str]:
        return frozenset(part.strip() for part in self.slack_admins.split(",") if part.strip())

    @property
    def sms_country_codes(self) -> frozenset[str]:
        return frozenset(part.strip().upper() for part in self.sms_countries.split(",") if part.strip())
