"""Secrets, full phone numbers and email addresses never reach the logs."""

from __future__ import annotations

import logging

import pytest

from bot.core.log_redaction import RedactingFilter, redact, settings_secrets


@pytest.mark.parametrize(
    ("line", "shown", "hidden"),
    [
        ("texted +13125550142", "+*********42", "3125550142"),
        ("To=%2B13125550142&Body=hi", "%2B********42", "3125550142"),
        ("call (312) 555-0142 or 312.555.0142", "********42", "555-0142"),
        ("from dana.lee@example.com", "d***@example.com", "dana.lee"),
        ("Authorization: Bearer lead-token-123", "Bearer ***", "lead-token-123"),
        ("token xoxb-1234-5678-abcdef", "***", "xoxb-1234"),
        ("key SG.abcdefghijklmnop.qrstuv", "***", "SG.abc"),
        ("GET /webhooks/sendgrid/inbound?token=s3cr3t-value&x=1", "token=***", "s3cr3t-value"),
    ],
)
def test_shaped_secrets_phones_and_emails_are_masked(line, shown, hidden):
    masked = redact(line)
    assert shown in masked and hidden not in masked


@pytest.mark.parametrize(
    "line", ["touch 123456 due 2026-11-25 15:00:00", "lead 42 sid SM0123456789abcdef", "2,000 leads in 1700000000 ms"]
)
def test_dates_ids_and_counts_stay_readable(line):
    assert redact(line) == line


def test_configured_secrets_are_masked_even_in_tracebacks(caplog):
    secrets = settings_secrets(
        {
            "twilio_auth_token": "tw-auth-0123456789",
            "twilio_api_url": "https://x",
            "port": 3000,
            "slack_signing_secret": "sign-me-9876",
        }
    )
    assert set(secrets) == {"tw-auth-0123456789", "sign-me-9876"}
    logger = logging.getLogger("test.redaction")
    caplog.handler.addFilter(RedactingFilter(secrets))
    try:
        raise ValueError("bad auth tw-auth-0123456789 for +13125550142")
    except ValueError:
        logger.exception("sending to %s with %s failed", "+13125550142", "sign-me-9876")
    text = caplog.text
    assert "tw-auth-0123456789" not in text and "sign-me-9876" not in text and "3125550142" not in text
    assert "+*********42" in text
