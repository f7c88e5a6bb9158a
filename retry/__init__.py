"""Retry policy and the persistent outbox."""
