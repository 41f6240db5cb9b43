"""Persistence: the models, the engine and migrations, the outbox, the audit trail, consent records and the per-lead locks (the one way to take a lead)."""
