"""Deliveries on the way out: what to send, and each attempt's outcome recorded.

(They are made, with their deliver items, by events.add_deliveries.)
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from gateway.store import db
from gateway.store.models import Delivery, DeliveryStatus, Event

Loaded = tuple[str, str, dict]  # a delivery's status, its destination, the event's envelope


def to_send(session: Session, delivery_ids: Collection[int]) -> dict[int, Loaded]:
    """The status, destination and event envelope of each of these deliveries, by id
    (one query for all; an id not in the store is left out)."""
    if not delivery_ids:
        return {}
    rows = session.execute(select(Delivery.id, Delivery.status, Delivery.destination, Event.envelope)
                           .join(Event, Event.event_id == Delivery.event_id)
                           .where(Delivery.id.in_(list(delivery_ids)))).all()
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


def count_attempt(session: Session, delivery_id: int) -> tuple[int, datetime] | None:
    """Count one more attempt: the attempts so far, this one included, and when the
    delivery was made (for the retry policy's age limit); None if there is no such delivery."""
    row = session.execute(update(Delivery).where(Delivery.id == delivery_id)
                          .values(attempts=Delivery.attempts + 1)
                          .returning(Delivery.attempts, Delivery.created_at),
                          execution_options={"synchronize_session": False}).one_or_none()
    return (row[0], row[1]) if row is not None else None


def delivered(session: Session, delivery_id: int, status_code: int | None) -> None:
    """The destination took it: delivered now, with its status code."""
    session.execute(update(Delivery).where(Delivery.id == delivery_id).values(
        status=DeliveryStatus.DELIVERED, delivered_at=db.utcnow(),
        last_status_code=status_code, last_error=None),
        execution_options={"synchronize_session": False})


def failed(session: Session, delivery_id: int, error: str, status_code: int | None, *,
           retry_at: datetime | None) -> None:
    """An attempt failed: tried again at retry_at, or, without one, dead (parked)."""
    values: dict[str, object] = {"last_error": error, "last_status_code": status_code}
    if retry_at is not None:
        values["next_attempt_at"] = retry_at
    else:
        values["status"] = DeliveryStatus.DEAD
    session.execute(update(Delivery).where(Delivery.id == delivery_id).values(**values),
                    execution_options={"synchronize_session": False})
