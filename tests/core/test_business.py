"""business.yml: who the bot speaks for and when, checked whole with every problem's line and fix."""

from __future__ import annotations

from datetime import date, time
from pathlib import Path
from textwrap import dedent

import pytest

from bot.core.business import SendWindow, load_business
from bot.core.config_errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
MON, TUE, WED, THU, FRI, SAT, SUN = range(7)

VALID = dedent(
    """\
    name: Lakeside Chiropractic
    timezone: America/Chicago
    phone: "+13125550142"
    address: 1200 N Lake Shore Dr, Chicago, IL 60610
    booking_link: https://example.com/book
    sequence: default
    """
)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "business.yml"
    path.write_text(text)
    return path


def problems_in(tmp_path: Path, text: str) -> list:
    with pytest.raises(ConfigError) as caught:
        load_business(write(tmp_path, text))
    return caught.value.problems


def test_the_committed_sample_is_valid():
    business = load_business(ROOT / "sequences" / "business.yml")
    assert (business.name, business.timezone.key, business.phone) == (
        "Lakeside Chiropractic",
        "America/Chicago",
        "+13125550142",
    )
    assert business.booking_link == "https://example.com/book"
    assert business.send_window.describe() == "Mon-Sat 08:00-20:00"
    assert business.closed_dates == frozenset({date(2026, 12, 24)})
    assert business.holiday_calendar == "US"
    assert business.sequence_ref == "default"


def test_optional_keys_take_their_defaults(tmp_path):
    business = load_business(write(tmp_path, VALID))
    assert business.send_window == SendWindow.parse("Mon-Sat 08:00-20:00")
    assert (business.closed_dates, business.holiday_calendar, business.default_region) == (frozenset(), None, "US")


@pytest.mark.parametrize(
    ("text", "days", "start", "end", "always"),
    [
        ("Mon-Sat 08:00-20:00", {MON, TUE, WED, THU, FRI, SAT}, time(8), time(20), False),
        ("Mon-Fri 09:00-17:30", {MON, TUE, WED, THU, FRI}, time(9), time(17, 30), False),
        ("Mon,Wed,Fri 08:00-12:00", {MON, WED, FRI}, time(8), time(12), False),
        ("mon-wed, sat 7:30 - 19:00", {MON, TUE, WED, SAT}, time(7, 30), time(19), False),
        ("Monday-Thursday 08:00-18:00", {MON, TUE, WED, THU}, time(8), time(18), False),
        ("Fri-Mon 10:00-14:00", {FRI, SAT, SUN, MON}, time(10), time(14), False),
        ("Sat 09:00-24:00", {SAT}, time(9), time(0), False),
        ("always", set(range(7)), time(0), time(0), True),
        (" Always ", set(range(7)), time(0), time(0), True),
    ],
)
def test_send_windows_are_read_as_people_write_them(text, days, start, end, always):
    window = SendWindow.parse(text)
    assert (window.days, window.start, window.end, window.always) == (frozenset(days), start, end, always)


@pytest.mark.parametrize(
    ("text", "described"),
    [
        ("Mon-Sat 08:00-20:00", "Mon-Sat 08:00-20:00"),
        ("Mon,Wed,Fri 08:00-12:00", "Mon,Wed,Fri 08:00-12:00"),
        ("Mon-Wed,Fri-Sun 08:00-12:00", "Mon-Wed,Fri-Sun 08:00-12:00"),
        ("sat,sun 9:00-24:00", "Sat,Sun 09:00-24:00"),
        ("Mon-Sun 08:00-20:00", "Mon-Sun 08:00-20:00"),
        ("always", "always"),
    ],
)
def test_a_send_window_describes_itself_the_way_business_yml_writes_it(text, described):
    window = SendWindow.parse(text)
    assert window.describe() == described
    assert SendWindow.parse(window.describe()) == window


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("Mon-Sat", "needs days and hours"),
        ("08:00-20:00", "needs days and hours"),
        ("Mon-Sat 8am-8pm", "needs days and hours"),
        ("Funday 08:00-17:00", "'Funday' is not a day"),
        ("M-F 08:00-17:00", "'M' is not a day"),
        ("Mon-Sat 20:00-08:00", "ends before it starts"),
        ("Mon-Sat 08:00-08:00", "ends before it starts"),
        ("Mon-Sat 08:00-25:00", "not a time of day"),
        ("Mon-Sat 08:00-00:00", "as 24:00"),
        ("Mon-Sat 24:00-24:00", "not a time of day"),
        (42, "not text"),
    ],
)
def test_a_send_window_that_makes_no_sense_is_refused_with_the_reason(text, reason):
    with pytest.raises(ValueError, match=reason):
        SendWindow.parse(text)


