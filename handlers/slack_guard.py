"""The one gate every Slack request passes before a listener: applied once, and only by whom the table allows.

A Bolt middleware, run after Bolt has checked the signature and before any listener:

1. Replays are dropped. An Events API delivery is keyed by its `event_id` (Slack's retries,
   `X-Slack-Retry-Num`, carry the same id), anything else by its signature (an identical signed
   request replayed inside Slack's five minutes has the identical signature) or, over Socket Mode
   where nothing is signed, by its `trigger_id`. The key is a row in `processed_deliveries`, so it
   holds across processes and restarts.
2. The request is named as one `Act` (bot.slack.permissions), the person is looked up (users.info:
   their organisation and whether they are a guest; conversations.members of the leads channel or
   the SLACK_TEAM_GROUP user group: whether they are on the team) and where they are, and the
   table decides. A refusal is answered to that person alone, in the way the request allows
   (an ephemeral message, a field error in the modal, a Home tab saying why), and no listener runs.
3. The request is given its business (issue #16: one deployment serves many clinics). With several
   businesses, the business is the one whose leads channel the request came from (`Businesses.by_channel`;
   a modal's channel is the one its button was in, kept in its private_metadata); App Home is every
   business whose channel the member is in (users.conversations). The person's standing is theirs in that
   business (its channel's members, its admins), and a request naming a record (a button's id, a modal's
   lead or call task, a thread reply under a card) of another business's lead is refused. A request from a
   channel of no business is refused. With one business nothing of this changes what is allowed: every
   channel is that business's, as before. Lead references typed in `/followup` are looked up within the
   business (handlers.slack_edge.one_lead), so another business's lead is simply not found. The listeners
   read the business from the context (handlers.slack_edge.business_of), never from elsewhere.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from slack_bolt import BoltRequest, BoltResponse
from slack_bolt.middleware import Middleware
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from sqlalchemy import func, select

from bot.core.business import Business
from bot.core.businesses import normalize_channel
from bot.core.rules import CallOutcome
from bot.core.states import ActorType
from bot.slack.blocks import ActionId, ModalCallback
from bot.slack.command_text import (
    BookLead,
    CommandError,
    Help,
    LeadVerb,
    ListLeads,
    NewLead,
    OnLead,
    RecordConsent,
    RescheduleLead,
    ShowDigest,
    ShowStats,
    message_for_lead,
    parse_command,
)
from bot.slack.modals import OUTCOME_BLOCK, ModalOrigin, StaleModal
from bot.slack.permissions import Act, Person, Place, Standing, refusal
from bot.store.models import Appointment, AuditEntry, CallTask, Lead, Message
from bot.usecases.delivery import first_delivery
from bot.usecases.services import Services
from handlers.slack_edge import BUSINESS, BUSINESSES, SERVICES, record_id, tell

log = logging.getLogger(__name__)

#: ProcessedDelivery providers: events by event_id (as before), other requests by signature or trigger.
EVENT_PROVIDER = "slack"
REQUEST_PROVIDER = "slack-request"
#: The slash command the guard reads (handlers.slack_commands answers it).
COMMAND = "/followup"

#: What each button does, for the permission table. Every ActionId is here (a test checks it).
ACTION_ACTS: dict[ActionId, Act] = {
    ActionId.LEAD_CLAIM: Act.WORK_LEAD,
    ActionId.LEAD_REPLY: Act.WORK_LEAD,
    ActionId.LEAD_PAUSE: Act.WORK_LEAD,
    ActionId.LEAD_RESUME: Act.WORK_LEAD,
    ActionId.LEAD_BOOKED: Act.WORK_LEAD,
    ActionId.LEAD_NOT_INTERESTED: Act.END_LEAD,
    ActionId.TASK_CLAIM: Act.WORK_LEAD,
    ActionId.TASK_LOG_OUTCOME: Act.WORK_LEAD,
    ActionId.TASK_PAUSE: Act.WORK_LEAD,
    ActionId.TASK_RESUME: Act.WORK_LEAD,
    ActionId.TASK_BOOKED: Act.WORK_LEAD,
    ActionId.TASK_NOT_INTERESTED: Act.END_LEAD,
    ActionId.TASK_SNOOZE: Act.WORK_LEAD,
    ActionId.EMAIL_OPEN: Act.SEE_LEADS,
    ActionId.APPOINTMENT_RESCHEDULE: Act.WORK_LEAD,
    ActionId.APPOINTMENT_CANCEL: Act.WORK_LEAD,
    ActionId.APPOINTMENT_ATTENDED: Act.WORK_LEAD,
    ActionId.APPOINTMENT_NO_SHOW: Act.WORK_LEAD,
    ActionId.LEAD_BACK_TO_FOLLOW_UP: Act.WORK_LEAD,
    ActionId.LEAD_REOPEN: Act.WORK_LEAD,
}
#: What record each button's value names, so the guard knows whose lead it acts on. Every ActionId is here.
ACTION_TARGETS: dict[ActionId, type[Lead | CallTask | Appointment | Message]] = {
    ActionId.LEAD_CLAIM: Lead,
    ActionId.LEAD_REPLY: Lead,
    ActionId.LEAD_PAUSE: Lead,
    ActionId.LEAD_RESUME: Lead,
    ActionId.LEAD_BOOKED: Lead,
    ActionId.LEAD_NOT_INTERESTED: Lead,
    ActionId.LEAD_BACK_TO_FOLLOW_UP: Lead,
    ActionId.LEAD_REOPEN: Lead,
    ActionId.TASK_CLAIM: CallTask,
    ActionId.TASK_LOG_OUTCOME: CallTask,
    ActionId.TASK_PAUSE: CallTask,
    ActionId.TASK_RESUME: CallTask,
    ActionId.TASK_BOOKED: CallTask,
    ActionId.TASK_NOT_INTERESTED: CallTask,
    ActionId.TASK_SNOOZE: CallTask,
    ActionId.EMAIL_OPEN: Message,
    ActionId.APPOINTMENT_RESCHEDULE: Appointment,
    ActionId.APPOINTMENT_CANCEL: Appointment,
    ActionId.APPOINTMENT_ATTENDED: Appointment,
    ActionId.APPOINTMENT_NO_SHOW: Appointment,
}
#: How a button's record names its lead: its lead_id column, and its own id column.
RECORD_LEAD: dict[type[Any], tuple[Any, Any]] = {
    CallTask: (CallTask.lead_id, CallTask.id),
    Appointment: (Appointment.lead_id, Appointment.id),
    Message: (Message.lead_id, Message.id),
}
#: What each modal's submission does; a logged "not interested" call ends the lead like the button.
VIEW_ACTS: dict[ModalCallback, Act] = {
    ModalCallback.LOG_OUTCOME: Act.WORK_LEAD,
    ModalCallback.BOOK: Act.WORK_LEAD,
    ModalCallback.REPLY: Act.WORK_LEAD,
    ModalCallback.RESCHEDULE: Act.WORK_LEAD,
}
VERB_ACTS: dict[LeadVerb, Act] = {
    LeadVerb.SHOW: Act.SEE_LEADS,
    LeadVerb.PAUSE: Act.WORK_LEAD,
    LeadVerb.RESUME: Act.WORK_LEAD,
    LeadVerb.CLAIM: Act.WORK_LEAD,
    LeadVerb.STOP: Act.END_LEAD,
    LeadVerb.OPT_OUT: Act.OPT_OUT,
    LeadVerb.ATTENDED: Act.WORK_LEAD,
    LeadVerb.NO_SHOW: Act.WORK_LEAD,
    LeadVerb.CANCEL: Act.WORK_LEAD,
}
#: Message subtypes written by a person (as handlers.slack_events reads them).
PERSON_SUBTYPES = frozenset({None, "thread_broadcast", "file_share"})


@dataclass(frozen=True)
class GuardSettings:
    leads_channel: str | None
    admins: frozenset[str]
    team_group: str | None = None
    new_leads_per_hour: int = 20
    #: Seconds a person's users.info answer and the team's membership are trusted before asking again.
    cache_seconds: float = 60.0


@dataclass(frozen=True)
class Intent:
    """A request read as the act it is, by whom, where, and how a refusal is answered."""

    act: Act
    user_id: str
    #: command, action, view, thread_reply, note or home: how the person is told.
    kind: str
    channel: str | None = None
    thread_ts: str | None = None
    #: The team the payload says the person belongs to, when it says.
    claimed_team: str | None = None
    #: For a modal: the input block a refusal is shown under.
    error_block: str | None = None
    #: The person acted in the bot's App Home (a button on the Home tab).
    in_home: bool = False
    #: The record the request names (a button's value, a modal's lead or call task): its model and id.
    #: For a thread message, the thread (channel, thread_ts) names the lead instead.
    target: tuple[type[Lead | CallTask | Appointment | Message], int] | None = None


@dataclass(frozen=True)
class Scope:
    """The businesses a request may act on, as the channel it came from says."""

    #: Every business the request may act on: one, or in App Home each whose channel the member is in.
    businesses: tuple[Business, ...]
    #: The business the request acts for: its channel's, or in App Home the one of the record it names
    #: (None: App Home itself, which shows each of `businesses`).
    business: Business | None


#: The largest id a stored record can have (ids are 32-bit integers; PostgreSQL refuses to compare with more).
MAX_RECORD_ID = 2**31 - 1
#: What a request from a channel of no business is told (with several businesses).
NO_BUSINESS_CHANNEL = (
    "This channel is no clinic's leads channel, so followup acts on no leads here. "
    "Use it in your clinic's leads channel (each clinic's leads are worked only there)."
)
#: What App Home says to someone in no business's channel (with several businesses).
IN_NO_BUSINESS = (
    "You can't see leads with followup: you are in no clinic's leads channel. "
    "Join your clinic's leads channel to see its leads here."
)


class CannotCheck(Exception):
    """followup could not check who you are just now (Slack did not answer); try again in a moment."""


class TeamDirectory:
    """Who people are, from Slack's Web API, remembered for a minute (only lookups: never idempotency)."""

    def __init__(self, settings: GuardSettings, *, monotonic: Callable[[], float] = time.monotonic):
        self.settings = settings
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, str], tuple[float, Any]] = {}

    def _remembered(self, key: tuple[str, str], look_up: Callable[[], Any]) -> Any:
        now = self._monotonic()
        with self._lock:
            hit = self._cache.get(key)
            if hit and hit[0] > now:
                return hit[1]
        value = look_up()
        with self._lock:
            self._cache[key] = (now + self.settings.cache_seconds, value)
        return value

    def person(
        self,
        client: WebClient,
        user_id: str,
        *,
        own_team: str | None,
        own_enterprise: str | None,
        claimed_team: str | None,
        business: Business | None = None,
    ) -> Person:
        """Who the person is: to the deployment's one team, or (`business` given) to that business's team."""
        outside = self.outside(
            client, user_id, own_team=own_team, own_enterprise=own_enterprise, claimed_team=claimed_team
        )
        if outside:
            return Person(user_id, Standing.OUTSIDER, outside)
        if user_id in self.admins_of(business):
            return Person(user_id, Standing.ADMIN)
        if business is not None:
            joined = {normalize_channel(channel) for channel in self.channels_of(client, user_id)}
            if normalize_channel(business.slack.channel) in joined or user_id in self._group(client):
                return Person(user_id, Standing.MEMBER)
            return Person(
                user_id,
                Standing.OUTSIDER,
                f"you are not on {business.name}'s team; join its leads channel"
                + (" or the team's user group" if self.settings.team_group else ""),
            )
        if user_id in self._team(client):
            return Person(user_id, Standing.MEMBER)
        return Person(
            user_id,
            Standing.OUTSIDER,
            "you are not on the team; join the leads channel"
            + (" or the team's user group" if self.settings.team_group else ""),
        )

    def outside(
        self,
        client: WebClient,
        user_id: str,
        *,
        own_team: str | None,
        own_enterprise: str | None,
        claimed_team: str | None,
    ) -> str:
        """Why the person is no one's team member whatever channel they are in (a guest, a stranger), or ""."""
        if claimed_team and own_team and claimed_team != own_team and not own_enterprise:
            return (
                "you are from another organisation (Slack Connect), and only this workspace's team can act on its leads"
            )
        info = self._remembered(("user", user_id), lambda: self._user_info(client, user_id))
        return _why_outside(info, own_team=own_team, own_enterprise=own_enterprise)

    def admins_of(self, business: Business | None) -> frozenset[str]:
        """The admins of a business (its own, and the deployment's SLACK_ADMINS, the agency's), or the deployment's."""
        if business is None:
            return self.settings.admins
        return self.settings.admins | frozenset(business.slack.admins)

    def channels_of(self, client: WebClient, user_id: str) -> frozenset[str]:
        """The channels (ids) the person is in, of those the bot is in too (users.conversations)."""
        return self._remembered(("channels", user_id), lambda: self._user_channels(client, user_id))

    def _group(self, client: WebClient) -> frozenset[str]:
        if not self.settings.team_group:
            return frozenset()
        return self._remembered(("group", ""), lambda: self._group_members(client))

    def _group_members(self, client: WebClient) -> frozenset[str]:
        try:
            return frozenset(client.usergroups_users_list(usergroup=str(self.settings.team_group)).get("users") or [])
        except (SlackApiError, SlackClientError) as error:
            raise CannotCheck() from error

    @staticmethod
    def _user_channels(client: WebClient, user_id: str) -> frozenset[str]:
        channels: set[str] = set()
        cursor = None
        try:
            for _page in range(50):  # 50 pages of 1,000 channels: far beyond an agency's workspace
                answer = client.users_conversations(
                    user=user_id,
                    types="public_channel,private_channel",
                    exclude_archived=True,
                    limit=1000,
                    cursor=cursor,
                )
                channels.update(str(channel.get("id")) for channel in answer.get("channels") or [])
                cursor = (answer.get("response_metadata") or {}).get("next_cursor")
                if not cursor:
                    break
        except (SlackApiError, SlackClientError) as error:
            raise CannotCheck() from error
        return frozenset(channels)

    def place(self, client: WebClient, channel: str | None, user_id: str) -> Place:
        if channel and channel == self.settings.leads_channel:
            return Place.LEADS_CHANNEL
        if channel and channel.startswith("D"):
            owner = self._remembered(("dm", channel), lambda: self._dm_owner(client, channel))
            if owner == user_id:
                return Place.BOT_DM
        return Place.ELSEWHERE

    def _team(self, client: WebClient) -> frozenset[str]:
        return self._remembered(("team", ""), lambda: self._team_members(client))

    @staticmethod
    def _user_info(client: WebClient, user_id: str) -> dict[str, Any] | None:
        try:
            return client.users_info(user=user_id)["user"]
        except SlackApiError as error:
            if error.response.get("error") in ("user_not_found", "user_not_visible"):
                return None
            raise CannotCheck() from error
        except SlackClientError as error:
            raise CannotCheck() from error

    def _team_members(self, client: WebClient) -> frozenset[str]:
        members: set[str] = set()
        try:
            if self.settings.leads_channel:
                cursor = None
                for _page in range(50):  # 50 pages of 1,000: far beyond a clinic's team
                    answer = client.conversations_members(
                        channel=self.settings.leads_channel, limit=1000, cursor=cursor
                    )
                    members.update(answer.get("members") or [])
                    cursor = (answer.get("response_metadata") or {}).get("next_cursor")
                    if not cursor:
                        break
            if self.settings.team_group:
                members.update(client.usergroups_users_list(usergroup=str(self.settings.team_group)).get("users") or [])
        except (SlackApiError, SlackClientError) as error:
            raise CannotCheck() from error
        return frozenset(members)

    @staticmethod
    def _dm_owner(client: WebClient, channel: str) -> str | None:
        try:
            info = client.conversations_info(channel=channel)["channel"]
        except SlackApiError:
            return None  # not a conversation the bot is in: not a DM with the bot
        except SlackClientError as error:
            raise CannotCheck() from error
        return info.get("user") if info.get("is_im") else None


