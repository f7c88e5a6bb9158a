"""Documents we send partners (purchase orders): kept as they went out, sent once, and
marked by the 997/999 that comes back."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from gateway.store import db, payloads, receive
from gateway.store.models import (
    OutboundDocument,
    OutboundStatus,
    Payload,
    WorkItem,
    WorkStatus,
)


@dataclass(frozen=True)
class Numbers:
    """The control numbers a document went out with."""

    isa13: int
    gs06: int
    st02: int


def same(session: Session, partner: str, document_type: str, po_number: str,
         content_sha256: str) -> OutboundDocument | None:
    """The document made already for this order with this content, if any."""
    return session.scalars(select(OutboundDocument).where(
        OutboundDocument.partner == partner, OutboundDocument.document_type == document_type,
        OutboundDocument.po_number == po_number,
        OutboundDocument.content_sha256 == content_sha256)).first()


def of_order(session: Session, partner: str, po_number: str,
             document_type: str = "850") -> list[OutboundDocument]:
    """Every document sent for one order, oldest first."""
    return list(session.scalars(select(OutboundDocument).where(
        OutboundDocument.partner == partner, OutboundDocument.document_type == document_type,
        OutboundDocument.po_number == po_number).order_by(OutboundDocument.id)))


def add(session: Session, *, partner: str, document_type: str, po_number: str, purpose: str,
        content_sha256: str, data: dict[str, Any], numbers: Numbers, text: bytes,
        filename: str) -> OutboundDocument | None:
    """Keep a document and queue its send item, in the caller's transaction; None when the
    same document was added meanwhile (the caller's numbers must then roll back)."""
    now = db.utcnow()
    digest = receive.store_payload(session, text, now=now)
    new_id = session.scalar(
        db.insert_new(session, OutboundDocument, OutboundDocument.partner,
                      OutboundDocument.document_type, OutboundDocument.po_number,
                      OutboundDocument.content_sha256)
        .values(partner=partner, document_type=document_type, po_number=po_number,
                purpose=purpose, content_sha256=content_sha256, data=data,
                isa13=numbers.isa13, gs06=numbers.gs06, st02=numbers.st02,
                payload_sha256=digest, filename=filename, status=OutboundStatus.QUEUED,
                created_at=now)
        .returning(OutboundDocument.id))
    if new_id is None:
        return None
    session.add(WorkItem(kind="send", document_id=new_id, status=WorkStatus.PENDING,
                         run_after=now, created_at=now, updated_at=now))
    session.flush()
    return session.get(OutboundDocument, new_id)


def get(session: Session, document_id: int) -> OutboundDocument | None:
    return session.get(OutboundDocument, document_id)


def file_of(session: Session, document_id: int) -> tuple[OutboundDocument, bytes] | None:
    """A document and the bytes it goes out as."""
    doc = session.get(OutboundDocument, document_id)
    if doc is None:
        return None
    row = session.execute(select(Payload.data, Payload.parts)
                          .where(Payload.sha256 == doc.payload_sha256)).one()
    data = row.data if row.parts <= 1 else payloads.read_all(session, doc.payload_sha256)
    return doc, data


def mark_sent(session: Session, document_id: int, at: datetime | None = None) -> bool:
    """In the partner's outbox now; a document acknowledged already keeps its status (a
    replayed send rewrites the same file). Whether this is its first sending."""
    first = session.execute(update(OutboundDocument)
                    .where(OutboundDocument.id == document_id,
                           OutboundDocument.sent_at.is_(None))
                    .values(sent_at=at or db.utcnow()),
                    execution_options={"synchronize_session": False}).rowcount == 1
    session.execute(update(OutboundDocument)
                    .where(OutboundDocument.id == document_id,
                           OutboundDocument.status == OutboundStatus.QUEUED)
                    .values(status=OutboundStatus.SENT),
                    execution_options={"synchronize_session": False})
    return first


def by_group(session: Session, partner: str, gs06: int,
             st02s: Collection[int] | None = None) -> list[OutboundDocument]:
    """The documents of ours that went out in group gs06 (and, when given, sets st02s)."""
    q = select(OutboundDocument).where(OutboundDocument.partner == partner,
                                       OutboundDocument.gs06 == gs06)
    if st02s is not None:
        q = q.where(OutboundDocument.st02.in_(list(st02s)))
    return list(session.scalars(q.order_by(OutboundDocument.id)))


def acknowledge(session: Session, document_id: int, *, accepted: bool, reason: str | None,
                message_id: int, at: datetime) -> None:
    """The partner's 997/999 verdict on a document (a later acknowledgment overrides it)."""
    session.execute(update(OutboundDocument).where(OutboundDocument.id == document_id)
                    .values(status=OutboundStatus.ACCEPTED if accepted
                            else OutboundStatus.REJECTED,
                            reason=reason, ack_message_id=message_id, acknowledged_at=at),
                    execution_options={"synchronize_session": False})
