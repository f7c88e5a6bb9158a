"""Canonical events and their deliveries, kept set-based: the map and route stages write a
message's at once, or a page at a time for a message too large for one transaction.

One INSERT .. ON CONFLICT DO NOTHING per call, so writing events or a page again (a
replay, or a crash part way through a message) changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import Row, exists, select
from sqlalchemy.orm import Session

from canonical.envelope import Event as CloudEvent
from gateway.store import db
from gateway.store.models import Delivery, DeliveryStatus, Event, WorkItem, WorkStatus


def add_events(session: Session, message_id: int, partner: str,
               events: Sequence[CloudEvent]) -> None:
    """Keep each event whole, once per id (an id kept before is left as it is)."""
    add_events_of(session, [(message_id, partner, e) for e in events])


def add_events_of(session: Session, made: Sequence[tuple[int, str, CloudEvent]]) -> None:
    """add_events for the events of several messages, each (message id, partner, event)."""
    if not made:
        return
    now = db.utcnow()
    db.core(
        session, db.insert_new(session, Event.__table__, Event.event_id),
        [{"event_id": e.id, "message_id": message_id, "type": e.type,
          "partner": e.partner or partner, "subject": e.subject, "envelope": e.to_dict(),
          "created_at": now} for message_id, partner, e in made])


def of_message(session: Session, message_id: int) -> list[Row[tuple[str, str, dict]]]:
    """(event_id, type, envelope) of each of the message's events, in the order they were kept."""
    return list(session.execute(select(Event.event_id, Event.type, Event.envelope)
                                .where(Event.message_id == message_id).order_by(Event.id)))


def page(session: Session, message_id: int, after: int, limit: int) -> list[tuple[int, str, str, dict]]:
    """(id, event id, type, envelope) of the message's events after row id `after`, in order."""
    rows = session.execute(select(Event.id, Event.event_id, Event.type, Event.envelope)
                           .where(Event.message_id == message_id, Event.id > after)
                           .order_by(Event.id).limit(limit))
    return [tuple(r) for r in rows]  # type: ignore[misc]


def add_deliveries(session: Session, message_id: int,
                   targets: Iterable[tuple[str, str]]) -> int:
    """A pending delivery per (event id, destination), and a deliver item for each pending
    one that has none waiting; how many items were enqueued."""
    return add_deliveries_of(session, [(message_id, e, d) for e, d in targets])


def add_deliveries_of(session: Session, targets: Iterable[tuple[int, str, str]]) -> int:
    """add_deliveries for the events of several messages, each (message id, event id,
    destination): two statements (three when some were kept before) however many."""
    triples = list(dict.fromkeys(targets))
    if not triples:
        return 0
    message_of = {e: m for m, e, _ in triples}
    now = db.utcnow()
    pairs = list(dict.fromkeys((e, d) for _, e, d in triples))
    made = db.core(
        session, db.insert_new(session, Delivery.__table__, Delivery.event_id,
                               Delivery.destination)
        .returning(Delivery.id, Delivery.event_id),
        [{"event_id": e, "destination": d, "status": DeliveryStatus.PENDING, "attempts": 0,
          "next_attempt_at": now, "created_at": now, "updated_at": now}
         for e, d in pairs]).all()
    # The deliveries made just now have no item yet. When some were kept before (a
    # replay), every pending one of these events without an item waiting gets one.
    rows = [(i, e) for i, e in made]
    if len(made) < len(pairs):
        waiting = exists().where(WorkItem.kind == "deliver", WorkItem.delivery_id == Delivery.id,
                                 WorkItem.status.in_((WorkStatus.PENDING, WorkStatus.CLAIMED)))
        rows = [(i, e) for i, e in db.core(session, select(Delivery.id, Delivery.event_id).where(
            Delivery.event_id.in_(list(message_of)),
            Delivery.status == DeliveryStatus.PENDING, ~waiting))]
    rows.sort()
    if rows:
        db.core(session, WorkItem.__table__.insert(), [
            {"kind": "deliver", "message_id": message_of[e], "delivery_id": i,
             "status": WorkStatus.PENDING, "attempts": 0, "lost_leases": 0, "run_after": now,
             "created_at": now, "updated_at": now} for i, e in rows])
    return len(rows)
