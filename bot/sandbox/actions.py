"""Turn what a person does on the sandbox page into what the vendor would send the bot.

A click, a modal submission, a thread message or a `/followup` command become Slack's signed
interactivity, event and command requests; a text from a lead's phone becomes Twilio's signed
inbound webhook to the clinic number it was sent to (with Twilio's own opt-out handling, per sender);
an email reply becomes a SendGrid Inbound Parse post to the clinic address it was sent to; the
new-lead form posts its clinic's lead webhook (`/webhooks/leads/<slug>`) with that clinic's bearer
token. The bot cannot tell these from the real vendors: they arrive at the same routes, signed with
the same secrets, and the bot finds each one's clinic as it finds a real one's.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime, formataddr, make_msgid
from typing import Any
from urllib.parse import urlencode

import httpx
from slack_sdk.signature import SignatureVerifier

from bot.core.business import Business
from bot.core.businesses import Businesses
from bot.sandbox.world import World, slack_ts
from bot.settings import Settings
from bot.standins.slack_api import SlackApiStandin
from bot.standins.twilio_api import TwilioApiStandin

#: Twilio's Advanced Opt-Out keywords on a long code (REFERENCE.md), as Twilio matches them: the whole body.
OPT_OUT_KEYWORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"})
OPT_IN_KEYWORDS = frozenset({"START", "UNSTOP", "YES"})
HELP_KEYWORDS = frozenset({"HELP", "INFO"})
#: What Twilio itself texts back on a keyword (its default Advanced Opt-Out wording).
CARRIER_REPLIES = {
    "STOP": "You have successfully been unsubscribed. You will not receive any more messages from this number. "
    "Reply START to resubscribe.",
    "START": "You have successfully been re-subscribed to messages from this number. Reply HELP for help. "
    "Reply STOP to unsubscribe. Msg&Data Rates May Apply.",
    "HELP": "Reply STOP to unsubscribe. Msg&Data Rates May Apply.",
}
#: Twilio's error for a send to a number that texted STOP.
UNSUBSCRIBED_RECIPIENT = 21610


class ActionRefused(ValueError):
    """The page asked for something a person could not do (unknown user, message or modal)."""


@dataclass(frozen=True)
class BotAnswer:
    """What the bot answered a request the sandbox made for a person."""

    status: int
    body: Any

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


@dataclass(frozen=True)
class ResponseTarget:
    """Where a response_url post lands: the person, channel and message it was issued for."""

    user: str
    channel: str
    message_ts: str | None = None
    thread_ts: str | None = None


class PersonActions:
    """Everything a person on the page can do, sent to the bot the way the vendor would send it."""

    def __init__(
        self,
        settings: Settings,
        *,
        businesses: Businesses,
        slack: SlackApiStandin,
        twilio: TwilioApiStandin,
        world: World,
        team: Mapping[str, str],
        bot_url: str,
        channel_names: Mapping[str, str] | None = None,
        clinics_of_phone: Callable[[str], list[str]] | None = None,
        timeout: float = 10.0,
    ):
        self.settings = settings
        #: The clinics the sandbox runs: whose form, number and inbox each action reaches.
        self.businesses = businesses
        #: Slack's names for the clinics' channels, by channel id.
        self.channel_names = dict(channel_names or {})
        #: The slugs of the clinics a phone number is a lead of (the bot's database knows).
        self.clinics_of_phone = clinics_of_phone or (lambda number: [])
        self.slack = slack
        self.twilio = twilio
        self.world = world
        #: Team members by Slack user id -> display name.
        self.team = dict(team)
        self.bot_url = bot_url.rstrip("/")
        self.timeout = timeout
        self._verifier = SignatureVerifier(settings.slack_signing_secret or "")
        self._responses: dict[str, ResponseTarget] = {}
        self._triggers: dict[str, str] = {}
        self._lock = threading.Lock()

    # -- the website and the lead's phone and inbox ----------------------------------------

    def clinic(self, slug: str | None = None) -> Business:
        """The clinic a person on the page chose; none chosen: the first (where the page's form starts)."""
        if not slug:
            return next(iter(self.businesses))
        business = self.businesses.by_slug(slug)
        if business is None:
            raise ActionRefused(f"there is no clinic {slug!r} in the sandbox ({', '.join(self.businesses.slugs)})")
        return business

    def submit_lead(self, fields: Mapping[str, str], *, clinic: str | None = None) -> BotAnswer:
        """Post a clinic's lead webhook as its website form's integration would: its own path and bearer token."""
        business = self.clinic(clinic)
        form = {key: str(value).strip() for key, value in fields.items() if str(value or "").strip()}
        answer = httpx.post(
            f"{self.bot_url}/webhooks/leads/{business.slug}",
            data=form,
            headers={"Authorization": f"Bearer {business.webhooks.lead_token}"},
            timeout=self.timeout,
        )
        return _answer(answer)

    def clinic_number(self, business: Business) -> str:
        """The number a clinic texts from, which its leads text back."""
        return business.sms.number or business.phone

    def texted_number(self, number: str, to: str | None) -> str:
        """Which clinic number a text from this phone goes to: the one chosen, else the one it last heard from.

        A phone that has heard from no clinic texts the clinic it is a lead of; of two, it must be told.
        """
        numbers = {self.clinic_number(b): b for b in self.businesses}
        if to:
            if to not in numbers:
                raise ActionRefused(f"{to} is no clinic's number in the sandbox ({', '.join(numbers)})")
            return to
        with self.world.lock:
            heard = [t.get("clinic_number") for t in self.world.texts if t.get("number") == number]
        heard = [n for n in heard if n in numbers]
        if heard:
            return str(heard[-1])
        if len(numbers) == 1:
            return next(iter(numbers))
        # A lead who has not been texted (no consent yet) knows the number of the clinic they asked.
        asked = {
            self.clinic_number(business)
            for slug in self.clinics_of_phone(number)
            if (business := self.businesses.by_slug(slug)) is not None
        }
        if len(asked) == 1:
            return asked.pop()
        raise ActionRefused(f"say which clinic's number {number} texts: {', '.join(numbers)}")

    def text_from_lead(self, number: str, body: str, *, to: str | None = None) -> BotAnswer:
        """Text a clinic's number from a lead's phone; Twilio handles opt-out keywords (per sender) itself first."""
        if not body.strip():
            raise ActionRefused("write something to text")
        clinic_number = self.texted_number(number, to)
        keyword = body.strip().upper()
        extra: dict[str, str] = {}
        carrier_reply = None
        with self.world.lock:
            opted_out = (number, clinic_number) in self.world.opted_out
        if keyword in OPT_OUT_KEYWORDS:
            extra["OptOutType"] = "STOP"
            carrier_reply = CARRIER_REPLIES["STOP"]
            # From now on Twilio refuses every send from this clinic's number to this phone with 21610, as it
            # does for real; the other clinic's number still reaches it.
            self.twilio.set_opted_out(number, clinic_number)
            with self.world.lock:
                self.world.opted_out.add((number, clinic_number))
        elif keyword in OPT_IN_KEYWORDS and opted_out:
            extra["OptOutType"] = "START"
            carrier_reply = CARRIER_REPLIES["START"]
            self.twilio.set_opted_out(number, clinic_number, False)
            with self.world.lock:
                self.world.opted_out.discard((number, clinic_number))
        elif keyword in HELP_KEYWORDS:
            extra["OptOutType"] = "HELP"
            carrier_reply = CARRIER_REPLIES["HELP"]
        self.world.add_text(number=number, clinic_number=clinic_number, direction="in", body=body, status="received")
        status = self.twilio.inbound_sms(
            f"{self.settings.public_base_url}/webhooks/twilio/sms",
            number,
            body,
            to=clinic_number,
            timeout=self.timeout,
            FromCountry="US",
            **extra,
        )
        if carrier_reply:
            self.world.add_text(
                number=number, clinic_number=clinic_number, direction="carrier", body=carrier_reply, status="delivered"
            )
        return BotAnswer(status, None)

    def email_from_lead(
        self,
        sender: str,
        subject: str,
        text: str,
        *,
        sender_name: str = "",
        in_reply_to: int | None = None,
        clinic: str | None = None,
    ) -> BotAnswer:
        """Email a clinic as SendGrid Inbound Parse posts it: multipart fields, headers, envelope.

        A reply goes where the lead's mail program sends it: the Reply-To of the email answered (the
        clinic's inbound address), else its From. A new email goes to the chosen clinic's inbound address.
        """
        if not text.strip():
            raise ActionRefused("write something to send")
        original = next((e for e in self.world.emails if e["id"] == in_reply_to), None) if in_reply_to else None
        if original is not None and original.get("direction") == "out":
            to = str(original.get("reply_to") or original.get("from") or "")
        else:
            business = self.clinic(clinic)
            to = business.email.inbound_address or business.email.reply_to or business.email.from_address
        found = self.businesses.by_inbound_address(to) or self.businesses.only
        if found is None:
            # Reply-To said an address of no clinic's inbound parse: the mail goes nowhere the bot hears of.
            raise ActionRefused(f"{to or 'that email'} is no clinic's inbound address: nothing would reach the bot")
        message_id = make_msgid(domain="sandbox.example")
        quoted = text
        headers = {
            "Message-ID": message_id,
            "Date": format_datetime(datetime.now(UTC)),
            "From": formataddr((sender_name, sender)),
            "To": to,
            "Subject": subject,
            "MIME-Version": "1.0",
        }
        if original is not None:
            if original.get("message_id"):
                headers["In-Reply-To"] = headers["References"] = f"<{original['message_id']}@sendgrid.sandbox>"
            when = format_datetime(datetime.fromtimestamp(original["at"], UTC))
            earlier = "\n".join(f"> {line}" for line in (original.get("text") or "").splitlines())
            quoted = f"{text}\n\nOn {when}, {original.get('from_name') or original.get('from')} wrote:\n{earlier}\n"
        self.world.add_email(
            direction="in",
            clinic=found.slug,
            to=[to],
            **{"from": sender},
            from_name=sender_name,
            subject=subject,
            text=text,
            html=None,
            message_id=message_id,
        )
        fields = {
            "headers": "".join(f"{name}: {value}\n" for name, value in headers.items()),
            "dkim": "{@sandbox.example : pass}",
            "to": to,
            "from": formataddr((sender_name, sender)),
            "subject": subject,
            "text": quoted,
            "sender_ip": "127.0.0.1",
            "spam_score": "0.0",
            "spam_report": "",
            "envelope": json.dumps({"to": [to], "from": sender}),
            "attachments": "0",
            "charsets": json.dumps({"to": "UTF-8", "from": "UTF-8", "subject": "UTF-8", "text": "UTF-8"}),
            "SPF": "pass",
        }
        token = self.settings.sendgrid_inbound_token
        query = f"?{urlencode({'token': token})}" if token else ""
        answer = httpx.post(
            f"{self.bot_url}/webhooks/sendgrid/inbound{query}",
            files={name: (None, value) for name, value in fields.items()},  # multipart, as SendGrid posts
            headers={"User-Agent": "Sendlib/1.0 sandbox"},
            timeout=self.timeout,
        )
        return _answer(answer)

    # -- Slack: a person in the workspace ---------------------------------------------------

    def click(
        self,
        user: str,
        *,
        channel: str,
        message_ts: str,
        block_id: str,
        action: Mapping[str, Any],
        ephemeral: bool = False,
    ) -> BotAnswer:
        """Press a button, or choose from an overflow or select menu, in a message."""
        self._check_user(user)
        message = self._find_message(channel, message_ts)
        container: dict[str, Any] = {
            "type": "message",
            "message_ts": message_ts,
            "channel_id": channel,
            "is_ephemeral": ephemeral,
        }
        if message.get("thread_ts") and message.get("thread_ts") != message_ts:
            container["thread_ts"] = message["thread_ts"]
        payload = {
            "type": "block_actions",
            **self._who(user),
            "container": container,
            "trigger_id": self._trigger(user),
            "channel": {"id": channel, "name": self._channel_name(channel)},
            "message": message,
            "state": {"values": {}},
            "response_url": self._response_url(ResponseTarget(user, channel, message_ts, message.get("thread_ts"))),
            "actions": [self._action(block_id, action)],
        }
        return self._interactivity(payload)

    def click_in_view(
        self,
        user: str,
        *,
        view_id: str,
        block_id: str,
        action: Mapping[str, Any],
        values: Mapping[str, Any] | None = None,
    ) -> BotAnswer:
        """Use an interactive element inside a modal or the Home tab (a button, a select with dispatch)."""
        self._check_user(user)
        view = self._find_view(user, view_id)
        payload = {
            "type": "block_actions",
            **self._who(user),
            "container": {"type": "view", "view_id": view_id},
            "trigger_id": self._trigger(user),
            "view": {**view, "state": {"values": dict(values or {})}},
            "actions": [self._action(block_id, action)],
        }
        return self._interactivity(payload)

    def submit_view(self, user: str, *, view_id: str, values: Mapping[str, Any]) -> BotAnswer:
        """Press a modal's submit button with what the person entered."""
        self._check_user(user)
        view = self._find_view(user, view_id)
        payload = {
            "type": "view_submission",
            **self._who(user),
            "trigger_id": self._trigger(user),
            "view": {**view, "state": {"values": dict(values)}},
            "response_urls": [],
        }
        answer = self._interactivity(payload)
        body = answer.body if isinstance(answer.body, dict) else {}
        action = body.get("response_action")
        with self.world.lock:
            if answer.ok and action == "errors":
                self.world.view_errors[view_id] = dict(body.get("errors") or {})
            elif answer.ok:
                self.world.view_errors.pop(view_id, None)
            if answer.ok and action in (None, "clear"):
                self.world.closed_views.add(view_id)
                if action == "clear":
                    self.world.closed_views.update(v for v, owner in self.world.view_owners.items() if owner == user)
        if answer.ok and action in ("update", "push") and isinstance(body.get("view"), dict):
            self._show_view_from_answer(user, view_id, body["view"], push=action == "push")
        self.world.touch()
        return answer

    def close_view(self, user: str, *, view_id: str) -> BotAnswer:
        """Cancel a modal; the app hears of it only when the view asked for notify_on_close."""
        self._check_user(user)
        view = self._find_view(user, view_id)
        with self.world.lock:
            self.world.closed_views.add(view_id)
            self.world.view_errors.pop(view_id, None)
        self.world.touch()
        if not view.get("notify_on_close"):
            return BotAnswer(200, None)
        payload = {"type": "view_closed", **self._who(user), "view": view, "is_cleared": False}
        return self._interactivity(payload)

    def write_in_thread(self, user: str, *, channel: str, thread_ts: str, text: str) -> BotAnswer:
        """Post a message in a lead's thread as a person; Slack sends the bot a message event."""
        self._check_user(user)
        if not text.strip():
            raise ActionRefused("write something to post")
        message = self.world.add_human_message(user=user, channel=channel, thread_ts=thread_ts, text=text)
        event = {
            "type": "message",
            "channel": channel,
            "user": user,
            "text": text,
            "ts": message["ts"],
            "thread_ts": thread_ts,
            "team": self.slack.team_id,
            "channel_type": "channel",
            "event_ts": message["ts"],
            "blocks": [
                {
                    "type": "rich_text",
                    "block_id": secrets.token_hex(3),
                    "elements": [{"type": "rich_text_section", "elements": [{"type": "text", "text": text}]}],
                }
            ],
        }
        return self._event(event)

    def open_home(self, user: str) -> BotAnswer:
        """Open the app's Home tab as this person."""
        self._check_user(user)
        event: dict[str, Any] = {
            "type": "app_home_opened",
            "user": user,
            "channel": f"D{user[1:]}",
            "tab": "home",
            "event_ts": slack_ts(),
        }
        current = self.slack.home_views.get(user)
        if current:
            event["view"] = current
        return self._event(event)

    def slash_command(self, user: str, text: str, *, channel: str) -> BotAnswer:
        """Run `/followup <text>` in a channel; the bot's immediate answer shows to this person only."""
        self._check_user(user)
        command = text.strip()
        if command.startswith("/followup"):
            command = command.removeprefix("/followup").strip()
        self.world.add_private_note(user=user, channel=channel, text=f"/followup {command}".strip(), kind="command")
        form = {
            "token": "sandbox-verification-token",
            "team_id": self.slack.team_id,
            "team_domain": "sandbox",
            "channel_id": channel,
            "channel_name": self._channel_name(channel),
            "user_id": user,
            "user_name": self._name(user),
            "command": "/followup",
            "text": command,
            "api_app_id": self.slack.app_id,
            "is_enterprise_install": "false",
            "response_url": self._response_url(ResponseTarget(user, channel)),
            "trigger_id": self._trigger(user),
        }
        answer = self._signed_post(urlencode(form), "application/x-www-form-urlencoded")
        self._show_immediate_answer(user, channel, answer)
        return answer

    # -- what Slack does with the bot's answers ---------------------------------------------

    def respond(self, token: str, body: Mapping[str, Any]) -> bool:
        """A post to a response_url: an ephemeral by default, in the channel, or replacing the message."""
        with self._lock:
            target = self._responses.get(token)
        if target is None:
            return False
        text, blocks = str(body.get("text") or ""), body.get("blocks")
        if body.get("delete_original") and target.message_ts:
            self._chat("chat.delete", channel=target.channel, ts=target.message_ts)
            return True
        if body.get("replace_original") and target.message_ts:
            arguments: dict[str, Any] = {"channel": target.channel, "ts": target.message_ts, "text": text}
            if blocks is not None:
                arguments["blocks"] = blocks
            self._chat("chat.update", **arguments)
            return True
        if body.get("response_type") == "in_channel":
            arguments = {"channel": target.channel, "text": text}
            if blocks is not None:
                arguments["blocks"] = blocks
            if body.get("thread_ts") or target.thread_ts:
                arguments["thread_ts"] = body.get("thread_ts") or target.thread_ts
            self._chat("chat.postMessage", **arguments)
            return True
        self.world.add_private_note(
            user=target.user,
            channel=target.channel,
            text=text,
            blocks=blocks,
            thread_ts=target.thread_ts,
            kind="response",
        )
        return True

    def note_view_opened(self, trigger_id: str | None, view_id: str) -> None:
        """Remember whose modal a views.open made (Slack ties it to the person who triggered it)."""
        with self._lock:
            user = self._triggers.get(trigger_id or "")
        if user:
            with self.world.lock:
                self.world.view_owners[view_id] = user
            self.world.touch()

    # -- helpers ----------------------------------------------------------------------------

    def _check_user(self, user: str) -> None:
        if user not in self.team:
            raise ActionRefused(f"{user!r} is not a member of the sandbox team")

    def _name(self, user: str) -> str:
        return self.team.get(user, user).split(" ")[0].lower()

    def _who(self, user: str) -> dict[str, Any]:
        return {
            "user": {"id": user, "username": self._name(user), "name": self._name(user), "team_id": self.slack.team_id},
            "team": {"id": self.slack.team_id, "domain": "sandbox"},
            "api_app_id": self.slack.app_id,
            "token": "sandbox-verification-token",
            "enterprise": None,
            "is_enterprise_install": False,
        }

    def _channel_name(self, channel: str) -> str:
        return self.channel_names.get(channel) or channel.lower()

    def _trigger(self, user: str) -> str:
        trigger = f"{int(time.time())}.{secrets.randbelow(10**12)}.{secrets.token_hex(16)}"
        with self._lock:
            self._triggers[trigger] = user
            if len(self._triggers) > 500:
                for old in list(self._triggers)[:250]:
                    del self._triggers[old]
        return trigger

    def _response_url(self, target: ResponseTarget) -> str:
        token = secrets.token_urlsafe(16)
        with self._lock:
            self._responses[token] = target
        return f"{self.bot_url}/sandbox/slack/respond/{token}"

    @staticmethod
    def _action(block_id: str, action: Mapping[str, Any]) -> dict[str, Any]:
        if not action.get("action_id") or not action.get("type"):
            raise ActionRefused("an action needs its action_id and type")
        return {**action, "block_id": block_id, "action_ts": slack_ts()}

    def _find_message(self, channel: str, ts: str) -> dict[str, Any]:
        for message in self.slack.messages(channel):
            if message["ts"] == ts:
                return message
        for note in self.world.private_notes:
            if note["ts"] == ts:
                return {"type": "message", "ts": ts, "text": note.get("text", ""), "blocks": note.get("blocks") or []}
        for message in self.slack.ephemerals:
            if message.get("message_ts") == ts:
                return {**message, "ts": ts}
        raise ActionRefused(f"no message {ts} in {channel}")

    def _find_view(self, user: str, view_id: str) -> dict[str, Any]:
        view = self.slack.views.get(view_id)
        if view is None:
            home = self.slack.home_views.get(user)
            if home and home.get("id") == view_id:
                return home
            raise ActionRefused(f"no open view {view_id}")
        return view

    def _show_view_from_answer(self, user: str, view_id: str, view: Mapping[str, Any], *, push: bool) -> None:
        """A response_action update or push: Slack shows that view in place of (or over) the submitted one."""
        arguments = {"view": json.dumps(view)}
        if push:
            trigger = self._trigger(user)
            answer = self._chat("views.push", trigger_id=trigger, **arguments)
            if answer.get("ok"):
                with self.world.lock:
                    self.world.view_owners[answer["view"]["id"]] = user
        else:
            self._chat("views.update", view_id=view_id, **arguments)

    def _chat(self, method: str, **arguments: Any) -> dict[str, Any]:
        """Call the Slack stand-in as Slack itself would act (response_url and response_action effects)."""
        answer = httpx.post(
            f"{self.slack.url}/api/{method}",
            data=arguments,
            headers={"Authorization": f"Bearer {self.slack.bot_token}"},
            timeout=self.timeout,
        )
        try:
            return answer.json()
        except ValueError:
            return {"ok": False, "error": f"HTTP {answer.status_code}"}

    def _show_immediate_answer(self, user: str, channel: str, answer: BotAnswer) -> None:
        body = answer.body
        if not answer.ok:
            self.world.add_private_note(
                user=user,
                channel=channel,
                kind="error",
                text=f'/followup failed with the error "dispatch_failed" (HTTP {answer.status})',
            )
            return
        if isinstance(body, dict) and (body.get("text") or body.get("blocks")):
            self.respond_direct(user, channel, body)
        elif isinstance(body, str) and body.strip():
            self.world.add_private_note(user=user, channel=channel, text=body, kind="response")

    def respond_direct(self, user: str, channel: str, body: Mapping[str, Any]) -> None:
        token = self._response_url(ResponseTarget(user, channel)).rsplit("/", 1)[-1]
        self.respond(token, body)

    def _interactivity(self, payload: Mapping[str, Any]) -> BotAnswer:
        return self._signed_post(urlencode({"payload": json.dumps(payload)}), "application/x-www-form-urlencoded")

    def _event(self, event: Mapping[str, Any]) -> BotAnswer:
        envelope = {
            "token": "sandbox-verification-token",
            "team_id": self.slack.team_id,
            "api_app_id": self.slack.app_id,
            "event": dict(event),
            "type": "event_callback",
            "event_id": "Ev" + uuid.uuid4().hex[:10].upper(),
            "event_time": int(time.time()),
            "authorizations": [
                {
                    "enterprise_id": None,
                    "team_id": self.slack.team_id,
                    "user_id": self.slack.bot_user_id,
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
            "event_context": "4-" + secrets.token_hex(12),
        }
        return self._signed_post(json.dumps(envelope), "application/json")

    def _signed_post(self, body: str, content_type: str) -> BotAnswer:
        timestamp = str(int(time.time()))
        signature = self._verifier.generate_signature(timestamp=timestamp, body=body)
        assert signature is not None  # it is None only when no timestamp is given
        answer = httpx.post(
            f"{self.bot_url}/slack/events",
            content=body.encode(),
            headers={
                "Content-Type": content_type,
                "X-Slack-Request-Timestamp": timestamp,
                "X-Slack-Signature": signature,
                "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
            },
            timeout=self.timeout,
        )
        return _answer(answer)


def _answer(response: httpx.Response) -> BotAnswer:
    try:
        body: Any = response.json() if response.content else None
    except ValueError:
        body = response.text
    return BotAnswer(response.status_code, body)
