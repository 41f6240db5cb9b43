"""What the Slack listeners share: the services from Bolt's context, who clicked where, answering one person."""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from slack_bolt import BoltContext
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from sqlalchemy.orm import Session

from bot.core.business import Business
from bot.reports.stats import home_snapshot
from bot.slack.blocks import escape
from bot.slack.cards import display_phone
from bot.slack.home import businesses_home_view, home_view, lead_choices_text
from bot.store.models import Lead
from bot.usecases.leads import find_lead
from bot.usecases.services import Services

log = logging.getLogger(__name__)

#: Context keys the middleware in bot.slack_app fills.
SERVICES = "services"
ADMINS = "admins"
#: Context keys the Slack guard (handlers.slack_guard) fills: the business whose channel the request came
#: from, and every business the request may act on (App Home: each whose channel the member is in).
BUSINESS = "business"
BUSINESSES = "businesses"


def services_of(context: BoltContext) -> Services:
    return context[SERVICES]


def business_of(context: BoltContext) -> Business:
    """The business the request acts for, as the guard found it from the channel it came from.

    A request the guard lets through without naming one (help, a message of no lead's thread) is the
    deployment's single business's, which is also every request's when it serves one business.
    """
    given = context.get(BUSINESS)
    if given is not None:
        return given
    services = services_of(context)
    return services.businesses.only or services.business


def leads_of(services: Services, business: Business) -> str | None:
    """The slug that keeps `business`'s leads in a lookup or a list; None with one business (every lead is its own)."""
    return None if services.businesses.only is not None else business.slug


def businesses_of(context: BoltContext) -> tuple[Business, ...]:
    """The businesses the request may act on (one, except in App Home for a member of several channels)."""
    given = context.get(BUSINESSES)
    return tuple(given) if given else (business_of(context),)


def admins_of(context: BoltContext) -> frozenset[str]:
    return context.get(ADMINS) or frozenset()


class UnclearLead(LookupError):
    """No lead, or several, answer to what the person typed; the message says which and how to pick."""


def one_lead(session: Session, reference: str, *, default_region: str, business: str | None) -> Lead:
    """The one lead of `business` (a slug, `leads_of`'s) a person named by id, phone, email or name; UnclearLead
    when none or several match. Another business's lead is not found, so naming it tells nothing of it."""
    if any(unicodedata.category(character) == "Cc" for character in reference):
        # No lead's id, phone, email or name holds one, and PostgreSQL refuses NUL in any text it is sent.
        raise UnclearLead(
            "A lead reference cannot contain a control character (such as NUL): name the lead by "
            "its id, phone, email or name."
        )
    found = find_lead(session, reference, default_region=default_region, business=business)
    if not found:
        raise UnclearLead(
            f"No lead matches `{escape(reference)}`. Name a lead by its id, phone, email or name; "
            "`/followup list` shows them."
        )
    if len(found) > 1:
        raise UnclearLead(
            lead_choices_text(reference, [(lead.id, lead.name, lead.phone, lead.email) for lead in found])
        )
    return found[0]


def plain_name(lead: Lead) -> str:
    """The lead's name for plain text (modal titles and sections escape it themselves)."""
    return lead.name.strip() or display_phone(lead.phone) or lead.email or f"Lead #{lead.id}"


def record_id(value: str) -> int | None:
    """The record id a button's value carries, or None when it names none (the button is out of date).

    Only ASCII digits: str.isdigit() also takes "²" or "١٢", which int() then refuses or reads as another id.
    """
    return int(value) if re.fullmatch(r"[0-9]{1,18}", value) else None


@dataclass(frozen=True)
class Click:
    """A button press: which record its value names, who pressed it, and where."""

    target_id: int | None
    user_id: str
    channel_id: str | None
    #: The thread the button's message is in, so an answer shows up beside it.
    thread_ts: str | None
    trigger_id: str | None

    @classmethod
    def read(cls, body: Mapping[str, Any], action: Mapping[str, Any]) -> Click:
        value = str(action.get("value") or "")
        container = body.get("container") or {}
        message = body.get("message") or {}
        channel = container.get("channel_id") or (body.get("channel") or {}).get("id")
        return cls(
            target_id=record_id(value),
            user_id=(body.get("user") or {}).get("id", ""),
            channel_id=channel,
            thread_ts=container.get("thread_ts") or message.get("thread_ts"),
            trigger_id=body.get("trigger_id"),
        )

    def answer(self, client: WebClient, text: str) -> None:
        """Tell the person who pressed the button, beside the button (only they see it)."""
        tell(client, channel=self.channel_id, user=self.user_id, thread_ts=self.thread_ts, text=text)


def tell(client: WebClient, *, channel: str | None, user: str, text: str, thread_ts: str | None = None) -> None:
    """Answer one person with an ephemeral message where they acted; a failure to answer is logged, not raised."""
    if not channel:
        log.warning("slack: no channel to answer %s in: %s", user, text)
        return
    arguments: dict[str, Any] = {"channel": channel, "user": user, "text": text}
    if thread_ts:
        arguments["thread_ts"] = thread_ts
    try:
        client.chat_postEphemeral(**arguments)
    except (SlackApiError, SlackClientError) as error:
        # The action itself is done (or refused) either way; only the note to the person is lost.
        log.warning("slack: could not answer %s in %s: %s", user, channel, error)


#: Rows of each list in App Home: all of them for one business; fewer each when the tab shows several.
HOME_ROWS = 15
HOME_ROWS_EACH = 4


def publish_home(client: WebClient, services: Services, user_id: str, businesses: tuple[Business, ...]) -> None:
    """Publish one person's App Home tab: their business's, or one part for each business whose channel they are in."""
    now = services.clock.now()
    rows = HOME_ROWS if len(businesses) == 1 else HOME_ROWS_EACH
    with services.session_factory() as session:
        parts = [
            (
                home_snapshot(
                    session,
                    user_id=user_id,
                    business_name=business.name,
                    now=now,
                    zone=business.timezone,
                    limit=rows,
                    business=leads_of(services, business),
                ),
                business.timezone,
                services.playbooks_of(business.slug).get,
            )
            for business in businesses
        ]
    view = home_view(*parts[0]) if len(parts) == 1 else businesses_home_view(parts)
    client.views_publish(user_id=user_id, view=view)
