"""followup: lead follow-up run from Slack."""

from pathlib import Path

#: Where the shipped content lives, both in a clone and in an installed wheel.
PROJECT_ROOT = Path(__file__).resolve().parent.parent
SHIPPED_SEQUENCES = PROJECT_ROOT / "sequences"
SHIPPED_TEMPLATES = PROJECT_ROOT / "templates"
