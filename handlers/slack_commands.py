"""`/followup`: acknowledge, read the text into a command, run it, and answer the person who typed it.

Answers are ephemeral (through the command's response_url, which works in any channel). What the
channel should see of a change (the card, the thread) comes from the poster carrying out the
notices the use cases queue.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from slack_bolt import Ack, App, BoltContext, Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from sqlalchemy.orm import Session

from bot.core.business import Business
from bot.core.states import Stage
from bot.reports.breakdowns import stats_table
from bot.reports.digest import build_digest
from bot.reports.lead_views import lead_detail
from bot.reports.stats import lead_lines, lead_stats
from bot.slack.blocks import context, escape, lead_label
from bot.slack.breakdowns import stats_table_blocks
from bot.slack.cards import display_phone
from bot.slack.command_text import (
    BookLead,
    Command,
    CommandError,
    Help,
    LeadVerb,
    ListFilter,
    ListLeads,
    NewLead,
    OnLead,
    RecordConsent,
    RescheduleLead,
    ShowDigest,
    ShowStats,
    parse_command,
    usage,
)
from bot.slack.digest import digest_blocks, digest_text
from bot.slack.home import lead_detail_blocks, lead_list_blocks, stats_blocks, when
from bot.store.audit import Actor
from bot.store.consent import why_no_sms_consent
from bot.store.models import Lead
from bot.usecases.appointments import Booked, cancel, mark_attended, mark_no_show, reschedule, upcoming
from bot.usecases.appointments import book as book_visit
from bot.usecases.intake import take_in_and_send
from bot.usecases.lead_actions import (
    LeadActionRefused,
    claim_lead,
    opt_out,
    opt_out_by_team,
    pause_lead,
    record_consent_by_team,
    resume_lead,
    stop_lead,
)
from bot.usecases.leads import InvalidLead, LeadInput
from bot.usecases.services import Services
from bot.usecases.team_actions import after_change, change_lead
from handlers.slack_edge import BUSINESS, UnclearLead, business_of, leads_of, one_lead, services_of
from handlers.slack_guard import NO_BUSINESS_CHANNEL

log = logging.getLogger(__name__)

COMMAND = "/followup"
LIST_TITLES = {
    ListFilter.MINE: "Your leads",
    ListFilter.OPEN: "Open leads",
    ListFilter.PAUSED: "Leads with automation paused",
    ListFilter.BOOKED: "Booked leads",
    ListFilter.NURTURE: "Leads in nurture",
    ListFilter.LOST: "Lost leads",
    ListFilter.OPTED_OUT: "Leads who opted out",
    ListFilter.ALL: "All leads",
}
OPEN_STAGES = (Stage.NEW, Stage.CONTACTED, Stage.ENGAGED)


def register(app: App) -> None:
    app.command(COMMAND)(on_followup)


def on_followup(ack: Ack, command: dict[str, Any], respond: Respond, client: WebClient, context: BoltContext) -> None:
    ack()
    services = services_of(context)
    # The business whose channel the command was typed in (handlers.slack_guard found it): it acts on no other's leads.
    business = business_of(context)
    user = command.get("user_id", "")
    try:
        parsed = parse_command(command.get("text", ""), now=services.clock.now(), zone=business.timezone)
        if context.get(BUSINESS) is None and services.businesses.only is None and not isinstance(parsed, Help):
            # Only help passes the guard without a business; anything else unchecked is refused, never
            # carried out on the first clinic's leads.
            raise CommandError(NO_BUSINESS_CHANNEL)
        answer = run(parsed, services, business, user=user, client=client)
    except (CommandError, UnclearLead) as problem:
        answer = Answer(str(problem))
    except LeadActionRefused as refused:
        answer = Answer(f"Nothing changed: {refused}.")
    except InvalidLead as invalid:
        answer = Answer("That lead cannot be added:\n" + "\n".join(f"• {escape(r)}" for r in invalid.reasons))
    respond(text=answer.text, blocks=answer.blocks, response_type="ephemeral", replace_original=False)


@dataclass(frozen=True)
class Answer:
    """What the person who typed the command reads: mrkdwn text, and blocks when there is more to show."""

    text: str
    blocks: list[dict[str, Any]] | None = None


def run(command: Command, services: Services, business: Business, *, user: str, client: WebClient) -> Answer:
    """Carry out one command for one person, on `business`'s leads only."""
    actor = Actor.slack_user(user)
    match command:
        case Help():
            return Answer(usage())
        case NewLead():
            return _new_lead(command, services, business, actor)
        case ListLeads():
            return _list(command, services, business, user)
        case ShowStats(by=None):
            with services.session_factory() as session:
                stats = lead_stats(
                    session, now=services.clock.now(), days=command.days, business=leads_of(services, business)
                )
            return Answer(
                f"followup stats for the last {command.days} days",
                stats_blocks(stats, services.playbooks_of(business.slug).get),
            )
        case ShowStats(by=by) if by is not None:
            with services.session_factory() as session:
                table = stats_table(
                    session,
                    now=services.clock.now(),
                    days=command.days,
                    by=by,
                    playbook_of=services.playbooks_of(business.slug).get,
                    business=leads_of(services, business),
                )
            return Answer(f"followup stats by {by} for the last {command.days} days", stats_table_blocks(table))
        case RescheduleLead():
            return _reschedule(command, services, business, actor)
        case ShowDigest():
            return _digest_preview(services, business)
        case BookLead():
            return _book(command, services, business, actor)
        case RecordConsent():
            return _consent(command, services, business, actor)
        case OnLead(verb=LeadVerb.SHOW):
            return _show(command, services, business, client)
        case OnLead():
            # Who may stop or opt out a lead is decided before this listener runs (handlers.slack_guard).
            return _on_lead(command, services, business, actor)
    raise CommandError(usage())


