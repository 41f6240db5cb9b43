"""Twilio's webhooks: inbound texts, delivery status callbacks and calls (the missed-call answer).

Every request is checked against `X-Twilio-Signature` with the account's auth token before anything
is read into the bot; without a token the routes refuse everything (503). A text or call goes to the
business whose number it was sent to (`To`, or the messaging service it came through); a number of no
business here is refused (404) and nothing is stored. Texts and status reports
are answered with empty TwiML or 204; a call is answered with spoken words that say exactly what will
happen next.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from xml.sax.saxutils import escape

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bot.core.business import Business
from bot.core.contacts import InvalidPhone, normalize_phone
from bot.core.ports import FailureKind
from bot.core.reply_classifier import ReplyRules
from bot.store.models import Lead
from bot.usecases.conversations import MissedCallAnswer, take_missed_call
from bot.usecases.delivery import SmsStatusReport, apply_sms_status
from bot.usecases.render_context import format_local
from bot.usecases.replies import IncomingText, take_text
from bot.usecases.services import Services
from handlers.business_routing import business_texted
from handlers.http_edge import BadRequest, endpoint, form_fields, read_form, require_twilio_signature

#: Twilio delivers at most this many characters in one inbound message.
MAX_SMS_BODY = 1600
#: Twilio sends at most this many media items with one message.
MAX_MEDIA = 10
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


def twiml(body: str = EMPTY_TWIML) -> Response:
    return Response(body, media_type="text/xml")


class TwilioWebhooks:
    """POST /webhooks/twilio/sms, /status and /voice, bound to the services, the auth token and the reply rules."""

    def __init__(
        self,
        services: Services,
        *,
        auth_token: str | None,
        public_base_url: str,
        reply_rules: ReplyRules,
        failure_kind: Callable[[str | None], FailureKind],
    ):
        self.services = services
        self.auth_token = auth_token
        self.public_base_url = public_base_url
        self.reply_rules = reply_rules
        #: What a Twilio error code means for the lead: the channel adapter's mapping, handed in by the wiring
        #: so that Twilio's codes stay in bot/channels/.
        self.failure_kind = failure_kind

    def routes(self) -> list[Route]:
        return [
            Route("/webhooks/twilio/sms", endpoint(self.sms), methods=["POST"]),
            Route("/webhooks/twilio/status", endpoint(self.status), methods=["POST"]),
            Route("/webhooks/twilio/voice", endpoint(self.voice), methods=["POST"]),
        ]

    async def _signed_form(self, request: Request) -> dict[str, str]:
        if not self.auth_token:  # closed before anything is read
            raise BadRequest(503, "TWILIO_AUTH_TOKEN is not configured on this server")
        params = form_fields(await read_form(request))
        require_twilio_signature(request, params, self.auth_token, self.public_base_url)
        return params

    async def sms(self, request: Request) -> Response:
        params = await self._signed_form(request)
        sid, sender, body = params.get("MessageSid"), params.get("From"), params.get("Body", "")
        if not sid or not sender:
            raise BadRequest(400, "MessageSid and From are required")
        if len(body) > MAX_SMS_BODY:
            raise BadRequest(400, f"Body longer than Twilio's {MAX_SMS_BODY} characters")
        try:
            phone = normalize_phone(sender, self.services.default_region)
        except InvalidPhone as error:
            raise BadRequest(400, f"From: {error}") from error
        business = business_texted(self.services, params.get("To"), params.get("MessagingServiceSid"), call=False)
        text = IncomingText(
            phone=phone,
            body=body,
            provider_id=sid,
            media=media_of(params),
            carrier_opt_out=params.get("OptOutType"),
        )
        await run_in_threadpool(take_text, self.services, self.reply_rules, text, business=business.slug)
        return twiml()

    async def status(self, request: Request) -> Response:
        params = await self._signed_form(request)
        sid, status = params.get("MessageSid"), params.get("MessageStatus") or params.get("SmsStatus")
        if not sid or not status:
            raise BadRequest(400, "MessageSid and MessageStatus are required")
        code = params.get("ErrorCode") or None
        report = SmsStatusReport(
            message_sid=sid, status=status.lower(), error_code=code, failure=self.failure_kind(code)
        )
        await run_in_threadpool(apply_sms_status, self.services, report)
        return Response(status_code=204)

    async def voice(self, request: Request) -> Response:
        params = await self._signed_form(request)
        call_sid, caller = params.get("CallSid"), params.get("From")
        if not call_sid or not caller:
            raise BadRequest(400, "CallSid and From are required")
        business = business_texted(self.services, params.get("To"), None, call=True)
        try:
            phone = normalize_phone(caller, self.services.default_region)
        except InvalidPhone:
            phone = None  # a withheld or odd caller id: nothing to text back, but still answer the call
        answer = (
            await run_in_threadpool(take_missed_call, self.services, phone, call_sid, business=business.slug)
            if phone
            else None
        )
        say = await run_in_threadpool(self._missed_call_words, business, answer)
        return twiml(f'<?xml version="1.0" encoding="UTF-8"?><Response><Say>{escape(say)}</Say><Hangup/></Response>')

    def _missed_call_words(self, business: Business, answer: MissedCallAnswer | None) -> str:
        """What the caller hears, in the called business's name: exactly what happens next, no more."""
        opening = f"Thanks for calling {business.name}. Sorry we missed you."
        if answer is None:
            return f"{opening} We could not see your number, so please call us again or leave us a text."
        if answer.call_back_at is not None:
            now = self.services.clock.now()
            if answer.call_back_at <= now + timedelta(minutes=1):
                return f"{opening} We have your number, and someone from our team will call you back shortly."
            with self.services.session_factory() as session:
                lead = session.get(Lead, answer.lead_id)
                zone = (lead.timezone if lead is not None and lead.timezone else None) or business.timezone
            return (
                f"{opening} We have your number, and someone from our team will call you back when we "
                f"open, {format_local(answer.call_back_at, zone)}."
            )
        if answer.texted:
            return f"{opening} We will text you right away, and our team will follow up."
        return f"{opening} We have your number, and our team will follow up."


def media_of(params: dict[str, str]) -> tuple[dict[str, str], ...]:
    """The media items of an inbound MMS (MediaUrl{N} and MediaContentType{N}); a malformed list is refused."""
    count = params.get("NumMedia", "0")
    if not re.fullmatch(r"[0-9]{1,4}", count) or int(count) == 0:
        return ()
    if int(count) > MAX_MEDIA:
        raise BadRequest(400, f"NumMedia above Twilio's {MAX_MEDIA}")
    media = []
    for index in range(int(count)):
        url = params.get(f"MediaUrl{index}")
        if not url:
            raise BadRequest(400, f"NumMedia is {count} but MediaUrl{index} is missing")
        media.append({"url": url, "content_type": params.get(f"MediaContentType{index}", "")})
    return tuple(media)
