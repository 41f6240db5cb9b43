"""Decide what a claimed touch does now: go out, wait, be skipped, become a call, or move the lead's stage.

The playbook's rules, the send windows, consent and reachability are asked here, once per touch,
under the lead's lock, inside the claim's transaction. A touch that goes is rendered
(bot.usecases.touch_rendering) and marked with its attempt counted before any provider is
called; everything else is settled on the spot and written down by the recorder
(bot.usecases.send_outcomes).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from bot.core.planning import PHONE_CHANNELS, earliest_send_time
from bot.core.playbook import Channel, Step, skip_reason, step_label
from bot.core.ports import OutgoingEmail, OutgoingSms
from bot.core.send_times import NoSendTime, may_send_at
from bot.core.states import TouchReroute
from bot.core.templating import TemplateProblem
from bot.store import audit, outbox
from bot.store.audit import SYSTEM
from bot.store.consent import why_no_sms_consent
from bot.store.models import Enrollment, Lead, Stage, Touch, TouchStatus
from bot.store.outbox import Notice
from bot.usecases.call_tasks import open_call_task
from bot.usecases.dispatch_sql import BatchFacts
from bot.usecases.enrollment import NURTURE_SEQUENCE, lead_timezones
from bot.usecases.lead_actions import on_quiet_end, set_stage
from bot.usecases.send_outcomes import DispatchReport, SendRecorder, step_of
from bot.usecases.services import Services
from bot.usecases.touch_rendering import ClaimedTouch, TouchRenderer, touch_send

#: How late a touch may still go out after the bot was down; later than this it would confuse more than help.
GRACE = {
    Channel.SMS: timedelta(hours=2),
    Channel.EMAIL: timedelta(hours=12),
    Channel.CALL_TASK: timedelta(hours=24),
}
#: How a text the number could not take, said by phone instead, reads in the thread (`skip_reason`).
HANDED_TO_THE_TEAM = "handed to the team as a call"
#: Real seconds a busy dispatch run may take on top of the poll period before lateness counts as missed.
OWN_DELAY_SLACK_SECONDS = 10.0
#: A touch whose channel has no provider configured waits with this as its next attempt: no claim
#: takes it, and `release_waiting_touches` lets it go once a restart brings the settings.
WAITING_FOR_SETTINGS = datetime(9999, 1, 1, tzinfo=UTC)
#: What each channel needs set before its touches can go out.
CHANNEL_SETTINGS = {
    Channel.SMS: (
        "SMS",
        "TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and TWILIO_FROM_NUMBER (or TWILIO_MESSAGING_SERVICE_SID)",
    ),
    Channel.EMAIL: ("email", "SENDGRID_API_KEY and SENDGRID_FROM_EMAIL"),
}


class TouchPolicy:
    """Decides each claimed touch; returns the ones that go to a provider now."""

    def __init__(
        self, services: Services, recorder: SendRecorder, renderer: TouchRenderer, *, poll_seconds: float = 0.0
    ):
        self.services = services
        self.recorder = recorder
        self.renderer = renderer
        #: Real seconds between the dispatcher's looks at the queue: a touch may wait that long before it is seen.
        self.poll_seconds = poll_seconds

    def decide(
        self, session: Session, touch: Touch, now: datetime, report: DispatchReport, facts: BatchFacts
    ) -> ClaimedTouch | None:
        """Settle a claimed touch, or mark it to go and return it rendered."""
        enrollment = touch.enrollment
        lead = enrollment.lead
        channel = Channel(touch.channel)
        step = step_of(self.services, enrollment, touch)
        if step is None:
            return self._skip(session, touch, "the step is no longer in the playbook", report)
        grace = GRACE.get(channel)
        if grace is not None:
            grace = max(grace, self.own_delay())
        if grace is not None and touch.attempts == 0 and now - touch.due_at > grace:
            return self._skip(
                session,
                touch,
                f"missed: due {touch.due_at:%Y-%m-%d %H:%M} UTC, more than {grace} ago (the bot was not running)",
                report,
            )
        # The lead's business's hours, time zone, closed days and holidays.
        business = self.services.business_of(lead.business)
        zones = lead_timezones(lead, business)
        if channel != Channel.STAGE and not may_send_at(
            now,
            business=business,
            respect_lead_daytime=channel in PHONE_CHANNELS,
            lead_timezones=zones,
        ):
            try:
                due_at = earliest_send_time(now, channel, business, zones)
            except NoSendTime as error:
                return self._skip(session, touch, f"no time to send: {error}", report)
            touch.status, touch.due_at = TouchStatus.SCHEDULED, due_at
            report.rescheduled += 1
            return None
        try:
            if channel == Channel.SMS and lead.sms_unreachable_reason and lead.sms_opted_out_at is None:
                return self._say_it_another_way(
                    session,
                    touch,
                    lead,
                    enrollment,
                    step,
                    now,
                    report,
                    facts,
                    why=lead.sms_unreachable_reason,
                    call_reason="texts cannot reach this number",
                )
            lead_facts = facts.about(lead, enrollment)
            answer = False
            if channel == Channel.SMS and lead.sms_reachable and not lead.sms_consent:
                # Texts could reach the lead, but automated ones need consent on record (TCPA).
                lead_facts = replace(lead_facts, sms_allowed=True)
                reason = skip_reason(step, lead_facts)
                if reason:
                    return self._skip(session, touch, reason, report)
                if lead.sms_lead_started_at is not None and lead.id not in facts.answered_leads:
                    answer = True  # the lead texted or called first: this text answers them
                    facts.answered_leads.add(lead.id)
                else:
                    why = why_no_sms_consent(lead) or "no SMS consent on record"
                    return self._say_it_another_way(
                        session, touch, lead, enrollment, step, now, report, facts, why=why, call_reason=why
                    )
            reason = skip_reason(step, lead_facts)
            if reason:
                return self._skip(session, touch, reason, report)
            if channel in CHANNEL_SETTINGS and self._sender(channel) is None:
                return self._wait_for_settings(session, touch, channel, now, report)
            match channel:
                case Channel.SMS:
                    return self._goes(touch, self.renderer.sms(touch, lead, step, facts), now, answer=answer)
                case Channel.EMAIL:
                    return self._goes(touch, self.renderer.email(session, touch, lead, enrollment, step, facts), now)
                case Channel.CALL_TASK:
                    self._open_call(session, touch, lead, step, now)
                case Channel.STAGE:
                    self._move_stage(session, touch, lead, enrollment, step, now)
        except TemplateProblem as problem:
            self.recorder.fail(session, touch, f"could not render {step.template}: {problem}", report)
            return None
        report.sent += 1
        self.recorder.complete_if_done(session, enrollment, now)
        return None

    def own_delay(self) -> timedelta:
        """How late, on the bot's clock, a touch can be found while the bot runs normally.

        A touch due just after one look is found at the next, and a busy run takes a few seconds
        more; with a sped-up clock those real seconds are hours. Lateness up to this is the bot's
        own doing, never "the bot was not running".
        """
        scale = getattr(self.services.clock, "scale", 1.0)
        return timedelta(seconds=scale * (2 * self.poll_seconds + OWN_DELAY_SLACK_SECONDS))

    def _sender(self, channel: Channel) -> object | None:
        return self.services.sms if channel == Channel.SMS else self.services.email

    @staticmethod
    def _goes(
        touch: Touch, outgoing: OutgoingSms | OutgoingEmail, now: datetime, *, answer: bool = False
    ) -> ClaimedTouch:
        """Mark the touch as going out, its attempt counted, before the provider is called.

        Recorded before the call: a crash after this can never lead to a blind resend.
        """
        touch.status = TouchStatus.SENDING
        touch.attempts += 1
        touch.next_attempt_at = now
        return ClaimedTouch(touch_send(touch, outgoing), outgoing, answer=answer)

    def _skip(self, session: Session, touch: Touch, reason: str, report: DispatchReport) -> ClaimedTouch | None:
        """Skip the touch, saying why: nothing goes now (None)."""
        self.recorder.skip(session, touch, reason, report)
        return None

    def _wait_for_settings(
        self, session: Session, touch: Touch, channel: Channel, now: datetime, report: DispatchReport
    ) -> ClaimedTouch | None:
        """Hold a touch whose channel is not configured, say why in the thread once, and fail nothing (None)."""
        what, settings = CHANNEL_SETTINGS[channel]
        why = f"waiting: {what} is not configured (set {settings}); it goes out once it is and followup is restarted"
        said = touch.waiting_for == channel  # said in the thread when it began waiting for this channel
        touch.status, touch.next_attempt_at, touch.waiting_for = TouchStatus.SCHEDULED, WAITING_FOR_SETTINGS, channel
        touch.last_error = why
        if not said:
            step = step_of(self.services, touch.enrollment, touch)
            label = step.label if step is not None else step_label(None, touch.step_id)
            outbox.publish(session, Notice.DECISION, lead_id=touch.lead_id, at=now, text=f"{label} is {why}")
            audit.record(
                session, lead_id=touch.lead_id, actor=SYSTEM, action="touch_waiting", at=now, touch=touch.id, reason=why
            )
        report.rescheduled += 1
        report.details.append(f"touch {touch.id} {why}")
        return None

    def _say_it_another_way(
        self,
        session: Session,
        touch: Touch,
        lead: Lead,
        enrollment: Enrollment,
        step: Step,
        now: datetime,
        report: DispatchReport,
        facts: BatchFacts,
        *,
        why: str,
        call_reason: str,
    ) -> ClaimedTouch | None:
        """Texts may not go to this lead (`why`): say the same thing by email, or hand the team a call."""
        words = self.renderer.sms_words(lead, enrollment, step, facts)
        if lead.email_allowed:
            if self.services.email is None:
                return self._wait_for_settings(session, touch, Channel.EMAIL, now, report)
            outgoing = self.renderer.sms_as_email(touch, lead, enrollment, facts, words)
            touch.skip_reason, touch.rerouted = f"sent by email: {why}", TouchReroute.EMAIL
            return self._goes(touch, outgoing, now)
        open_call_task(
            session,
            self.services,
            lead,
            now=now,
            actor=SYSTEM,
            touch=touch,
            reason=f"{call_reason}; say it by phone: {words}",
        )
        touch.status, touch.sent_at = TouchStatus.SENT, now
        touch.skip_reason, touch.rerouted = f"{HANDED_TO_THE_TEAM}: {why}", TouchReroute.CALL
        report.sent += 1
        self.recorder.complete_if_done(session, enrollment, now)
        return None

    def _open_call(self, session: Session, touch: Touch, lead: Lead, step: Step, now: datetime) -> None:
        open_call_task(
            session,
            self.services,
            lead,
            reason=f"{step.label}: scheduled follow-up call",
            now=now,
            actor=SYSTEM,
            template=step.template,
            touch=touch,
        )
        touch.status, touch.sent_at = TouchStatus.SENT, now

    def _move_stage(
        self, session: Session, touch: Touch, lead: Lead, enrollment: Enrollment, step: Step, now: datetime
    ) -> None:
        touch.status, touch.sent_at = TouchStatus.SENT, now
        target = Stage(step.stage) if step.stage else None
        if target == Stage.NURTURE and enrollment.sequence_name != NURTURE_SEQUENCE:
            on_quiet_end(session, self.services, lead, now=now)
        elif target is not None:
            set_stage(session, lead, target, now=now, actor=SYSTEM, reason=f"playbook step {step.id}")
            outbox.publish(session, Notice.LEAD_CHANGED, lead_id=lead.id, at=now)
