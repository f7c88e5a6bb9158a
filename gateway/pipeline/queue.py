"""Enqueueing the next stage once: a re-run of a stage must not double the work after it."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.store import claims
from gateway.store.models import WorkItem, WorkStatus


def enqueue_once(session: Session, kind: str, *, message_id: int | None = None,
                 delivery_id: int | None = None) -> WorkItem | None:
    """Enqueue kind for these ids unless an item of it is already waiting or running."""
    waiting = session.scalar(
        select(WorkItem.id).where(
            WorkItem.kind == kind, WorkItem.message_id == message_id,
            WorkItem.delivery_id == delivery_id,
            WorkItem.status.in_((WorkStatus.PENDING, WorkStatus.CLAIMED))).limit(1))
    if waiting is not None:
        return None
    return claims.enqueue(session, kind, message_id=message_id, delivery_id=delivery_id)
