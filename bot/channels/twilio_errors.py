"""How a call to Twilio failed, told apart by what it means for the text: a module of its own, without
twilio-python, so a process imports the Twilio client only when it first talks to Twilio."""

from __future__ import annotations


class TwilioUnreachable(OSError):
    """Nothing reached Twilio: the connection (or the proxy's tunnel, or the TLS handshake) failed."""


class TwilioAnswerLost(OSError):
    """The request may have reached Twilio, but no complete answer came back (timeout, dropped, cut short)."""
