"""SMS sizing at the boundaries where carriers start charging for another segment."""

from __future__ import annotations

import pytest

from bot.core.sms_segments import SmsSize, count_segments, is_gsm7


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", SmsSize("GSM-7", 0, 0)),
        ("a", SmsSize("GSM-7", 1, 1)),
        ("a" * 160, SmsSize("GSM-7", 160, 1)),
        ("a" * 161, SmsSize("GSM-7", 161, 2)),
        ("a" * 153 * 2, SmsSize("GSM-7", 306, 2)),
        ("a" * (153 * 2 + 1), SmsSize("GSM-7", 307, 3)),
        ("a" * 153 * 3, SmsSize("GSM-7", 459, 3)),
        ("é£¥ÄÖÑÜ§¿Δ_@$\n", SmsSize("GSM-7", 14, 1)),
        ("€", SmsSize("GSM-7", 2, 1)),
        ("a" * 158 + "€", SmsSize("GSM-7", 160, 1)),
        ("a" * 159 + "€", SmsSize("GSM-7", 161, 2)),
        ("[]{}^~\\|", SmsSize("GSM-7", 16, 1)),
        ("x" * 80 + "{" * 40, SmsSize("GSM-7", 160, 1)),
        ("x" * 81 + "{" * 40, SmsSize("GSM-7", 161, 2)),
    ],
)
def test_gsm7_text_counts_septets_with_extension_characters_as_two(text, expected):
    assert count_segments(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ж" * 70, SmsSize("UCS-2", 70, 1)),
        ("ж" * 71, SmsSize("UCS-2", 71, 2)),
        ("ж" * 67 * 2, SmsSize("UCS-2", 134, 2)),
        ("ж" * (67 * 2 + 1), SmsSize("UCS-2", 135, 3)),
        ("a" * 69 + "’", SmsSize("UCS-2", 70, 1)),
        ("a" * 70 + "’", SmsSize("UCS-2", 71, 2)),
        ("😀", SmsSize("UCS-2", 2, 1)),
        ("a" * 68 + "😀", SmsSize("UCS-2", 70, 1)),
        ("a" * 69 + "😀", SmsSize("UCS-2", 71, 2)),
        ("€ and —", SmsSize("UCS-2", 7, 1)),
    ],
)
def test_any_character_outside_gsm7_makes_the_text_ucs2_counted_in_utf16_units(text, expected):
    assert count_segments(text) == expected


@pytest.mark.parametrize(
    ("text", "segments"),
    [
        # 152 plain septets leave one free in the first part: the escaped € cannot be split, so it moves.
        ("a" * 152 + "€" + "a" * 10, 2),
        ("a" * 152 + "€" + "a" * 152, 3),
        # 66 units leave one free: the emoji's surrogate pair moves whole to the next part.
        ("ж" * 66 + "😀" + "ж" * 65, 2),
        ("ж" * 66 + "😀" + "ж" * 66, 3),
    ],
)
def test_a_two_unit_character_is_never_split_across_parts(text, segments):
    assert count_segments(text).segments == segments


@pytest.mark.parametrize(
    ("text", "gsm"),
    [("Reply STOP to opt out.", True), ("It's fine", True), ("It’s fine", False), ("café", True), ("ç", False)],
)
def test_curly_quotes_and_unlisted_accents_are_not_gsm7(text, gsm):
    assert is_gsm7(text) is gsm
