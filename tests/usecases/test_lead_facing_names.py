"""A lead-facing message greets by a name only when it reads as one (whoever typed the form chose it)."""

from __future__ import annotations

import pytest

from bot.usecases.render_context import greeting_name, lead_facing


@pytest.mark.parametrize(
    "typed, greeted",
    [
        ("Dana Lee", "Dana Lee"),
        ("Zoë O'Brien-Núñez", "Zoë O'Brien-Núñez"),
        ("J. R. Smith", "J. R. Smith"),
        ("李小龙", "李小龙"),
        ("  Dana   Lee ", "Dana Lee"),
        ("", "there"),
        ("www.evil.example", "there"),
        ("Win $500", "there"),
        ("dana@example.com", "there"),
        ("{{ 7*7 }}", "there"),
        ("<!channel>", "there"),
        ("Agent 007", "there"),
        ("A" * 61, "there"),
    ],
)
def test_greeting_name(typed, greeted):
    assert greeting_name(typed) == greeted


def test_a_lead_facing_context_has_neither_the_leads_words_nor_the_forms_extra_fields():
    context = {
        "lead": {
            "name": "Win big at evil.example",
            "first_name": "Win",
            "message": "hi",
            "custom": {"a": 1},
            "email": "x@example.org",
        }
    }
    assert lead_facing(context)["lead"] == {"name": "there", "first_name": "there", "email": "x@example.org"}
