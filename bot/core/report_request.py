"""What a stats request asks for: a period and, maybe, a breakdown, read from the words people type.

Pure: the Slack command (`/followup stats 30d by source`) and the CLI (`followup stats 30d by source`)
read the same words the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

#: The periods a report covers, as people write them.
PERIODS = {"7d": 7, "30d": 30}
DEFAULT_DAYS = 7


class Breakdown(StrEnum):
    SOURCE = "source"  #: where the period's leads came from, and what became of them
    TOUCH = "touch"  #: each playbook step: sent, and the replies and bookings credited to it
    PERSON = "person"  #: each team member: calls logged and how they went, leads claimed, bookings made
    PLAYBOOK = "playbook"  #: each follow-up playbook: leads enrolled, replied, booked, finished, in nurture


#: Other words people write for a breakdown.
_BREAKDOWN_WORDS = {
    "sources": Breakdown.SOURCE,
    "touches": Breakdown.TOUCH,
    "step": Breakdown.TOUCH,
    "steps": Breakdown.TOUCH,
    "people": Breakdown.PERSON,
    "persons": Breakdown.PERSON,
    "team": Breakdown.PERSON,
    "playbooks": Breakdown.PLAYBOOK,
    "sequence": Breakdown.PLAYBOOK,
    "sequences": Breakdown.PLAYBOOK,
}


class StatsWordsError(ValueError):
    """The words are not a period (7d, 30d) and a breakdown (by source, touch, person, playbook)."""


#: The forms a stats request takes, for the error that names them.
ACCEPTED_FORMS = "stats [7d|30d] [by source|touch|person|playbook], e.g. stats 30d by source"


@dataclass(frozen=True)
class StatsRequest:
    days: int = DEFAULT_DAYS
    #: None for the headline numbers.
    by: Breakdown | None = None


def read_stats_words(words: Sequence[str]) -> StatsRequest:
    """Read '30d by source' (either order, each part optional); raise StatsWordsError naming the accepted forms."""
    days: int | None = None
    by: Breakdown | None = None
    rest = [word.lower() for word in words]
    while rest:
        word = rest.pop(0)
        if word in PERIODS and days is None:
            days = PERIODS[word]
        elif word == "by" and rest and by is None:
            by = _breakdown(rest.pop(0))
        else:
            raise StatsWordsError(word)
    return StatsRequest(days or DEFAULT_DAYS, by)


def _breakdown(word: str) -> Breakdown:
    try:
        return Breakdown(word)
    except ValueError:
        if word in _BREAKDOWN_WORDS:
            return _BREAKDOWN_WORDS[word]
        raise StatsWordsError(f"by {word}") from None
