"""Carry out one queued notice in Slack: a card posted or refreshed, a thread entry, a call task, an erasure.

Made for each notice the poster (bot.slack.poster) takes off the queue: one method per kind of notice,
reading the notice's typed payload (bot.store.outbox), drawing what the message shows from the store
(bot.slack.cards) and making its Slack calls through one `EventCalls` (bot.slack.calls).
"""

from __future__ import annotations

import logging
import mimetypes
from dataclasses import asdict, replace
from datetime import datetime

from sqlalchemy import exists, or_, select
from sqlalchemy.orm import Session

from bot.core.playbook import LeadFacts, Sequence, default_sequence_label, skip_reason, step_label
from bot.core.ports import MediaFetchError
from bot.core.states import CallTaskStatus, EnrollmentState
from bot.slack.blocks import (
    call_task_blocks,
    call_task_pointer_blocks,
    call_task_pointer_text,
    call_task_text,
    lead_card_blocks,
    lead_card_text,
    thread_entry_blocks,
    thread_entry_text,
)
from bot.slack.calls import UPLOAD, EventCalls, SlackRefused, SlackUnavailable
from bot.slack.cards import (
    CallTaskView,
    DecisionEntry,
    FailureEntry,
    NeedsPersonEntry,
    ThreadEntry,
    automation_of,
    call_outcome_entry,
    call_task_view,
    inbound_entry,
    lead_card,
    mention,
    outbound_entry,
    shown_enrollment,
    thread_reply_status,
    touch_entry,
    written_in_thread,
)
from bot.store.models import Appointment, AuditEntry, CallTask, Enrollment, Lead, Message, OutboxEvent, Touch
from bot.store.outbox import (
    CallTaskChanged,
    CallTaskOpened,
    DecisionNote,
    LeadChanged,
    LeadCreated,
    LeadErased,
    MediaReceived,
    MessageReceived,
    MessageStatus,
    NeedsPerson,
    Notice,
    TouchFailed,
    TouchSent,
    payload_of,
    stored_payload,
)
from bot.usecases.enrollment import lead_timezones
from bot.usecases.services import Services

log = logging.getLogger(__name__)

#: What every post of an erased lead says instead of what it said.
ERASED_TEXT = "Lead #{lead_id}: this lead's details and messages were erased on request."


