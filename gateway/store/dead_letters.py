"""Dead letters: find them by filter, read one with what it concerns, requeue or discard it.

The rules (what a filter means, what a replay re-enters, how a timeline reads) are in
deadletter/ and gateway/deadletters.py; this module only reads and writes the rows.
Every function works inside the caller's transaction (see db.transaction).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Select, case, select, update
from sqlalchemy.orm import Session

from deadletter.filters import Filter
from gateway.store import claims
from gateway.store.models import (
    Audit,
    DeadLetter,
    DeadLetterStatus,
    Delivery,
    DeliveryStatus,
    Event,
    Message,
    MessageStatus,
    Payload,
    WorkItem,
)

# A bulk UPDATE here changes rows the session may hold; callers re-read what they show.
_UNSYNCED = {"synchronize_session": False}

Listed = tuple[DeadLetter, str | None, str | None]  # the letter, its partner and source name


@dataclass
class Detail:
    """One dead letter with its message, its delivery and the first part of its raw input."""

    dead_letter: DeadLetter
    message: Message | None
    delivery: Delivery | None
    raw_head: bytes | None  # the payload, or its first part when kept in several


@dataclass
class History:
    """The rows a message's timeline is built from, each list oldest first."""

    message: Message
    events: list[Event]
    deliveries: list[Delivery]
    work_items: list[WorkItem]
    dead_letters: list[DeadLetter]
    audits: list[Audit]


def _selected(flt: Filter) -> Select[Any]:
    query = (select(DeadLetter, Message.partner, Message.source_name)
             .outerjoin(Message, Message.id == DeadLetter.message_id)
             .where(DeadLetter.status.in_(flt.statuses)))
    if flt.stages:
        query = query.where(DeadLetter.stage.in_(flt.stages))
    if flt.partners:
        query = query.where(Message.partner.in_(flt.partners))
    if flt.endpoints:
        query = query.where(DeadLetter.endpoint.in_(flt.endpoints))
    if flt.since:
        query = query.where(DeadLetter.last_failed_at >= flt.since)
    if flt.until:
        query = query.where(DeadLetter.last_failed_at < flt.until)
    if flt.reason_contains:
        query = query.where(DeadLetter.reason.icontains(flt.reason_contains, autoescape=True))
    if flt.message_id is not None:
        query = query.where(DeadLetter.message_id == flt.message_id)
    return query


def newest(session: Session, flt: Filter, *, limit: int,
           before: int | None = None) -> list[Listed]:
    """Up to limit dead letters flt selects, newest first, with ids below before if given."""
    query = _selected(flt)
    if before is not None:
        query = query.where(DeadLetter.id < before)
    # By id, not by time: ids only grow, so a cursor is stable while letters arrive.
    return [(dl, partner, source) for dl, partner, source
            in session.execute(query.order_by(DeadLetter.id.desc()).limit(limit))]


def parked_ids(session: Session, flt: Filter, *, limit: int) -> list[int]:
    """Ids of up to limit parked dead letters flt selects (whatever its statuses), oldest first."""
    parked = replace(flt, statuses=(DeadLetterStatus.PARKED.value,))
    query = (_selected(parked).with_only_columns(DeadLetter.id)
             .order_by(DeadLetter.id).limit(limit))
    return list(session.scalars(query))


def get(session: Session, dead_letter_id: int) -> DeadLetter | None:
    """The dead letter with that id, or None."""
    return session.get(DeadLetter, dead_letter_id)


def detail(session: Session, dead_letter_id: int) -> Detail | None:
    """A dead letter with its message, delivery and raw input's first part, in one query."""
    row = session.execute(
        select(DeadLetter, Message, Delivery, Payload.data)
        .outerjoin(Message, Message.id == DeadLetter.message_id)
        .outerjoin(Delivery, Delivery.id == DeadLetter.delivery_id)
        .outerjoin(Payload, Payload.sha256 == Message.payload_sha256)
        .where(DeadLetter.id == dead_letter_id)).first()
    return Detail(*row) if row is not None else None