def _why_outside(info: Mapping[str, Any] | None, *, own_team: str | None, own_enterprise: str | None) -> str:
    if info is None:
        return "Slack does not know you in this workspace"
    if info.get("is_bot") or info.get("deleted"):
        return "only people on the team can act on leads"
    enterprise = (info.get("enterprise_user") or {}).get("enterprise_id")
    same_org = (enterprise == own_enterprise) if own_enterprise else (info.get("team_id") == own_team)
    if info.get("is_stranger") or not same_org:
        return "you are from another organisation (Slack Connect), and only this workspace's team can act on its leads"
    if info.get("is_restricted") or info.get("is_ultra_restricted"):
        return "guests cannot act on leads"
    return ""


def replay_key(req: BoltRequest) -> tuple[str, str] | None:
    """The key a request is applied once by, or None for a request that has none."""
    body = req.body or {}
    if body.get("type") == "event_callback" and isinstance(body.get("event_id"), str):
        return EVENT_PROVIDER, body["event_id"]
    signatures = req.headers.get("x-slack-signature")
    if signatures and (signature := signatures[0]):
        return REQUEST_PROVIDER, f"sig:{signature}"
    trigger = body.get("trigger_id")
    if isinstance(trigger, str) and trigger:
        return REQUEST_PROVIDER, f"trigger:{trigger}"
    return None