@pytest.mark.parametrize(
    ("closed", "dates", "calendar"),
    [
        ("closed: [2026-12-24, 2026-12-31]", {date(2026, 12, 24), date(2026, 12, 31)}, None),
        ('closed: ["2026-12-24"]', {date(2026, 12, 24)}, None),
        ("closed:\n  dates: [2026-12-24]\n  holidays: US", {date(2026, 12, 24)}, "US"),
        ("closed:\n  holidays: us-ca", set(), "US-CA"),
        ("closed:\n  holidays: CA-ON", set(), "CA-ON"),
        ("closed: []", set(), None),
        ("closed:", set(), None),
    ],
)
def test_closed_days_are_a_list_of_dates_or_dates_with_a_holiday_calendar(tmp_path, closed, dates, calendar):
    business = load_business(write(tmp_path, VALID + closed + "\n"))
    assert (business.closed_dates, business.holiday_calendar) == (frozenset(dates), calendar)


@pytest.mark.parametrize(
    ("calendar", "day", "closed"),
    [
        (None, date(2026, 12, 24), True),  # a closed date
        (None, date(2026, 12, 25), False),  # no calendar: holidays are working days
        ("US", date(2026, 12, 25), True),
        ("US", date(2026, 7, 4), True),
        ("US", date(2026, 7, 3), True),  # July 4 falls on a Saturday; the Friday is observed
        ("US", date(2026, 7, 6), False),
        ("US", date(2026, 3, 31), False),
        ("US-CA", date(2026, 3, 31), True),  # Cesar Chavez Day is California's only
        ("US-CA", date(2027, 12, 25), True),  # years beyond the first still count
    ],
)
def test_a_business_is_closed_on_its_closed_dates_and_its_calendars_holidays(tmp_path, calendar, day, closed):
    holidays = f"\n  holidays: {calendar}" if calendar else ""
    business = load_business(write(tmp_path, VALID + f"closed:\n  dates: [2026-12-24]{holidays}\n"))
    assert business.is_closed_on(day) is closed


def test_a_holiday_tells_its_name_as_the_reason_for_closing(tmp_path):
    business = load_business(write(tmp_path, VALID + "closed:\n  dates: [2026-12-24]\n  holidays: US\n"))
    assert business.closed_reason(date(2026, 7, 4)) == "Independence Day"
    assert business.closed_reason(date(2026, 12, 24)) == "closed date"
    assert business.closed_reason(date(2026, 7, 7)) is None


@pytest.mark.parametrize(
    ("sequence", "expected"),
    [
        ("default", "default"),
        ("chiropractic", "chiropractic"),
        ("clinic/playbook.yml", "{folder}/clinic/playbook.yml"),
        ("mine.yaml", "{folder}/mine.yaml"),
        ("../shared/playbook.yml", "{parent}/shared/playbook.yml"),
        ("/srv/playbooks/clinic.yml", "/srv/playbooks/clinic.yml"),
    ],
)
def test_a_sequence_is_a_name_or_a_path_from_the_folder_of_business_yml(tmp_path, sequence, expected):
    text = VALID.replace("sequence: default", f"sequence: {sequence}")
    business = load_business(write(tmp_path, text))
    ref = business.sequence_ref
    folder, parent = tmp_path.resolve(), tmp_path.resolve().parent
    if "/" in expected:
        assert ref == Path(expected.format(folder=folder, parent=parent)) and ref.is_absolute()
    else:
        assert ref == expected


def test_an_unquoted_phone_number_still_reads(tmp_path):
    business = load_business(write(tmp_path, VALID.replace('"+13125550142"', "+13125550142")))
    assert business.phone == "+13125550142"


def test_a_national_number_is_read_in_the_default_region(tmp_path):
    text = VALID.replace('"+13125550142"', '"020 7946 0958"') + "default_region: gb\n"
    business = load_business(write(tmp_path, text))
    assert (business.phone, business.default_region) == ("+442079460958", "GB")


