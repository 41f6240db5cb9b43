"""Render a claimed touch into the text or email a provider is handed, and keep its words on the touch.

The words are stored on the touch before any provider is called, so recovery after a crash can
recognise them at the provider, and the thread shows what went.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.core.playbook import Step
from bot.core.ports import OutgoingEmail, OutgoingSms
from bot.core.templating import RenderedEmail
from bot.store.models import Enrollment, Lead, Touch
from bot.usecases.dispatch_sql import BatchFacts
from bot.usecases.render_context import lead_context
from bot.usecases.send_outcomes import TouchSend
from bot.usecases.senders import email_from, sms_from
from bot.usecases.services import Services


@dataclass(frozen=True)
class ClaimedTouch:
    """A touch decided to go now: rendered, marked `sending` with its attempt counted, not yet handed over."""

    send: TouchSend
    outgoing: OutgoingSms | OutgoingEmail
    #: A text answering the lead's own text or call, allowed without consent to automated texts.
    answer: bool = False

    @property
    def touch_id(self) -> int:
        return self.send.touch_id

    @property
    def lead_id(self) -> int:
        return self.send.lead_id


def touch_send(touch: Touch, outgoing: OutgoingSms | OutgoingEmail) -> TouchSend:
    """What the recorder records the touch's answer against (its attempt as it goes out)."""
    if isinstance(outgoing, OutgoingSms):
        return TouchSend(touch.id, touch.lead_id, touch.enrollment_id, touch.attempts, "sms", outgoing.body)
    return TouchSend(
        touch.id, touch.lead_id, touch.enrollment_id, touch.attempts, "email", outgoing.text, outgoing.subject
    )


class TouchRenderer:
    """Turns a touch's step into the message a provider is handed: in the lead's business's wording, from its sender."""

    def __init__(self, services: Services):
        self.services = services

    def sms(self, touch: Touch, lead: Lead, step: Step, facts: BatchFacts) -> OutgoingSms:
        """The step's text; the first text to a number carries the opt-out line."""
        assert step.template is not None and lead.phone is not None
        body = self.services.renderer_of(lead.business).render_sms(
            step.template,
            self._context(lead, touch.enrollment, facts),
            first_to_number=lead.id not in facts.texted_leads,
        )
        touch.body_text = body
        callback = f"{self.services.public_base_url}/webhooks/twilio/status"
        return OutgoingSms(
            to=lead.phone,
            body=body,
            reference=f"touch-{touch.id}",
            status_callback=callback,
            sender=sms_from(self.services, self.services.business_of(lead.business)),
        )

    def email(
        self, session: Session, touch: Touch, lead: Lead, enrollment: Enrollment, step: Step, facts: BatchFacts
    ) -> OutgoingEmail:
        """The step's email, with the subject option this lead's turn gives."""
        assert step.template is not None and lead.email is not None
        if touch.subject_option is None:
            touch.subject_option = self._rotation(session, enrollment, step)
        context = self._context(lead, enrollment, facts)
        subject = step.subjects[touch.subject_option % len(step.subjects)]
        rendered = self.services.renderer_of(lead.business).render_email(step.template, subject, context)
        touch.subject, touch.body_text, touch.body_html = rendered.subject, rendered.text, rendered.html
        return self._touch_email(touch, lead, rendered, context)

    def sms_words(self, lead: Lead, enrollment: Enrollment, step: Step, facts: BatchFacts) -> str:
        """What a text step says, for saying it another way (by email, or by phone)."""
        assert step.template is not None
        return self.services.renderer_of(lead.business).render_sms(
            step.template, self._context(lead, enrollment, facts), first_to_number=False
        )

    def sms_as_email(
        self, touch: Touch, lead: Lead, enrollment: Enrollment, facts: BatchFacts, words: str
    ) -> OutgoingEmail:
        """A text step's words as a short email, for a lead texts may not go to."""
        assert lead.email is not None
        context = self._context(lead, enrollment, facts)
        business = self.services.business_of(lead.business)
        rendered = self.services.renderer_of(lead.business).render_email_as_written(
            "_direct_message", f"A note from {business.name}", {**context, "body": words}
        )
        touch.subject, touch.body_text, touch.body_html = rendered.subject, rendered.text, rendered.html
        return self._touch_email(touch, lead, rendered, context)

    def _context(self, lead: Lead, enrollment: Enrollment, facts: BatchFacts) -> dict:
        appointment = facts.appointments.get(enrollment.appointment_id) if enrollment.appointment_id else None
        return lead_context(
            lead,
            self.services.business_of(lead.business),
            self.services.public_base_url,
            appointment_at=appointment.start_at if appointment else None,
        )

    @staticmethod
    def _rotation(session: Session, enrollment: Enrollment, step: Step) -> int:
        """Give each lead the next subject option in turn, so every option is tried on similar leads."""
        session.flush()  # count the options given earlier in this batch too
        used = (
            session.scalar(
                select(func.count(Touch.id))
                .join(Enrollment, Enrollment.id == Touch.enrollment_id)
                .where(
                    Enrollment.sequence_name == enrollment.sequence_name,
                    Touch.step_id == step.id,
                    Touch.subject_option.is_not(None),
                )
            )
            or 0
        )
        return used % len(step.subjects)

    def _touch_email(self, touch: Touch, lead: Lead, rendered: RenderedEmail, context: dict) -> OutgoingEmail:
        """A touch's email, from the lead's business; its ids ride along in custom_args, so SendGrid's events
        find the touch again."""
        assert lead.email is not None
        return OutgoingEmail.to_lead(
            to=lead.email,
            subject=rendered.subject,
            text=rendered.text,
            html=rendered.html,
            reference=f"touch-{touch.id}",
            unsubscribe_url=context["links"]["unsubscribe"],
            custom_args={"touch_id": str(touch.id), "lead_id": str(lead.id)},
            sender=email_from(self.services, self.services.business_of(lead.business)),
        )
