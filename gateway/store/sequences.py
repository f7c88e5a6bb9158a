"""Outbound X12 control numbers kept in the store, never handed out twice."""

from __future__ import annotations

from collections.abc import Collection, Mapping

from sqlalchemy import case, func, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from canonical.errors import OutboundDataError
from gateway.store import db
from gateway.store.models import ControlNumber
from mappings.x12.control_numbers import KINDS, Sequences
from mappings.x12.writer import MAX_CONTROL_NUMBER


def take(session: Session, scope: str, kind: str, start: int = 1) -> int:
    """The next number of scope's kind sequence, taken in the caller's transaction."""
    return reserve(session, scope, {kind: 1}, start)[kind]


def reserve(session: Session, scope: str, counts: Mapping[str, int],
            start: int = 1) -> dict[str, int]:
    """Take counts[kind] numbers of each kind of scope at once, in the caller's transaction:
    the first of each kind's block (the block runs on from it). One UPDATE .. RETURNING
    for all kinds (and, the first time, one INSERT of the rows)."""
    wanted = {k: n for k, n in counts.items() if n > 0}
    assert set(wanted) <= set(KINDS)
    out: dict[str, int] = {}
    for attempt in range(2):
        todo = {k: n for k, n in wanted.items() if k not in out}
        if not todo:
            break
        if attempt:  # the sequences' first numbers: make their rows (once, whoever races us)
            session.execute(db.insert_new(session, ControlNumber),
                            [{"scope": scope, "kind": k, "last": start - 1} for k in todo])
        # A `start` above the stored number moves it forward, never back.
        larger = func.max if db.is_sqlite(session) else func.greatest
        step = (update(ControlNumber)
                .where(ControlNumber.scope == scope, ControlNumber.kind.in_(list(todo)))
                .values(last=larger(ControlNumber.last, start - 1)
                        + case(todo, value=ControlNumber.kind))
                .returning(ControlNumber.kind, ControlNumber.last))
        for kind, last in session.execute(step).all():
            if last > MAX_CONTROL_NUMBER:
                # Raising rolls the increment back, so the table still says "used up".
                raise OutboundDataError(
                    f"the {kind} control numbers of {scope!r} are used up (last "
                    f"{last - todo[kind]}); they are never wrapped around")
            out[kind] = int(last) - todo[kind] + 1
    return out


def last_taken(session: Session, scopes: Collection[str]) -> dict[tuple[str, str], int]:
    """The last number taken of each sequence of these scopes, by (scope, kind)."""
    if not scopes:
        return {}
    rows = session.execute(select(ControlNumber.scope, ControlNumber.kind, ControlNumber.last)
                           .where(ControlNumber.scope.in_(list(scopes))))
    return {(scope, kind): int(last) for scope, kind, last in rows}


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