def history(session: Session, message_id: int) -> History | None:
    """A message and everything that happened to it, or None when there is no such message."""
    message = session.get(Message, message_id)
    if message is None:
        return None
    events = list(session.scalars(select(Event).where(Event.message_id == message_id)
                                  .order_by(Event.id)))
    event_ids = [e.event_id for e in events]
    deliveries = list(session.scalars(select(Delivery).where(Delivery.event_id.in_(event_ids))
                                      .order_by(Delivery.id))) if event_ids else []
    delivery_ids = [d.id for d in deliveries]
    work = list(session.scalars(
        select(WorkItem).where((WorkItem.message_id == message_id)
                               | WorkItem.delivery_id.in_(delivery_ids or [-1]))
        .order_by(WorkItem.id)))
    dead = list(session.scalars(select(DeadLetter).where(DeadLetter.message_id == message_id)
                                .order_by(DeadLetter.id)))
    targets = [f"message:{message_id}", *(f"dead_letter:{d.id}" for d in dead)]
    audits = list(session.scalars(select(Audit).where(Audit.target.in_(targets))
                                  .order_by(Audit.id)))
    return History(message, events, deliveries, work, dead, audits)


def event_envelopes(session: Session, message_id: int) -> dict[str, dict[str, Any]]:
    """event id -> the stored event, for each event made from the message."""
    return {event_id: envelope for event_id, envelope in session.execute(
        select(Event.event_id, Event.envelope).where(Event.message_id == message_id))}


def _unpark(session: Session, dead_letter_id: int, status: DeadLetterStatus) -> bool:
    # The status check and the change are one statement, so of two operators acting at
    # once (or a double click) exactly one sees the row change.
    return session.execute(update(DeadLetter)
                           .where(DeadLetter.id == dead_letter_id,
                                  DeadLetter.status == DeadLetterStatus.PARKED)
                           .values(status=status)
                           .returning(DeadLetter.id),
                           execution_options=_UNSYNCED).first() is not None


def requeue(session: Session, dead_letter_id: int, *, stage: str, message_id: int | None,
            delivery_id: int | None, reset_delivery: bool, now: datetime) -> WorkItem | None:
    """Mark a parked dead letter replayed and enqueue its stage again: the delivery set back
    to pending when reset_delivery (unless delivered), the message's replays counted and a
    dead message back in the works. None, and nothing changed, when it was not parked."""
    if not _unpark(session, dead_letter_id, DeadLetterStatus.REPLAYED):
        return None
    if reset_delivery and delivery_id is not None:
        # Attempts are kept: the retry policy's budget counts every try of this event.
        # A delivered one is never set back: the ERP has acknowledged that event id.
        session.execute(update(Delivery)
                        .where(Delivery.id == delivery_id,
                               Delivery.status != DeliveryStatus.DELIVERED)
                        .values(status=DeliveryStatus.PENDING, next_attempt_at=now,
                                updated_at=now),
                        execution_options=_UNSYNCED)
    # A send's document is the failed item's (dead letters name messages and deliveries).
    document_id = session.scalar(
        select(WorkItem.document_id).join(DeadLetter, DeadLetter.work_item_id == WorkItem.id)
        .where(DeadLetter.id == dead_letter_id)) if stage == "send" else None
    item = claims.enqueue(session, stage, message_id=message_id, delivery_id=delivery_id,
                          run_after=now, document_id=document_id)
    if message_id is not None:
        revived = case((Message.status == MessageStatus.DEAD, MessageStatus.PROCESSING.value),
                       else_=Message.status)
        session.execute(update(Message).where(Message.id == message_id)
                        .values(replays=Message.replays + 1, updated_at=now, status=revived),
                        execution_options=_UNSYNCED)
    return item


def discard(session: Session, dead_letter_id: int) -> bool:
    """Mark a parked dead letter discarded; False, and nothing changed, when it was not parked."""
    return _unpark(session, dead_letter_id, DeadLetterStatus.DISCARDED)
