"""Each business's health as `followup businesses` shows it: can its cards, texts and emails go out, and do they.

The facts come in from outside (what Slack said of the channel, which vendors the deployment has
credentials for) and from the database (the last send, the open leads); `business_health` turns them
into lines a front desk can read, each an ok, a note, or a problem that needs someone.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.core.business import Business
from bot.reports.stats import CLOSED_STAGES
from bot.store.models import Lead, Message


@dataclass(frozen=True)
class ChannelStatus:
    """What Slack said of a business's channel."""

    #: The channel as configured (an id, or #name).
    channel: str
    #: The bot can post there: the channel exists, is not archived, and the bot is in it.
    reachable: bool
    #: Why not, in words, when it is not.
    problem: str = ""
    #: Its name as Slack shows it (#front-desk), when Slack told.
    name: str = ""
    id: str = ""


@dataclass(frozen=True)
class Vendors:
    """Which vendors this deployment has credentials for (they are shared by every business)."""

    slack: bool
    sms: bool
    email: bool


@dataclass(frozen=True)
class Activity:
    """What the database says of a business: its last send and its open leads."""

    last_send: datetime | None = None
    #: Leads not lost or opted out.
    open_leads: int = 0


class Level(StrEnum):
    OK = "ok"  #: works
    NOTE = "note"  #: works, but something is worth knowing (nothing is lost)
    PROBLEM = "problem"  #: something will not go out or not come in until someone acts


@dataclass(frozen=True)
class Check:
    #: What is checked: Slack, Texts, Email, Last send, Leads.
    what: str
    text: str
    level: Level = Level.OK


@dataclass(frozen=True)
class BusinessHealth:
    slug: str
    name: str
    checks: tuple[Check, ...]

    @property
    def healthy(self) -> bool:
        return all(check.level != Level.PROBLEM for check in self.checks)


def business_activity(session: Session, slugs: Iterable[str]) -> dict[str, Activity]:
    """Each business's last send (a message a provider took) and open leads, by slug; none stored reads as none."""
    last_sends = dict(
        session.execute(
            select(Lead.business, func.max(Message.created_at))
            .join(Lead, Lead.id == Message.lead_id)
            .where(Message.direction == "out", Message.provider_id.is_not(None))
            .group_by(Lead.business)
        )
        .tuples()
        .all()
    )
    open_leads = dict(
        session.execute(
            select(Lead.business, func.count(Lead.id))
            .where(Lead.stage.not_in(list(CLOSED_STAGES)))
            .group_by(Lead.business)
        )
        .tuples()
        .all()
    )
    return {slug: Activity(last_sends.get(slug), open_leads.get(slug, 0)) for slug in slugs}


def business_health(
    business: Business,
    *,
    vendors: Vendors,
    channel: ChannelStatus | None,
    activity: Activity,
    now: datetime,
    several: bool = False,
) -> BusinessHealth:
    """The lines `followup businesses` shows for one business; `several` when the deployment serves more than one."""
    checks = (
        _slack(business, vendors, channel),
        _texts(business, vendors),
        _email(business, vendors, several=several),
        _last_send(business, activity, now),
        Check("Leads", f"{activity.open_leads} open (not lost or opted out)"),
    )
    return BusinessHealth(business.slug, business.name, checks)


def _slack(business: Business, vendors: Vendors, status: ChannelStatus | None) -> Check:
    if not business.slack.channel:
        return Check(
            "Slack", "no channel set: its cards and call tasks have nowhere to go (slack: channel)", Level.PROBLEM
        )
    if not vendors.slack or status is None:
        return Check(
            "Slack",
            f"{business.slack.channel}: Slack is not set up for this deployment (SLACK_BOT_TOKEN), "
            "cards wait until it is",
            Level.PROBLEM,
        )
    if not status.reachable:
        return Check("Slack", f"{business.slack.channel}: {status.problem}", Level.PROBLEM)
    shown = status.name or status.channel
    if status.id and status.id != shown:
        shown += f" ({status.id})"
    return Check("Slack", f"{shown}: reachable, the bot is in it")


def _texts(business: Business, vendors: Vendors) -> Check:
    number, service = business.sms.number, business.sms.messaging_service_sid
    if not (number or service):
        return Check(
            "Texts",
            "no sender: no number or messaging service, so no text goes out "
            "(sms: from_number or messaging_service_sid)",
            Level.PROBLEM,
        )
    sender = f"from {number}" if number else f"from messaging service {service}"
    if not vendors.sms:
        return Check(
            "Texts",
            f"{sender}, but Twilio is not set up (TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN): texts wait",
            Level.PROBLEM,
        )
    if not number:
        return Check(
            "Texts",
            f"{sender}; replies and missed calls come here only to a number named in sms: from_number",
            Level.NOTE,
        )
    return Check("Texts", f"{sender}; replies and missed calls to {number} come here")


def _email(business: Business, vendors: Vendors, *, several: bool) -> Check:
    sender, inbound = business.email.from_address, business.email.inbound_address
    if not vendors.email:
        return Check(
            "Email", "SendGrid is not set up for this deployment (SENDGRID_API_KEY): no email goes out", Level.NOTE
        )
    if not sender:
        return Check("Email", "no from address: its emails cannot go out (email: from_address)", Level.PROBLEM)
    if inbound:
        return Check("Email", f"from {sender}; replies to {inbound} come here")
    if several:
        return Check(
            "Email",
            f"from {sender}; no inbound address, so email replies cannot find this business (email: inbound_address)",
            Level.NOTE,
        )
    return Check("Email", f"from {sender}; replies through SendGrid Inbound Parse come here")


def _last_send(business: Business, activity: Activity, now: datetime) -> Check:
    if activity.last_send is None:
        return Check("Last send", "nothing sent yet")
    local = activity.last_send.astimezone(business.timezone)
    return Check("Last send", f"{local:%Y-%m-%d %H:%M} {business.timezone.key} ({_ago(now - activity.last_send)})")


def _ago(span: timedelta) -> str:
    seconds = max(int(span.total_seconds()), 0)
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''} ago"
    return "just now"


def health_text(report: Sequence[BusinessHealth]) -> str:
    """The health list as people read it: each business, its lines, and a last line counting those that need someone."""
    lines: list[str] = []
    marks = {Level.OK: "ok     ", Level.NOTE: "note   ", Level.PROBLEM: "PROBLEM"}
    width = max((len(check.what) for health in report for check in health.checks), default=0)
    for health in report:
        verdict = "healthy" if health.healthy else "NEEDS ATTENTION"
        lines.append(f"{health.name} ({health.slug}): {verdict}")
        lines += [f"  {marks[check.level]} {check.what + ':':<{width + 1}} {check.text}" for check in health.checks]
        lines.append("")
    unhealthy = [health.slug for health in report if not health.healthy]
    count = f"{len(report)} business{'es' if len(report) != 1 else ''}"
    if unhealthy:
        lines.append(
            f"{count}: {len(unhealthy)} need{'s' if len(unhealthy) == 1 else ''} attention ({', '.join(unhealthy)})"
        )
    else:
        lines.append(f"{count}: all healthy")
    # Names and channels come from files people edit: no control character reaches the terminal.
    return "\n".join("".join(ch if ch.isprintable() else "?" for ch in line) for line in lines)