def _digest_preview(services: Services, business: Business) -> Answer:
    with services.session_factory() as session:
        digest = build_digest(
            session, end=services.clock.now(), zone=business.timezone, business=leads_of(services, business)
        )
    blocks = digest_blocks(digest, services.playbooks_of(business.slug).get, preview=True)
    blocks.append(context("Only you see this preview. The weekly post in the leads channel comes with a chart."))
    return Answer(digest_text(digest), blocks)


def _new_lead(command: NewLead, services: Services, business: Business, actor: Actor) -> Answer:
    fields = {"name": command.name, "phone": command.phone, "email": command.email, "source": "slack"}
    data = LeadInput.parse(
        {k: v for k, v in fields.items() if v},
        default_region=services.default_region,
        default_source="slack",
        sms_countries=services.sms_countries,
    )
    seen: list[tuple[str, str | None]] = []
    result = take_in_and_send(
        services,
        data,
        actor=actor,
        also=lambda _session, lead, _result: seen.append((_label(lead), why_no_sms_consent(lead))),
        business=business.slug if services.businesses.only is None else None,
    )
    [(label, no_texts_because)] = seen
    after_change(services)
    if result.created:
        consent_hint = (
            f" Automated texts wait: {no_texts_because}, so they get email and calls. If they agreed "
            f'to texts, `/followup consent {result.lead_id} verbal "what they said"`.'
            if no_texts_because
            else ""
        )
        return Answer(
            f":new: Added *{label}* (#{result.lead_id}); follow-up has started and the card is on its way "
            f"to the leads channel.{consent_hint}"
        )
    if result.enrolled:
        return Answer(f":repeat: *{label}* (#{result.lead_id}) was already a lead; their follow-up starts again.")
    return Answer(
        f"*{label}* is already a lead (#{result.lead_id}) and still in follow-up; nothing changed. "
        f"`/followup show {result.lead_id}` tells where they stand."
    )


def _label(lead: Lead) -> str:
    return lead_label(lead.name, display_phone(lead.phone), lead.email, lead.id)


def _list(command: ListLeads, services: Services, business: Business, user: str) -> Answer:
    filters: dict[ListFilter, dict[str, Any]] = {
        ListFilter.MINE: {"owner": user},
        ListFilter.OPEN: {"stages": OPEN_STAGES},
        ListFilter.PAUSED: {"paused": True},
        ListFilter.BOOKED: {"stages": (Stage.BOOKED,)},
        ListFilter.NURTURE: {"stages": (Stage.NURTURE,)},
        ListFilter.LOST: {"stages": (Stage.LOST,)},
        ListFilter.OPTED_OUT: {"stages": (Stage.OPTED_OUT,)},
        ListFilter.ALL: {},
    }
    with services.session_factory() as session:
        page = lead_lines(
            session, now=services.clock.now(), business=leads_of(services, business), **filters[command.which]
        )
    title = LIST_TITLES[command.which]
    playbooks = services.playbooks_of(business.slug)
    return Answer(f"{title}: {page.total}", lead_list_blocks(title, page, business.timezone, playbooks.get))


def _show(command: OnLead, services: Services, business: Business, client: WebClient) -> Answer:
    with services.session_factory() as session:
        lead = one_lead(
            session, command.lead, default_region=services.default_region, business=leads_of(services, business)
        )
        detail = lead_detail(session, lead, services.playbooks_of(business.slug).get)
        card = (lead.slack_channel, lead.slack_ts)
    blocks = lead_detail_blocks(detail, business.timezone)
    link = _card_link(client, *card)
    if link:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": link}]})
    return Answer(f"Lead #{detail['id']}", blocks)


def _card_link(client: WebClient, channel: str | None, ts: str | None) -> str | None:
    if not (channel and ts):
        return None
    try:
        permalink = client.chat_getPermalink(channel=channel, message_ts=ts)["permalink"]
    except (SlackApiError, SlackClientError, KeyError) as error:
        log.info("slack: no permalink for card %s/%s: %s", channel, ts, error)
        return f"Card and thread in <#{channel}>"
    return f"<{permalink}|Open the card and its thread>"