@pytest.mark.parametrize(
    ("change", "line", "message", "fix"),
    [
        (
            ("timezone: America/Chicago", "timezone: America/Chicgo"),
            2,
            "unknown timezone 'America/Chicgo'",
            "America/Chicago",
        ),
        (("timezone: America/Chicago", "timezone: CST"), 2, "ignores daylight saving time", "America/Chicago"),
        (("timezone: America/Chicago", "timezone: EST"), 2, "ignores daylight saving time", "America/New_York"),
        (('phone: "+13125550142"', 'phone: "555-0142"'), 3, "phone '555-0142' lacks its area code", "full number"),
        (('phone: "+13125550142"', 'phone: "(555) 010-1234"'), 3, "not a number in use", "full number"),
        (
            ("address: 1200 N Lake Shore Dr, Chicago, IL 60610", "address: ''"),
            4,
            "address must be non-empty text",
            "postal address",
        ),
        (
            ("booking_link: https://example.com/book", "booking_link: example.com/book"),
            5,
            "not a web address",
            "https://",
        ),
        (
            ("booking_link: https://example.com/book", "booking_link: ftp://example.com/book"),
            5,
            "not a web address",
            "https://",
        ),
        (("sequence: default", "sequence: ''"), 6, "sequence must be non-empty text", "sequence: default"),
        (
            ("sequence: default", "sequence: default\nsend_window: Mon-Sat 20:00-08:00"),
            7,
            "ends before it starts",
            "Mon-Sat 08:00-20:00",
        ),
        (
            ("sequence: default", 'sequence: default\nclosed: ["2026-12-32"]'),
            7,
            "'2026-12-32' is not a date",
            "YYYY-MM-DD",
        ),
        (
            ("sequence: default", "sequence: default\nclosed:\n  dates:\n    - 2026-12-24\n    - next friday"),
            10,
            "'next friday' is not a date",
            "YYYY-MM-DD",
        ),
        (
            ("sequence: default", "sequence: default\nclosed: 2026-12-24"),
            7,
            "list of dates or a mapping",
            "closed: [2026-12-24]",
        ),
        (
            ("sequence: default", "sequence: default\nclosed:\n  holidays: XX"),
            8,
            "no holiday calendar for country 'XX'",
            "",
        ),
        (("sequence: default", "sequence: default\nclosed:\n  holidays: US-ZZ"), 8, "no subdivision 'ZZ'", "US-CA"),
        (
            ("sequence: default", "sequence: default\nclosed:\n  calendar: US"),
            8,
            "unknown key under closed: 'calendar'",
            "did you mean `holidays`?",
        ),
        (
            ("sequence: default", "sequence: default\ntimezon: America/Chicago"),
            7,
            "unknown key 'timezon'",
            "did you mean `timezone`?",
        ),
        (
            ("sequence: default", "sequence: default\nhours: Mon-Fri 09:00-17:00"),
            7,
            "unknown key 'hours'",
            "did you mean `send_window`?",
        ),
        (
            ("sequence: default", "sequence: default\ndefault_region: Narnia"),
            7,
            "default_region 'Narnia'",
            "two-letter country code",
        ),
        (("name: Lakeside Chiropractic\n", ""), 1, "missing required key 'name'", "name: Your Business"),
        (("address: 1200 N Lake Shore Dr, Chicago, IL 60610\n", ""), 1, "missing required key 'address'", "CAN-SPAM"),
    ],
)
def test_each_mistake_in_business_yml_is_reported_with_its_line_and_fix(tmp_path, change, line, message, fix):
    problems = problems_in(tmp_path, VALID.replace(*change))
    assert len(problems) == 1, problems
    problem = problems[0]
    assert (problem.line, Path(problem.path).name) == (line, "business.yml")
    assert message in problem.message and fix in problem.fix


def test_every_problem_is_reported_at_once_in_file_order(tmp_path):
    text = dedent(
        """\
        name: Lakeside Chiropractic
        timezone: Mars/Olympus
        phone: "12"
        address: 1200 N Lake Shore Dr, Chicago, IL 60610
        booking_link: not a link
        send_window: whenever
        colour: blue
        """
    )
    problems = problems_in(tmp_path, text)
    assert [(p.line, p.message.split(" ")[0]) for p in problems] == [
        (1, "missing"),
        (2, "unknown"),
        (3, "phone"),
        (5, "booking_link"),
        (6, "send"),
        (7, "unknown"),
    ]
    assert str(problems[0]).startswith(f"{tmp_path / 'business.yml'}:1: missing required key 'sequence'")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the file is empty"),
        ("- name: Lakeside\n", "must be a mapping"),
        ("name: [unclosed\n", "not valid YAML"),
    ],
)
def test_a_file_that_is_not_a_mapping_of_settings_is_refused(tmp_path, text, message):
    problems = problems_in(tmp_path, text)
    assert message in problems[0].message


def test_a_date_that_does_not_exist_is_a_config_error_not_a_crash(tmp_path):
    with pytest.raises(ConfigError, match="2026-02-30|day is out of range"):
        load_business(write(tmp_path, VALID + "closed: [2026-02-30]\n"))


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_business(tmp_path / "nowhere.yml")