def read_intent(body: Mapping[str, Any], services: Services) -> Intent | None:
    """The act a request is, or None for one the table does not cover (help, unknown ids, others' messages)."""
    if body.get("command") == COMMAND:
        return _command_intent(body, services)
    kind = body.get("type")
    user = given if isinstance(given := body.get("user"), dict) else {}
    if kind == "block_actions":
        action = (body.get("actions") or [{}])[0]
        try:
            action_id = ActionId(action.get("action_id"))
        except ValueError:
            return None
        # A button the table forgot is for admins only until it is given its row (closed by default).
        act = ACTION_ACTS.get(action_id, Act.END_LEAD)
        container = body.get("container") or {}
        channel = container.get("channel_id") or (body.get("channel") or {}).get("id")
        in_home = container.get("type") == "view" and (body.get("view") or {}).get("type") == "home"
        target_id = record_id(str(action.get("value") or ""))
        model = ACTION_TARGETS.get(action_id)
        return Intent(
            act,
            str(user.get("id") or ""),
            "action",
            channel=None if in_home else channel,
            thread_ts=container.get("thread_ts") or (body.get("message") or {}).get("thread_ts"),
            claimed_team=user.get("team_id"),
            in_home=in_home,
            target=(model, target_id) if model is not None and target_id is not None else None,
        )
    if kind == "view_submission":
        view = body.get("view") or {}
        try:
            callback = ModalCallback(str(view.get("callback_id")))
        except ValueError:  # a view of some other app, or no callback id at all
            return None
        values = (view.get("state") or {}).get("values") or {}
        act, block = VIEW_ACTS.get(callback, Act.END_LEAD), next(iter(values), None)
        if callback == ModalCallback.LOG_OUTCOME:
            chosen = ((values.get(OUTCOME_BLOCK) or {}).get(OUTCOME_BLOCK) or {}).get("selected_option") or {}
            if chosen.get("value") == CallOutcome.NOT_INTERESTED:
                act, block = Act.END_LEAD, OUTCOME_BLOCK
        try:
            origin: ModalOrigin | None = ModalOrigin.from_metadata(view.get("private_metadata"))
        except StaleModal:
            origin = None  # the listener closes it quietly
        target: tuple[type[Lead | CallTask | Appointment | Message], int] | None = None
        if origin is not None and origin.task_id is not None:
            target = (CallTask, origin.task_id)
        elif origin is not None and origin.lead_id is not None:
            target = (Lead, origin.lead_id)
        return Intent(
            act,
            str(user.get("id") or ""),
            "view",
            channel=origin.channel if origin else None,
            thread_ts=origin.thread_ts if origin else None,
            claimed_team=user.get("team_id"),
            error_block=block,
            target=target,
        )
    if kind == "event_callback":
        return _event_intent(body.get("event") or {})
    return None


