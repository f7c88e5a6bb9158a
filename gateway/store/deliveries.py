"""Deliveries on the way out: what to send, and each attempt's outcome recorded.

(They are made, with their deliver items, by events.add_deliveries.)
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

from sqlalchemy import bindparam, select, update
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


def count_attempts(session: Session, delivery_ids: Collection[int]) -> dict[int, tuple[int, datetime]]:
    """Count one more attempt of each of these deliveries, in one statement: by id, the
    attempts so far, this one included, and when the delivery was made (an id not in the
    store is left out)."""
    if not delivery_ids:
        return {}
    rows = session.execute(update(Delivery).where(Delivery.id.in_(list(delivery_ids)))
                           .values(attempts=Delivery.attempts + 1)
                           .returning(Delivery.id, Delivery.attempts, Delivery.created_at),
                           execution_options={"synchronize_session": False}).all()
    return {r[0]: (r[1], r[2]) for r in rows}


def delivered_many(session: Session, outcomes: Sequence[tuple[int, int | None]], *,
                   count_attempt: bool = False) -> None:
    """These deliveries' destinations took them: (delivery id, status code) each, delivered
    now, in one executemany; count_attempt: this attempt counted in the same statement
    (instead of by count_attempts before)."""
    if not outcomes:
        return
    t = Delivery.__table__
    counted = {"attempts": t.c.attempts + 1} if count_attempt else {}
    session.execute(update(t).where(t.c.id == bindparam("b_id")).values(
        status=DeliveryStatus.DELIVERED, delivered_at=db.utcnow(),
        last_status_code=bindparam("b_code"), last_error=None, **counted),
        [{"b_id": d, "b_code": code} for d, code in outcomes])


def failed_many(session: Session, outcomes: Sequence[tuple[int, str, int | None, datetime | None]]) -> None:
    """Failed attempts: (delivery id, error, status code, retry at) each, tried again at
    `retry at` or, without one, dead (parked); one executemany for each of the two."""
    t = Delivery.__table__
    retried = [{"b_id": d, "b_error": e, "b_code": c, "b_at": at}
               for d, e, c, at in outcomes if at is not None]
    dead = [{"b_id": d, "b_error": e, "b_code": c} for d, e, c, at in outcomes if at is None]
    values = {"last_error": bindparam("b_error"), "last_status_code": bindparam("b_code")}
    if retried:
        session.execute(update(t).where(t.c.id == bindparam("b_id"))
                        .values(next_attempt_at=bindparam("b_at"), **values), retried)
    if dead:
        session.execute(update(t).where(t.c.id == bindparam("b_id"))
                        .values(status=DeliveryStatus.DEAD, **values), dead)


def pending_among(session: Session, delivery_ids: Collection[int]) -> set[int]:
    """Those of these deliveries that are still to be made."""
    if not delivery_ids:
        return set()
    return set(session.scalars(select(Delivery.id).where(
        Delivery.id.in_(list(delivery_ids)), Delivery.status == DeliveryStatus.PENDING)))
