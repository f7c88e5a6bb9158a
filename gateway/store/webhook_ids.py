"""Webhook ids, the idempotency key of a partner's webhook: which message each one became."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.store import db
from gateway.store.models import WebhookId

Key = tuple[str, str]  # (partner, webhook-id)


def find(session: Session, keys: Collection[Key]) -> dict[Key, int]:
    """The messages these webhook-ids became, for those seen before."""
    if not keys:
        return {}
    rows = session.execute(select(WebhookId.partner, WebhookId.webhook_id, WebhookId.message_id)
                           .where(WebhookId.partner.in_({p for p, _ in keys}),
                                  WebhookId.webhook_id.in_({w for _, w in keys})))
    wanted = set(keys)
    return {(p, w): m for p, w, m in rows if (p, w) in wanted}


def record(session: Session, became: dict[Key, int], *,
           now: datetime | None = None) -> tuple[dict[Key, int], set[Key]]:
    """Record which message each webhook-id became: the messages they are recorded for
    (another one where the same id was recorded first, by an earlier or a concurrent
    request), and the ids recorded by this call."""
    if not became:
        return {}, set()
    now = now or db.utcnow()
    # ON CONFLICT: of two requests with one id at once, the second waits for the first's
    # commit on PostgreSQL and then finds its row instead of failing on the key.
    t = WebhookId.__table__  # Core, not the ORM's bulk insert: no objects are wanted back
    inserted = db.core(
        session, db.insert_new(session, t, t.c.partner, t.c.webhook_id)
        .returning(t.c.partner, t.c.webhook_id),
        [{"partner": p, "webhook_id": w, "message_id": m, "received_at": now}
         for (p, w), m in became.items()]).all()
    recorded = {(p, w) for p, w in inserted}
    if recorded == set(became):  # all new: nothing to look up
        return dict(became), recorded
    return find(session, became.keys()), recorded