#: The act of each `/followup` verb, read from its first word alone: no date parsing before the ack.
COMMAND_WORD_ACTS: dict[str, Act | None] = {
    "": None,
    "help": None,
    "?": None,
    "usage": None,
    "new": Act.ADD_LEAD,
    "add": Act.ADD_LEAD,
    "list": Act.SEE_LEADS,
    "ls": Act.SEE_LEADS,
    "stats": Act.SEE_STATS,
    "book": Act.WORK_LEAD,
    "reschedule": Act.WORK_LEAD,
    "move": Act.WORK_LEAD,
    "consent": Act.WORK_LEAD,
    "digest": Act.SEE_LEADS,  # it names the leads still waiting for a person
}


def _command_intent(body: Mapping[str, Any], services: Services) -> Intent | None:
    text = str(body.get("text") or "")
    word = (text.split() or [""])[0].lower()
    user, channel = str(body.get("user_id") or ""), body.get("channel_id")
    if word in COMMAND_WORD_ACTS:
        act = COMMAND_WORD_ACTS[word]
        return Intent(act, user, "command", channel=channel) if act is not None else None
    try:
        verb = LeadVerb(word.replace("-", "").replace("_", "").replace("noshows", "noshow"))
    except ValueError:
        verb = None
    if verb is not None:
        return Intent(VERB_ACTS.get(verb, Act.END_LEAD), user, "command", channel=channel)
    # Read in the zone of the channel's business, as the listener reads it ("tomorrow 9am" is its own tomorrow).
    here = services.businesses.by_channel(channel) if isinstance(channel, str) and channel else None
    zone = (here or services.businesses.only or services.business).timezone
    try:
        command = parse_command(text, now=services.clock.now(), zone=zone)
    except CommandError:
        # Not a command as written: the listener answers how to write it, but only to someone who may use
        # /followup here, with the channel's business attached (closed by default: never let through unchecked).
        return Intent(Act.SEE_STATS, user, "command", channel=channel)
    match command:
        case Help():
            return None
        case NewLead():
            act = Act.ADD_LEAD
        case ListLeads():
            act = Act.SEE_LEADS
        case ShowStats():
            act = Act.SEE_STATS
        case ShowDigest():
            act = Act.SEE_LEADS  # it names the leads still waiting for a person
        case BookLead() | RescheduleLead():
            act = Act.WORK_LEAD
        case OnLead():
            act = VERB_ACTS[command.verb]
        case RecordConsent():
            act = Act.WORK_LEAD  # a team member notes what the lead told them
        case _:
            act = Act.END_LEAD  # a command the table does not know yet: admins only (closed by default)
    return Intent(act, str(body.get("user_id") or ""), "command", channel=body.get("channel_id"))


