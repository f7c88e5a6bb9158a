"""Messages: one loaded for a stage, its stage and status moved on, a status set from outside."""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.orm import Session

from gateway.store.models import Message


def load(session: Session, message_id: int | None) -> Message | None:
    """The message with this id, or None (also for no id). The stages change its stage
    and status on the returned row; those changes commit with the caller's transaction."""
    return session.get(Message, message_id) if message_id is not None else None


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
