"""Who may do what in Slack: the one permission table, and the decision it gives for one person and place.

Pure: the Slack guard (handlers/slack_guard.py) names the act a request is, finds out who the
person is and where they are, and asks `refusal()`. Every button, modal, slash command, thread
message and App Home view goes through that one question, so the same effect always needs the
same standing: the "Not interested" button, a logged "Not interested" call and `/followup stop`
all end a lead, and all need an admin.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum


class Act(StrEnum):
    """What a request does, as far as permissions go."""

    SEE_LEADS = "see leads"  #: list or show leads (their phones, emails and messages), the App Home tab
    SEE_STATS = "see stats"  #: counts and rates, no lead's data
    WORK_LEAD = "work a lead"  #: claim, pause, resume, book, log a call, snooze, reply, thread notes
    ADD_LEAD = "add a lead"  #: `/followup new`: a lead is created and texted at once
    END_LEAD = "stop a lead"  #: stop all follow-up and mark lost: `/followup stop`, Not interested
    OPT_OUT = "record an opt-out"  #: `/followup optout`: nothing more goes to the lead


class Standing(IntEnum):
    """How far a person is trusted; each standing includes the ones below it."""

    OUTSIDER = 0  #: a guest, someone from another organisation, or not on the team
    MEMBER = 1  #: a full member of this workspace on the team (the leads channel or the team user group)
    ADMIN = 2  #: a team member named in SLACK_ADMINS


class Place(StrEnum):
    """Where a person acts, as far as showing lead data goes."""

    LEADS_CHANNEL = "the leads channel"
    BOT_DM = "a direct message with the bot"
    HOME = "the bot's App Home"
    ELSEWHERE = "elsewhere"


#: Where lead data (phones, emails, messages) may be shown: nowhere a non-member could be looking.
PRIVATE_PLACES = frozenset({Place.LEADS_CHANNEL, Place.BOT_DM, Place.HOME})


@dataclass(frozen=True)
class Rule:
    who: Standing
    #: None: anywhere the person can reach the bot.
    where: frozenset[Place] | None = None


#: The permission table (the README's "Security and permissions" section writes it out).
PERMISSIONS: dict[Act, Rule] = {
    Act.SEE_LEADS: Rule(Standing.MEMBER, PRIVATE_PLACES),
    Act.SEE_STATS: Rule(Standing.MEMBER),
    Act.WORK_LEAD: Rule(Standing.MEMBER),
    Act.ADD_LEAD: Rule(Standing.MEMBER),
    Act.END_LEAD: Rule(Standing.ADMIN),
    Act.OPT_OUT: Rule(Standing.ADMIN),
}


@dataclass(frozen=True)
class Person:
    """Someone who acted, as the guard found them."""

    user_id: str
    standing: Standing
    #: For an outsider: why, in words for them ("guests cannot act on leads").
    why_outside: str = ""


def refusal(act: Act, person: Person, place: Place, *, admins: frozenset[str]) -> str | None:
    """Why this person may not do this here (mrkdwn for them), or None when they may."""
    rule = PERMISSIONS[act]
    if person.standing < rule.who:
        if person.standing == Standing.OUTSIDER:
            return f"You can't {act} with followup: {person.why_outside}."
        who = ", ".join(f"<@{admin}>" for admin in sorted(admins)) or "nobody yet (set SLACK_ADMINS)"
        return f"Only admins can {act}. Admins: {who}."
    if rule.where is not None and place not in rule.where:
        return (
            f"Leads are shown only in the leads channel, in a direct message with the bot, or in its "
            f"App Home, so nobody else sees their phones and emails. Ask there to {act}."
        )
    return None
