"""Block Kit for what the bot shows one person: the App Home tab and its answers to /followup.

Pure: values from `bot.reports.stats` and `bot.reports.lead_views` in, blocks out. Lead-supplied text is escaped
(`bot.slack.blocks.escape`) so a lead's name or words can ping no one and link nowhere.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta, tzinfo
from typing import Any

from bot.core.display import team_time
from bot.core.playbook import Sequence as PlaybookSequence
from bot.core.playbook import default_sequence_label, step_label
from bot.reports.stats import (
    ATTRIBUTION,
    VISIT_DAYS,
    CallLine,
    DayNumbers,
    HomeSnapshot,
    LeadLine,
    LeadStats,
    NextStep,
    Page,
    StepKind,
    SubjectResult,
    VisitNumbers,
)
from bot.slack.blocks import (
    ActionId,
    channel_name,
    clip,
    context,
    escape,
    fields_section,
    header,
    lead_label,
    owner_text,
    quote,
    section,
    stage_label,
)
from bot.slack.cards import display_phone
from bot.usecases.closed_by_bot import ClosedByBot

#: Finds a playbook by its name (Services.playbooks.get), for the labels people read.
PlaybookLookup = Callable[[str], PlaybookSequence]

Block = dict[str, Any]

MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
#: How many messages of a lead's history `show` quotes.
SHOWN_MESSAGES = 5


# --- small pieces -------------------------------------------------------------------------------


def when(moment: datetime | None, zone: tzinfo, lead_zone: tzinfo | str | None = None) -> str:
    """A moment as the team reads it: 'Wed, Nov 25 at 3:00 PM CST', the lead's beside it (core.display.team_time)."""
    if moment is None:
        return "—"
    return team_time(moment, zone, lead_zone)


def duration(span: timedelta | None) -> str:
    """A span as people say it: '45 s', '3 min', '2 h 5 min', '1 d 3 h'."""
    if span is None:
        return "—"
    seconds = int(round(span.total_seconds()))
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.0f}%"


def _lead_name(lead_id: int, name: str, phone: str | None, email: str | None) -> str:
    return lead_label(name, display_phone(phone), email, lead_id)


def next_step_text(step: NextStep, zone: tzinfo, playbook_of: PlaybookLookup | None = None) -> str:
    match step.kind:
        case StepKind.CALL:
            return f":telephone_receiver: call: {escape(step.detail)} (due {when(step.at, zone)})"
        case StepKind.VISIT:
            return f":calendar: visit {when(step.at, zone)}"
        case StepKind.PAUSED:
            why = f": {escape(step.detail)}" if step.detail else ""
            return f":double_vertical_bar: automation paused{why}"
        case StepKind.TOUCH:
            playbook = _playbook(step.sequence, playbook_of) if step.sequence else None
            return (
                f":arrow_forward: {channel_name(step.channel)} {escape(step_label(playbook, step.detail))} "
                f"{when(step.at, zone)}"
            )
    return "nothing scheduled"


def lead_line_text(line: LeadLine, zone: tzinfo, playbook_of: PlaybookLookup | None = None) -> str:
    name = _lead_name(line.lead_id, line.name, line.phone, line.email)
    owner = f" · {owner_text(line.owner)}" if line.owner else ""
    return clip(
        f"*{name}* (#{line.lead_id}) · {stage_label(line.stage)}{owner}\n"
        f"{next_step_text(line.next_step, zone, playbook_of)}",
        3000,
    )


def call_line_text(line: CallLine, zone: tzinfo) -> str:
    name = _lead_name(line.lead_id, line.lead_name, line.phone, None)
    who = f"claimed by {owner_text(line.claimed_by)}" if line.claimed_by else "*unclaimed*"
    return clip(f"*{name}* (#{line.lead_id}) · {escape(line.reason)}\ndue {when(line.due_at, zone)} · {who}", 3000)


def _more(page: Page[Any], what: str) -> list[Block]:
    return [context(f"…and {page.more} more {what}")] if page.more > 0 else []


def _fit(blocks: list[Block], limit: int) -> list[Block]:
    if len(blocks) <= limit:
        return blocks
    return blocks[: limit - 1] + [context("…more than fits here; narrow it down with `/followup list`")]


