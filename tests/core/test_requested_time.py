"""A lead's own words for a day and time become an aware time in their zone, and other numbers do not."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from bot.core.requested_time import find_requested_time, read_requested_time

CHICAGO = "America/Chicago"
#: Wednesday 2026-11-25, 10:00 in Chicago.
NOW = datetime(2026, 11, 25, 10, 0, tzinfo=ZoneInfo(CHICAGO))


def chicago(month: int, day: int, hour: int, minute: int = 0, year: int = 2026) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(CHICAGO))


@pytest.mark.parametrize(
    ("text", "when", "words"),
    [
        ("can I come tomorrow at 3?", chicago(11, 26, 15), "tomorrow at 3"),
        ("any openings Friday morning?", chicago(11, 27, 9), "Friday morning"),
        ("next Tuesday 10am", chicago(12, 1, 10), "next Tuesday 10am"),
        ("any openings Friday?", chicago(11, 27, 9), "Friday (no time named; 9:00 assumed)"),
        ("3pm today", chicago(11, 25, 15), "3pm today"),
        ("is 4:30 ok?", chicago(11, 25, 16, 30), "4:30"),
        ("do you have anything Saturday", chicago(11, 28, 9), "Saturday (no time named; 9:00 assumed)"),
        ("tomorrow morning at 7", chicago(11, 26, 7), "tomorrow morning at 7"),
        ("Thursday evening at 6", chicago(11, 26, 18), "Thursday evening at 6"),
        ("tomorrow at 3am", chicago(11, 26, 3), "tomorrow at 3am"),
        ("Do you have any openings next Tuesday at 10am?", chicago(12, 1, 10), "next Tuesday at 10am"),
        ("TMRW 3P", chicago(11, 26, 15), "TMRW 3P"),
        ("Thursday @ 2", chicago(11, 26, 14), "Thursday @ 2"),
        ("around 3ish Friday", chicago(11, 27, 15), "around 3ish Friday"),
        ("Can u do 3-4pm friday", chicago(11, 27, 15), "3-4pm friday"),
        ("Sat 10am?", chicago(11, 28, 10), "Sat 10am"),
        ("next sat at 11", chicago(11, 28, 11), "next sat at 11"),
        ("anything this afternoon?", chicago(11, 25, 13), "this afternoon"),
        ("Good morning! anything this afternoon?", chicago(11, 25, 13), "this afternoon"),
        ("Tonight?", chicago(11, 25, 18), "Tonight"),
        ("Can I come in on Dec 3 at 2:15pm", chicago(12, 3, 14, 15), "Dec 3 at 2:15pm"),
        ("12/3 at noon", chicago(12, 3, 12), "12/3 at noon"),
        ("how about the 3rd?", chicago(12, 3, 9), "the 3rd (no time named; 9:00 assumed)"),
        ("15:30 tomorrow", chicago(11, 26, 15, 30), "15:30 tomorrow"),
        ("call me at 5", chicago(11, 25, 17), "at 5"),
        ("may I come at 10", chicago(11, 26, 10), "at 10"),  # 10:00 today has just passed
        ("Wednesday at 2", chicago(11, 25, 14), "Wednesday at 2"),  # today is Wednesday
        ("next wednesday", chicago(12, 2, 9), "next wednesday (no time named; 9:00 assumed)"),
        ("Could I come thrusday after 5?", chicago(11, 26, 17), "thrusday after 5"),
        ("Monday. Not before 11 though", chicago(11, 30, 11), "Monday. Not before 11"),
        ("Friday’s good, 9 o’clock", chicago(11, 27, 9), "Friday’s good, 9 o’clock"),
        # a dot between hour and minutes, as many write it
        ("tomorrow at 10.30", chicago(11, 26, 10, 30), "tomorrow at 10.30"),
        ("10.30am friday", chicago(11, 27, 10, 30), "10.30am friday"),
        ("Friday 9.15?", chicago(11, 27, 9, 15), "Friday 9.15"),
        ("can I come at 2.15", chicago(11, 25, 14, 15), "at 2.15"),
        ("tomorrow 10.30-11am", chicago(11, 26, 10, 30), "tomorrow 10.30-11am"),
        # Spanish, as the clinics' Spanish-speaking patients write it
        ("¿Hay citas mañana en la tarde?", chicago(11, 26, 13), "mañana en la tarde"),
        ("mañana a las 3", chicago(11, 26, 15), "mañana a las 3"),
        ("el viernes a las 10:30", chicago(11, 27, 10, 30), "el viernes a las 10:30"),
        ("el próximo miércoles", chicago(12, 2, 9), "el próximo miércoles (no time named; 9:00 assumed)"),
        ("a las 5 de la tarde", chicago(11, 25, 17), "a las 5 de la tarde"),
        ("mañana por la mañana", chicago(11, 26, 9), "mañana por la mañana"),
        ("esta noche", chicago(11, 25, 18), "esta noche"),
        ("pasado mañana a la 1", chicago(11, 27, 13), "pasado mañana a la 1"),
        ("SÁBADO A LAS 11", chicago(11, 28, 11), "SÁBADO A LAS 11"),
        ("Sí, llámame después de las 5", chicago(11, 25, 17), "después de las 5"),
    ],
)
def test_a_named_day_and_time_is_read_in_the_leads_zone(text, when, words):
    assert find_requested_time(text, now=NOW, timezone=CHICAGO) == (when, words)


@pytest.mark.parametrize(
    "text",
    [
        "I have 3 kids",
        "back pain for 2 weeks",
        "I'm 45 years old",
        "at 3 years old he had surgery",
        "call me at 555-1234",
        "I've had pain since Monday",
        "it started last Friday",
        "I may come in March",
        "Good morning!",
        "ok thanks",
        "do you take my insurance?",
        "is it $40 or $50?",
        "I sat down and the sun was out",
        "rate it 2/10 pain",
        "is it 10.30 or more?",
        "it was 4.50 for parking",
        "desde el lunes me duele",
        "el lunes pasado me caí",
        "tengo 3 hijos",
        "hace 2 semanas",
        "¿qué horario tienen los sábados?",
        "buenos días",
        "",
    ],
)
def test_numbers_and_words_that_are_not_a_request_give_no_time(text):
    assert find_requested_time(text, now=NOW, timezone=CHICAGO) is None


def test_a_bare_hour_is_read_as_clinic_hours():
    read = {
        hour: find_requested_time(f"tomorrow at {hour}", now=NOW, timezone=CHICAGO)[0].hour
        for hour in (1, 5, 7, 8, 11, 12)
    }
    assert read == {1: 13, 5: 17, 7: 19, 8: 8, 11: 11, 12: 12}


def test_a_time_already_past_today_means_tomorrow():
    late = datetime(2026, 11, 25, 16, 0, tzinfo=ZoneInfo(CHICAGO))
    assert find_requested_time("3pm?", now=late, timezone=CHICAGO) == (chicago(11, 26, 15), "3pm")


def test_the_time_is_in_the_leads_zone_whatever_zone_now_is_given_in():
    now_utc = NOW.astimezone(UTC)
    when, words = find_requested_time("tomorrow at 3", now=now_utc, timezone="America/Los_Angeles")
    assert (when, when.tzinfo) == (
        datetime(2026, 11, 26, 15, 0, tzinfo=ZoneInfo("America/Los_Angeles")),
        ZoneInfo("America/Los_Angeles"),
    )


def test_a_date_in_january_asked_in_december_is_next_year():
    december = datetime(2026, 12, 30, 10, 0, tzinfo=ZoneInfo(CHICAGO))
    assert find_requested_time("Jan 2nd at 11am", now=december, timezone=CHICAGO) == (
        chicago(1, 2, 11, year=2027),
        "Jan 2nd at 11am",
    )


def test_the_spans_point_at_the_words_in_the_message():
    text = "Hi! Friday? I could come after 5 maybe"
    found = read_requested_time(text, now=NOW, timezone=CHICAGO)
    assert [text[start:end] for start, end in found.spans] == ["Friday", "after 5"]


def test_now_without_a_zone_is_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        find_requested_time("tomorrow at 3", now=datetime(2026, 11, 25, 10, 0), timezone=CHICAGO)


@pytest.mark.parametrize(
    ("text", "why", "words", "candidates"),
    [
        ("3pm or tuesday", "offers alternatives", "3pm or tuesday", [chicago(11, 25, 15), chicago(12, 1, 9)]),
        (
            "Monday or Wednesday at 4",
            "offers alternatives",
            "Monday or Wednesday at 4",
            [chicago(11, 30, 16), chicago(11, 25, 16)],
        ),
        ("friday at 3 or 5?", "offers alternatives", "friday at 3 or 5", [chicago(11, 27, 15), chicago(11, 27, 17)]),
        ("3 or 4pm works", "offers alternatives", "3 or 4pm", [chicago(11, 25, 15), chicago(11, 25, 16)]),
        ("tomorrow or friday", "offers alternatives", "tomorrow or friday", [chicago(11, 26, 9), chicago(11, 27, 9)]),
        ("sometime next week", "names no exact time", "sometime next week", []),
        ("after work", "names no exact time", "after work", [chicago(11, 25, 17)]),
        ("tomorrow after work?", "names no exact time", "tomorrow after work", [chicago(11, 26, 17)]),
        ("evenings are best for me", "names no exact time", "evenings", []),
        ("anytime this weekend", "names no exact time", "anytime this weekend", []),
    ],
)
def test_alternatives_and_vague_times_are_unclear_with_the_words_and_candidates_never_one_guess(
    text, why, words, candidates
):
    found = read_requested_time(text, now=NOW, timezone=CHICAGO)
    assert found is not None and found.when is None
    assert (found.unclear.why, found.text, list(found.unclear.candidates)) == (why, words, candidates)


@pytest.mark.parametrize("text", ["Can u do 3-4pm friday", "tomorrow at 3", "I've had pain for the last week"])
def test_a_range_a_single_time_and_the_past_are_not_unclear(text):
    found = read_requested_time(text, now=NOW, timezone=CHICAGO)
    assert found is None or found.unclear is None


def test_a_price_beside_a_day_is_no_time_when_it_has_its_dollar_sign_or_unit():
    assert find_requested_time("I paid $10.30 tomorrow", now=NOW, timezone=CHICAGO)[1].endswith("9:00 assumed)")
    assert find_requested_time("tomorrow 2.50 dollars", now=NOW, timezone=CHICAGO)[1].endswith("9:00 assumed)")


#: A visit on Monday 2026-11-30 at 3:00 PM in Chicago.
VISIT = chicago(11, 30, 15)


@pytest.mark.parametrize(
    ("words", "contradicts"),
    [
        ("see you at 3", False),
        ("see you at 3pm", False),
        ("see you Monday", False),  # only the day was named, and it is the visit's
        ("see you Monday afternoon", False),
        ("see you monday at 3:00", False),
        ("see you 15:00 Monday", False),
        ("see you at 4", True),
        ("see you at 3am", True),
        ("see you Tuesday", True),
        ("see you Monday morning", True),
        ("see you Monday at 10.30", True),
        ("see you at 3 or 4", True),  # two times are not the visit's one
        ("see you sometime next week", False),  # names no time to hold against it
        ("sí, nos vemos el lunes a las 3", False),
        ("sí, nos vemos el martes", True),
        ("nos vemos a las 4 de la tarde", True),
    ],
)
def test_words_contradict_a_visit_only_by_what_they_name(words, contradicts):
    found = read_requested_time(words, now=NOW, timezone=CHICAGO)
    assert found is not None
    assert found.contradicts(VISIT) is contradicts


def test_an_hour_said_without_am_or_pm_agrees_with_either():
    evening_visit = chicago(11, 30, 20)
    found = read_requested_time("see you at 8", now=NOW, timezone=CHICAGO)
    assert found is not None and found.when.hour == 8  # read as clinic hours, the morning
    assert not found.contradicts(evening_visit)


def test_a_time_is_held_against_the_visit_in_the_leads_own_zone():
    found = read_requested_time("see you at 3", now=NOW, timezone="America/New_York")
    assert found is not None
    assert not found.contradicts(datetime(2026, 11, 30, 15, tzinfo=ZoneInfo("America/New_York")))
    assert found.contradicts(VISIT)  # 3 PM in Chicago is 4 PM where the lead is


@pytest.mark.parametrize("text", ["lunes o martes", "a las 3 o a las 4", "la próxima semana", "cualquier día"])
def test_spanish_alternatives_and_vague_times_are_unclear_too(text):
    found = read_requested_time(text, now=NOW, timezone=CHICAGO)
    assert found is not None and found.when is None and found.unclear is not None
