"""Adapters that speak to a vendor or a receiver over the network: Twilio, SendGrid, outbound webhooks.

Vendor codes stop here, mapped to bot.core.ports' failure kinds.
"""