# --- App Home -----------------------------------------------------------------------------------


def day_numbers_block(today: DayNumbers) -> Block:
    return fields_section(
        [
            f"*Leads in*\n{today.leads_in}",
            f"*Messages sent*\n{today.messages_sent}",
            f"*Replies*\n{today.replies}",
            f"*Booked*\n{today.booked}",
            f"*Open calls*\n{today.open_calls}",
        ]
    )


def visit_numbers_block(visits: VisitNumbers) -> Block:
    """Show rate, no-show rate, cancellations and reschedules."""
    marked = visits.attended + visits.no_shows
    unmarked = f"; {visits.unmarked} not marked yet" if visits.unmarked else ""
    return fields_section(
        [
            f"*Show rate*\n{percent(visits.show_rate)} ({visits.attended} of {marked}{unmarked})",
            f"*No-show rate*\n{percent(visits.no_show_rate)} ({visits.no_shows} of {marked})",
            f"*Cancellations*\n{visits.cancellations}",
            f"*Reschedules*\n{visits.reschedules}",
        ]
    )


def home_view(snapshot: HomeSnapshot, zone: tzinfo, playbook_of: PlaybookLookup | None = None) -> dict[str, Any]:
    """The App Home tab for one person: their leads and next steps, the team's open calls, today's numbers."""
    blocks = business_home_blocks(snapshot, zone, playbook_of)
    blocks.append(context("Updated each time you open this tab."))
    return {"type": "home", "blocks": _fit(blocks, MAX_VIEW_BLOCKS)}


