"""The weekly digest in Slack: its blocks (pure), and posting it once a week with its chart.

Once a week even with several processes or a restart at the digest's hour: the week's key
('2026-W49') is claimed with a unique row before posting, and the claim is released if Slack
refused the post, so the next tick tries again.

With several businesses each has its own digest job: its own leads counted, at the digest's hour in its
own time zone, posted to its own channel, and claimed under its own slug (one clinic's week posted does
not take the other's).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError

from bot.core.business import Business
from bot.reports.digest import DigestSchedule, WeeklyDigest, build_digest
from bot.reports.stats import ATTRIBUTION
from bot.slack.blocks import Block, clip, context, escape, fields_section, header, section
from bot.slack.home import PlaybookLookup, duration, percent, subject_text, touch_name
from bot.store.models import ProcessedDelivery
from bot.usecases.services import Services

log = logging.getLogger(__name__)

#: The claim's provider name in processed_deliveries.
DIGEST_CLAIM = "weekly_digest"
#: A process that starts this long after the digest's moment skips that week rather than post it late.
_LATE_LIMIT = timedelta(hours=12)


def digest_blocks(
    digest: WeeklyDigest, playbook_of: PlaybookLookup | None = None, *, preview: bool = False
) -> list[Block]:
    """The digest as people read it: the week's numbers first, then who did what, then who is waiting."""
    stats = digest.stats
    first, last = digest.start.astimezone(digest.zone), digest.end.astimezone(digest.zone)
    blocks: list[Block] = [
        header(f"Week of {first:%b} {first.day} – {last:%b} {last.day}" + (" (preview)" if preview else "")),
        fields_section(
            [
                f"*Leads in*\n{stats.leads_in}",
                f"*Speed to lead*\nmedian {duration(stats.speed_to_lead_median)}, "
                f"slowest tenth {duration(stats.speed_to_lead_p90)}",
                f"*Reply rate*\n{percent(stats.reply_rate)} ({stats.replied} of {stats.contacted} contacted)",
                f"*Booking rate*\n{percent(stats.booking_rate)} ({stats.booked} of {stats.leads_in})",
                f"*Show rate*\n{percent(digest.show_rate)} ({digest.attended} of {digest.attended + digest.missed} "
                "visits this week)",
                f"*Lost*\n{digest.lost}",
            ]
        ),
    ]
    if digest.lost_reasons:
        blocks.append(
            section(
                "*Why leads were lost*\n"
                + "\n".join(f"• {escape(reason)}: {count}" for reason, count in digest.lost_reasons[:6])
            )
        )
    if digest.calls_by_person:
        blocks.append(
            section(
                "*Calls made*\n"
                + "\n".join(
                    f"• <@{person.user_id}>: {person.calls} ("
                    + ", ".join(f"{count} {escape(outcome.replace('_', ' '))}" for outcome, count in person.outcomes)
                    + ")"
                    for person in digest.calls_by_person[:10]
                )
            )
        )
    best = []
    if touch := digest.best_touch:
        best.append(
            f"• Touch: {escape(touch_name(touch.sequence, touch.step_id, playbook_of))}: "
            f"{percent(touch.reply_rate)} replied ({touch.replies} of {touch.sent} sent)"
        )
    if subject := digest.best_subject:
        best.append(
            f"• Subject: “{escape(clip(subject_text(subject, playbook_of), 90))}” "
            f"({escape(touch_name(subject.sequence, subject.step_id, playbook_of))}): "
            f"{percent(subject.reply_rate)} replied ({subject.replies} of {subject.sent} sent)"
        )
    if best:
        blocks.append(section("*What got replies*\n" + "\n".join(best)))
    if digest.waiting:
        blocks.append(
            section(
                "*Still waiting for a person*\n"
                + "\n".join(
                    f"• #{lead.lead_id} {escape(lead.name or 'unnamed lead')}: {escape(lead.why)}"
                    for lead in digest.waiting
                )
            )
        )
    else:
        blocks.append(section("*Still waiting for a person*\nNobody: every lead is handled."))
    blocks.append(
        context("Rates are of those sent or contacted. A booking counts for the week its lead came in. " + ATTRIBUTION)
    )
    return blocks


