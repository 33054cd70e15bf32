"""Delivery providers: one package per kind (outbox, letter, smtp, twilio), each owning sending
and, where the provider calls back, its webhooks; the generic parts beside them (docs/providers.md)."""
