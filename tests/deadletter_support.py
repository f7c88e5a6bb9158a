"""Seeding the store with messages, events, deliveries and dead letters for dead-letter tests."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from gateway.store import db, receive
from gateway.store.models import Audit, DeadLetter, Delivery, Event, Message, WorkItem
from tests.store_support import T0


def message(s: Session, *, partner: str = "acme", data: bytes | None = None,
            source_name: str = "po.edi", at: datetime = T0) -> Message:
    """A received message (new bytes unless data is given)."""
    raw = data if data is not None else f"ISA*{partner}*{uuid.uuid4().hex}~".encode()
    return receive.receive(s, partner=partner, channel=f"sftp://{partner}/inbox",
                           source_name=source_name, data=raw, now=at).message


def event(s: Session, msg: Message, envelope: dict[str, Any] | None = None,
          event_id: str | None = None) -> Event:
    """A stored canonical event of msg."""
    envelope = envelope or {"id": event_id or f"ev-{msg.id}", "type": "t", "data": {}}
    row = Event(event_id=envelope["id"], message_id=msg.id, type=envelope.get("type", "t"),
                partner=msg.partner, envelope=envelope, created_at=msg.received_at)
    s.add(row)
    s.flush()
    return row


def parked_delivery(s: Session, *, partner: str = "acme", reason: str = "HTTP 422: bad po",
                    at: datetime = T0, destination: str = "erp:orders") -> DeadLetter:
    """A message, its event, a dead delivery after one attempt, and its dead letter."""
    msg = message(s, partner=partner, at=at)
    ev = event(s, msg)
    d = Delivery(event_id=ev.event_id, destination=destination, status="dead", attempts=1,
                 last_status_code=422, last_error=reason, created_at=at, updated_at=at,
                 next_attempt_at=at)
    s.add(d)
    s.flush()
    return park(s, stage="deliver", message_id=msg.id, delivery_id=d.id, reason=reason,
                endpoint=destination, at=at)


def park(s: Session, *, stage: str, message_id: int | None, delivery_id: int | None = None,
         reason: str = "failed", endpoint: str | None = None, at: datetime = T0) -> DeadLetter:
    """A parked dead letter."""
    dl = DeadLetter(stage=stage, message_id=message_id, delivery_id=delivery_id, reason=reason,
                    endpoint=endpoint, attempts=1, first_failed_at=at, last_failed_at=at,
                    error_chain=[{"type": "DeliveryRejected", "message": reason}])
    s.add(dl)
    s.flush()
    return dl


def seed_many(engine: Engine, count: int, *, partner: str = "acme") -> list[int]:
    """count parked deliver dead letters, one minute apart; their ids."""
    with db.transaction(engine) as s:
        return [parked_delivery(s, partner=partner, at=T0 + timedelta(minutes=i)).id
                for i in range(count)]


def counts(engine: Engine) -> dict[str, int]:
    """Rows of the tables a replay writes."""
    with db.transaction(engine, write=False) as s:
        return {
            "work_items": s.scalar(select(func.count()).select_from(WorkItem)),
            "audit": s.scalar(select(func.count()).select_from(Audit)),
            "replayed": s.scalar(select(func.count()).select_from(DeadLetter)
                                 .where(DeadLetter.status == "replayed")),
            "pending_deliveries": s.scalar(select(func.count()).select_from(Delivery)
                                           .where(Delivery.status == "pending")),
        }
