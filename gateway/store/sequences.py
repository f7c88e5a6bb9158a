"""Outbound X12 control numbers kept in the store, never handed out twice."""

from __future__ import annotations

from sqlalchemy import func, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from canonical.errors import OutboundDataError
from gateway.store import db
from gateway.store.models import ControlNumber
from mappings.x12.control_numbers import KINDS, Sequences
from mappings.x12.writer import MAX_CONTROL_NUMBER


def take(session: Session, scope: str, kind: str, start: int = 1) -> int:
    """The next number of scope's kind sequence, taken in the caller's transaction."""
    assert kind in KINDS
    on_sqlite = db.is_sqlite(session)
    # A `start` above the stored number moves it forward, never back.
    larger = func.max if on_sqlite else func.greatest
    step = (update(ControlNumber)
            .where(ControlNumber.scope == scope, ControlNumber.kind == kind)
            .values(last=larger(ControlNumber.last, start - 1) + 1)
            .returning(ControlNumber.last))
    row = session.execute(step).scalar_one_or_none()
    if row is None:  # the sequence's first number: make its row (once, whoever races us)
        session.execute(db.insert_new(session, ControlNumber)
                        .values(scope=scope, kind=kind, last=start - 1))
        row = session.execute(step).scalar_one()
    if row > MAX_CONTROL_NUMBER:
        # Raising rolls the increment back, so the table still says "used up".
        raise OutboundDataError(
            f"the {kind} control numbers of {scope!r} are used up (last "
            f"{row - 1}); they are never wrapped around")
    return int(row)


class StoreControlNumbers(Sequences):
    """The mappings.x12 ControlNumbers protocol on the control_numbers table.

    Each number is taken in a transaction of its own and committed before it is
    returned: a step that later rolls back skips a number, and never gives one back to
    be reused, since the interchange may already have left. Two processes are kept apart
    by the row lock of the UPDATE (PostgreSQL) or the write lock (SQLite).
    """

    def __init__(self, engine: Engine, scope: str = "default", start: int = 1) -> None:
        self.engine = engine
        self.scope = scope  # e.g. our ISA sender id, or a partner: each has its own sequence
        self._start = start

    def _take(self, kind: str) -> int:
        with db.transaction(self.engine) as session:
            return take(session, self.scope, kind, self._start)


class SessionControlNumbers(Sequences):
    """The ControlNumbers protocol inside one open transaction (the validate stage's).

    The numbers commit with the acknowledgments that use them; a rollback gives them back,
    which is safe only because nothing carrying them has left yet: the acknowledgments
    are written to the partner by a later step, after this commit.
    """

    def __init__(self, session: Session, scope: str = "default", start: int = 1) -> None:
        self.session, self.scope, self._start = session, scope, start

    def _take(self, kind: str) -> int:
        return take(self.session, self.scope, kind, self._start)
