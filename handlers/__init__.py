"""Entry points: Slack listeners and HTTP webhook routes."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from slack_bolt import App


def register_slack(app: App) -> None:
    """Attach every Slack listener to the app: /followup, buttons, modal submissions, events."""
    # Imported here so that importing `handlers` for the webhooks alone does not load Bolt.
    from handlers import slack_actions, slack_commands, slack_events, slack_views

    for listeners in (slack_commands, slack_actions, slack_views, slack_events):
        listeners.register(app)
