"""Block Kit for `/followup stats ... by source|touch|person|playbook`: a breakdown as a compact table.

The breakdown comes from bot.reports.breakdowns.

Pure: a StatsTable in, blocks out. A table of labels and numbers is an aligned monospace block; the
team-member breakdown is section fields, because Slack renders a mention as the person's name
only outside code. Every label is escaped: a source or step name can ping no one.
"""

from __future__ import annotations

from bot.reports.breakdowns import Breakdown, Kind, StatsTable, cell_text, text_lines
from bot.slack.blocks import SECTION_TEXT, Block, context, escape, fields_section, header, owner_text, section

#: The longest label shown in a monospace table (a longer one is cut with an ellipsis).
WIDEST_LABEL = 20
#: Section fields per section (Slack's limit).
FIELDS_PER_SECTION = 10
#: The most team members shown; the CLI lists them all.
MOST_PEOPLE = 40

NOTHING_YET = {
    Breakdown.SOURCE: "No leads came in during this period.",
    Breakdown.TOUCH: "No text or email went to this period's leads.",
    Breakdown.PERSON: "Nobody logged a call, claimed a lead or booked a visit in this period.",
    Breakdown.PLAYBOOK: "None of this period's leads is in a follow-up playbook.",
}


def stats_table_blocks(table: StatsTable) -> list[Block]:
    """One breakdown for one period: a heading, the table, and how it counts."""
    blocks: list[Block] = [header(f"{table.title} · last {table.days} days")]
    if not table.rows and table.by is not None:  # the headline table (by None) always has its one row
        blocks.append(section(NOTHING_YET[table.by]))
    elif table.by == Breakdown.PERSON:
        blocks.extend(_people_sections(table))
    else:
        blocks.append(section(_monospace(table)))
    blocks.append(context(escape(table.footnote)))
    return blocks


def _monospace(table: StatsTable) -> str:
    """The aligned table in a code block, cut by whole rows to what one section holds."""
    lines = [escape(line) for line in text_lines(table, widest_text=WIDEST_LABEL)]
    heading, rows = lines[0], lines[1:]
    shown: list[str] = []
    for count, line in enumerate(rows):
        more = len(rows) - count
        tail = f"\n…and {more} more: `followup stats` on the host lists them all."
        if len("```\n" + "\n".join([heading, *shown, line]) + "\n```" + tail) > SECTION_TEXT:
            return "```\n" + "\n".join([heading, *shown]) + "\n```" + tail
        shown.append(line)
    return "```\n" + "\n".join([heading, *shown]) + "\n```"


def _people_sections(table: StatsTable) -> list[Block]:
    fields = []
    for record in table.records()[:MOST_PEOPLE]:
        outcomes = [
            f"{record[column.key]} {column.heading.lower()}"
            for column in table.columns
            if column.key.startswith("calls_") and record[column.key]
        ]
        calls = record["calls"]
        said = f"{calls} call{'' if calls == 1 else 's'}" + (f": {', '.join(outcomes)}" if outcomes else "")
        fields.append(
            f"*{owner_text(str(record['team_member']))}*\n{said}\n"
            f"{cell_text(record['leads_claimed'], Kind.COUNT)} claimed · "
            f"{cell_text(record['bookings'], Kind.COUNT)} booked"
        )
    sections = [fields_section(fields[i : i + FIELDS_PER_SECTION]) for i in range(0, len(fields), FIELDS_PER_SECTION)]
    if len(table.rows) > MOST_PEOPLE:
        sections.append(
            context(f"…and {len(table.rows) - MOST_PEOPLE} more: `followup stats` on the host lists them all.")
        )
    return sections
