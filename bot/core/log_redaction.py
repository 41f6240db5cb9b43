"""Keep secrets and full phone numbers and email addresses out of the logs."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any

#: Phone numbers in E.164 (as followup stores them) or as people write North American ones; the last
#: two digits stay, to tell leads apart. Dates, times and bare ids do not have these shapes.
_PHONE = re.compile(r"(?<![\w+])(\+\d{10,15}|\+?1?[\s.-]?\(?\d{3}\)?[\s.-]\d{3}[\s.-]\d{4})(?![\w])")
_ENCODED_PHONE = re.compile(r"%2B\d{6,13}(\d{2})(?!\d)")
_EMAIL = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+\.[A-Za-z]{2,})")
#: Credentials recognisable by their shape, whatever configured them.
_SHAPED_SECRETS = re.compile(
    r"(?i)(bearer\s+)[^\s\"',]+"  # Authorization headers
    r"|xox[abposr]-[A-Za-z0-9-]+"  # Slack tokens
    r"|xapp-[A-Za-z0-9-]+"
    r"|SG\.[A-Za-z0-9_\-.]{10,}"  # SendGrid API keys
    r"|((?:token|secret|password|api_key|apikey|signature)[\"']?\s*[=:]\s*[\"']?)[^\s\"'&,]+"
)
MASK = "***"


def _mask_phone(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(1))
    if not 10 <= len(digits) <= 15:
        return match.group(0)  # an id, a timestamp or a count, not a phone number
    return f"{'+' if match.group(1).startswith('+') else ''}{'*' * (len(digits) - 2)}{digits[-2:]}"


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Mask the given secret values, shaped credentials, phone numbers and email addresses."""
    for secret in secrets:
        if secret and len(secret) >= 6:
            text = text.replace(secret, MASK)
    text = _SHAPED_SECRETS.sub(lambda m: (m.group(1) or m.group(2) or "") + MASK, text)
    text = _EMAIL.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", text)
    text = _ENCODED_PHONE.sub(lambda m: f"%2B********{m.group(1)}", text)
    return _PHONE.sub(_mask_phone, text)


class RedactingFilter(logging.Filter):
    """A handler filter rewriting each record's message (and traceback) with `redact`."""

    def __init__(self, secrets: Iterable[str] = ()):
        super().__init__()
        self.secrets = tuple(sorted({s for s in secrets if s}, key=len, reverse=True))

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage(), self.secrets)
        record.args = None
        if record.exc_info:
            # Format the traceback now, redacted; handlers reuse exc_text instead of formatting again.
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info), self.secrets)
            record.exc_info = None
        return True


def install(secrets: Iterable[str] = ()) -> RedactingFilter:
    """Put the filter on every handler of the root logger (call after logging is configured)."""
    redacting = RedactingFilter(secrets)
    for handler in logging.getLogger().handlers:
        handler.addFilter(redacting)
    return redacting


def settings_secrets(settings: Mapping[str, Any]) -> list[str]:
    """Every configured token, key and secret among settings (e.g. `Settings().model_dump()`), by name."""
    return [
        value
        for name, value in settings.items()
        if isinstance(value, str) and re.search(r"token|secret|key|password", name) and not name.endswith("_url")
    ]