def _book(command: BookLead, services: Services, business: Business, actor: Actor) -> Answer:
    lead_id = _lead_id(services, business, command.lead)

    def book_it(session: Session, services: Services, lead: Lead, now: datetime, actor: Actor) -> tuple[Booked, str]:
        return book_visit(session, services, lead, start_at=command.start_at, now=now, actor=actor), _label(lead)

    booked, label = change_lead(services, lead_id, book_it, actor, missing=f"lead #{lead_id} no longer exists")
    return Answer(
        f":calendar: Booked *{label}* for {when(command.start_at, business.timezone)}; "
        "the lead gets a confirmation, follow-up stopped and reminders start." + _warned(booked.warnings)
    )


def _warned(warnings: tuple[str, ...]) -> str:
    return "".join(f"\n:warning: {escape(w)}: booked anyway; `/followup reschedule` moves it." for w in warnings)


def _reschedule(command: RescheduleLead, services: Services, business: Business, actor: Actor) -> Answer:
    lead_id = _lead_id(services, business, command.lead)

    def move_it(session: Session, services: Services, lead: Lead, now: datetime, actor: Actor) -> tuple[Booked, str]:
        return (
            reschedule(session, services, upcoming(session, lead.id), start_at=command.start_at, now=now, actor=actor),
            _label(lead),
        )

    booked, label = change_lead(services, lead_id, move_it, actor, missing=f"lead #{lead_id} no longer exists")
    return Answer(
        f":arrows_counterclockwise: Moved the visit of *{label}* to "
        f"{when(command.start_at, business.timezone)}; the lead is told the new time." + _warned(booked.warnings)
    )


def _consent(command: RecordConsent, services: Services, business: Business, actor: Actor) -> Answer:
    lead_id = _lead_id(services, business, command.lead)

    def record(session: Session, services: Services, lead: Lead, now: datetime, actor: Actor) -> str:
        done = record_consent_by_team(session, lead, command.change, command.note, now=now, actor=actor)
        return f"{done} for *{_label(lead)}*"

    noted = change_lead(services, lead_id, record, actor, missing=f"lead #{lead_id} no longer exists")
    return Answer(f":memo: {noted}.")


def _lead_id(services: Services, business: Business, reference: str) -> int:
    """The id of the one lead of `business` the person named (another business's lead is not found)."""
    with services.session_factory() as session:
        return one_lead(
            session, reference, default_region=services.default_region, business=leads_of(services, business)
        ).id


def _on_lead(command: OnLead, services: Services, business: Business, actor: Actor) -> Answer:
    lead_id = _lead_id(services, business, command.lead)

    def act(session: Session, services: Services, lead: Lead, now: datetime, actor: Actor) -> str:
        label = _label(lead)
        match command.verb:
            case LeadVerb.PAUSE:
                pause_lead(session, services, lead, now=now, actor=actor)
                done = f":double_vertical_bar: Paused the automated follow-up of *{label}*."
            case LeadVerb.RESUME:
                resume_lead(session, services, lead, now=now, actor=actor)
                done = f":arrow_forward: Resumed the follow-up of *{label}*."
            case LeadVerb.STOP:
                stop_lead(session, services, lead, now=now, actor=actor)
                done = f":black_square_for_stop: Stopped all follow-up of *{label}*; marked lost."
            case LeadVerb.CLAIM:
                claim_lead(session, lead, now=now, actor=actor)
                done = f":raising_hand: *{label}* is yours."
            case LeadVerb.CANCEL:
                cancel(session, services, upcoming(session, lead.id), now=now, actor=actor)
                done = (
                    f":x: Cancelled the visit of *{label}*; reminders stopped. The card offers Rebook and "
                    "Back to follow-up."
                )
            case LeadVerb.ATTENDED:
                mark_attended(session, services, upcoming(session, lead.id), now=now, actor=actor)
                done = f":tada: *{label}* attended the visit."
            case LeadVerb.NO_SHOW:
                mark_no_show(session, services, upcoming(session, lead.id), now=now, actor=actor)
                done = f':ghost: *{label}* missed the visit: the "we missed you" messages start and a call is open.'
            case LeadVerb.OPT_OUT:
                channels = [c for c, has in (("sms", lead.phone), ("email", lead.email)) if has]
                if not channels:
                    raise LeadActionRefused("this lead has neither a phone nor an email to opt out of")
                opt_out_by_team(session, services, lead, channels[0], now=now, actor=actor)
                for channel in channels[1:]:
                    opt_out(session, lead, channel, now=now, actor=actor)
                done = f":no_bell: *{label}* is opted out of {' and '.join(channels)}; nothing more goes to them."
            case _:
                raise CommandError(usage())
        return done

    return Answer(change_lead(services, lead_id, act, actor, missing=f"lead #{lead_id} no longer exists"))
