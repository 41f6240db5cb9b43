"""Persistence: the models, the engine and migrations, the outbox, the audit trail, consent records.

And the per-lead locks, the one way to take a lead (bot.store.lead_locks.taking_lead).
"""
