"""The verbs: what happens to a lead (intake, enrollment, dispatch, replies, bookings, team actions).

They reach the outside through the ports in bot.core.ports, never through a vendor's library.
"""