def _event_intent(event: Mapping[str, Any]) -> Intent | None:
    user = event.get("user")
    if not isinstance(user, str) or not user:
        return None
    if event.get("type") == "app_home_opened":
        return Intent(Act.SEE_LEADS, user, "home") if event.get("tab") == "home" else None
    if event.get("type") != "message" or event.get("bot_id") or event.get("subtype") not in PERSON_SUBTYPES:
        return None
    thread_ts, ts = event.get("thread_ts"), event.get("ts")
    if not isinstance(thread_ts, str) or not thread_ts or thread_ts == ts:
        return None
    marker = message_for_lead(text if isinstance(text := event.get("text"), str) else "")
    claimed = event.get("user_team") or event.get("source_team")
    return Intent(
        Act.WORK_LEAD,
        user,
        "thread_reply" if marker is not None else "note",
        channel=event.get("channel"),
        thread_ts=thread_ts,
        claimed_team=claimed if isinstance(claimed, str) else None,
    )


class SlackGuard(Middleware):
    """Drop replays, then let a request through only when the permission table allows it."""

    def __init__(self, settings: GuardSettings, directory: TeamDirectory | None = None):
        self.settings = settings
        self.directory = directory or TeamDirectory(settings)

    def process(
        self,
        *,
        req: BoltRequest,
        resp: BoltResponse,
        next: Callable[[], BoltResponse],  # noqa: A002 - Bolt passes the next middleware by this keyword
    ) -> BoltResponse | None:
        services: Services = req.context[SERVICES]
        key = replay_key(req)
        if key is not None:
            with services.session_factory.begin() as session:
                fresh = first_delivery(session, *key, services.clock.now())
            if not fresh:
                log.info("slack: %s %s was already applied; not again", key[0], key[1][:24])
                return BoltResponse(status=200, body="")
        intent = read_intent(req.body or {}, services)
        if intent is None:
            return next()
        client: WebClient = req.context.client
        try:
            why, scope = self._decide(intent, req, client, services)
        except CannotCheck as problem:
            log.warning("slack: could not check %s: %s", intent.user_id, problem.__cause__)
            why, scope = str(CannotCheck.__doc__), None
        if why is None and scope is not None:
            req.context[BUSINESS] = scope.business
            req.context[BUSINESSES] = scope.businesses
            return next()
        why = why or str(CannotCheck.__doc__)
        log.info("slack: refused %s to %s: %s", intent.act, intent.user_id, why)
        return self._refuse(intent, why, client, req)

    def _decide(
        self, intent: Intent, req: BoltRequest, client: WebClient, services: Services
    ) -> tuple[str | None, Scope | None]:
        """Why the request is refused (None: it is not), and the businesses it acts on when it is not."""
        only = services.businesses.only
        if only is not None:
            # One business: every channel is its own, as before the deployment could serve several.
            return self._refusal(intent, req, client, services), Scope((only,), only)
        authorized = req.context.authorize_result
        own_team = (authorized.team_id if authorized else None) or req.context.team_id
        own_enterprise = authorized.enterprise_id if authorized else None
        in_home = intent.kind == "home" or intent.in_home or (intent.kind == "view" and not intent.channel)
        if in_home:
            candidates, place = tuple(services.businesses), Place.HOME
        else:
            found = services.businesses.by_channel(intent.channel) if intent.channel else None
            if found is None:
                return NO_BUSINESS_CHANNEL, None
            candidates, place = (found,), Place.LEADS_CHANNEL
        identity = {"own_team": own_team, "own_enterprise": own_enterprise, "claimed_team": intent.claimed_team}
        outside = self.directory.outside(client, intent.user_id, **identity)
        if outside:  # a guest or a stranger: the same answer whichever business
            return refusal(
                intent.act, Person(intent.user_id, Standing.OUTSIDER, outside), place, admins=frozenset()
            ), None
        allowed: list[Business] = []
        refusals: list[str] = []
        for business in candidates:
            person = self.directory.person(client, intent.user_id, **identity, business=business)
            why = refusal(intent.act, person, place, admins=self.directory.admins_of(business))
            if why is None and intent.act == Act.ADD_LEAD:
                why = self._over_rate(intent.user_id, services)
            if why is None:
                allowed.append(business)
            else:
                refusals.append(why)
        if not allowed:
            return (IN_NO_BUSINESS if (in_home and len(candidates) > 1) or not refusals else refusals[0]), None
        owner = self._target_business(intent, services)
        if owner is None:
            return None, Scope(tuple(allowed), None if in_home else allowed[0])
        chosen = next((business for business in allowed if business.slug == owner), None)
        if chosen is None:
            if in_home:
                return "This lead belongs to a clinic whose leads channel you are not in.", None
            return f"This is not one of {allowed[0].name}'s leads, and this channel acts only on its own leads.", None
        return None, Scope(tuple(allowed), chosen)

    @staticmethod
    def _target_business(intent: Intent, services: Services) -> str | None:
        """The business (slug) of the lead the request names, or None when it names none (or it is gone)."""
        statement: Any
        if intent.target is not None:
            model, record = intent.target
            if not 0 < record <= MAX_RECORD_ID:
                return None  # no record has such an id (the databases' ids are 32-bit): the listener says it is gone
            if model is Lead:
                statement = select(Lead.business).where(Lead.id == record)
            else:
                lead_id, own_id = RECORD_LEAD[model]
                statement = select(Lead.business).join(model, lead_id == Lead.id).where(own_id == record)
        elif intent.kind in ("thread_reply", "note") and intent.channel and intent.thread_ts:
            under_card = select(Lead.business).where(
                Lead.slack_channel == intent.channel, Lead.slack_ts == intent.thread_ts
            )
            under_call_copy = (
                select(Lead.business)
                .join(CallTask, CallTask.lead_id == Lead.id)
                .where(CallTask.slack_channel == intent.channel, CallTask.slack_channel_ts == intent.thread_ts)
            )
            statement = under_card.union_all(under_call_copy).limit(1)
        else:
            return None
        with services.session_factory() as session:
            return session.scalar(statement)

    def _refusal(self, intent: Intent, req: BoltRequest, client: WebClient, services: Services) -> str | None:
        authorized = req.context.authorize_result
        own_team = (authorized.team_id if authorized else None) or req.context.team_id
        own_enterprise = authorized.enterprise_id if authorized else None
        person = self.directory.person(
            client, intent.user_id, own_team=own_team, own_enterprise=own_enterprise, claimed_team=intent.claimed_team
        )
        place = (
            Place.HOME
            if intent.kind == "home" or intent.in_home
            else self.directory.place(client, intent.channel, intent.user_id)
        )
        why = refusal(intent.act, person, place, admins=self.settings.admins)
        if why is None and intent.act == Act.ADD_LEAD:
            why = self._over_rate(intent.user_id, services)
        return why

    def _over_rate(self, user_id: str, services: Services) -> str | None:
        since = services.clock.now() - timedelta(hours=1)
        with services.session_factory() as session:
            added = (
                session.scalar(
                    select(func.count())
                    .select_from(AuditEntry)
                    .where(
                        AuditEntry.actor_type == ActorType.SLACK_USER,
                        AuditEntry.actor_id == user_id,
                        AuditEntry.action.in_(("lead_created", "inquired_again")),
                        AuditEntry.at >= since,
                    )
                )
                or 0
            )
        limit = self.settings.new_leads_per_hour
        if added < limit:
            return None
        return (
            f"You have added {added} leads in the last hour, the most one person may "
            f"(FOLLOWUP_SLACK_NEW_LEADS_PER_HOUR={limit}). Try again later, or use the web form or an import."
        )

    def _refuse(self, intent: Intent, why: str, client: WebClient, req: BoltRequest) -> BoltResponse:
        if intent.kind == "command":
            # Through the response_url, as every /followup answer is; failing that, in the HTTP answer.
            respond = req.context.respond
            try:
                if respond is None:
                    raise SlackClientError("the command has no response_url")
                respond(text=why, response_type="ephemeral", replace_original=False)
            except (SlackApiError, SlackClientError, OSError) as error:
                log.warning("slack: could not answer %s through response_url: %s", intent.user_id, error)
                return BoltResponse(
                    status=200,
                    body=json.dumps({"response_type": "ephemeral", "text": why}),
                    headers={"content-type": "application/json"},
                )
            return BoltResponse(status=200, body="")
        if intent.kind == "view" and intent.error_block:
            return BoltResponse(
                status=200,
                body=json.dumps({"response_action": "errors", "errors": {intent.error_block: why[:150]}}),
                headers={"content-type": "application/json"},
            )
        if intent.kind == "home":
            _publish_closed_home(client, intent.user_id, why)
        elif intent.kind == "thread_reply":
            tell(
                client,
                channel=intent.channel,
                user=intent.user_id,
                thread_ts=intent.thread_ts,
                text=f":no_entry: Not sent, and nothing left Slack. {why}",
            )
        elif intent.kind == "action":
            tell(
                client,
                channel=intent.channel,
                user=intent.user_id,
                thread_ts=intent.thread_ts,
                text=f"Nothing changed. {why}",
            )
        # A note from someone not on the team is simply not kept: answering each would be noise.
        return BoltResponse(status=200, body="")


def _publish_closed_home(client: WebClient, user_id: str, why: str) -> None:
    view = {
        "type": "home",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": "followup"}},
            {"type": "section", "text": {"type": "mrkdwn", "text": why}},
        ],
    }
    try:
        client.views_publish(user_id=user_id, view=view)
    except (SlackApiError, SlackClientError) as error:
        log.warning("slack: could not publish the closed Home tab for %s: %s", user_id, error)
