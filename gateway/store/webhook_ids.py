"""Webhook ids, the idempotency key of a partner's webhook: which message each one became."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from gateway.store import db
from gateway.store.models import WebhookId


def find(session: Session, partner: str, webhook_id: str) -> int | None:
    """The message a partner's webhook-id became, or None if it is new."""
    return session.scalar(select(WebhookId.message_id).where(
        WebhookId.partner == partner, WebhookId.webhook_id == webhook_id))


def record(session: Session, partner: str, webhook_id: str, message_id: int, *,
           now: datetime | None = None) -> int:
    """Record that webhook_id became message_id; the message it is recorded for, which is
    another one when the same id was recorded first by a concurrent request."""
    dialect = sqlite if db.is_sqlite(session) else postgresql
    # ON CONFLICT: of two requests with one id at once, the second waits for the first's
    # commit on PostgreSQL and then finds its row instead of failing on the key.
    session.execute(dialect.insert(WebhookId)
                    .values(partner=partner, webhook_id=webhook_id, message_id=message_id,
                            received_at=now or db.utcnow())
                    .on_conflict_do_nothing(index_elements=[WebhookId.partner,
                                                            WebhookId.webhook_id]))
    found = find(session, partner, webhook_id)
    assert found is not None
    return found
