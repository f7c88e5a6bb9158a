"""Messages: one loaded for a stage, its stage and status moved on, a status set from outside."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import Row, bindparam, select, update
from sqlalchemy.orm import Session

from gateway.store import db
from gateway.store.models import Message, Payload


def load(session: Session, message_id: int | None) -> Message | None:
    """The message with this id, or None (also for no id). The stages change its stage
    and status on the returned row; those changes commit with the caller's transaction."""
    return session.get(Message, message_id) if message_id is not None else None


def with_payloads(session: Session, message_ids: Collection[int]) -> list[Row[Any]]:
    """The messages with these ids and their payloads' first part, in one query: each row's
    id, partner, source_name, received_at, payload_sha256, data and parts (data is the
    whole payload when parts is 1)."""
    if not message_ids:
        return []
    return list(session.execute(
        select(Message.id, Message.partner, Message.source_name, Message.received_at,
               Message.payload_sha256, Payload.data, Payload.parts)
        .join(Payload, Payload.sha256 == Message.payload_sha256)
        .where(Message.id.in_(list(message_ids)))))


def move_many(session: Session, moves: Sequence[tuple[int, str, str]]) -> None:
    """Move messages on, each (id, stage, status): one statement however many."""
    if moves:
        t = Message.__table__
        session.execute(
            update(t).where(t.c.id == bindparam("mid"))
            .values(stage=bindparam("new_stage"), status=bindparam("new_status"),
                    updated_at=bindparam("now")),
            [{"mid": m, "new_stage": stage, "new_status": status, "now": db.utcnow()}
             for m, stage, status in moves])


def set_status(session: Session, message_id: int | None, status: str) -> None:
    """Set a message's status without loading it (a stage that failed for good, say)."""
    if message_id is not None:
        session.execute(update(Message).where(Message.id == message_id).values(status=status))


def mark(msg: Message, *, stage: str | None = None, status: str | None = None) -> None:
    """Move a message loaded in the caller's transaction to a stage and/or a status (no
    statement of its own: the change is written with the stage's other writes)."""
    if stage is not None:
        msg.stage = stage
    if status is not None:
        msg.status = status
