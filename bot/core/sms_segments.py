"""How many SMS segments a text costs: GSM-7 when every character allows it, UCS-2 otherwise."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# GSM 03.38 basic character set (the escape code 0x1B is left out: it is not a character people type).
_GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# Reached through the escape code, so each costs two septets.
_GSM_EXTENSION = frozenset("\f^{}\\[~]|€")

_GSM_SINGLE, _GSM_PART = 160, 153
_UCS2_SINGLE, _UCS2_PART = 70, 67


@dataclass(frozen=True)
class SmsSize:
    """The size of a text as the network counts it."""

    encoding: Literal["GSM-7", "UCS-2"]
    #: Length in the encoding's units: septets for GSM-7, UTF-16 code units for UCS-2.
    characters: int
    segments: int


def is_gsm7(text: str) -> bool:
    """Say whether every character of the text fits the GSM-7 alphabet."""
    return all(char in _GSM_BASIC or char in _GSM_EXTENSION for char in text)


def count_segments(text: str) -> SmsSize:
    """Count the encoding units and segments a text is sent as."""
    if is_gsm7(text):
        widths = [2 if char in _GSM_EXTENSION else 1 for char in text]
        return SmsSize("GSM-7", sum(widths), _segments(widths, _GSM_SINGLE, _GSM_PART))
    widths = [2 if ord(char) > 0xFFFF else 1 for char in text]
    return SmsSize("UCS-2", sum(widths), _segments(widths, _UCS2_SINGLE, _UCS2_PART))


def _segments(widths: list[int], single: int, part: int) -> int:
    total = sum(widths)
    if total == 0:
        return 0
    if total <= single:
        return 1
    # An escaped GSM character or a surrogate pair is never split between two parts, so a part
    # may close a unit short and a plain ceil(total / part) would undercount.
    segments, used = 1, 0
    for width in widths:
        if used + width > part:
            segments, used = segments + 1, 0
        used += width
    return segments
