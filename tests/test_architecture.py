"""The pure core imports no vendor, web or scheduler code; a walk over the imports keeps it so."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PURE_CORE = [
    "bot/durations.py", "bot/yaml_source.py", "bot/config_errors.py", "bot/playbook.py", "bot/business.py",
    "bot/send_times.py", "bot/planning.py", "bot/rules.py", "bot/sms_segments.py", "bot/templating.py",
    "bot/reply_classifier.py", "bot/requested_time.py", "bot/clock.py", "bot/ports.py", "bot/states.py",
    "bot/report_request.py",
]
#: The stateful core (models and use cases) may use the database, but no vendor or web code either.
USE_CASES = [
    "bot/models.py", "bot/leads.py", "bot/enrollment.py", "bot/dispatch.py", "bot/lead_actions.py",
    "bot/call_tasks.py", "bot/audit.py", "bot/outbox.py", "bot/services.py", "bot/render_context.py",
    "bot/closed_by_bot.py", "bot/reports.py",
]
FORBIDDEN = ("slack_bolt", "slack_sdk", "twilio", "sendgrid", "apscheduler", "starlette", "uvicorn", "flask",
             "requests", "httpx", "urllib.request", "http")
IO_FORBIDDEN = ("sqlalchemy", "alembic", "bot.models", "bot.db")


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def _matches(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


@pytest.mark.parametrize("module", PURE_CORE + USE_CASES)
def test_core_modules_import_no_vendor_web_or_scheduler_code(module):
    bad = {name for name in imported_modules(ROOT / module) if _matches(name, FORBIDDEN)}
    assert not bad, f"{module} imports {sorted(bad)}"


@pytest.mark.parametrize("module", [m for m in PURE_CORE if m != "bot/clock.py"])
def test_pure_modules_touch_no_database(module):
    bad = {name for name in imported_modules(ROOT / module) if _matches(name, IO_FORBIDDEN)}
    assert not bad, f"{module} imports {sorted(bad)}"
