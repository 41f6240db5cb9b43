"""Local HTTP stand-ins for Twilio, SendGrid and Slack that speak their real wire formats."""

from bot.standins.sendgrid_api import AcceptedEmail, SendGridApiStandin
from bot.standins.server import ANY_ROUTE, Fault, RecordedRequest, StandinServer
from bot.standins.slack_api import SlackApiStandin
from bot.standins.twilio_api import TwilioApiStandin

__all__ = [
    "ANY_ROUTE",
    "AcceptedEmail",
    "Fault",
    "RecordedRequest",
    "SendGridApiStandin",
    "SlackApiStandin",
    "StandinServer",
    "TwilioApiStandin",
]
