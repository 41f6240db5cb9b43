"""Everything that speaks Slack except the listeners (handlers/).

Block Kit builders, card values, modals, App Home, the poster, rate limits, permissions.
"""