class NoticeCarrier:
    """One notice in hand, and what carrying it out needs: the services, its Slack calls and who to ping."""

    def __init__(
        self,
        services: Services,
        channel: str,
        oncall: str | None,
        *,
        admins: tuple[str, ...],
        event: OutboxEvent,
        calls: EventCalls,
    ):
        self.services = services
        self.channel = channel
        self.oncall = oncall
        self.admins = admins
        self.event = event
        self.calls = calls
        #: The business of the notice's lead (its channel, on-call, admins, time zone and playbooks).
        self.business = services.business
        #: Later notices of the lead that this one's posts already showed, taken off the queue with it.
        self.absorbed = 0

    def carry_out(self, session: Session) -> None:
        """Carry the notice out in Slack (raises SlackUnavailable, SlackRefused or LimiterBusy when it cannot)."""
        event = self.event
        lead = session.get(Lead, event.lead_id) if event.lead_id is not None else None
        if lead is None:
            raise SlackRefused(f"event {event.id} names no existing lead")
        self._take_place_of(lead)
        try:
            payload = payload_of(event)
        except (ValueError, TypeError) as error:  # an unknown kind, or a payload missing what its kind needs
            raise SlackRefused(f"event {event.id} ({event.kind!r}) cannot be read: {error}") from error
        match payload:
            case LeadCreated():
                self._ensure_card(session, lead)
            case LeadChanged():
                if not self._superseded(session, event):
                    self._refresh_card(session, lead)
            case TouchSent():
                self._mirror_touch(session, lead, payload)
            case TouchFailed():
                touch = session.get(Touch, payload.touch_id)
                self._post_entry(
                    session,
                    lead,
                    FailureEntry(
                        channel=touch.channel if touch else "",
                        error=payload.error or "unknown error",
                        step=self._step_label(session, touch) if touch else None,
                    ),
                )
            case MessageReceived():
                self._mirror_reply(session, lead, event, payload)
            case MessageStatus():
                if not self._superseded(session, event, key="message_id"):
                    self._mirror_status(session, lead, payload)
            case DecisionNote():
                alert = self._alert_mention(lead) if payload.alert_team else None
                if payload.alert_admins:
                    alert = " ".join(filter(None, map(mention, self.admins))) or self._alert_mention(lead)
                text = payload.text
                if payload.sequence:  # a note about one sequence names it as people know it
                    text = f"{self._sequence_label(payload.sequence)}: {text}"
                self._post_entry(session, lead, DecisionEntry(text=text, actor=payload.actor, mention=alert))
            case MediaReceived():
                self._share_media(session, lead, payload)
            case NeedsPerson():
                self._post_entry(
                    session,
                    lead,
                    NeedsPersonEntry(
                        text=payload.text or "A person needs to look at this lead.", mention=self._alert_mention(lead)
                    ),
                )
            case CallTaskOpened():
                self._post_call_task(session, lead, payload.call_task_id)
            case CallTaskChanged():
                if not self._superseded(session, event, key="call_task_id"):
                    self._refresh_call_task(session, lead, payload)
            case LeadErased():
                self._erase(event, payload)

    def _take_place_of(self, lead: Lead) -> None:
        """Post where the lead's business works its leads: its channel, pinging its on-call and admins.

        With one business, the poster's own channel, on-call and admins (the deployment's settings), as ever.
        """
        services = self.services
        if services.businesses.only is not None:
            self.business = services.businesses.only
            return
        self.business = services.business_of(lead.business)
        place = self.business.slack
        if not place.channel:
            raise SlackRefused(f"{self.business.slug} names no Slack channel (slack: channel in its business file)")
        self.channel, self.oncall, self.admins = place.channel, place.on_call or None, tuple(sorted(place.admins))

    def _erase(self, event: OutboxEvent, erased: LeadErased) -> None:
        """Edit every post of an erased lead (card, thread entries, call-task copies) to say it was erased.

        The thread is listed once and each edit noted in the event as it is made, so a rate-limit
        pause goes on where it stopped. A post Slack no longer has is passed over.
        """
        channel, card_ts = erased.channel, erased.card_ts
        if erased.posts is None:
            posts = [(channel, card_ts)] if channel and card_ts else []
            if channel and card_ts:
                posts += [(channel, ts) for ts in self.calls.own_thread_posts(channel, card_ts) if ts != card_ts]
            posts += [(copy["channel"], copy["ts"]) for copy in erased.copies]
            erased = replace(erased, posts=tuple(dict.fromkeys(posts)), edited=0)
            event.payload = stored_payload(Notice.LEAD_ERASED, asdict(erased))
        assert erased.posts is not None
        text = ERASED_TEXT.format(lead_id=event.lead_id)
        blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": f":wastebasket: _{text}_"}}]
        for index in range(erased.edited, len(erased.posts)):
            post_channel, ts = erased.posts[index]
            try:
                self.calls.update(post_channel, ts, text, blocks)
            except SlackRefused as refused:  # deleted meanwhile, or not ours to edit: nothing left to erase
                log.warning("slack: erased lead %s: could not edit %s/%s: %s", event.lead_id, post_channel, ts, refused)
            erased = replace(erased, edited=index + 1)
            event.payload = stored_payload(Notice.LEAD_ERASED, asdict(erased))

    def _superseded(self, session: Session, event: OutboxEvent, key: str | None = None) -> bool:
        """A later pending event of the same kind (for the same message or task) will show the newer state."""
        later = session.scalars(
            select(OutboxEvent).where(
                OutboxEvent.lead_id == event.lead_id,
                OutboxEvent.kind == event.kind,
                OutboxEvent.delivered_at.is_(None),
                OutboxEvent.id > event.id,
            )
        ).all()
        if key is None:
            return bool(later)
        mine = (event.payload or {}).get(key)  # the stored fields, as stored_payload wrote them
        return any((other.payload or {}).get(key) == mine for other in later)

    # --- the card ----------------------------------------------------------------------------------

    def _card(self, session: Session, lead: Lead) -> tuple[str, list[dict]]:
        enrollments = session.scalars(select(Enrollment).where(Enrollment.lead_id == lead.id)).all()
        touches = session.scalars(select(Touch).where(Touch.lead_id == lead.id)).all()
        appointment = session.scalars(
            select(Appointment)
            .where(Appointment.lead_id == lead.id, Appointment.status != "rescheduled")
            .order_by(Appointment.id.desc())
        ).first()
        booked = appointment is not None and appointment.status in ("booked", "confirmed")
        shown = shown_enrollment(enrollments)
        wont_run = self._wont_run(session, lead, shown, booked=booked) if shown else frozenset()
        business = self.business
        card = lead_card(
            lead,
            enrollments=enrollments,
            touches=touches,
            appointment=appointment,
            zone=business.timezone,
            wont_run=wont_run,
            playbook=self._playbook(shown.sequence_name) if shown else None,
            business=business,
            lead_zones=lead_timezones(lead, business),
            now=self.services.clock.now(),
        )
        return lead_card_text(card), lead_card_blocks(card)

    # --- words people read ---------------------------------------------------------------------

    def _playbook(self, name: str) -> Sequence | None:
        """The playbook an enrollment names, for its labels; None when it no longer loads (`check` says why)."""
        try:
            return self.services.playbooks_of(self.business.slug).get(name)
        except Exception:  # noqa: BLE001 - a missing or broken playbook must not keep a card from Slack
            return None

    def _sequence_label(self, name: str) -> str:
        playbook = self._playbook(name)
        return playbook.label if playbook is not None else default_sequence_label(name)

    def _step_label(self, session: Session, touch: Touch) -> str:
        enrollment = session.get(Enrollment, touch.enrollment_id)
        return step_label(self._playbook(enrollment.sequence_name) if enrollment else None, touch.step_id)

    def _lead_zone(self, lead: Lead) -> str:
        """The lead's time zone as the team sees it beside the business's (bot.core.display.team_time)."""
        return lead_timezones(lead, self.business)[0]

    def _wont_run(self, session: Session, lead: Lead, enrollment: Enrollment, *, booked: bool) -> frozenset[str]:
        """The steps of the enrollment that would be skipped for this lead as things stand now."""
        try:
            steps = self.services.playbooks.get(enrollment.sequence_name).steps
        except Exception:  # noqa: BLE001 - a playbook that no longer loads: count every touch, `check` says why
            return frozenset()
        replied = session.scalar(
            select(
                exists().where(
                    Message.lead_id == lead.id,
                    Message.direction == "in",
                    Message.created_at >= enrollment.enrolled_at,
                    or_(Message.classification.is_(None), Message.classification != "auto_reply"),
                )
            )
        )
        facts = LeadFacts(
            has_email=bool(lead.email),
            has_phone=bool(lead.phone),
            has_replied=bool(replied),
            has_booked=booked,
            sms_allowed=lead.sms_allowed,
            email_allowed=lead.email_allowed,
        )
        return frozenset(step.id for step in steps if skip_reason(step, facts))

    def _ensure_card(self, session: Session, lead: Lead) -> tuple[str, str]:
        """Post the lead's card unless it is already in Slack; return its channel and ts."""
        if lead.slack_channel and lead.slack_ts:
            return lead.slack_channel, lead.slack_ts
        # Read before the card is drawn: every change they announce is in what it shows.
        changes = self._queued_after_this(session, lead.id, Notice.LEAD_CHANGED)
        text, blocks = self._card(session, lead)
        ts = self.calls.post(self.channel, text, blocks, key=f"card:{lead.id}")
        lead.slack_channel, lead.slack_ts = self.channel, ts
        self._shown_already(changes)
        return self.channel, ts

    def _queued_after_this(self, session: Session, lead_id: int, kind: Notice) -> list[OutboxEvent]:
        """The lead's notices of one kind queued behind the event in hand."""
        return list(
            session.scalars(
                select(OutboxEvent)
                .where(
                    OutboxEvent.lead_id == lead_id,
                    OutboxEvent.kind == kind,
                    OutboxEvent.delivered_at.is_(None),
                    OutboxEvent.id > self.event.id,
                )
                .order_by(OutboxEvent.id)
            )
        )

    def _shown_already(self, events: list[OutboxEvent]) -> None:
        """Take notices off the queue that a post just made already shows: each would be one more edit.

        A backlog leaves a new lead's card and first entries to be posted after its changes and
        delivery statuses; Slack allows about 50 edits a minute per workspace, so redundant edits
        would keep a burst's backlog long after its posts.
        """
        now = self.services.clock.now()
        for event in events:
            event.delivered_at = now  # written at commit, with the post's ts
        self.absorbed += len(events)

    def _refresh_card(self, session: Session, lead: Lead) -> None:
        if not (lead.slack_channel and lead.slack_ts):
            self._ensure_card(session, lead)
            return
        text, blocks = self._card(session, lead)
        try:
            self.calls.update(lead.slack_channel, lead.slack_ts, text, blocks)
        except SlackRefused as refused:
            if "message_not_found" not in str(refused):
                raise
            # Someone deleted the card: post a new one so the lead is in the channel again.
            log.warning("slack: lead %s card was deleted; posting a new one", lead.id)
            lead.slack_channel = lead.slack_ts = None
            self._ensure_card(session, lead)

    # --- the thread --------------------------------------------------------------------------------

    def _post_entry(self, session: Session, lead: Lead, entry: ThreadEntry) -> str:
        channel, card_ts = self._ensure_card(session, lead)
        return self.calls.post(channel, thread_entry_text(entry), thread_entry_blocks(entry), thread_ts=card_ts)

    def _mirror_touch(self, session: Session, lead: Lead, payload: TouchSent) -> None:
        touch = session.get(Touch, payload.touch_id)
        if touch is None:
            raise SlackRefused(f"touch {payload.touch_id} does not exist")
        # Read before the message: the statuses they announce are in the entry drawn from it.
        statuses = self._queued_after_this(session, lead.id, Notice.MESSAGE_STATUS)
        message = session.scalars(
            select(Message).where(Message.touch_id == touch.id, Message.direction == "out").order_by(Message.id.desc())
        ).first()
        zone = self.business.timezone
        step, lead_zone = self._step_label(session, touch), self._lead_zone(lead)
        if message is None:
            self._post_entry(session, lead, touch_entry(touch, zone, step=step, lead_zone=lead_zone))
            return
        if message.slack_ts:
            return  # already mirrored (a redelivered event)
        message.slack_ts = self._post_entry(
            session, lead, outbound_entry(message, touch, zone, step=step, lead_zone=lead_zone)
        )
        self._shown_already([event for event in statuses if (event.payload or {}).get("message_id") == message.id])

    def _mirror_reply(self, session: Session, lead: Lead, event: OutboxEvent, payload: MessageReceived) -> None:
        message = session.get(Message, payload.message_id) if payload.message_id else None
        if message is None:
            # The notice names no message: the oldest reply not yet mirrored is this one, since a
            # lead's notices are carried out in order.
            message = session.scalars(
                select(Message)
                .where(
                    Message.lead_id == lead.id,
                    Message.direction == "in",
                    Message.channel == payload.channel,
                    Message.slack_ts.is_(None),
                    Message.created_at <= event.created_at,
                )
                .order_by(Message.id)
            ).first()
        if message is None:
            raise SlackRefused(f"no stored reply for lead {lead.id} to mirror")
        if message.slack_ts:
            return
        requested_at = datetime.fromisoformat(payload.requested_time) if payload.requested_time else None
        message.slack_ts = self._post_entry(
            session,
            lead,
            inbound_entry(message, requested_at, self.business.timezone, lead_zone=self._lead_zone(lead)),
        )

    def _mirror_status(self, session: Session, lead: Lead, payload: MessageStatus) -> None:
        message = session.get(Message, payload.message_id)
        if message is None:
            raise SlackRefused(f"message {payload.message_id} does not exist")
        touch = session.get(Touch, message.touch_id) if message.touch_id else None
        entry: ThreadEntry
        if written_in_thread(message):
            # A `!reply`: the member's own message shows the words; the bot only says how it fared.
            entry = thread_reply_status(message)
        else:
            entry = outbound_entry(
                message,
                touch,
                self.business.timezone,
                step=self._step_label(session, touch) if touch else None,
                lead_zone=self._lead_zone(lead),
            )
        if message.slack_ts and lead.slack_channel:
            self.calls.update(
                lead.slack_channel, message.slack_ts, thread_entry_text(entry), thread_entry_blocks(entry)
            )
            return
        # A direct message from the team has no entry yet: its first status is when it appears.
        message.slack_ts = self._post_entry(session, lead, entry)

    def _share_media(self, session: Session, lead: Lead, payload: MediaReceived) -> None:
        """Fetch a lead's photo from the provider and upload it into their thread (files_upload_v2).

        A retry after a lost answer may upload it twice: a second copy beats a lost photo.
        """
        message = session.get(Message, payload.message_id)
        media = ((message.details or {}).get("media") or []) if message else []
        index = payload.index
        if message is None or not isinstance(index, int) or not 0 <= index < len(media):
            raise SlackRefused(f"no stored media {index} for message {payload.message_id}")
        item = media[index]
        source = getattr(self.services.sms, "fetch_media", None)
        if source is None:
            self._post_entry(
                session,
                lead,
                NeedsPersonEntry(
                    text="They sent a photo, but SMS is not configured here, so it cannot be fetched.", mention=None
                ),
            )
            return
        try:
            fetched = source(str(item.get("url") or ""))
        except MediaFetchError as error:
            if error.transient:  # Twilio is not answering: the notice waits and is tried again
                raise SlackUnavailable(f"fetching a photo from Twilio: {error.reason}") from error
            self._post_entry(
                session,
                lead,
                NeedsPersonEntry(
                    text=f"They sent a photo that could not be fetched ({error.reason}): look it up in Twilio.",
                    mention=None,
                ),
            )
            return
        channel, card_ts = self._ensure_card(session, lead)
        extension = mimetypes.guess_extension(fetched.content_type) or ""
        name = f"lead-{lead.id}-message-{message.id}-{index + 1}{extension}"
        self.calls.call(
            UPLOAD,
            channel,
            thread_ts=card_ts,
            content=fetched.content,
            filename=name,
            title=f"Photo from {lead.name or 'the lead'}",
            initial_comment=f"Photo {index + 1} of {len(media)} from the lead's text",
        )

    def _alert_mention(self, lead: Lead) -> str | None:
        """Who is pinged when the team must act: the lead's owner, else on-call."""
        return mention(lead.owner) or mention(self.oncall)

    # --- call tasks --------------------------------------------------------------------------------

    def _task_view(self, session: Session, task: CallTask, lead: Lead, *, mention_to: str | None) -> CallTaskView:
        open_enrollments = session.scalars(
            select(Enrollment).where(
                Enrollment.lead_id == lead.id, Enrollment.state.in_((EnrollmentState.ACTIVE, EnrollmentState.PAUSED))
            )
        ).all()
        last_reply = session.scalars(
            select(Message.body)
            .where(Message.lead_id == lead.id, Message.direction == "in")
            .order_by(Message.id.desc())
        ).first()
        return call_task_view(
            task,
            lead,
            automation=automation_of(open_enrollments),
            zone=self.business.timezone,
            last_reply=last_reply,
            logged_by=self._outcome_logger(session, task),
            mention_to=mention_to,
            lead_zone=self._lead_zone(lead),
        )

    @staticmethod
    def _outcome_logger(session: Session, task: CallTask) -> str | None:
        """Who logged the task's outcome, from the audit log (the claimer may not be who logged it)."""
        if task.status != CallTaskStatus.DONE:
            return None
        entries = session.scalars(
            select(AuditEntry)
            .where(AuditEntry.lead_id == task.lead_id, AuditEntry.action == "call_outcome")
            .order_by(AuditEntry.id.desc())
        ).all()
        for entry in entries:
            if (entry.details or {}).get("task") == task.id:
                return entry.actor_id if entry.actor_type == "slack_user" and entry.actor_id else None
        return None

    def _post_call_task(self, session: Session, lead: Lead, call_task_id: int) -> None:
        """Post a call task once, in the channel where people act on it, and one line about it in the thread.

        A task already finished before it reached Slack is shown whole in the thread only.
        """
        task = session.get(CallTask, call_task_id)
        if task is None:
            raise SlackRefused(f"call task {call_task_id} does not exist")
        channel, card_ts = self._ensure_card(session, lead)
        view = self._task_view(session, task, lead, mention_to=self._alert_mention(lead))
        live = task.status in (CallTaskStatus.OPEN, CallTaskStatus.CLAIMED)
        if not task.slack_thread_ts:
            task.slack_channel = channel
            if live:
                text, blocks = call_task_pointer_text(view), call_task_pointer_blocks(view)
            else:
                quiet = replace(view, mention=None)
                text, blocks = call_task_text(quiet), call_task_blocks(quiet)
            task.slack_thread_ts = self.calls.post(
                channel, text, blocks, thread_ts=card_ts, key=f"call_task:{task.id}:thread"
            )
        if not task.slack_channel_ts and live:
            task.slack_channel_ts = self.calls.post(
                channel, call_task_text(view), call_task_blocks(view), key=f"call_task:{task.id}:channel"
            )

    def _refresh_call_task(self, session: Session, lead: Lead, payload: CallTaskChanged) -> None:
        task = session.get(CallTask, payload.call_task_id)
        if task is None:
            raise SlackRefused(f"call task {payload.call_task_id} does not exist")
        channel = task.slack_channel or lead.slack_channel
        if channel is None or not (task.slack_thread_ts or task.slack_channel_ts):
            # The task never reached Slack (its own notice was refused): show it now.
            self._post_call_task(session, lead, task.id)
        else:
            view = self._task_view(session, task, lead, mention_to=self._alert_mention(lead))
            if task.slack_channel_ts:
                self.calls.update(channel, task.slack_channel_ts, call_task_text(view), call_task_blocks(view))
            if task.slack_thread_ts:
                if task.slack_channel_ts:
                    text, blocks = call_task_pointer_text(view), call_task_pointer_blocks(view)
                else:
                    quiet = replace(view, mention=None)
                    text, blocks = call_task_text(quiet), call_task_blocks(quiet)
                self.calls.update(channel, task.slack_thread_ts, text, blocks)
        if task.status == CallTaskStatus.DONE:
            consequence = payload.consequence
            entry = call_outcome_entry(
                task,
                logged_by=self._outcome_logger(session, task),
                zone=self.business.timezone,
                lead_zone=self._lead_zone(lead),
                consequence=str(consequence) if consequence else None,
            )
            self._post_entry(session, lead, entry)