def businesses_home_view(parts: Sequence[tuple[HomeSnapshot, tzinfo, PlaybookLookup | None]]) -> dict[str, Any]:
    """The App Home tab of a member of several businesses' channels: each business's part, one after another.

    Each part is that business's alone (its leads, calls and numbers); the snapshots are taken with fewer
    rows each so that every business fits in the tab's 100 blocks.
    """
    blocks: list[Block] = []
    for index, (snapshot, zone, playbook_of) in enumerate(parts):
        if index:
            blocks.append({"type": "divider"})
        blocks.extend(business_home_blocks(snapshot, zone, playbook_of))
    if len(blocks) >= MAX_VIEW_BLOCKS:
        # An agency member in a dozen clinics' channels: the full parts would cut the last clinics off,
        # so each clinic gets a part of a few blocks instead, and every clinic is shown.
        blocks = []
        # What the three blocks and divider of each part leave, shared out for the leads the bot closed
        # (each a block with its Reopen button); the footer takes one.
        closed_each = max(0, (MAX_VIEW_BLOCKS - 1 - COMPACT_PART_BLOCKS * len(parts)) // len(parts))
        for index, (snapshot, zone, playbook_of) in enumerate(parts):
            if index:
                blocks.append({"type": "divider"})
            blocks.extend(compact_business_home_blocks(snapshot, zone, playbook_of, closed_shown=closed_each))
    blocks.append(
        context("One part for each clinic whose leads channel you are in. Updated each time you open this tab.")
    )
    return {"type": "home", "blocks": _fit(blocks, MAX_VIEW_BLOCKS)}


#: Blocks of one business's compact part, its divider included, before the leads the bot closed.
COMPACT_PART_BLOCKS = 4


def compact_business_home_blocks(
    snapshot: HomeSnapshot, zone: tzinfo, playbook_of: PlaybookLookup | None = None, *, closed_shown: int = 0
) -> list[Block]:
    """One business's part in three blocks: its numbers, then each of its two lists in one section,
    then up to `closed_shown` of the leads the bot closed, each with its Reopen button (the rest counted)."""
    today, visits = snapshot.today, snapshot.visits
    numbers = (
        f"Today: {today.leads_in} in · {today.messages_sent} sent · {today.replies} replies · "
        f"{today.booked} booked · {today.open_calls} open calls\n"
        f"Visits ({VISIT_DAYS} days): show rate {percent(visits.show_rate)} · "
        f"no-show rate {percent(visits.no_show_rate)} · {visits.cancellations} cancelled · "
        f"{visits.reschedules} moved"
    )
    closed = snapshot.closed_by_bot
    if closed:
        unshown = f" ({len(closed) - closed_shown} not shown here)" if len(closed) > closed_shown else ""
        numbers += f"\nClosed by the bot this week: {len(closed)}{unshown}"

    def listed(title: str, page: Page[Any], lines: list[str], empty: str, what: str) -> Block:
        body = "\n".join(lines) if lines else empty
        more = f"\n_…and {page.more} more {what}_" if page.more > 0 else ""
        return section(clip(f"*{title}* ({page.total})\n{body}{more}", 3000))

    return [
        section(clip(f"*{escape(snapshot.business_name)}*\n{numbers}", 3000)),
        listed(
            "Your leads",
            snapshot.my_leads,
            [lead_line_text(line, zone, playbook_of) for line in snapshot.my_leads.rows],
            "none yet",
            "of your leads: `/followup list mine` in its channel",
        ),
        listed(
            "Open calls in the team",
            snapshot.open_calls,
            [call_line_text(line, zone) for line in snapshot.open_calls.rows],
            "none :tada:",
            "open calls",
        ),
        *(closed_by_bot_block(lead, zone) for lead in closed[:closed_shown]),
    ]


def business_home_blocks(
    snapshot: HomeSnapshot, zone: tzinfo, playbook_of: PlaybookLookup | None = None
) -> list[Block]:
    """One business's part of the App Home tab."""
    blocks: list[Block] = [
        header(f"followup · {snapshot.business_name}"),
        section("*Today*"),
        day_numbers_block(snapshot.today),
        section(f"*Visits* (last {VISIT_DAYS} days)"),
        visit_numbers_block(snapshot.visits),
        {"type": "divider"},
        section(f"*Your leads* ({snapshot.my_leads.total})"),
    ]
    if snapshot.my_leads.rows:
        blocks.extend(section(lead_line_text(line, zone, playbook_of)) for line in snapshot.my_leads.rows)
        blocks.extend(_more(snapshot.my_leads, "of your leads — `/followup list mine`"))
    else:
        blocks.append(
            context("No leads are yours yet: press *Claim* on a lead card, or `/followup claim &lt;lead&gt;`.")
        )
    blocks.extend([{"type": "divider"}, section(f"*Open calls in the team* ({snapshot.open_calls.total})")])
    if snapshot.open_calls.rows:
        blocks.extend(section(call_line_text(line, zone)) for line in snapshot.open_calls.rows)
        blocks.extend(_more(snapshot.open_calls, "open calls"))
    else:
        blocks.append(context("No calls waiting. :tada:"))
    blocks.extend([{"type": "divider"}, section(f"*Closed by the bot this week* ({len(snapshot.closed_by_bot)})")])
    if snapshot.closed_by_bot:
        blocks.extend(closed_by_bot_block(closed, zone) for closed in snapshot.closed_by_bot)
    else:
        blocks.append(context("The bot closed no lead by itself this week."))
    return blocks


def closed_by_bot_block(closed: ClosedByBot, zone: tzinfo) -> Block:
    """One lead the bot closed: who, what it decided and when, the words that caused it, and Reopen."""
    words = quote(escape(clip(closed.message, 300))) if closed.message.strip() else "_(no message stored)_"
    text = (
        f"{_lead_name(closed.lead_id, closed.name, closed.phone, closed.email)} · {stage_label(closed.stage)} · "
        f"{escape(closed.reason)} ({when(closed.at, zone)})\n{words}"
    )
    return {
        "type": "section",
        "text": {"type": "mrkdwn", "text": clip(text, 3000)},
        "accessory": {
            "type": "button",
            "action_id": str(ActionId.LEAD_REOPEN),
            "value": str(closed.lead_id),
            "text": {"type": "plain_text", "text": "Reopen"},
        },
    }


# --- /followup answers --------------------------------------------------------------------------


def lead_list_blocks(
    title: str, page: Page[LeadLine], zone: tzinfo, playbook_of: PlaybookLookup | None = None
) -> list[Block]:
    if not page.rows:
        return [section(f"*{escape(title)}*: none.")]
    blocks: list[Block] = [section(f"*{escape(title)}* ({page.total})")]
    blocks.extend(section(lead_line_text(line, zone, playbook_of)) for line in page.rows)
    blocks.extend(_more(page, "— show one with `/followup show &lt;id&gt;`"))
    return _fit(blocks, MAX_MESSAGE_BLOCKS)


def _moment(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def lead_detail_blocks(detail: Mapping[str, Any], zone: tzinfo) -> list[Block]:
    """`show`: who the lead is, where they stand, what happens next, and their last messages."""
    plain_name = (detail["name"] or "").strip() or display_phone(detail["phone"]) or detail["email"] or "Lead"
    blocks: list[Block] = [
        # Plain text pings and links nothing, so the header takes the name as it is.
        header(f"{plain_name} (#{detail['id']})"),
        fields_section(
            [
                f"*Phone*\n{escape(display_phone(detail['phone']) or 'none')}",
                f"*Email*\n{escape(detail['email'] or 'none')}",
                f"*Stage*\n{stage_label(detail['stage'])}",
                f"*Owner*\n{owner_text(detail['owner'])}",
                f"*Source*\n{escape(detail['source'] or 'unknown')}",
                f"*In since*\n{when(_moment(detail['created_at']), zone)}",
            ]
        ),
    ]
    if (detail.get("first_message") or "").strip():
        blocks.append(section("*What they asked*\n" + quote(escape(clip(detail["first_message"], 1500)))))
    lead_zone = _known_zone(detail.get("timezone"))
    blocks.append(section(_sequence_line(detail, zone, lead_zone)))
    for task in detail.get("call_tasks", []):
        if task["status"] in ("open", "claimed"):
            who = f"claimed by {owner_text(task['claimed_by'])}" if task["claimed_by"] else "unclaimed"
            blocks.append(
                section(
                    f":telephone_receiver: *Call* ({who}): {escape(task['reason'])} · due "
                    f"{when(_moment(task['due_at']), zone)}"
                )
            )
    for visit in detail.get("appointments", []):
        if visit["status"] == "booked":
            blocks.append(section(f":calendar: *Visit* {when(_moment(visit['start_at']), zone)}"))
    unreachable = [
        text
        for text in (
            "opted out of texts" if detail.get("sms_opted_out_at") else None,
            "unsubscribed from email" if detail.get("email_opted_out_at") else None,
            detail.get("sms_unreachable_reason"),
        )
        if text
    ]
    if unreachable:
        blocks.append(context(":no_entry: " + escape("; ".join(unreachable))))
    messages = detail.get("messages", [])[-SHOWN_MESSAGES:]
    if messages:
        blocks.append(section(f"*Last {len(messages)} messages*"))
        blocks.extend(section(_message_line(message, zone, lead_zone)) for message in messages)
    return _fit(blocks, MAX_MESSAGE_BLOCKS)


def _known_zone(name: Any) -> str | None:
    """The lead's stored time zone when it is one Python knows (to show their clock beside ours)."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if not isinstance(name, str) or not name:
        return None
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None
    return name


def _sequence_line(detail: Mapping[str, Any], zone: tzinfo, lead_zone: str | None = None) -> str:
    if not detail.get("sequence"):
        return ":zzz: No sequence"
    state = escape(detail.get("enrollment_state") or "")
    why = f" ({escape(detail['enrollment_reason'])})" if detail.get("enrollment_reason") else ""
    name = detail.get("sequence_label") or default_sequence_label(detail["sequence"])
    line = f"*Sequence* {escape(name)}: {state}{why}"
    following = detail.get("next_touch")
    if following:
        label = following.get("label") or step_label(None, following["step"])
        line += (
            f"\nNext: {escape(label)} ({channel_name(following['channel'])}) "
            f"{when(_moment(following['due_at']), zone, lead_zone)}"
        )
    return line


def _message_line(message: Mapping[str, Any], zone: tzinfo, lead_zone: str | None = None) -> str:
    arrow = ":inbox_tray: from the lead" if message["direction"] == "in" else ":outbox_tray: to the lead"
    body = message.get("subject") or message.get("body") or ""
    return clip(
        f"{arrow} by {channel_name(message['channel'])} · {when(_moment(message['at']), zone, lead_zone)} · "
        f"{escape(message['status'] or '')}\n{quote(escape(clip(body, 600)))}",
        3000,
    )


def _of(part: int, whole: int) -> str:
    """'3 of 40 (8%)': a count as a rate of those sent."""
    return f"{part} of {whole} ({percent(part / whole if whole else None)})"


def _playbook(name: str, playbook_of: PlaybookLookup | None) -> PlaybookSequence | None:
    if playbook_of is None:
        return None
    try:
        return playbook_of(name)
    except Exception:  # noqa: BLE001 - a playbook that no longer loads: its ids read as words
        return None


def touch_name(sequence: str, step_id: str, playbook_of: PlaybookLookup | None) -> str:
    return step_label(_playbook(sequence, playbook_of), step_id)


def subject_text(result: SubjectResult, playbook_of: PlaybookLookup | None) -> str:
    """The option's template text ('Thanks for reaching out, {{ lead.first_name }}'), never one lead's subject."""
    playbook = _playbook(result.sequence, playbook_of)
    for step in playbook.steps if playbook else ():
        if step.id == result.step_id and result.option < len(step.subjects):
            return step.subjects[result.option]
    return f"subject option {result.option + 1}"


def stats_blocks(stats: LeadStats, playbook_of: PlaybookLookup | None = None) -> list[Block]:
    """`stats`: the period's numbers; `playbook_of` finds a playbook by name, for the words people read."""
    blocks: list[Block] = [
        header(f"Last {stats.days} days"),
        fields_section(
            [
                f"*Leads in*\n{stats.leads_in}",
                f"*Contacted*\n{stats.contacted}",
                f"*Speed to lead (median)*\n{duration(stats.speed_to_lead_median)}",
                f"*Speed to lead (90th pct)*\n{duration(stats.speed_to_lead_p90)}",
                f"*Reply rate*\n{percent(stats.reply_rate)} ({stats.replied} of {stats.contacted})",
                f"*Booking rate*\n{percent(stats.booking_rate)} ({stats.booked} of {stats.leads_in})",
            ]
        ),
        visit_numbers_block(stats.visits),
    ]
    if stats.by_touch:
        lines = [
            f"• {escape(touch_name(result.sequence, result.step_id, playbook_of))}: sent {result.sent} · "
            f"replies {_of(result.replies, result.sent)} · bookings {_of(result.bookings, result.sent)}"
            for result in stats.by_touch[:15]
        ]
        blocks.append(section("*Replies and bookings after each touch*\n" + "\n".join(lines)))
    if stats.by_subject:
        lines = [
            f"• {escape(touch_name(result.sequence, result.step_id, playbook_of))}, "
            f"“{escape(clip(subject_text(result, playbook_of), 90))}”: replies {_of(result.replies, result.sent)}"
            for result in stats.by_subject[:10]
        ]
        blocks.append(section("*Which subject got the reply*\n" + "\n".join(lines)))
    if stats.deliveries:
        lines = [
            f"• {channel_name(d.channel)}: {d.failed} failed of {d.attempted}"
            f" ({percent(d.failed / d.attempted if d.attempted else None)})"
            for d in stats.deliveries
        ]
        blocks.append(section("*Delivery failures*\n" + "\n".join(lines)))
    else:
        blocks.append(context("Nothing was sent in this period."))
    blocks.append(
        context(
            "Speed to lead: from the lead coming in to the first message that went out. "
            "Reply rate: contacted leads who wrote back (automatic replies left out). "
            f"Bookings include leads who told us they booked. {ATTRIBUTION} Touch rates are of "
            "the leads that touch was sent to. Tables: `/followup stats 30d by source` (or by "
            "touch, person, playbook)."
        )
    )
    return blocks


def lead_choices_text(reference: str, leads: Sequence[tuple[int, str, str | None, str | None]]) -> str:
    """Several leads answer to a name: list them so the person can pick one by id."""
    shown = [
        f"• #{lead_id} {_lead_name(lead_id, name, phone, email)}"
        + (f" · {escape(display_phone(phone) or '')}" if phone else "")
        + (f" · {escape(email)}" if email else "")
        for lead_id, name, phone, email in leads[:10]
    ]
    more = f"\n…and {len(leads) - 10} more" if len(leads) > 10 else ""
    return (
        f"{len(leads)} leads match `{escape(reference)}`; name one by its id, e.g. "
        f"`/followup show {leads[0][0]}`:\n" + "\n".join(shown) + more
    )