def digest_text(digest: WeeklyDigest) -> str:
    """The notification line (and what screen readers say) for the digest message."""
    count = digest.stats.leads_in
    return (
        f"Weekly digest: {count} lead{'' if count == 1 else 's'} in, "
        f"reply rate {percent(digest.stats.reply_rate)}, booking rate {percent(digest.stats.booking_rate)}"
    )


def post_digest(
    client: WebClient, channel: str, digest: WeeklyDigest, playbook_of: PlaybookLookup | None = None
) -> str:
    """Post the digest and its chart to the channel; return the message ts."""
    from bot.reports.digest_chart import render_chart  # matplotlib loads once a week, not with every process

    posted = client.chat_postMessage(
        channel=channel, text=digest_text(digest), blocks=digest_blocks(digest, playbook_of)
    )
    ts = str(posted["ts"])
    client.files_upload_v2(
        channel=channel,
        thread_ts=ts,
        content=render_chart(digest),
        filename=f"digest-{digest.end.astimezone(digest.zone):%Y-%m-%d}.png",
        title="This week: funnel and leads per day by source",
    )
    return ts


class DigestNeedsABusiness(ValueError):
    """A weekly digest job was asked for without saying whose: with several businesses each has its own."""


class WeeklyDigestJob:
    """Posts one business's digest at the scheduled moment each week, once across processes and restarts.

    `business` may be left out only when the deployment serves one business (it is then that one).
    """

    def __init__(
        self,
        services: Services,
        client: WebClient,
        channel: str,
        schedule: DigestSchedule,
        business: Business | None = None,
    ):
        chosen = business or services.businesses.only
        if chosen is None:
            raise DigestNeedsABusiness(
                f"which business's weekly digest? followup serves {len(services.businesses)} "
                f"({', '.join(services.businesses.slugs)}): give each its own job"
            )
        self.services = services
        self.client = client
        self.channel = channel
        self.schedule = schedule
        self.business = chosen
        # One business: every stored lead is its own (counted as before); several: this one's leads only.
        self.leads_of: str | None = None if services.businesses.only is not None else chosen.slug

    def digest_for(self, end: datetime) -> WeeklyDigest:
        with self.services.session_factory() as session:
            return build_digest(session, end=end, zone=self.business.timezone, business=self.leads_of)

    def run_once(self) -> str | None:
        """Post this week's digest if its moment has come and nobody has; return the week's key if posted."""
        zone = self.business.timezone
        now = self.services.clock.now()
        moment = self.schedule.latest_due(now, zone)
        if now - moment > _LATE_LIMIT:
            return None  # started long after the hour: next week's digest, not a stale one
        key = DigestSchedule.week_key(moment, zone)
        if not self._claim(key, now):
            return None
        try:
            post_digest(
                self.client, self.channel, self.digest_for(moment), self.services.playbooks_of(self.business.slug).get
            )
        except SlackApiError as error:
            self._release(key)
            log.warning(
                "weekly digest %s of %s: Slack refused it (%s); trying again at the next tick",
                key,
                self.business.slug,
                error.response.get("error"),
            )
            return None
        log.info("weekly digest %s of %s posted to %s", key, self.business.slug, self.channel)
        return key

    def _claim(self, key: str, now: datetime) -> bool:
        try:
            with self.services.session_factory.begin() as session:
                session.add(
                    ProcessedDelivery(
                        business=self.business.slug, provider=DIGEST_CLAIM, delivery_id=key, received_at=now
                    )
                )
        except IntegrityError:
            return False
        return True

    def _release(self, key: str) -> None:
        with self.services.session_factory.begin() as session:
            session.execute(
                delete(ProcessedDelivery).where(
                    ProcessedDelivery.business == self.business.slug,
                    ProcessedDelivery.provider == DIGEST_CLAIM,
                    ProcessedDelivery.delivery_id == key,
                )
            )
