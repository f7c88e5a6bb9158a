"""Outbound acknowledgments (TA1, 997, 999): kept once per interchange, then sent."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence

from sqlalchemy import exists, select, update
from sqlalchemy.orm import Session

from gateway.store import db, models, payloads, receive
from gateway.store.models import Acknowledgment, Payload
from mappings.x12 import acks


def made_for(session: Session, interchange_id: int) -> bool:
    """Whether the interchange's acknowledgments were made already (a replay finds them)."""
    return bool(session.scalar(select(exists().where(
        Acknowledgment.interchange_id == interchange_id))))


def made_among(session: Session, message_ids: Collection[int]) -> set[int]:
    """The interchanges of these messages whose acknowledgments were made already (one
    query, by the messages: acknowledgments are indexed by message)."""
    if not message_ids:
        return set()
    return set(session.scalars(select(Acknowledgment.interchange_id).distinct().where(
        Acknowledgment.message_id.in_(list(message_ids)))))


def add(session: Session, *, message_id: int, interchange_id: int, partner: str,
        made: Iterable[acks.Acknowledgment]) -> None:
    """Keep an interchange's acknowledgments, each text as a payload, to be sent later."""
    add_many(session, [(message_id, interchange_id, partner, ack) for ack in made])


def add_many(session: Session,
             made: Sequence[tuple[int, int, str, acks.Acknowledgment]]) -> None:
    """Keep acknowledgments, each (message id, interchange id, partner, ack), each text as
    a payload: one statement for the texts and one for the rows, however many."""
    if not made:
        return
    now = db.utcnow()
    texts = {}
    for *_, ack in made:
        data = ack.text.encode("ascii")
        texts[receive.sha256(data)] = data
    small = [{"sha256": digest, "size": len(data), "data": data, "parts": 1, "created_at": now}
             for digest, data in texts.items() if len(data) <= payloads.PART_BYTES]
    if small:
        session.execute(db.insert_new(session, Payload, Payload.sha256), small)
    for data in texts.values():
        if len(data) > payloads.PART_BYTES:  # the 997 of a very large group: kept in parts
            receive.store_payload(session, data, now=now)
    session.execute(Acknowledgment.__table__.insert(), [
        {"message_id": message_id, "interchange_id": interchange_id, "partner": partner,
         "kind": ack.kind, "answers_interchange": models.fit(ack.answers_interchange),
         "answers_group": models.fit(ack.answers_group),
         "control_number": ack.interchange_control_number,
         "payload_sha256": receive.sha256(ack.text.encode("ascii")),
         "filename": acks.ack_filename(ack), "created_at": now}
        for message_id, interchange_id, partner, ack in made])


def any_unsent(session: Session, message_id: int) -> bool:
    """Whether the message has acknowledgments not sent yet (an ack item is due)."""
    return bool(session.scalar(select(exists().where(
        Acknowledgment.message_id == message_id, Acknowledgment.sent_at.is_(None)))))


def unsent_among(session: Session, message_ids: Collection[int]) -> set[int]:
    """Which of these messages have acknowledgments not sent yet (one query)."""
    if not message_ids:
        return set()
    return set(session.scalars(select(Acknowledgment.message_id).distinct().where(
        Acknowledgment.message_id.in_(list(message_ids)), Acknowledgment.sent_at.is_(None))))


def files_of(session: Session, message_ids: Collection[int | None]) -> list[tuple[int, str, str, bytes]]:
    """(id, partner, file name, bytes) of every acknowledgment of these messages, sent or
    not, in the order they were made: one query, and one more per text kept in parts."""
    rows = session.execute(
        select(Acknowledgment.id, Acknowledgment.partner, Acknowledgment.filename,
               Acknowledgment.payload_sha256, Payload.data, Payload.parts)
        .join(Payload, Payload.sha256 == Acknowledgment.payload_sha256)
        .where(Acknowledgment.message_id.in_(list(message_ids)))
        .order_by(Acknowledgment.id)).all()
    return [(i, partner, name, data if parts <= 1 else payloads.read_all(session, digest))
            for i, partner, name, digest, data, parts in rows]


def mark_sent(session: Session, ids: Collection[int]) -> None:
    """These acknowledgments are in their partners' outboxes now (those sent before keep
    the time they were first sent)."""
    session.execute(update(Acknowledgment)
                    .where(Acknowledgment.id.in_(list(ids)), Acknowledgment.sent_at.is_(None))
                    .values(sent_at=db.utcnow()))
