"""Where things stand in the store: counts of messages, deliveries, dead letters, acks, work."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.store.models import (
    Acknowledgment,
    DeadLetter,
    DeadLetterStatus,
    Delivery,
    DeliveryStatus,
    Message,
    OutboundDocument,
    WorkItem,
    WorkStatus,
)


@dataclass(frozen=True)
class Summary:
    """Where things stand in the store after a run."""

    messages: int
    delivered: int
    pending_deliveries: int
    dead_letters: int
    acks_sent: int
    waiting_items: int
    orders_sent: int = 0  # purchase orders in partners' outboxes


def _count(model: type, *where: Any) -> Any:
    return select(func.count()).select_from(model).where(*where).scalar_subquery()


def summary(session: Session) -> Summary:
    """The counts, in one query: messages, deliveries delivered and pending, parked dead
    letters, acks sent, work items pending or claimed, purchase orders sent."""
    row = session.execute(select(
        _count(Message),
        _count(Delivery, Delivery.status == DeliveryStatus.DELIVERED),
        _count(Delivery, Delivery.status == DeliveryStatus.PENDING),
        _count(DeadLetter, DeadLetter.status == DeadLetterStatus.PARKED),
        _count(Acknowledgment, Acknowledgment.sent_at.is_not(None)),
        _count(WorkItem, WorkItem.status.in_((WorkStatus.PENDING, WorkStatus.CLAIMED))),
        _count(OutboundDocument, OutboundDocument.sent_at.is_not(None)),
    )).one()
    return Summary(*(int(n or 0) for n in row))
