"""Reading Inbound Parse's SPF and DKIM verdicts: does the email prove its sender?"""

from __future__ import annotations

import pytest

from bot.core.email_auth import check_sender


@pytest.mark.parametrize(
    "sender, spf, dkim, verified",
    [
        ("dana@example.com", "pass", "none", True),
        ("dana@example.com", "PASS", "", True),
        ("dana@example.com", "fail", "{@example.com : pass}", True),
        ("dana@mail.example.com", "none", "{@example.com : pass}", True),  # a parent domain signs for its subdomains
        ("dana@example.com", "softfail", "{@example.com : fail, @esp.example : pass}", False),
        ("dana@example.com", "neutral", "{@notexample.com : pass}", False),  # a lookalike domain is another domain
        ("dana@example.com", "none", "{@com : pass}", False),  # a top-level domain speaks for nobody
        ("dana@example.com", "fail", "none", False),
        ("dana@example.com", None, None, False),
        ("dana@example.com", "temperror", "{@example.com : temperror}", False),
    ],
)
def test_an_email_is_verified_only_when_spf_or_the_senders_own_dkim_passes(sender, spf, dkim, verified):
    assert check_sender(sender, spf, dkim).verified is verified


def test_the_verdict_is_described_for_the_team():
    assert check_sender("dana@example.com", "fail", "{@esp.example : pass}").describe() == "SPF fail, DKIM other domain"
