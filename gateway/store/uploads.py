"""Portal uploads and how far the pipeline took each, as its partner may see it.

The history is read from the messages a partner's portal users sent (channel
`portal:<username>`), joined to the upload rows for the names the browser gave; so a
message whose upload row was never written (a crash between the two commits) still shows.
Its status comes from the store as the pipeline moves: the message's own status, its
events' deliveries and the dead letters of either.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from gateway.store import db
from gateway.store.models import (
    DeadLetter,
    Delivery,
    DeliveryStatus,
    Event,
    Message,
    MessageStatus,
    PortalUpload,
)

CHANNEL_PREFIX = "portal:"
ACCEPTED, DELIVERED, DEAD_LETTERED, HELD = "accepted", "delivered", "dead-lettered", "held"


@dataclass(frozen=True)
class Upload:
    """One upload as its partner sees it."""

    id: int  # the message id
    name: str  # as the partner's browser named the file
    stored_as: str  # the generated name the gateway gave it
    username: str
    uploaded_at: datetime
    size: int
    status: str  # accepted, delivered, dead-lettered, held
    reason: str = ""  # why, when dead-lettered or held
    events: int = 0
    delivered: int = 0


def record(session: Session, *, message_id: int, partner: str, username: str,
           original_name: str, size: int) -> None:
    """Note who uploaded the message and the file's own name (once per message)."""
    if session.get(PortalUpload, message_id) is None:
        session.add(PortalUpload(message_id=message_id, partner=partner, username=username,
                                 original_name=original_name[:255], size=size,
                                 uploaded_at=db.utcnow()))


def history(session: Session, partner: str, limit: int = 200) -> list[Upload]:
    """The partner's portal uploads, newest first."""
    return _uploads(session, partner, None, limit)


def one(session: Session, partner: str, message_id: int) -> Upload | None:
    """The partner's upload with that id; None for anyone else's (or no such upload)."""
    found = _uploads(session, partner, message_id, 1)
    return found[0] if found else None


def _uploads(session: Session, partner: str, message_id: int | None, limit: int) -> list[Upload]:
    q = (select(Message, PortalUpload)
         .outerjoin(PortalUpload, PortalUpload.message_id == Message.id)
         .where(Message.partner == partner, Message.channel.startswith(CHANNEL_PREFIX))
         .order_by(Message.id.desc()).limit(limit))
    if message_id is not None:
        q = q.where(Message.id == message_id)
    rows = session.execute(q).all()
    if not rows:
        return []
    ids = [m.id for m, _ in rows]
    counts = _delivery_counts(session, ids)
    reasons = _dead_reasons(session, ids)
    out = []
    for msg, up in rows:
        total, delivered, dead = counts.get(msg.id, (0, 0, 0))
        reason = reasons.get(msg.id, "")
        if msg.status == MessageStatus.DEAD or dead:
            status = DEAD_LETTERED
        elif msg.status == MessageStatus.QUARANTINED:
            status, reason = HELD, reason or "held for an operator to look at"
        elif msg.status == MessageStatus.DONE and total and delivered == total:
            status = DELIVERED
        else:
            status = ACCEPTED
        out.append(Upload(
            id=msg.id, name=up.original_name if up else msg.source_name,
            stored_as=msg.source_name,
            username=up.username if up else msg.channel.removeprefix(CHANNEL_PREFIX),
            uploaded_at=up.uploaded_at if up else msg.received_at,
            size=up.size if up else 0, status=status,
            reason=reason if status in (DEAD_LETTERED, HELD) else "",
            events=total, delivered=delivered))
    return out


def _delivery_counts(session: Session, ids: list[int]) -> dict[int, tuple[int, int, int]]:
    """message id -> (deliveries, delivered, dead)."""
    rows = session.execute(
        select(Event.message_id, func.count(Delivery.id),
               func.count(Delivery.id).filter(Delivery.status == DeliveryStatus.DELIVERED),
               func.count(Delivery.id).filter(Delivery.status == DeliveryStatus.DEAD))
        .join(Delivery, Delivery.event_id == Event.event_id)
        .where(Event.message_id.in_(ids)).group_by(Event.message_id))
    return {m: (t, d, x) for m, t, d, x in rows}


def _dead_reasons(session: Session, ids: list[int]) -> dict[int, str]:
    """message id -> the reason of its newest dead letter (its own or a delivery's)."""
    delivery_message = (select(Event.message_id).join(Delivery, Delivery.event_id == Event.event_id)
                        .where(Delivery.id == DeadLetter.delivery_id).scalar_subquery())
    rows = session.execute(
        select(DeadLetter.message_id, delivery_message, DeadLetter.reason)
        .outerjoin(Delivery, Delivery.id == DeadLetter.delivery_id)
        .outerjoin(Event, Event.event_id == Delivery.event_id)
        .where(or_(DeadLetter.message_id.in_(ids), Event.message_id.in_(ids)))
        .order_by(DeadLetter.id))
    out: dict[int, str] = {}
    for own, via_delivery, reason in rows:
        mid = own if own is not None else via_delivery
        if mid is not None:
            out[mid] = reason  # newest last
    return out
