"""The store: every message, event, work item and dead letter, in SQLite or PostgreSQL."""
