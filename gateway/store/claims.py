"""The work queue: enqueue, claim under a lease, heartbeat, complete, fail, and reap the dead.

Every function works inside the caller's transaction (see db.transaction), so a stage
completes its item in the same commit that stores its output.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, exists, func, insert, literal, select, update
from sqlalchemy.orm import Session

from canonical.errors import TransientError
from gateway.store import db
from gateway.store.models import DeadLetter, DeadLetterStatus, Message, WorkItem, WorkStatus

# R4: an input that kills its worker this many times is parked instead of claimed again.
MAX_CLAIMS = 3
_RETURNING = {"synchronize_session": False, "populate_existing": True}


class LeaseLost(TransientError):
    """The worker no longer holds the work item: its lease ran out and it may be elsewhere."""


def enqueue(session: Session, kind: str, *, message_id: int | None = None,
            delivery_id: int | None = None, run_after: datetime | None = None,
            document_id: int | None = None) -> WorkItem:
    """Add a work item of kind, ready at run_after (now by default)."""
    item = WorkItem(kind=kind, message_id=message_id, delivery_id=delivery_id,
                    document_id=document_id, status=WorkStatus.PENDING,
                    run_after=run_after or db.utcnow())
    session.add(item)
    session.flush()
    return item


def enqueue_once(session: Session, kind: str, *, message_id: int | None = None,
                 delivery_id: int | None = None) -> int | None:
    """Enqueue kind for these ids unless an item of it is already waiting or running; the
    new item's id, or None.

    One INSERT ... SELECT ... WHERE NOT EXISTS: a re-run of a stage must not double the
    work after it, and asking first then inserting cost two statements per enqueue. No
    unique key backs it (a done item may be enqueued again by a replay), so, as with the
    look-then-insert it replaces, two concurrent transactions on PostgreSQL could both
    insert; SQLite runs one writer at a time.
    """
    now = db.utcnow()
    t = WorkItem.__table__
    waiting = exists().where(
        t.c.kind == kind, t.c.message_id == message_id, t.c.delivery_id == delivery_id,
        t.c.status.in_((WorkStatus.PENDING, WorkStatus.CLAIMED)))
    values = {"kind": kind, "message_id": message_id, "delivery_id": delivery_id,
              "status": WorkStatus.PENDING, "attempts": 0, "lost_leases": 0,
              "run_after": now, "created_at": now, "updated_at": now}
    row = select(*(literal(v, t.c[k].type).label(k) for k, v in values.items())).where(~waiting)
    return session.scalar(t.insert().from_select(list(values), row).returning(t.c.id))


def enqueue_once_of(session: Session, kind: str, message_ids: Collection[int]) -> None:
    """enqueue_once for several messages: one look for those waiting, one insert of the rest."""
    if not message_ids:
        return
    waiting = set(session.scalars(select(WorkItem.message_id).where(
        WorkItem.kind == kind, WorkItem.message_id.in_(list(message_ids)),
        WorkItem.delivery_id.is_(None),
        WorkItem.status.in_((WorkStatus.PENDING, WorkStatus.CLAIMED)))))
    enqueue_many(session, kind, [m for m in dict.fromkeys(message_ids) if m not in waiting])


def enqueue_many(session: Session, kind: str, message_ids: list[int], *,
                 now: datetime | None = None) -> None:
    """Add a ready work item of kind for each message, in one statement."""
    if message_ids:
        now = now or db.utcnow()
        # Core, not the ORM's bulk insert: nothing is wanted back.
        db.core(session, insert(WorkItem.__table__), [
            {"kind": kind, "message_id": m, "status": WorkStatus.PENDING, "run_after": now,
             "created_at": now, "updated_at": now} for m in message_ids])


def claim(session: Session, kinds: Collection[str], worker_id: str, lease_seconds: float,
          limit: int = 1, *, now: datetime | None = None,
          max_claims: int = MAX_CLAIMS) -> list[WorkItem]:
    """Claim up to limit ready items of the given kinds for worker_id, oldest first.

    Items whose lease ran out are first taken back (their worker is presumed dead), or
    parked as dead letters once max_claims workers died holding them. An item whose worker
    died before is claimed alone: if it is what kills workers, it must not take a batch of
    innocent items to the dead-letter queue with it.
    """
    now = now or db.utcnow()
    _reap(session, kinds, now, max_claims)
    ready = (select(WorkItem.id, WorkItem.lost_leases)
             .where(WorkItem.status == WorkStatus.PENDING, WorkItem.kind.in_(kinds),
                    WorkItem.run_after <= now)
             .order_by(WorkItem.run_after, WorkItem.id)
             .limit(limit))
    rows = _lock_rows(session, ready)
    if not rows:
        return []
    ids = [rows[0][0]] if rows[0][1] else [item_id for item_id, lost in rows if not lost]
    stmt = (update(WorkItem)
            .where(WorkItem.id.in_(ids))
            .values(status=WorkStatus.CLAIMED, lease_owner=worker_id,
                    lease_expires_at=now + timedelta(seconds=lease_seconds),
                    heartbeat_at=now, attempts=WorkItem.attempts + 1, updated_at=now)
            .returning(WorkItem))
    items = session.scalars(stmt, execution_options=_RETURNING).all()
    # RETURNING promises no order.
    return sorted(items, key=lambda i: (i.run_after, i.id))


def heartbeat(session: Session, worker_id: str, ids: Iterable[int], lease_seconds: float, *,
              now: datetime | None = None) -> set[int]:
    """Extend worker_id's leases on ids; the ids it still holds (drop work on the others)."""
    now = now or db.utcnow()
    stmt = (update(WorkItem)
            .where(*_held(worker_id, ids))
            .values(lease_expires_at=now + timedelta(seconds=lease_seconds), heartbeat_at=now,
                    updated_at=now)
            .returning(WorkItem.id))
    return set(session.scalars(stmt, execution_options={"synchronize_session": False}))


