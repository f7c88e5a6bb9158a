"""The validation verdicts of a message's sets or documents, kept for its map stage."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from gateway.store.models import SetVerdict
from mappings import verdicts
from mappings.verdicts import Verdict


def save(session: Session, message_id: int, found: Iterable[Verdict]) -> int:
    """Keep the message's verdicts (those of an earlier validation replaced); how many."""
    session.execute(delete(SetVerdict).where(SetVerdict.message_id == message_id))
    count = 0
    for n, chunk in enumerate(verdicts.encode(found)):
        session.add(SetVerdict(message_id=message_id, chunk=n, data=chunk))
        count += 1
    session.flush()
    return count


def recorded(session: Session, message_id: int) -> bool:
    """Whether the message's verdicts were kept (not for messages validated before 0005)."""
    return session.scalar(select(SetVerdict.chunk).where(
        SetVerdict.message_id == message_id).limit(1)) is not None


def read(sessions: Callable[[], AbstractContextManager[Session]],
         message_id: int) -> Iterator[Verdict]:
    """The message's verdicts in file order, one chunk read (and held) at a time.

    sessions: opens a session for each chunk's read (a short read transaction of its own
    for a large message, or the stage's one session).
    """
    chunk = 0
    while True:
        with sessions() as s:
            data = s.scalar(select(SetVerdict.data).where(SetVerdict.message_id == message_id,
                                                          SetVerdict.chunk == chunk))
        if data is None:
            return
        yield from verdicts.decode(data)
        chunk += 1