def hold(session: Session, worker_id: str, item_id: int, lease_seconds: float) -> None:
    """Extend worker_id's lease on one item; LeaseLost (roll back) if it holds it no more.

    For a stage that commits its work in several transactions: each checks that the item
    is still its own before its part of the output is written.
    """
    if item_id not in heartbeat(session, worker_id, [item_id], lease_seconds):
        raise LeaseLost(f"worker {worker_id} no longer holds work item {item_id}")


def complete(session: Session, worker_id: str, ids: Iterable[int], *,
             now: datetime | None = None) -> None:
    """Mark ids done; LeaseLost (roll the step back) if worker_id no longer holds them all."""
    ids = set(ids)
    _finish(session, worker_id, ids, {"status": WorkStatus.DONE, "lease_expires_at": None},
            now)


def fail(session: Session, worker_id: str, item_id: int, error: str, *,
         run_after: datetime | None = None, now: datetime | None = None) -> None:
    """Record a failed attempt: try again at run_after, or, without one, give up on it.

    Giving up marks the item failed; parking it as a dead letter is the stage's job,
    since only the stage knows the endpoint and the cause chain.
    """
    values: dict[str, object] = {"last_error": error, "lease_expires_at": None}
    if run_after is None:
        values["status"] = WorkStatus.FAILED
    else:
        values.update(status=WorkStatus.PENDING, run_after=run_after, lease_owner=None)
    _finish(session, worker_id, {item_id}, values, now)


def _finish(session: Session, worker_id: str, ids: set[int], values: dict[str, object],
            now: datetime | None) -> None:
    if not ids:
        return
    stmt = (update(WorkItem)
            .where(*_held(worker_id, ids))
            .values(updated_at=now or db.utcnow(), **values)
            .returning(WorkItem.id))
    done = set(session.scalars(stmt, execution_options={"synchronize_session": False}))
    if done != ids:
        # Finishing some and not others would commit a stage's output for work that
        # another worker is also doing; the caller must roll the whole step back.
        raise LeaseLost(f"worker {worker_id} no longer holds work items "
                        f"{sorted(ids - done)}")


def load(session: Session, item_id: int) -> WorkItem:
    """A work item as the store has it now, in the caller's transaction (which may change it)."""
    item = session.get(WorkItem, item_id)
    assert item is not None, f"work item {item_id} is not in the store"
    return item


def earliest_waiting(session: Session, partners: Collection[str],
                     kinds: Collection[str]) -> dict[str, datetime]:
    """Per partner, when the earliest of its messages still waiting for (or in) one of
    these stages was received; partners with none are left out."""
    if not partners:
        return {}
    rows = session.execute(
        select(Message.partner, func.min(Message.received_at))
        .join(WorkItem, WorkItem.message_id == Message.id)
        .where(Message.partner.in_(list(partners)), WorkItem.kind.in_(list(kinds)),
               WorkItem.status.in_((WorkStatus.PENDING, WorkStatus.CLAIMED)))
        .group_by(Message.partner))
    # min() keeps the column's type, so the times come back in UTC as the column gives them.
    return {partner: at for partner, at in rows if at is not None}


def busy(session: Session, kinds: Collection[str], *, now: datetime | None = None) -> bool:
    """Whether any item of kinds is ready now or claimed by someone (and may enqueue more)."""
    now = now or db.utcnow()
    return bool(session.scalar(select(exists().where(
        WorkItem.kind.in_(kinds),
        ((WorkItem.status == WorkStatus.PENDING) & (WorkItem.run_after <= now))
        | (WorkItem.status == WorkStatus.CLAIMED)))))


def park(session: Session, *, stage: str, reason: str, error_chain: list[dict[str, Any]],
         message_id: int | None = None, delivery_id: int | None = None,
         work_item_id: int | None = None, endpoint: str | None = None,
         attempts: int = 1, now: datetime | None = None) -> DeadLetter:
    """Park work as a dead letter for an operator, in the caller's transaction (the
    caller words the reason and the chain, secrets hidden: see pipeline/parking)."""
    row = DeadLetter(**_letter(stage=stage, reason=reason, error_chain=error_chain,
                               message_id=message_id, delivery_id=delivery_id,
                               work_item_id=work_item_id, endpoint=endpoint,
                               attempts=attempts, now=now))
    session.add(row)
    session.flush()
    return row


def park_many(session: Session, letters: Sequence[dict[str, Any]]) -> None:
    """park for several, each given as park's keyword arguments: one statement."""
    if letters:
        now = db.utcnow()
        session.execute(DeadLetter.__table__.insert(),
                        [_letter(**{"now": now, **kw}) for kw in letters])


def _letter(*, stage: str, reason: str, error_chain: list[dict[str, Any]],
            message_id: int | None = None, delivery_id: int | None = None,
            work_item_id: int | None = None, endpoint: str | None = None,
            attempts: int = 1, now: datetime | None = None) -> dict[str, Any]:
    now = now or db.utcnow()
    return {"message_id": message_id, "delivery_id": delivery_id,
            "work_item_id": work_item_id, "stage": stage, "endpoint": endpoint,
            "reason": reason, "error_chain": error_chain, "attempts": attempts,
            "first_failed_at": now, "last_failed_at": now, "status": DeadLetterStatus.PARKED}


def _held(worker_id: str, ids: Iterable[int]) -> tuple:
    # No time check: a lease that ran out but was not yet taken back is still safely ours,
    # since taking it back and this update exclude each other (row lock or SQLite's lock).
    return (WorkItem.id.in_(list(ids)), WorkItem.lease_owner == worker_id,
            WorkItem.status == WorkStatus.CLAIMED)


def _lock(session: Session, query: Select[tuple[int]]) -> list[int]:
    """The ids query selects, locked for this transaction without waiting on other workers."""
    return [row[0] for row in _lock_rows(session, query)]


def _lock_rows(session: Session, query: Select) -> list[tuple]:
    """The rows query selects, locked for this transaction without waiting on other workers."""
    if not db.is_sqlite(session):
        query = query.with_for_update(skip_locked=True, of=WorkItem)
    # On SQLite the whole database is already ours: writers begin IMMEDIATE.
    return [tuple(row) for row in session.execute(query)]


def _reap(session: Session, kinds: Collection[str], now: datetime, max_claims: int) -> None:
    """Take back the items of kinds whose worker stopped heartbeating before its lease ran out."""
    expired = _lock(session, select(WorkItem.id).where(
        WorkItem.status == WorkStatus.CLAIMED, WorkItem.kind.in_(kinds),
        WorkItem.lease_expires_at < now))
    if not expired:
        return
    # This death is the item's lost_leases + 1st.
    dying = (update(WorkItem)
             .where(WorkItem.id.in_(expired), WorkItem.lost_leases + 1 >= max_claims)
             .values(status=WorkStatus.DEAD, lost_leases=WorkItem.lost_leases + 1,
                     updated_at=now)
             .returning(WorkItem))
    for item in session.scalars(dying, execution_options=_RETURNING).all():
        session.add(_dead_letter(item, now))
    session.execute(
        update(WorkItem)
        .where(WorkItem.id.in_(expired), WorkItem.status == WorkStatus.CLAIMED)
        .values(status=WorkStatus.PENDING, lost_leases=WorkItem.lost_leases + 1,
                lease_owner=None, lease_expires_at=None, updated_at=now),
        execution_options={"synchronize_session": False})
    session.flush()


def _dead_letter(item: WorkItem, now: datetime) -> DeadLetter:
    reason = f"worker died {item.lost_leases} times while processing"
    return DeadLetter(
        message_id=item.message_id, delivery_id=item.delivery_id, work_item_id=item.id,
        stage=item.kind, reason=reason, attempts=item.attempts,
        error_chain=[{"type": "LeaseExpired",
                      "message": f"{reason}; the last was {item.lease_owner}, whose lease "
                                 f"ran out at {item.lease_expires_at.isoformat() if item.lease_expires_at else '?'}"}],
        first_failed_at=now, last_failed_at=now)
